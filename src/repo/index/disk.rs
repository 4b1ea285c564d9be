//! The local index table: the merged index written to a file in the
//! repository's cache directory, so that opening the repository again
//! reads only the index files written since, and lookups read one bucket
//! from the file instead of holding every entry in memory.
//!
//! Layout (`format-spec/format.md`, "The local index table"), integers
//! little-endian:
//!
//! ```text
//! head:    magic "cairnidx", version u32, reserved u32, state [32],
//!          data entries u64, tree entries u64, packs u64, live files u64,
//!          passed-over files u64, marked packs u64, duplicates u64,
//!          live file ids [32]..., passed-over file ids [32]...,
//!          marked packs (id [32], marked_ns i64)..., pack ids [32]...,
//!          pack sizes u64..., data starts u32 x 65537, tree starts u32 x 65537,
//!          MAC [16]
//! data:    for each of the 65536 buckets: its entries (36 bytes each), MAC [16]
//! tree:    the same
//! ```
//!
//! Every MAC is the first 16 bytes of a keyed BLAKE3 (key:
//! [`MasterKey::index_table_key`](crate::crypto::MasterKey::index_table_key))
//! of the part's tag (0 data, 1 tree, 2 head), its bucket number (u32),
//! the table's state and its bytes: a bucket cannot be moved to another
//! place or another table unnoticed. The state is a keyed hash of the live
//! and passed-over index file ids and names the file.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::table::{Entry, BUCKETS, KEY_LEN};
use crate::format::index::MarkedPack;
use crate::format::BlobKind;
use crate::id::{BlobId, IndexId, PackId};

/// First bytes of a table file.
pub const MAGIC: &[u8; 8] = b"cairnidx";
/// The layout version this code reads and writes.
pub const VERSION: u32 = 1;
/// Bytes of a MAC.
pub const MAC_LEN: usize = 16;
/// Bytes of an entry on disk.
pub const ENTRY_LEN: usize = 36;
/// Bytes of a bucket-starts array.
const STARTS_LEN: usize = (BUCKETS + 1) * 4;
/// Bytes of the head before its lists.
const FIXED_HEAD: usize = 8 + 4 + 4 + 32 + 7 * 8;
/// Suffix of table file names.
pub const SUFFIX: &str = ".table";

const TAG_DATA: u8 = 0;
const TAG_TREE: u8 = 1;
const TAG_HEAD: u8 = 2;
const TAG_NAME: u8 = 3;

/// Why a table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Corrupt(String),
}

fn corrupt(reason: impl Into<String>) -> TableError {
    TableError::Corrupt(reason.into())
}

fn tag(kind: BlobKind) -> u8 {
    match kind {
        BlobKind::Data => TAG_DATA,
        BlobKind::Tree => TAG_TREE,
    }
}

/// The key that authenticates tables.
#[derive(Clone)]
pub struct MacKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    pub fn new(key: Zeroizing<[u8; 32]>) -> Self {
        MacKey(key)
    }

    fn mac(&self, tag: u8, bucket: u32, state: &[u8; 32], bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&[tag]);
        h.update(&bucket.to_le_bytes());
        h.update(state);
        h.update(bytes);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..MAC_LEN]);
        out
    }

    /// The state of an index made of the live files `files` having passed
    /// over `passed_over` (both sorted): it names the table.
    pub fn state(&self, files: &[IndexId], passed_over: &[IndexId]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&[TAG_NAME]);
        for list in [files, passed_over] {
            h.update(&(list.len() as u64).to_le_bytes());
            for id in list {
                h.update(&id.0);
            }
        }
        *h.finalize().as_bytes()
    }
}

/// The file name of the table of `state`.
pub fn file_name(state: &[u8; 32]) -> String {
    let mut name = String::with_capacity(64 + SUFFIX.len());
    for b in state {
        name.push_str(&format!("{b:02x}"));
    }
    name.push_str(SUFFIX);
    name
}

fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.key);
    out.extend_from_slice(&e.pack.to_le_bytes());
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.length.to_le_bytes());
    out.extend_from_slice(&e.raw_length.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn id_at(b: &[u8], at: usize) -> [u8; 32] {
    let mut w = [0u8; 32];
    w.copy_from_slice(&b[at..at + 32]);
    w
}

/// The entry encoded at the start of `b` (at least [`ENTRY_LEN`] bytes).
fn decode_entry(b: &[u8]) -> Entry {
    let mut key = [0u8; KEY_LEN - 2];
    key.copy_from_slice(&b[..KEY_LEN - 2]);
    Entry {
        key,
        pack: u32_at(b, 20),
        offset: u32_at(b, 24),
        length: u32_at(b, 28),
        raw_length: u32_at(b, 32),
    }
}

/// Where a table's bytes come from: a file, or bytes in memory (tests and
/// fuzzing).
pub trait Source: Send + Sync + std::fmt::Debug {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
}

impl Source for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl Source for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

/// What a table's head holds besides its bucket starts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeadLists {
    pub files: Vec<IndexId>,
    pub passed_over: Vec<IndexId>,
    pub marked: Vec<MarkedPack>,
    pub packs: Vec<PackId>,
    pub pack_sizes: Vec<u64>,
    pub duplicates: u64,
}

/// Bytes of a head with these list lengths, or None when they overflow.
fn head_len(files: u64, passed_over: u64, marked: u64, packs: u64) -> Option<u64> {
    let lists = files
        .checked_add(passed_over)?
        .checked_mul(32)?
        .checked_add(marked.checked_mul(40)?)?
        .checked_add(packs.checked_mul(40)?)?;
    lists.checked_add((FIXED_HEAD + 2 * STARTS_LEN + MAC_LEN) as u64)
}

/// Bytes of the buckets of one kind holding `entries` entries.
fn region_len(entries: u64) -> Option<u64> {
    entries
        .checked_mul(ENTRY_LEN as u64)?
        .checked_add((BUCKETS * MAC_LEN) as u64)
}

/// One blob kind's bucket starts and where its buckets begin in the file.
#[derive(Debug)]
struct Region {
    starts: Vec<u32>,
    offset: u64,
}

impl Region {
    fn len(&self) -> usize {
        self.starts.last().map_or(0, |&n| n as usize)
    }

    /// Offset and length (entries, without the MAC) of bucket `b`.
    fn bucket(&self, b: usize) -> (u64, usize) {
        let (lo, hi) = (self.starts[b] as u64, self.starts[b + 1] as u64);
        let at = self.offset + lo * ENTRY_LEN as u64 + (b * MAC_LEN) as u64;
        (at, ((hi - lo) as usize) * ENTRY_LEN)
    }
}

/// An open, verified table: its head is checked and held, its buckets are
/// read and checked one at a time.
#[derive(Debug)]
pub struct TableFile {
    source: Box<dyn Source>,
    key: MacKey,
    state: [u8; 32],
    data: Region,
    tree: Region,
}

