//! `--read-data`: download packs in full and verify every byte.

use std::str::FromStr;

use rayon::prelude::*;

use super::report::{ObjectType, Problem, Severity};
use super::structure::{compare_header, open_header, PackView};
use super::CheckReport;
use crate::crypto::MasterKey;
use crate::format::pack::{header_location, PackEntry, TRAILER_LEN};
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

/// Checks one whole pack: its hash, its header and every blob.
pub(super) fn verify_pack(key: &MasterKey, id: &PackId, bytes: &[u8], pack: &PackView<'_>, report: &mut CheckReport) {
    let actual = PackId::hash_of(bytes);
    if actual != *id {
        report.error(
            ObjectType::Pack,
            id,
            format!("is corrupt: its contents hash to {actual}"),
        );
    }
    let size = bytes.len() as u64;
    if size != pack.size {
        report.error(
            ObjectType::Pack,
            id,
            format!("has {size} bytes but index {} says {}", pack.index_file, pack.size),
        );
    }
    match read_header(key, bytes) {
        Ok(header) => compare_header(id, &header, pack, report),
        Err(msg) => report.error(ObjectType::Pack, id, msg),
    }
    let problems: Vec<Problem> = pack
        .blobs
        .par_iter()
        .filter_map(|entry| verify_blob(key, id, bytes, entry).err())
        .collect();
    report.counters.blobs_verified += (pack.blobs.len() - problems.len()) as u64;
    for p in problems {
        report.add(p.severity, p.object_kind, p.object_id, p.message);
    }
}

fn read_header(key: &MasterKey, bytes: &[u8]) -> Result<crate::format::pack::PackHeader, String> {
    let size = bytes.len();
    let trailer: [u8; TRAILER_LEN] = bytes
        .get(size.saturating_sub(TRAILER_LEN)..)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| format!("is only {size} bytes long"))?;
    let (offset, len) = header_location(size as u64, trailer).map_err(|e| e.to_string())?;
    let start = offset as usize;
    let sealed = bytes
        .get(start..start + len as usize)
        .ok_or_else(|| format!("its header at {offset} runs past its end"))?;
    open_header(key, sealed, offset)
}

/// Opens one blob of a pack and checks it against its id.
fn verify_blob(key: &MasterKey, pack: &PackId, bytes: &[u8], entry: &PackEntry) -> Result<(), Problem> {
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
    let sealed = bytes
        .get(entry.offset as usize..entry.end() as usize)
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
}
