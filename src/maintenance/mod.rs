//! Repository upkeep: copying snapshots between repositories and repairing
//! a damaged index or snapshots.
//!
//! Each command is one library function that the CLI calls (and around
//! which it takes the repository's lock); none of them prints anything:
//! progress goes through a callback.

pub mod copy;
pub mod error;
pub mod repair_index;
pub mod repair_snapshots;

pub use error::MaintenanceError;

#[cfg(test)]
mod lock_tests;