/// Sorted and without repeats.
fn strictly_sorted<T: Ord>(v: &[T]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

impl TableFile {
    /// Opens a table, reads and verifies its head: the head's lists are
    /// returned, the bucket starts kept.
    pub fn open(source: Box<dyn Source>, key: MacKey) -> Result<(TableFile, HeadLists), TableError> {
        let size = source.len()?;
        if size < FIXED_HEAD as u64 {
            return Err(corrupt("shorter than a head"));
        }
        let mut fixed = [0u8; FIXED_HEAD];
        source.read_exact_at(&mut fixed, 0)?;
        if &fixed[..8] != MAGIC {
            return Err(corrupt("not an index table"));
        }
        let version = u32_at(&fixed, 8);
        if version != VERSION {
            return Err(corrupt(format!("layout version {version}, not {VERSION}")));
        }
        let state = id_at(&fixed, 16);
        let counts: Vec<u64> = (0..7).map(|i| u64_at(&fixed, 48 + 8 * i)).collect();
        let (data_len, tree_len, packs, files, passed_over, marked, duplicates) = (
            counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6],
        );
        let limit = u64::from(u32::MAX);
        if data_len > limit || tree_len > limit || packs > limit {
            return Err(corrupt("more entries or packs than an index holds"));
        }
        let head = head_len(files, passed_over, marked, packs).ok_or_else(|| corrupt("impossible counts"))?;
        let expected = region_len(data_len)
            .zip(region_len(tree_len))
            .and_then(|(d, t)| head.checked_add(d)?.checked_add(t))
            .ok_or_else(|| corrupt("impossible counts"))?;
        if expected != size {
            return Err(corrupt(format!("{size} bytes where its head gives {expected}")));
        }
        // The head's size is bounded by the file's, which was read from
        // the local disk.
        let mut bytes = vec![0u8; head as usize];
        source.read_exact_at(&mut bytes, 0)?;
        let body = head as usize - MAC_LEN;
        if key.mac(TAG_HEAD, 0, &state, &bytes[..body]) != bytes[body..] {
            return Err(corrupt("its head fails authentication"));
        }
        let mut at = FIXED_HEAD;
        let ids = |n: u64, at: &mut usize| -> Vec<[u8; 32]> {
            let v = (0..n).map(|i| id_at(&bytes, *at + 32 * i as usize)).collect();
            *at += 32 * n as usize;
            v
        };
        let files: Vec<IndexId> = ids(files, &mut at).into_iter().map(IndexId).collect();
        let passed_over: Vec<IndexId> = ids(passed_over, &mut at).into_iter().map(IndexId).collect();
        let mut marks = Vec::with_capacity(marked as usize);
        for _ in 0..marked {
            let id = PackId(id_at(&bytes, at));
            let marked_ns = u64_at(&bytes, at + 32) as i64;
            marks.push(MarkedPack { id, marked_ns });
            at += 40;
        }
        let pack_ids: Vec<PackId> = ids(packs, &mut at).into_iter().map(PackId).collect();
        let pack_sizes: Vec<u64> = (0..packs as usize).map(|i| u64_at(&bytes, at + 8 * i)).collect();
        at += 8 * packs as usize;
        let starts = |at: &mut usize, total: u64| -> Result<Vec<u32>, TableError> {
            let v: Vec<u32> = (0..=BUCKETS).map(|i| u32_at(&bytes, *at + 4 * i)).collect();
            *at += STARTS_LEN;
            if v[0] != 0 || v.windows(2).any(|w| w[0] > w[1]) || u64::from(v[BUCKETS]) != total {
                return Err(corrupt("its bucket starts are out of order"));
            }
            Ok(v)
        };
        let data_starts = starts(&mut at, data_len)?;
        let tree_starts = starts(&mut at, tree_len)?;
        drop(bytes);
        if !strictly_sorted(&files) || !strictly_sorted(&passed_over) || !strictly_sorted(&pack_ids) {
            return Err(corrupt("its lists are out of order"));
        }
        if state != key.state(&files, &passed_over) {
            return Err(corrupt("its state does not match its files"));
        }
        let data = Region {
            starts: data_starts,
            offset: head,
        };
        let tree = Region {
            starts: tree_starts,
            offset: head + region_len(data_len).unwrap_or(0),
        };
        let table = TableFile {
            source,
            key,
            state,
            data,
            tree,
        };
        let lists = HeadLists {
            files,
            passed_over,
            marked: marks,
            packs: pack_ids,
            pack_sizes,
            duplicates,
        };
        Ok((table, lists))
    }

    pub fn state(&self) -> &[u8; 32] {
        &self.state
    }

    fn region(&self, kind: BlobKind) -> &Region {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.tree,
        }
    }

    /// Number of entries of `kind`.
    pub fn len(&self, kind: BlobKind) -> usize {
        self.region(kind).len()
    }

    /// Where bucket `b` of `kind` starts, in entries.
    pub fn bucket_start(&self, kind: BlobKind, b: usize) -> usize {
        self.region(kind).starts[b] as usize
    }

    /// The entries of bucket `b` of `kind` in one read, checked against
    /// their MAC.
    pub fn bucket(&self, kind: BlobKind, b: usize) -> Result<Vec<u8>, TableError> {
        let (at, len) = self.region(kind).bucket(b);
        let mut buf = vec![0u8; len + MAC_LEN];
        self.source.read_exact_at(&mut buf, at)?;
        // `b` < BUCKETS, which is 2^16.
        if self.key.mac(tag(kind), b as u32, &self.state, &buf[..len]) != buf[len..] {
            return Err(corrupt(format!("{} bucket {b} fails authentication", kind_name(kind))));
        }
        buf.truncate(len);
        Ok(buf)
    }

    /// The position (in `0..len(kind)`) and entry whose key equals `id`'s
    /// first bytes.
    pub fn find(&self, kind: BlobKind, id: &BlobId) -> Result<Option<(usize, Entry)>, TableError> {
        let b = usize::from(super::table::bucket_of(id));
        let bytes = self.bucket(kind, b)?;
        let key = &Entry::stored_key(id);
        let (mut lo, mut hi) = (0usize, bytes.len() / ENTRY_LEN);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = mid * ENTRY_LEN;
            match bytes[at..at + KEY_LEN - 2].cmp(key.as_slice()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return Ok(Some((self.bucket_start(kind, b) + mid, decode_entry(&bytes[at..]))))
                }
            }
        }
        Ok(None)
    }

    /// The entries of bucket `b` of `kind`, decoded.
    pub fn bucket_entries(&self, kind: BlobKind, b: usize) -> Result<Vec<Entry>, TableError> {
        let bytes = self.bucket(kind, b)?;
        Ok(bytes.chunks_exact(ENTRY_LEN).map(decode_entry).collect())
    }

    /// Every entry of `kind` with its bucket, in table order, each bucket
    /// checked as it is read.
    pub fn entries(&self, kind: BlobKind) -> impl Iterator<Item = Result<(u16, Entry), TableError>> + '_ {
        (0..BUCKETS).flat_map(move |b| {
            let items: Vec<Result<(u16, Entry), TableError>> = match self.bucket_entries(kind, b) {
                // `b` < BUCKETS, which is 2^16.
                Ok(entries) => entries.into_iter().map(|e| Ok((b as u16, e))).collect(),
                Err(e) => vec![Err(e)],
            };
            items
        })
    }

    /// Heap bytes held (the bucket starts).
    pub fn heap_bytes(&self) -> usize {
        (self.data.starts.capacity() + self.tree.starts.capacity()) * 4
    }
}

