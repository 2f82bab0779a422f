//! The simulated node: a kubeadm node's files, a kubelet, and an apiserver that behave like the
//! real ones in everything the tool relies on (DESIGN.md §4). Used by `rehearse` and the tests.
//! The tool itself never talks to the simulation except through what a real node offers:
//! files, /proc, and the apiserver's HTTPS API.
pub mod apiserver;
pub mod config;
pub mod kubelet;
pub mod node;
