//! The running apiserver: which process it is (/proc, crictl), and what it answers (kube).
pub mod client;
pub mod logs;
pub mod process;
