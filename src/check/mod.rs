//! Repository verification over a read-only view.
//!
//! [`check`] runs in phases and never stops at the first damage it finds:
//! every problem is recorded in the [`CheckReport`], naming the object, and
//! the check goes on with the rest. Only a failure to list the repository's
//! files (or to run at all) is a [`CheckError`].
//!
//! 1. The config and every key file decode.
//! 2. Every index file loads (name hash, decryption, decoding); the live
//!    index is the union of the files no other file supersedes.
//! 3. The packs in storage are compared with the index: indexed but missing
//!    (error), stored but not indexed (warning), size differs (error).
//! 4. Every pack header is read with two ranged reads and compared with the
//!    index.
//! 5. Every snapshot loads; its trees are walked from the root, each tree
//!    once: every tree loads and decodes, every data blob is in the index.
//!    Indexed blobs no snapshot reaches are reported (info).
//! 6. With [`ReadData`], packs are downloaded whole and every blob is opened
//!    and checked against its id.
//!
//! Reads run on the repository's I/O runtime with bounded concurrency;
//! opening blobs runs on the rayon pool.

mod concurrent;
mod data;
mod error;
mod report;
mod structure;
mod walk;

#[cfg(test)]
mod tests;

pub use data::{pack_number, Subset};
pub use error::CheckError;
pub use report::{CheckReport, Counters, ObjectType, Problem, Severity};

use crate::repo::Repository;

/// How much pack data to download.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReadData {
    /// Only pack headers (the structure check).
    #[default]
    None,
    /// Every pack.
    All,
    /// A subset of the packs.
    Subset(Subset),
}

/// What to check and how hard to push the storage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckOptions {
    pub read_data: ReadData,
    /// Whole packs downloaded at once; memory use is about this many packs
    /// plus two.
    pub connections: usize,
    /// Small reads (index files, pack headers, trees) in flight at once.
    pub small_reads: usize,
    /// Unused blobs listed one by one before the rest is only counted.
    pub list_unused: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            read_data: ReadData::None,
            connections: 2,
            small_reads: 8,
            list_unused: 100,
        }
    }
}

/// Checks the repository and reports what it finds.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    if opts.connections == 0 || opts.small_reads == 0 {
        return Err(CheckError::InvalidOption(
            "connections and small reads must be at least 1".into(),
        ));
    }
    let mut report = CheckReport::default();
    structure::check_keys_and_config(repo, &mut report)?;
    let loaded = structure::load_index(repo, opts.small_reads, &mut report)?;
    let stored = structure::compare_pack_lists(repo, &loaded, &mut report)?;
    structure::check_pack_headers(repo, &loaded, &stored, opts.small_reads, &mut report)?;
    let reached = walk::check_snapshots(repo, &loaded, opts.small_reads, &mut report)?;
    walk::report_unused(&loaded, &reached, opts.list_unused, &mut report);
    drop(reached);
    let readable = data::readable_packs(&loaded, &stored);
    let to_read = match opts.read_data {
        ReadData::None => Vec::new(),
        ReadData::All => readable,
        ReadData::Subset(subset) => {
            let mut seed = [0u8; 32];
            crate::crypto::random_bytes(&mut seed).map_err(CheckError::Random)?;
            subset.select(&readable, seed)
        }
    };
    if !to_read.is_empty() {
        data::read_packs(repo, &loaded, to_read, opts.connections, &mut report)?;
    }
    report.sort();
    Ok(report)
}
