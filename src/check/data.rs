//! `--read-data`: read packs piece by piece and verify every byte.

use std::str::FromStr;

use rayon::prelude::*;

use super::report::{ObjectType, Problem, Severity};
use super::CheckReport;
use crate::crypto::MasterKey;
use crate::format::pack::PackEntry;
use crate::format::{limits, BlobKind};
use crate::id::PackId;

/// Which packs `--read-data-subset` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// `N/M`: the packs whose id, read as a big-endian number from its first
    /// 8 bytes, is `N-1` modulo `M`. Stable: runs `1/M` to `M/M` read every
    /// pack exactly once.
    Slice { n: u64, m: u64 },
    /// `P%`: a random P percent of the packs, chosen anew on every run (at
    /// least one pack when P > 0).
    Percent(f64),
}

impl FromStr for Subset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected N/M (1 <= N <= M) or P% (0 < P <= 100)");
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(Self::Percent(p));
        }
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        let m: u64 = m.trim().parse().map_err(|_| bad())?;
        if n == 0 || m == 0 || n > m {
            return Err(bad());
        }
        Ok(Self::Slice { n, m })
    }
}

impl Subset {
    /// The packs of `packs` (sorted) this subset selects; `seed` picks the
    /// random percentage.
    pub fn select(&self, packs: &[PackId], seed: [u8; 32]) -> Vec<PackId> {
        let chosen = self.selection(packs.iter().copied(), seed);
        packs.iter().copied().filter(|p| chosen.contains(p)).collect()
    }

    /// Which of the `packs` this subset reads, as a test on pack ids that
    /// holds no list of packs: `N/M` needs none, `P%` keeps a threshold on
    /// a keyed hash of the id (one 8-byte hash per pack while it is found).
    pub fn selection(&self, packs: impl Iterator<Item = PackId>, seed: [u8; 32]) -> Selection {
        match *self {
            Self::Slice { n, m } => Selection::Slice { n, m },
            Self::Percent(p) => {
                let mut hashes: Vec<u64> = packs.map(|id| seeded_rank(&seed, &id)).collect();
                let want = ((hashes.len() as f64) * p / 100.0).ceil() as usize;
                let want = want.min(hashes.len());
                if want == 0 {
                    return Selection::Nothing;
                }
                let (_, &mut threshold, _) = hashes.select_nth_unstable(want - 1);
                Selection::Below { seed, threshold }
            }
        }
    }
}

/// Which packs to read; see [`Subset::selection`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selection {
    /// No pack.
    Nothing,
    /// Every pack.
    All,
    /// The packs whose number is `n - 1` modulo `m`.
    Slice { n: u64, m: u64 },
    /// The packs whose rank under `seed` is at most `threshold`.
    Below { seed: [u8; 32], threshold: u64 },
}

impl Selection {
    pub fn contains(&self, id: &PackId) -> bool {
        match *self {
            Self::Nothing => false,
            Self::All => true,
            Self::Slice { n, m } => pack_number(id) % m == n - 1,
            Self::Below { seed, threshold } => seeded_rank(&seed, id) <= threshold,
        }
    }
}

