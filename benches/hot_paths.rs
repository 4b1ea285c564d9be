//! Throughput of the hot paths of a backup and a restore: chunking, keyed
//! hashing, compression, sealing and opening; and index lookups.
//!
//! Run with `cargo bench --bench hot_paths`. Measurement times are short so
//! the whole run stays under two minutes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn::chunker::{ChunkReader, Chunker};
use cairn::crypto::MasterKey;
use cairn::format::config::ChunkerParams;
use cairn::format::envelope;
use cairn::format::index::{IndexFile, IndexPack};
use cairn::format::pack::PackEntry;
use cairn::format::{BlobKind, ObjectKind};
use cairn::id::{BlobId, IndexId, PackId};
use cairn::repo::{Index, IndexBuilder};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

const MIB: usize = 1 << 20;

/// Deterministic incompressible bytes (splitmix64).
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Text-like bytes that zstd shrinks several times over.
fn compressible_bytes(n: usize) -> Vec<u8> {
    let words: &[&[u8]] = &[
        b"apiVersion: v1\n",
        b"kind: ConfigMap\n",
        b"metadata:\n  name: cairn-",
        b"  namespace: default\n",
        b"data:\n  key: value\n",
    ];
    let noise = random_bytes(n / 16 + 1, 99);
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(words[noise[i % noise.len()] as usize % words.len()]);
        out.extend_from_slice(format!("{}\n", noise[i % noise.len()]).as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

fn key() -> MasterKey {
    match MasterKey::generate() {
        Ok(k) => k,
        Err(e) => panic!("no master key: {e}"),
    }
}

fn short<M: criterion::measurement::Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
}

fn chunking(c: &mut Criterion) {
    let data = random_bytes(64 * MIB, 1);
    let gear = key().gear_table();
    let chunker = Chunker::new(gear.clone(), ChunkerParams::default());
    let mut group = c.benchmark_group("chunking");
    short(&mut group);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("cut_64MiB", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for chunk in chunker.chunks(black_box(&data)) {
                n += 1;
                black_box(chunk.len());
            }
            n
        })
    });
    // The fastcdc crate's FastCDC 2020 scan (two bytes a step) with the
    // same keyed gear table, sizes and mask widths, for the choice of
    // chunker. Its test after the first byte of a pair looks at the hash
    // shifted left once, so its masks sit one bit below cairn's (the top
    // bit would be shifted out): the same number of bits tested at every
    // byte, so about as many chunks and bytes hashed, not the same cuts.
    let gear: Vec<u64> = gear.to_vec();
    let gear_ls: Vec<u64> = gear.iter().map(|g| g << 1).collect();
    let params = ChunkerParams::default();
    let (min, avg, max) = (
        params.min_size as usize,
        params.avg_size as usize,
        params.max_size as usize,
    );
    let bits = params.avg_size.ilog2();
    let top = |n: u32| ((1u64 << n) - 1) << (64 - n);
    let (mask_s, mask_l) = (top(bits + 2) >> 1, top(bits - 2) >> 1);
    group.bench_function("fastcdc_crate_cut_gear_64MiB", |b| {
        b.iter(|| {
            let mut rest = black_box(&data[..]);
            let mut n = 0usize;
            while !rest.is_empty() {
                let (_, cut) = fastcdc::v2020::cut_gear(
                    rest,
                    min,
                    avg,
                    max,
                    mask_s,
                    mask_l,
                    mask_s << 1,
                    mask_l << 1,
                    &gear,
                    &gear_ls,
                );
                let cut = if cut == 0 { rest.len() } else { cut };
                black_box(&rest[..cut]);
                rest = &rest[cut..];
                n += 1;
            }
            n
        })
    });
    group.bench_function("chunk_reader_64MiB", |b| {
        b.iter(|| {
            let mut reader = ChunkReader::new(chunker.clone(), black_box(&data[..]));
            let mut n = 0usize;
            while let Ok(Some(chunk)) = reader.next_chunk() {
                n += 1;
                black_box(chunk.len());
            }
            n
        })
    });
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let data = random_bytes(MIB, 2);
    let key = key();
    let mut group = c.benchmark_group("hashing");
    short(&mut group);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("blob_id_1MiB", |b| b.iter(|| key.blob_id(black_box(&data))));
    group.finish();
}

