//! How this process runs: its clock (fixed in test builds) and the durations it waits, its
//! signals and deadlines, and its failure points (crash-safety test builds only).
pub mod clock;
pub mod duration;
pub mod failpoints;
pub mod interrupt;
