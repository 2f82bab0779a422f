//! kubeadm-recover: break-glass recovery for kubeadm control-plane nodes.
pub mod manifest;