fn compression(c: &mut Criterion) {
    let inputs = [
        ("compressible", compressible_bytes(MIB)),
        ("incompressible", random_bytes(MIB, 3)),
    ];
    let mut group = c.benchmark_group("zstd3_frame");
    short(&mut group);
    group.throughput(Throughput::Bytes(MIB as u64));
    for (name, data) in &inputs {
        let mut out = Vec::with_capacity(2 * MIB);
        group.bench_function(*name, |b| {
            b.iter(|| {
                out.clear();
                envelope::frame(Some(3), black_box(data), &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

fn sealing(c: &mut Criterion) {
    let key = key();
    let inputs = [
        ("compressible", compressible_bytes(MIB)),
        ("incompressible", random_bytes(MIB, 4)),
    ];
    let mut group = c.benchmark_group("seal");
    short(&mut group);
    group.throughput(Throughput::Bytes(MIB as u64));
    for (name, data) in &inputs {
        for (label, level) in [("plain", None), ("zstd3", Some(3))] {
            let mut out = Vec::with_capacity(2 * MIB);
            group.bench_function(format!("{label}_{name}"), |b| {
                b.iter(|| {
                    out.clear();
                    if let Err(e) = key.seal_into(ObjectKind::Data, level, black_box(data), &mut out) {
                        panic!("seal failed: {e}");
                    }
                    out.len()
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("open");
    short(&mut group);
    group.throughput(Throughput::Bytes(MIB as u64));
    for (name, data) in &inputs {
        for (label, level) in [("plain", None), ("zstd3", Some(3))] {
            let sealed = match key.seal(ObjectKind::Data, level, data) {
                Ok(s) => s,
                Err(e) => panic!("seal failed: {e}"),
            };
            group.bench_function(format!("{label}_{name}"), |b| {
                b.iter(
                    || match key.open(ObjectKind::Data, black_box(&sealed), 2 * MIB, Some(MIB)) {
                        Ok(plain) => plain.len(),
                        Err(e) => panic!("open failed: {e}"),
                    },
                )
            });
        }
    }
    group.finish();
}

/// Counts the bytes held by live heap allocations, and their peak, to
/// measure the index's memory per blob.
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

/// Data blobs per pack with the default chunker (1 MiB average) and
/// 16 MiB packs.
const BLOBS_PER_PACK: u64 = 16;
/// Packs per index file, as a backup writes them.
const PACKS_PER_FILE: u64 = 64;

/// The id of synthetic blob `i` (a hash, so ids are spread like real ones).
fn synthetic_blob(i: u64) -> BlobId {
    BlobId(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

/// Index file `f` of a synthetic repository of `blobs` data blobs in packs
/// of `per_pack`.
fn synthetic_file(f: u64, blobs: u64, per_pack: u64) -> IndexFile {
    let first_pack = f * PACKS_PER_FILE;
    let last_pack = ((f + 1) * PACKS_PER_FILE).min(blobs.div_ceil(per_pack));
    let packs = (first_pack..last_pack)
        .map(|p| IndexPack {
            id: PackId::hash_of(&p.to_be_bytes()),
            size: 16 << 20,
            blobs: (p * per_pack..((p + 1) * per_pack).min(blobs))
                .map(|i| PackEntry {
                    kind: BlobKind::Data,
                    id: synthetic_blob(i),
                    offset: ((i % per_pack) * 1_000_000) as u32,
                    length: 1_000_000,
                    raw_length: 1_048_000,
                })
                .collect(),
        })
        .collect();
    IndexFile {
        supersedes: vec![],
        packs,
        marked: vec![],
    }
}

/// Loads a synthetic index file by file, as `load_index` does, and prints
/// the heap it holds per blob and the peak while loading.
fn synthetic_index(blobs: u64, per_pack: u64) -> Index {
    let files = blobs.div_ceil(per_pack).div_ceil(PACKS_PER_FILE);
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(before, Ordering::Relaxed);
    let mut builder = IndexBuilder::new();
    for f in 0..files {
        let file = synthetic_file(f, blobs, per_pack);
        if let Err(e) = builder.add_file(IndexId::hash_of(&f.to_be_bytes()), file) {
            panic!("synthetic index: {e}");
        }
    }
    let index = builder.finish();
    let held = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let peak = PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let n = index.len() as f64;
    println!(
        "index of {} blobs, {per_pack} per pack, {files} files: holds {held} bytes = {:.2} bytes per blob \
         (index's own count {:.2}); peak while loading {:.2} bytes per blob",
        index.len(),
        held as f64 / n,
        index.heap_bytes() as f64 / n,
        peak as f64 / n,
    );
    index
}

/// Prints the memory per blob for other pack fills, then times random
/// lookups (hits and misses) in indexes of one and ten million blobs.
fn index_lookup(c: &mut Criterion) {
    for per_pack in [4, 1000] {
        drop(synthetic_index(1_000_000, per_pack));
    }
    for blobs in [1_000_000u64, 10_000_000] {
        let index = synthetic_index(blobs, BLOBS_PER_PACK);
        const BATCH: u64 = 10_000;
        let hits: Vec<BlobId> = (0..BATCH)
            .map(|i| synthetic_blob(i.wrapping_mul(7919) % blobs))
            .collect();
        let misses: Vec<BlobId> = (0..BATCH).map(|i| synthetic_blob(blobs + i)).collect();
        let mut group = c.benchmark_group(format!("index_{}M", blobs / 1_000_000));
        short(&mut group);
        group.throughput(Throughput::Elements(BATCH));
        group.bench_function("get_hits", |b| {
            b.iter(|| {
                let found = hits
                    .iter()
                    .filter(|id| index.get(BlobKind::Data, black_box(id)).is_some())
                    .count();
                assert_eq!(found as u64, BATCH);
                found
            })
        });
        group.bench_function("get_misses", |b| {
            b.iter(|| {
                let found = misses
                    .iter()
                    .filter(|id| index.get(BlobKind::Data, black_box(id)).is_some())
                    .count();
                assert_eq!(found, 0);
                found
            })
        });
        group.finish();

        // The same lookups through a local table: one positioned read of
        // the bucket and its MAC each (the file is in the page cache).
        let dir = tempfile::tempdir().expect("temporary directory");
        let key = MasterKey::from_bytes(&[7; cairn::crypto::MASTER_KEY_LEN]);
        let table = match index.into_table(dir.path(), &key) {
            Ok(table) => table,
            Err(e) => panic!("table: {e}"),
        };
        println!(
            "table of {} blobs: holds {} heap bytes = {:.2} bytes per blob",
            table.len(),
            table.heap_bytes(),
            table.heap_bytes() as f64 / table.len() as f64
        );
        let mut group = c.benchmark_group(format!("index_table_{}M", blobs / 1_000_000));
        short(&mut group);
        group.throughput(Throughput::Elements(BATCH));
        group.bench_function("get_hits", |b| {
            b.iter(|| {
                let found = hits
                    .iter()
                    .filter(|id| table.get(BlobKind::Data, black_box(id)).is_some())
                    .count();
                assert_eq!(found as u64, BATCH);
                found
            })
        });
        group.bench_function("get_misses", |b| {
            b.iter(|| {
                let found = misses
                    .iter()
                    .filter(|id| table.get(BlobKind::Data, black_box(id)).is_some())
                    .count();
                assert_eq!(found, 0);
                found
            })
        });
        group.finish();
    }
}

/// The saver's set of blobs taken on during a run: a million new blobs
/// inserted, as a backup of a million small files does, timed and with the
/// peak heap it needs, beside a hash set of full ids.
fn reserved_set(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let ids: Vec<BlobId> = (0..N).map(synthetic_blob).collect();
    let peak_of = |f: &dyn Fn()| {
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        PEAK_BYTES.store(before, Ordering::Relaxed);
        f();
        PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(before) as f64 / N as f64
    };
    let compact = peak_of(&|| {
        let mut set = cairn::repo::reserved::Reserved::default();
        for id in &ids {
            set.insert(BlobKind::Data, id);
        }
        black_box(set.len());
    });
    let hashed = peak_of(&|| {
        let mut set = std::collections::HashSet::new();
        for id in &ids {
            set.insert((BlobKind::Data, *id));
        }
        black_box(set.len());
    });
    println!("reserved set of {N} blobs: peak {compact:.1} bytes per blob (a HashSet of ids: {hashed:.1})");
    let mut group = c.benchmark_group("reserved_1M");
    short(&mut group);
    group.throughput(Throughput::Elements(N));
    group.bench_function("insert_new", |b| {
        b.iter(|| {
            let mut set = cairn::repo::reserved::Reserved::default();
            for id in &ids {
                set.insert(BlobKind::Data, black_box(id));
            }
            set.len()
        })
    });
    group.bench_function("hashset_insert_new", |b| {
        b.iter(|| {
            let mut set = std::collections::HashSet::new();
            for id in &ids {
                set.insert((BlobKind::Data, *black_box(id)));
            }
            set.len()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    chunking,
    hashing,
    compression,
    sealing,
    index_lookup,
    reserved_set
);
criterion_main!(benches);
