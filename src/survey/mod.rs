//! The survey: what the node shows (status facts), what is wrong with it (diagnose), what to do
//! about it (the guide's plan) and who still depends on token extension (migration). Reads only.
pub mod diagnose;
pub mod etcd_log;
pub mod facts;
pub mod guide;
pub mod machine;
pub mod migration;
