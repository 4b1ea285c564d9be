//! Repository verification over a read-only view.
//!
//! [`check`] runs in phases and never stops at the first damage it finds:
//! every problem is recorded in the [`CheckReport`], naming the object, and
//! the check goes on with the rest. Only a failure to list the repository's
//! files (or to run at all) is a [`CheckError`].
//!
//! 1. The config and every key file decode.
//! 2. Every index file loads (name hash, decryption, decoding), one at a
//!    time into the in-memory [`Index`](crate::repo::Index); the live index
//!    is the union of the files no other file supersedes.
//! 3. Every snapshot loads; its trees are walked from the root, each tree
//!    once: every tree loads and decodes, every data blob is in the index.
//!    Reached blobs are one bit each, by index position.
//! 4. The packs in storage are compared with the index: stored but not
//!    indexed (warning), size differs (error).
//! 5. The live index files are read again one at a time; where the first of
//!    them lists a pack: other files that list it differently (error), the
//!    pack missing from storage (error), its header (two ranged reads)
//!    against the entries, blobs stored in several packs and indexed blobs
//!    no snapshot reaches (info); with [`ReadData`], the pack is read in
//!    pieces of at most 4 MiB (or one longer blob), in order, its hash is
//!    checked and every blob is opened and checked against its id.
//!
//! Memory is the index, a bit per blob, a few bytes per pack and bounded
//! buffers; no list of blob ids is kept beyond those reported. Reads run on
//! the repository's I/O runtime with bounded concurrency; opening blobs runs
//! on the rayon pool.

mod concurrent;
mod data;
mod error;
mod packs;
mod report;
mod structure;
mod walk;

#[cfg(test)]
mod tests;

pub use data::{pack_number, Selection, Subset};
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
    /// Pieces of packs (`piece_size`, or one longer blob) downloaded at once;
    /// memory use is about this many pieces plus two.
    pub connections: usize,
    /// Small reads (index files, pack headers, trees) in flight at once.
    pub small_reads: usize,
    /// Unused blobs listed one by one before the rest is only counted.
    pub list_unused: usize,
    /// Longest piece of a pack read and held at once by `--read-data` (a
    /// longer blob is read as one piece).
    pub piece_size: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            read_data: ReadData::None,
            connections: 2,
            small_reads: 8,
            list_unused: 100,
            piece_size: data::PIECE,
        }
    }
}

/// Checks the repository and reports what it finds.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    if opts.connections == 0 || opts.small_reads == 0 || opts.piece_size == 0 {
        return Err(CheckError::InvalidOption(
            "connections, small reads and the piece size must be at least 1".into(),
        ));
    }
    let mut report = CheckReport::default();
    structure::check_keys_and_config(repo, &mut report)?;
    let index = structure::load_index(repo, opts.small_reads, &mut report)?;
    let reached = walk::check_snapshots(repo, &index, opts.small_reads, &mut report)?;
    let stored = structure::compare_pack_lists(repo, &index, &mut report)?;
    let selection = match opts.read_data {
        ReadData::None => Selection::Nothing,
        ReadData::All => Selection::All,
        ReadData::Subset(subset) => {
            let mut seed = [0u8; 32];
            crate::crypto::random_bytes(&mut seed).map_err(CheckError::Random)?;
            let readable = (0..index.pack_count())
                .filter(|&pos| stored.present.get(pos))
                .filter_map(|pos| index.pack_at(pos).map(|(id, _)| id));
            subset.selection(readable, seed)
        }
    };
    packs::check_packs(repo, &index, &stored, &reached, selection, opts, &mut report)?;
    report.sort();
    Ok(report)
}
