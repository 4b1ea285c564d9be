//! Manifest backup and restore: discovery, filters, normalisation, the
//! stored layout, restore order and rewriting, and [`run`], which ties them
//! to a repository.
//!
//! The async functions of [`backup`] and [`restore`] talk to the cluster
//! only; the caller moves the files into and out of the repository (see
//! [`crate::backup::memory::MemoryBackup`], which takes the objects page by
//! page as [`backup::collect`] sends them, and [`stored::load_objects`])
//! outside of any async context, as [`run`] does.

pub mod attempts;
pub mod backup;
pub mod claims;
pub mod discovery;
pub mod existing;
pub mod filter;
pub mod latest;
pub mod modifiers;
pub mod namespaces;
pub mod needs;
pub mod normalise;
pub mod objects;
pub mod order;
pub mod owners;
pub mod pager;
pub mod report;
pub mod restore;
pub mod run;
pub mod segment;
pub mod select;
pub mod stored;
pub mod tokens;
pub mod transform;
pub mod versions;
