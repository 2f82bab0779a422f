//! Credentials: admin.conf and super-admin.conf re-issued from the cluster CA with their
//! identity and proved against the apiserver, the copies people made, service-account and OIDC
//! tokens, kubeconfig files, PKI and PEM.
pub mod copies;
pub mod issue;
pub mod kubeconfig;
pub mod pem;
pub mod pki;
pub mod token;
pub mod verify;
