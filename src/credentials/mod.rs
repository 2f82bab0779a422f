//! Admin credentials: re-issue `admin.conf` / `super-admin.conf` from the cluster CA, keep their
//! identity, prove them against the apiserver, and fix the copies people made.
pub mod copies;
pub mod issue;
pub mod kubeconfig;
pub mod pem;
pub mod pki;
pub mod token;
pub mod verify;
