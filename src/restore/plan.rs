//! The restore planner: which packs to read, in which ranges, and where each
//! blob goes.
//!
//! Pure: it takes the files to restore and a way to look blobs up in the
//! index, and returns the reads to perform. Every blob appears once in the
//! plan with all the places (file, offset) it must be written to, so a blob
//! shared by many files, or repeated in one, is read and opened once. The
//! blobs of a pack are sorted by offset and neighbours are merged into one
//! ranged read when the gap between them is small, so a pack is normally
//! read once, front to back.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::format::tree::Content;
use crate::id::{BlobId, PackId};
use crate::repo::BlobLocation;

/// Largest gap of unneeded bytes read to merge two blobs into one request.
pub const DEFAULT_MAX_GAP: u64 = 256 << 10;
/// Largest single ranged read: each restore thread holds one, so this
/// bounds the sealed bytes in memory (a longer blob is read alone).
pub const DEFAULT_MAX_RANGE: u64 = 4 << 20;

/// How reads are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Blobs separated by at most this many bytes share a read.
    pub max_gap: u64,
    /// A merged read never grows beyond this (a single larger blob is read alone).
    pub max_range: u64,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            max_gap: DEFAULT_MAX_GAP,
            max_range: DEFAULT_MAX_RANGE,
        }
    }
}

/// A place a blob's plaintext is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// Index of the file in the planner's input.
    pub file: usize,
    /// Byte offset within that file.
    pub offset: u64,
}

/// One blob to read, open and write to its targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBlob {
    pub id: BlobId,
    pub location: BlobLocation,
    /// Every place that needs this blob, in input order.
    pub targets: Vec<Target>,
}

impl PlannedBlob {
    fn start(&self) -> u64 {
        u64::from(self.location.offset)
    }

    fn end(&self) -> u64 {
        self.start() + u64::from(self.location.length)
    }
}

/// One ranged read of a pack and the blobs inside it, by offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRange {
    pub pack: PackId,
    pub offset: u64,
    pub length: u64,
    pub blobs: Vec<PlannedBlob>,
}

impl ReadRange {
    /// The sealed bytes of `blob` within the bytes read for this range, or
    /// `None` if they were not all read.
    pub fn slice<'a>(&self, bytes: &'a [u8], blob: &PlannedBlob) -> Option<&'a [u8]> {
        let start = usize::try_from(blob.start().checked_sub(self.offset)?).ok()?;
        let end = start.checked_add(blob.location.length as usize)?;
        bytes.get(start..end)
    }
}

/// The whole restore, as reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestorePlan {
    /// Reads grouped by pack (packs in id order), each pack's by offset.
    pub ranges: Vec<ReadRange>,
    /// Length of each input file: its blobs' raw lengths plus its holes.
    pub file_lengths: Vec<u64>,
    /// Number of blob writes each input file receives.
    pub file_writes: Vec<usize>,
    /// Distinct packs read.
    pub packs: usize,
    /// Distinct blobs read.
    pub blobs: usize,
    /// Bytes fetched from storage (sealed, including merged gaps).
    pub read_bytes: u64,
    /// Plaintext bytes written (a blob counts once per target).
    pub write_bytes: u64,
}

/// A file that cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{}: data blob {id} is not in the index", crate::format::escape::path(path))]
    MissingBlob { id: BlobId, path: PathBuf },
    #[error("{}: its content adds up to more than 2^64 bytes", crate::format::escape::path(path))]
    TooLarge { path: PathBuf },
}

impl PlanError {
    /// The same error with its path joined to `base`.
    pub fn under(self, base: &Path) -> Self {
        match self {
            Self::MissingBlob { id, path } => Self::MissingBlob {
                id,
                path: base.join(path),
            },
            Self::TooLarge { path } => Self::TooLarge { path: base.join(path) },
        }
    }
}

