//! The running apiserver: which process it is (/proc, crictl), and what it answers (kube).
pub mod admin;
pub mod call;
pub mod client;
pub mod logs;
pub mod process;

/// The tool is synchronous; the few API calls it makes run on a small runtime of their own.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
