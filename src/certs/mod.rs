//! The control-plane certificates: which the node depends on and who uses each
//! ([`catalogue`], pure), what the files hold and what the running components present or hold
//! ([`inspect`], with [`served`]'s handshake), and what is wrong ([`verdict`], pure). Reads only:
//! `certs check`, `status`, `diagnose` and `guide` read through here.
pub mod catalogue;
pub mod inspect;
pub mod prove;
pub mod reissue;
pub mod served;
pub mod verdict;