fn kind_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Data => "data",
        BlobKind::Tree => "tree",
    }
}

/// Writes a table: buckets in order (every data bucket, then every tree
/// bucket), then the head; the file appears under its name only when
/// complete.
pub struct TableWriter {
    out: io::BufWriter<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    key: MacKey,
    state: [u8; 32],
    head_len: u64,
    starts: [Vec<u32>; 2],
    /// Buckets written so far (of both kinds).
    written: usize,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter").field("path", &self.path).finish()
    }
}

impl TableWriter {
    /// Starts the table of `lists` in `dir` (made if missing, 0700).
    pub fn create(dir: &Path, key: MacKey, lists: &HeadLists) -> io::Result<Self> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let state = key.state(&lists.files, &lists.passed_over);
        let path = dir.join(file_name(&state));
        let mut unique = [0u8; 8];
        crate::crypto::random_bytes(&mut unique).map_err(io::Error::other)?;
        let tmp = dir.join(format!(".tmp-{:016x}", u64::from_le_bytes(unique)));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        let head_len = head_len(
            lists.files.len() as u64,
            lists.passed_over.len() as u64,
            lists.marked.len() as u64,
            lists.packs.len() as u64,
        )
        .ok_or_else(|| io::Error::other("index too large for a table"))?;
        let mut out = io::BufWriter::with_capacity(1 << 16, file);
        io::copy(&mut io::Read::take(io::repeat(0), head_len), &mut out)?;
        Ok(TableWriter {
            out,
            tmp,
            path,
            key,
            state,
            head_len,
            starts: [vec![0], vec![0]],
            written: 0,
            scratch: Vec::new(),
        })
    }

    /// Appends the next bucket: `entries` sorted by key.
    pub fn push_bucket(&mut self, entries: &[Entry]) -> io::Result<()> {
        let (kind, b) = if self.written < BUCKETS {
            (0, self.written)
        } else {
            (1, self.written - BUCKETS)
        };
        if self.written >= 2 * BUCKETS {
            return Err(io::Error::other("more buckets than a table holds"));
        }
        let starts = &mut self.starts[kind];
        let total = starts.last().map_or(0, |&n| u64::from(n)) + entries.len() as u64;
        starts.push(u32::try_from(total).map_err(|_| io::Error::other("more entries than a table holds"))?);
        self.scratch.clear();
        for e in entries {
            encode_entry(e, &mut self.scratch);
        }
        let tag = if kind == 0 { TAG_DATA } else { TAG_TREE };
        // `b` < BUCKETS, which is 2^16.
        let mac = self.key.mac(tag, b as u32, &self.state, &self.scratch);
        self.out.write_all(&self.scratch)?;
        self.out.write_all(&mac)?;
        self.written += 1;
        Ok(())
    }

    /// Writes the head, syncs the file and renames it into place; returns
    /// its path.
    pub fn finish(mut self, lists: &HeadLists) -> io::Result<PathBuf> {
        if self.written != 2 * BUCKETS {
            return Err(io::Error::other("a table was finished before its last bucket"));
        }
        let mut head = Vec::with_capacity(self.head_len as usize);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&self.state);
        let data_len = u64::from(self.starts[0][BUCKETS]);
        let tree_len = u64::from(self.starts[1][BUCKETS]);
        for n in [
            data_len,
            tree_len,
            lists.packs.len() as u64,
            lists.files.len() as u64,
            lists.passed_over.len() as u64,
            lists.marked.len() as u64,
            lists.duplicates,
        ] {
            head.extend_from_slice(&n.to_le_bytes());
        }
        for id in lists.files.iter().chain(&lists.passed_over) {
            head.extend_from_slice(&id.0);
        }
        for m in &lists.marked {
            head.extend_from_slice(&m.id.0);
            head.extend_from_slice(&m.marked_ns.to_le_bytes());
        }
        for p in &lists.packs {
            head.extend_from_slice(&p.0);
        }
        for s in &lists.pack_sizes {
            head.extend_from_slice(&s.to_le_bytes());
        }
        for starts in &self.starts {
            for s in starts {
                head.extend_from_slice(&s.to_le_bytes());
            }
        }
        let mac = self.key.mac(TAG_HEAD, 0, &self.state, &head);
        head.extend_from_slice(&mac);
        if head.len() as u64 != self.head_len {
            return Err(io::Error::other("the head's lists changed while the table was written"));
        }
        self.out.flush()?;
        let file = self.out.get_ref();
        file.write_all_at(&head, 0)?;
        file.sync_data()?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.tmp = PathBuf::new();
        Ok(self.path.clone())
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Opens the table file `name` in `dir` for reading (not following a
/// symbolic link).
pub fn open_file(dir: &Path, name: &str) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dir.join(name))
}