/// A pack's place in a random order chosen by `seed`.
fn seeded_rank(seed: &[u8; 32], id: &PackId) -> u64 {
    let hash = blake3::keyed_hash(seed, id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// A pack id as a number: its first 8 bytes, big-endian.
pub fn pack_number(id: &PackId) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// Largest piece of a pack `--read-data` holds at once (a larger blob is
/// read whole, as one piece).
pub(super) const PIECE: u64 = 4 << 20;

/// A run of consecutive bytes of a pack and the blobs that lie in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Piece {
    pub offset: u64,
    pub length: u64,
    /// Positions in the pack's listing of the blobs checked from this piece.
    pub blobs: Vec<u32>,
}

/// Cuts a pack of `size` bytes into consecutive pieces that cover all of
/// it, each at most `max` bytes long unless a single blob is longer. No
/// listed blob is split between pieces (overlapping listings keep their
/// blobs together); gaps, the header and the trailer join the piece before
/// them; blobs listed past the end land in the last piece, where they fail.
pub(super) fn pieces(size: u64, blobs: &[PackEntry], max: u64) -> Vec<Piece> {
    let mut order: Vec<u32> = (0..blobs.len() as u32).collect();
    order.sort_by_key(|&b| (blobs[b as usize].offset, b));
    let mut out = Vec::new();
    let mut current = Piece {
        offset: 0,
        length: 0,
        blobs: Vec::new(),
    };
    // Where the blobs of the current piece end (at most `size`).
    let mut reach = 0u64;
    for b in order {
        let entry = &blobs[b as usize];
        let start = u64::from(entry.offset);
        let end = entry.end().min(size);
        let fits = end.saturating_sub(current.offset) <= max;
        if start < size && start >= reach && !current.blobs.is_empty() && !fits {
            current.length = start - current.offset;
            let next = Piece {
                offset: start,
                length: 0,
                blobs: Vec::new(),
            };
            out.push(std::mem::replace(&mut current, next));
        }
        current.blobs.push(b);
        reach = reach.max(end);
    }
    current.length = size - current.offset;
    out.push(current);
    out
}

/// The whole-pack hash of `--read-data`, fed one piece at a time in order.
pub(super) struct PackHash {
    id: PackId,
    hasher: blake3::Hasher,
}

impl PackHash {
    pub fn new(id: PackId) -> Self {
        Self {
            id,
            hasher: blake3::Hasher::new(),
        }
    }

    /// Hashes the next piece and checks its blobs (in parallel, while it
    /// hashes), reporting each damaged one.
    pub fn piece(
        &mut self,
        key: &MasterKey,
        piece: &Piece,
        bytes: &[u8],
        entries: &[PackEntry],
        report: &mut CheckReport,
    ) {
        let id = self.id;
        let hasher = &mut self.hasher;
        let ((), problems) = rayon::join(
            || {
                hasher.update(bytes);
            },
            || {
                piece
                    .blobs
                    .par_iter()
                    .filter_map(|&b| verify_blob(key, &id, piece.offset, bytes, &entries[b as usize]).err())
                    .collect::<Vec<Problem>>()
            },
        );
        report.counters.blobs_verified += (piece.blobs.len() - problems.len()) as u64;
        for p in problems {
            report.add(p.severity, p.object_kind, p.object_id, p.message);
        }
    }

    /// After the last piece: reports the pack if its bytes do not hash to
    /// its id.
    pub fn finish(self, report: &mut CheckReport) {
        let actual = PackId(*self.hasher.finalize().as_bytes());
        if actual != self.id {
            report.error(
                ObjectType::Pack,
                self.id,
                format!("is corrupt: its contents hash to {actual}"),
            );
        }
    }
}

/// Opens one blob of a pack and checks it against its id; `bytes` are the
/// pack's bytes from `base` on.
fn verify_blob(key: &MasterKey, pack: &PackId, base: u64, bytes: &[u8], entry: &PackEntry) -> Result<(), Problem> {
    let kind = match entry.kind {
        BlobKind::Data => ObjectType::DataBlob,
        BlobKind::Tree => ObjectType::Tree,
    };
    let fail = |message: String| Problem {
        severity: Severity::Error,
        object_kind: kind,
        object_id: entry.id.to_hex(),
        message,
    };
    let start = u64::from(entry.offset).checked_sub(base);
    let sealed = start
        .and_then(|start| bytes.get(usize::try_from(start).ok()?..usize::try_from(entry.end() - base).ok()?))
        .ok_or_else(|| fail(format!("at offset {} runs past the end of pack {pack}", entry.offset)))?;
    let limit = match entry.kind {
        BlobKind::Data => limits::MAX_BLOB,
        BlobKind::Tree => limits::MAX_OBJECT,
    };
    let plain = key
        .open(entry.kind.object_kind(), sealed, limit, Some(entry.raw_length as usize))
        .map_err(|e| fail(format!("in pack {pack} at offset {} is corrupt: {e}", entry.offset)))?;
    if key.blob_id(&plain) != entry.id.0 {
        return Err(fail(format!(
            "in pack {pack} at offset {} is corrupt: its content does not match its id",
            entry.offset
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u64) -> PackId {
        let mut b = [7u8; 32];
        b[..8].copy_from_slice(&first.to_be_bytes());
        PackId(b)
    }

    #[test]
    fn parses_subsets() {
        assert_eq!("2/5".parse::<Subset>().unwrap(), Subset::Slice { n: 2, m: 5 });
        assert_eq!("12.5%".parse::<Subset>().unwrap(), Subset::Percent(12.5));
        for bad in ["0/3", "4/3", "1/0", "x/2", "0%", "101%", "abc", "5"] {
            assert!(bad.parse::<Subset>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn slices_cover_every_pack_once() {
        let packs: Vec<PackId> = (0..100u64).map(|i| id(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
        let mut all = Vec::new();
        for n in 1..=3 {
            let part = Subset::Slice { n, m: 3 }.select(&packs, [0; 32]);
            assert!(part.iter().all(|p| pack_number(p) % 3 == n - 1));
            all.extend(part);
        }
        all.sort_unstable();
        let mut want = packs.clone();
        want.sort_unstable();
        assert_eq!(all, want);
    }

    #[test]
    fn percent_picks_the_share_and_depends_on_the_seed() {
        let packs: Vec<PackId> = (0..200u64).map(id).collect();
        let a = Subset::Percent(10.0).select(&packs, [1; 32]);
        let b = Subset::Percent(10.0).select(&packs, [2; 32]);
        assert_eq!(a.len(), 20);
        assert_eq!(b.len(), 20);
        assert_ne!(a, b);
        assert_eq!(a, Subset::Percent(10.0).select(&packs, [1; 32]));
        assert_eq!(Subset::Percent(0.1).select(&packs, [1; 32]).len(), 1);
        assert_eq!(Subset::Percent(100.0).select(&packs, [1; 32]).len(), 200);
        let chosen = Subset::Percent(10.0).selection(packs.iter().copied(), [1; 32]);
        assert!(a.iter().all(|p| chosen.contains(p)));
        assert_eq!(packs.iter().filter(|p| chosen.contains(p)).count(), 20);
    }

    #[test]
    fn selections_of_nothing_and_everything() {
        let packs: Vec<PackId> = (0..10u64).map(id).collect();
        assert!(packs.iter().all(|p| Selection::All.contains(p)));
        assert!(!packs.iter().any(|p| Selection::Nothing.contains(p)));
        assert_eq!(
            Subset::Percent(50.0).selection(std::iter::empty(), [1; 32]),
            Selection::Nothing
        );
    }

    fn entry(offset: u32, length: u32) -> PackEntry {
        PackEntry {
            kind: BlobKind::Data,
            id: crate::id::BlobId([offset as u8; 32]),
            offset,
            length,
            raw_length: length,
        }
    }

    fn spans(pieces: &[Piece]) -> Vec<(u64, u64, Vec<u32>)> {
        pieces.iter().map(|p| (p.offset, p.length, p.blobs.clone())).collect()
    }

    #[test]
    fn pieces_cover_the_pack_without_cutting_a_blob() {
        // Listed out of order; a 250-byte header and trailer follow at 500.
        let blobs = [entry(300, 200), entry(0, 100), entry(100, 100), entry(200, 100)];
        let got = pieces(750, &blobs, 200);
        assert_eq!(
            spans(&got),
            vec![(0, 200, vec![1, 2]), (200, 100, vec![3]), (300, 450, vec![0])]
        );
        // One blob longer than the piece size is one piece.
        let got = pieces(1100, &[entry(0, 1000), entry(1000, 50)], 200);
        assert_eq!(spans(&got), vec![(0, 1000, vec![0]), (1000, 100, vec![1])]);
        // Everything fits: one piece.
        assert_eq!(spans(&pieces(300, &blobs[1..3], 1 << 20)), vec![(0, 300, vec![0, 1])]);
        // No blobs, or an empty pack: one piece of the whole.
        assert_eq!(spans(&pieces(40, &[], 16)), vec![(0, 40, vec![])]);
        assert_eq!(spans(&pieces(0, &[], 16)), vec![(0, 0, vec![])]);
    }

    #[test]
    fn overlapping_and_overlong_listings_stay_whole_or_land_last() {
        // 1 overlaps 0, so they share a piece although it grows past 100.
        let blobs = [entry(0, 80), entry(50, 80), entry(130, 60), entry(900, 10)];
        let got = pieces(300, &blobs, 100);
        assert_eq!(spans(&got), vec![(0, 130, vec![0, 1]), (130, 170, vec![2, 3])]);
        // A blob running past the end keeps its piece to the end.
        let got = pieces(200, &[entry(0, 50), entry(100, 500)], 60);
        assert_eq!(spans(&got), vec![(0, 100, vec![0]), (100, 100, vec![1])]);
        assert_eq!(got.iter().map(|p| p.length).sum::<u64>(), 200);
    }
}
