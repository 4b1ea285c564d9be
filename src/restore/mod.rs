//! Restoring a snapshot, or a directory inside one, into a target directory.
//!
//! A restore walks the snapshot's trees (depth first), decides per entry
//! whether to write it (see [`Overwrite`]), plans the reads by pack with the
//! pure [`plan`] module, and then executes the plan with bounded
//! parallelism: each ranged read is fetched once, every blob in it is opened
//! and checked against its id, and its plaintext is written to every place
//! that needs it. Unverified bytes are never written. Hard links, special
//! files and metadata follow; directories get their metadata last, deepest
//! first, so writing their contents does not disturb their times.
//!
//! Nothing outside the target is ever reached: the target is opened once
//! and every entry below it is reached from that descriptor one name at a
//! time, never following a symlink (see `target_dir`).

use crate::repo::CancelToken;
use std::path::PathBuf;

pub mod error;
pub mod fsmeta;
pub mod plan;
mod restorer;
mod target_dir;
mod verify;
pub mod walk;

#[cfg(test)]
mod tests;

pub use error::{RestoreError, VerifyFailure};
pub use fsmeta::MetaOptions;
pub use restorer::restore;
pub use walk::{resolve_source, split_spec, subtree, RestoreSource};

/// What to do with a file that already exists in the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace it.
    Always,
    /// Keep it when it has the snapshot's size and mtime (a completed file
    /// of an earlier, interrupted restore); replace it otherwise.
    #[default]
    IfChanged,
    /// Never touch an existing path.
    Never,
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Directory the restored tree's contents land in (created if missing).
    pub target: PathBuf,
    /// Path inside the snapshot of the tree being restored (`/` for the
    /// whole snapshot); patterns are matched against `subpath/entry`.
    pub subpath: PathBuf,
    /// Globs of entries to restore, with the directories leading to them
    /// and, for directories, everything inside; empty restores everything.
    pub include: Vec<String>,
    /// Globs of entries (and everything inside them) to leave out.
    pub exclude: Vec<String>,
    pub overwrite: Overwrite,
    /// After writing, re-read every restored file and check each blob's id.
    pub verify: bool,
    /// Plan and report only; write nothing.
    pub dry_run: bool,
    pub meta: MetaOptions,
    /// Concurrent pack reads (and restore threads).
    pub connections: usize,
    /// Stops the restore between files and between packs; files not yet
    /// complete are removed.
    pub cancel: Option<CancelToken>,
    /// An open directory to restore into (a pod volume found by the node
    /// agent); `target` then only names it in messages, and nothing is
    /// resolved by path.
    pub target_dir: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            target: PathBuf::new(),
            subpath: PathBuf::from("/"),
            include: Vec::new(),
            exclude: Vec::new(),
            overwrite: Overwrite::default(),
            verify: false,
            dry_run: false,
            meta: MetaOptions::default(),
            connections: 4,
            cancel: None,
            target_dir: None,
        }
    }
}

/// Where a restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Planning,
    Writing,
    Metadata,
    Verifying,
    Done,
}

/// Progress reported while restoring (from several threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RestoreProgress {
    pub phase: Phase,
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub ranges_total: u64,
    pub ranges_done: u64,
}

/// The progress callback: called from the restore threads.
pub type ProgressFn<'a> = &'a (dyn Fn(&RestoreProgress) + Sync);

/// What a restore did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreSummary {
    pub dry_run: bool,
    /// Regular files written (including empty ones).
    pub files_restored: u64,
    /// Existing files kept by the overwrite policy (and entries below a
    /// directory that `Never` kept from being created).
    pub files_skipped: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks, fifos and devices created.
    pub specials: u64,
    pub hard_links: u64,
    /// Plaintext bytes written (holes not counted).
    pub bytes_written: u64,
    /// Distinct packs read.
    pub packs_read: u64,
    /// Ranged reads issued.
    pub ranges_read: u64,
    /// Distinct blobs read and opened.
    pub blobs_read: u64,
    /// Sealed bytes fetched from storage.
    pub bytes_read: u64,
    /// Files re-read and checked (with `verify`).
    pub files_verified: u64,
}
