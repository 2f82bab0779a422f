//! The change: a plan, the one transaction that carries it out (backup → write → prove → roll
//! back), the journal that lets a killed run be finished or undone, and the restart proof.
pub mod executor;
pub mod fleet;
pub mod journal;
pub mod plan;
pub mod prove;
pub mod restart;
/// Going back on a recorded change (`revert`) or finishing one (`resume`): the session, the plan.
pub mod revert;
pub mod schedule;
pub mod transaction;
pub mod write;
