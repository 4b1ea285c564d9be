//! Peak heap of `cairn check` per blob on a synthetic repository.
//!
//! Builds a repository of small data blobs in memory storage (real sealed
//! blobs, packs with sealed headers, index files, trees and one snapshot
//! that reaches every blob), then runs the structure check under a counting
//! global allocator and prints the heap it needed beyond the repository
//! itself, per blob.
//!
//! Run with `cargo bench --bench check_memory`. `CAIRN_BENCH_BLOBS`
//! (default 1000000) and `CAIRN_BENCH_PER_PACK` (default 10) choose the
//! shape; `CAIRN_BENCH_READ_DATA=1` adds `--read-data`.

mod support;
use support::{env_number, or_die};

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cairn::check::{check, CheckOptions, ReadData, Severity};
use cairn::format::index::{IndexFile, IndexPack};
use cairn::format::keyfile::KdfParams;
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::format::tree::{Content, Node, NodeKind, Tree};
use cairn::format::BlobKind;
use cairn::id::{BlobId, TreeId};
use cairn::repo::packer::{PackBytes, Packer};
use cairn::repo::{InitOptions, Repository};
use cairn::storage::memory::MemoryStorage;
use cairn::storage::{DynStorage, FileKind};

/// Counts the bytes held by live heap allocations, and their peak.
struct CountingAlloc;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE_BYTES.fetch_add(by, Ordering::Relaxed) + by;
    PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters only observe sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same layout as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as if the old block lived until the new one exists.
        grew(new_size);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Packs named per index file, as a backup writes them.
const PACKS_PER_FILE: usize = 32;
/// Files per directory tree.
const FILES_PER_DIR: usize = 1000;

/// Writes the packs and index files of a run of blobs; returns their ids.
struct Writer<'a> {
    repo: &'a Repository,
    per_pack: usize,
    packer: Packer,
    in_pack: usize,
    file: Vec<IndexPack>,
}

impl Writer<'_> {
    fn add(&mut self, kind: BlobKind, plain: &[u8]) -> BlobId {
        let key = self.repo.key();
        let id = BlobId(key.blob_id(plain));
        let sealed = or_die(key.seal(kind.object_kind(), None, plain), "seal");
        or_die(self.packer.add(kind, id, plain.len() as u32, &sealed), "pack");
        self.in_pack += 1;
        if self.in_pack >= self.per_pack {
            self.flush_pack();
        }
        id
    }

    fn flush_pack(&mut self) {
        if self.packer.is_empty() {
            return;
        }
        self.in_pack = 0;
        let packer = std::mem::replace(&mut self.packer, Packer::new(1 << 20));
        let pack = or_die(packer.finish(self.repo.key()), "finish pack");
        let storage = self.repo.storage().clone();
        or_die(
            self.repo
                .block_on(storage.put(FileKind::Pack, &pack.id.to_hex(), memory_bytes(pack.bytes))),
            "store pack",
        );
        self.file.push(pack.index);
        if self.file.len() >= PACKS_PER_FILE {
            self.flush_index();
        }
    }

    fn flush_index(&mut self) {
        if self.file.is_empty() {
            return;
        }
        let file = IndexFile {
            supersedes: vec![],
            packs: std::mem::take(&mut self.file),
            marked: vec![],
        };
        or_die(self.repo.save_file(FileKind::Index, &file.encode()), "store index");
    }
}

/// A repository of `blobs` data blobs, `per_pack` to a pack, reached from
/// one snapshot through directories of `FILES_PER_DIR` files.
fn synthetic_repository(blobs: usize, per_pack: usize) -> Repository {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    let repo = or_die(Repository::init(storage, b"bench", opts), "init");
    let mut w = Writer {
        repo: &repo,
        per_pack,
        packer: Packer::new(1 << 20),
        in_pack: 0,
        file: Vec::new(),
    };
    let mut dirs: Vec<Node> = Vec::new();
    let mut files: Vec<Node> = Vec::new();
    let mut trees: Vec<Vec<u8>> = Vec::new();
    for i in 0..blobs {
        let plain = (i as u64).to_le_bytes();
        let id = w.add(BlobKind::Data, &plain);
        let mut node = Node::new(format!("f{i:09}").into_bytes(), NodeKind::File);
        node.size = plain.len() as u64;
        node.content = vec![Content::Blob(id)];
        files.push(node);
        if files.len() == FILES_PER_DIR || i + 1 == blobs {
            trees.push(
                Tree {
                    nodes: std::mem::take(&mut files),
                }
                .encode(),
            );
        }
    }
    w.flush_pack();
    for (d, tree) in trees.iter().enumerate() {
        let id = w.add(BlobKind::Tree, tree);
        let mut node = Node::new(format!("d{d:09}").into_bytes(), NodeKind::Dir);
        node.subtree = Some(TreeId(id.0));
        dirs.push(node);
    }
    let root = w.add(BlobKind::Tree, &Tree { nodes: dirs }.encode());
    w.flush_pack();
    w.flush_index();
    or_die(
        repo.save_snapshot(&Snapshot {
            time_ns: 1,
            tree: TreeId(root.0),
            paths: vec!["/bench".into()],
            hostname: "bench".into(),
            username: "bench".into(),
            uid: 0,
            gid: 0,
            tags: vec![],
            parent: None,
            original: None,
            excludes: vec![],
            program_version: "cairn bench".into(),
            partial: false,
            summary: Summary::default(),
        }),
        "store snapshot",
    );
    repo
}

fn main() {
    let blobs = env_number("CAIRN_BENCH_BLOBS", 1_000_000);
    let per_pack = env_number("CAIRN_BENCH_PER_PACK", 10);
    let read_data = std::env::var("CAIRN_BENCH_READ_DATA").is_ok_and(|v| v == "1");
    let started = Instant::now();
    let repo = synthetic_repository(blobs, per_pack);
    println!(
        "built {blobs} data blobs, {per_pack} per pack, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // The in-memory index alone, loaded as every command loads it: the
    // floor under check's figure.
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(before, Ordering::Relaxed);
    let indexed = or_die(repo.clone().load_index(), "load index");
    let held = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let peak = PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let n = indexed.index().len() as f64;
    println!(
        "index alone: holds {:.1} bytes per blob, peak {:.1} bytes per blob while loading",
        held as f64 / n,
        peak as f64 / n
    );
    drop(indexed);
    let opts = CheckOptions {
        read_data: if read_data { ReadData::All } else { ReadData::None },
        ..CheckOptions::default()
    };
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let report = or_die(check(&repo, &opts), "check");
    let seconds = started.elapsed().as_secs_f64();
    let peak = PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let errors: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "the synthetic repository has errors: {errors:?}");
    assert_eq!(report.counters.blobs_referenced, report.counters.blobs);
    let n = report.counters.blobs as f64;
    println!(
        "check{} of {} blobs in {} packs: {seconds:.1}s, peak heap {peak} bytes = {:.1} bytes per blob",
        if read_data { " --read-data" } else { "" },
        report.counters.blobs,
        report.counters.packs,
        peak as f64 / n,
    );
}

/// The bytes of a pack filled in memory.
fn memory_bytes(bytes: PackBytes) -> bytes::Bytes {
    match bytes {
        PackBytes::Memory(b) => b,
        PackBytes::Spooled(_) => panic!("this benchmark packs in memory"),
    }
}
