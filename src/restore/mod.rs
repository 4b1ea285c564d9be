//! Restoring a snapshot to the local file system.

pub mod fsmeta;