/// Plans the reads that restore `files`, each a path (for messages) and its
/// content in order. File indices in the plan are positions in `files`.
pub fn plan<'a, I, P, F>(files: I, lookup: F, limits: PlanLimits) -> Result<RestorePlan, PlanError>
where
    I: IntoIterator<Item = (P, &'a [Content])>,
    P: AsRef<Path>,
    F: Fn(&BlobId) -> Option<BlobLocation>,
{
    let mut slots: HashMap<BlobId, usize> = HashMap::new();
    let mut blobs: Vec<PlannedBlob> = Vec::new();
    let mut out = RestorePlan::default();

    for (file, (path, content)) in files.into_iter().enumerate() {
        let mut pos = 0u64;
        let mut writes = 0usize;
        for piece in content {
            let len = match piece {
                Content::Hole(len) => *len,
                Content::Blob(id) => {
                    let slot = match slots.entry(*id) {
                        Entry::Occupied(e) => *e.get(),
                        Entry::Vacant(e) => {
                            let location = lookup(id).ok_or_else(|| PlanError::MissingBlob {
                                id: *id,
                                path: path.as_ref().to_owned(),
                            })?;
                            blobs.push(PlannedBlob {
                                id: *id,
                                location,
                                targets: Vec::new(),
                            });
                            *e.insert(blobs.len() - 1)
                        }
                    };
                    let blob = &mut blobs[slot];
                    blob.targets.push(Target { file, offset: pos });
                    writes += 1;
                    let raw = u64::from(blob.location.raw_length);
                    out.write_bytes += raw;
                    raw
                }
            };
            pos = pos.checked_add(len).ok_or_else(|| PlanError::TooLarge {
                path: path.as_ref().to_owned(),
            })?;
        }
        out.file_lengths.push(pos);
        out.file_writes.push(writes);
    }

    drop(slots);
    out.blobs = blobs.len();
    // Sorted in place by pack and offset, then moved into the ranges one by
    // one: no second copy of the blobs grouped by pack.
    blobs.sort_unstable_by_key(|b| (b.location.pack, b.start(), b.id));
    out.packs = blobs.chunk_by(|a, b| a.location.pack == b.location.pack).count();
    coalesce(blobs, limits, &mut out.ranges);
    out.ranges.shrink_to_fit();
    out.read_bytes = out.ranges.iter().map(|r| r.length).sum();
    Ok(out)
}

/// Merges blobs sorted by pack and offset into ranged reads, each within
/// one pack.
fn coalesce(blobs: Vec<PlannedBlob>, limits: PlanLimits, ranges: &mut Vec<ReadRange>) {
    let mut current: Option<ReadRange> = None;
    for blob in blobs {
        if let Some(range) = current.as_mut().filter(|r| r.pack == blob.location.pack) {
            let end = range.offset + range.length;
            let new_end = end.max(blob.end());
            let gap = blob.start().saturating_sub(end);
            if gap <= limits.max_gap && new_end - range.offset <= limits.max_range {
                range.length = new_end - range.offset;
                range.blobs.push(blob);
                continue;
            }
        }
        let next = ReadRange {
            pack: blob.location.pack,
            offset: blob.start(),
            length: u64::from(blob.location.length),
            blobs: vec![blob],
        };
        if let Some(done) = current.replace(next) {
            ranges.push(done);
        }
    }
    ranges.extend(current);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::BlobKind;

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    fn pack(n: u8) -> PackId {
        PackId([n; 32])
    }

    fn loc(p: u8, offset: u32, length: u32) -> BlobLocation {
        BlobLocation {
            kind: BlobKind::Data,
            pack: pack(p),
            offset,
            length,
            raw_length: length - 10,
        }
    }

    fn index(entries: &[(u8, BlobLocation)]) -> impl Fn(&BlobId) -> Option<BlobLocation> + '_ {
        move |b| entries.iter().find(|(n, _)| id(*n) == *b).map(|(_, l)| *l)
    }

    #[test]
    fn offsets_count_holes_and_repeated_blobs() {
        let entries = [(1, loc(1, 0, 110)), (2, loc(1, 110, 60))];
        let content = vec![
            Content::Blob(id(1)),
            Content::Hole(1000),
            Content::Blob(id(2)),
            Content::Blob(id(1)),
        ];
        let path = Path::new("/t/f");
        let p = plan([(path, content.as_slice())], index(&entries), PlanLimits::default()).unwrap();
        assert_eq!(p.file_lengths, vec![100 + 1000 + 50 + 100]);
        assert_eq!(p.file_writes, vec![3]);
        assert_eq!(p.blobs, 2);
        assert_eq!(p.ranges.len(), 1);
        let b1 = &p.ranges[0].blobs[0];
        assert_eq!(b1.id, id(1));
        assert_eq!(
            b1.targets,
            vec![Target { file: 0, offset: 0 }, Target { file: 0, offset: 1150 }]
        );
        assert_eq!(p.ranges[0].blobs[1].targets, vec![Target { file: 0, offset: 1100 }]);
        assert_eq!(p.write_bytes, 250);
    }

    #[test]
    fn shared_blob_is_read_once_for_every_file() {
        let entries = [(7, loc(3, 500, 40))];
        let a = vec![Content::Blob(id(7))];
        let b = vec![Content::Hole(5), Content::Blob(id(7))];
        let files = [(Path::new("a"), a.as_slice()), (Path::new("b"), b.as_slice())];
        let p = plan(files, index(&entries), PlanLimits::default()).unwrap();
        assert_eq!(p.blobs, 1);
        assert_eq!(p.ranges.len(), 1);
        assert_eq!(
            p.ranges[0].blobs[0].targets,
            vec![Target { file: 0, offset: 0 }, Target { file: 1, offset: 5 }]
        );
        assert_eq!((p.ranges[0].offset, p.ranges[0].length), (500, 40));
    }

    #[test]
    fn near_blobs_merge_and_far_ones_split() {
        let limits = PlanLimits {
            max_gap: 100,
            max_range: 1000,
        };
        // Out of order in the file; 1 and 2 are 50 bytes apart, 3 is 500 further.
        let entries = [(3, loc(1, 800, 100)), (1, loc(1, 0, 100)), (2, loc(1, 150, 100))];
        let content = vec![Content::Blob(id(3)), Content::Blob(id(2)), Content::Blob(id(1))];
        let p = plan([(Path::new("f"), content.as_slice())], index(&entries), limits).unwrap();
        let spans: Vec<_> = p.ranges.iter().map(|r| (r.offset, r.length, r.blobs.len())).collect();
        assert_eq!(spans, vec![(0, 250, 2), (800, 100, 1)]);
        assert_eq!(p.read_bytes, 350);
        assert_eq!(p.packs, 1);
        let order: Vec<_> = p.ranges[0].blobs.iter().map(|b| b.id).collect();
        assert_eq!(order, vec![id(1), id(2)]);
    }

    #[test]
    fn range_size_is_capped() {
        let limits = PlanLimits {
            max_gap: 100,
            max_range: 250,
        };
        let entries = [(1, loc(1, 0, 100)), (2, loc(1, 100, 100)), (3, loc(1, 200, 100))];
        let content: Vec<_> = (1..=3).map(|n| Content::Blob(id(n))).collect();
        let p = plan([(Path::new("f"), content.as_slice())], index(&entries), limits).unwrap();
        let spans: Vec<_> = p.ranges.iter().map(|r| (r.offset, r.length)).collect();
        assert_eq!(spans, vec![(0, 200), (200, 100)]);
    }

    #[test]
    fn each_pack_is_read_once_when_blobs_are_contiguous() {
        let mut entries = Vec::new();
        let mut files = Vec::new();
        for n in 0..40u8 {
            let p = n % 4;
            entries.push((n, loc(p, u32::from(n / 4) * 1000, 1000)));
            files.push(vec![Content::Blob(id(n))]);
        }
        let paths: Vec<PathBuf> = (0..40).map(|n| PathBuf::from(format!("f{n}"))).collect();
        let input = paths.iter().map(PathBuf::as_path).zip(files.iter().map(Vec::as_slice));
        let p = plan(input, index(&entries), PlanLimits::default()).unwrap();
        assert_eq!(p.packs, 4);
        assert_eq!(p.ranges.len(), 4);
        let mut packs: Vec<_> = p.ranges.iter().map(|r| r.pack).collect();
        packs.dedup();
        assert_eq!(packs.len(), 4);
        assert!(p.ranges.iter().all(|r| r.length == 10_000 && r.blobs.len() == 10));
    }

    #[test]
    fn missing_blob_names_blob_and_file() {
        let content = vec![Content::Blob(id(9))];
        let err = plan(
            [(Path::new("/t/lost.txt"), content.as_slice())],
            |_| None,
            PlanLimits::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/t/lost.txt"), "{msg}");
        assert!(msg.contains(&id(9).to_hex()), "{msg}");
    }

    #[test]
    fn overflowing_holes_are_rejected() {
        let content = vec![Content::Hole(u64::MAX), Content::Hole(1)];
        let err = plan([(Path::new("f"), content.as_slice())], |_| None, PlanLimits::default()).unwrap_err();
        assert!(matches!(err, PlanError::TooLarge { .. }));
    }

    #[test]
    fn slice_finds_blob_bytes_in_range() {
        let entries = [(1, loc(1, 10, 20)), (2, loc(1, 40, 20))];
        let content = vec![Content::Blob(id(1)), Content::Blob(id(2))];
        let p = plan(
            [(Path::new("f"), content.as_slice())],
            index(&entries),
            PlanLimits::default(),
        )
        .unwrap();
        let range = &p.ranges[0];
        let bytes: Vec<u8> = (10u8..60).collect();
        assert_eq!(range.slice(&bytes, &range.blobs[1]).unwrap()[0], 40);
        assert!(range.slice(&bytes[..30], &range.blobs[1]).is_none());
    }

    /// A restore thread holds one range at a time: by default a whole
    /// 16 MiB pack is read in ranges of at most 4 MiB, and a longer blob
    /// alone.
    #[test]
    fn default_ranges_hold_at_most_4_mib_or_one_blob() {
        const MIB: u32 = 1 << 20;
        let mut entries: Vec<(u8, BlobLocation)> = (0..15u8).map(|n| (n, loc(1, u32::from(n) * MIB, MIB))).collect();
        entries.push((15, loc(1, 15 * MIB, 6 * MIB)));
        let content: Vec<Content> = (0..16).map(|n| Content::Blob(id(n))).collect();
        let p = plan(
            [(Path::new("f"), content.as_slice())],
            index(&entries),
            PlanLimits::default(),
        )
        .unwrap();
        let lengths: Vec<u64> = p.ranges.iter().map(|r| r.length).collect();
        assert_eq!(lengths, vec![4 << 20, 4 << 20, 4 << 20, 3 << 20, 6 << 20]);
        assert_eq!(p.read_bytes, 21 << 20);
    }

    #[test]
    fn errors_name_the_file_under_the_target() {
        let content = vec![Content::Blob(id(9))];
        let err = plan(
            [(Path::new("d/f"), content.as_slice())],
            index(&[]),
            PlanLimits::default(),
        )
        .unwrap_err()
        .under(Path::new("/restore"));
        assert!(
            matches!(&err, PlanError::MissingBlob { path, .. } if path == Path::new("/restore/d/f")),
            "{err}"
        );
    }
}
