//! The change: the planners that turn a request into a plan (`regenerate` for admin
//! credentials, `renew` for the control-plane certificates, `revert` for going back and
//! finishing), the one transaction that carries a plan
//! out (backup → write → prove → roll back), the journal that lets a killed run be finished or
//! undone, and the restart proof.
pub mod executor;
pub mod fleet;
pub mod journal;
pub mod plan;
pub mod prove;
pub mod regenerate;
pub mod renew;
pub mod restart;
/// Going back on a recorded change (`revert`) or finishing one (`resume`): the session, the plan.
pub mod revert;
pub mod schedule;
pub mod transaction;
pub mod write;
