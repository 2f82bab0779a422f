//! How this process runs: its clock (fixed in test builds), its signals and deadlines, and its
//! failure points (crash-safety test builds only).
pub mod clock;
pub mod failpoints;
pub mod interrupt;
