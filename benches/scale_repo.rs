//! Writes a repository of many synthetic blobs to a local directory, for
//! `bench/index-scale.sh`: a backup of a small directory into a repository
//! of ten million blobs.
//!
//! The blobs are real (sealed data blobs of 16 bytes each, in packs with
//! sealed headers, named by index files as a backup writes them), and one
//! snapshot reaches every one of them through directories of 1,000 files,
//! so `check` and `check --read-data` find a sound repository. The key is
//! derived with the default Argon2id parameters, as every real repository's.
//!
//! `CAIRN_BENCH_REPO` (the directory to create; required),
//! `CAIRN_BENCH_BLOBS` (default 10,000,000), `CAIRN_BENCH_PER_PACK` (blobs per
//! pack, default 16: 1 MiB chunks in 16 MiB packs) and `CAIRN_PASSWORD`
//! (default `bench-password-not-secret`, the shared benchmark's) choose it.
//! Run with `cargo bench --bench scale_repo`.

mod support;
use support::{env_number, or_die};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use cairn::format::index::{IndexFile, IndexPack};
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::format::tree::{Content, Node, NodeKind, Tree};
use cairn::format::BlobKind;
use cairn::id::{BlobId, TreeId};
use cairn::repo::packer::{PackBytes, Packer};
use cairn::repo::saver::{INDEX_BATCH, INDEX_BLOBS};
use cairn::repo::{InitOptions, Repository};
use cairn::storage::local::LocalStorage;
use cairn::storage::{DynStorage, FileKind};

/// Files per directory, and directories per directory above them.
const FAN_OUT: usize = 1000;
/// Directories one task writes: its packs and their trees.
const DIRS_PER_TASK: usize = 16;
/// Tasks run before their index entries are written out.
const TASKS_PER_ROUND: usize = 64;
/// Threads writing packs: each pack's write waits for its sync to disk.
const WRITERS: usize = 16;

/// Packs of one kind as one task fills them.
struct Packs<'a> {
    repo: &'a Repository,
    kind: BlobKind,
    per_pack: usize,
    packer: Packer,
    in_pack: usize,
    done: Vec<IndexPack>,
}

impl<'a> Packs<'a> {
    fn new(repo: &'a Repository, kind: BlobKind, per_pack: usize) -> Self {
        Packs {
            repo,
            kind,
            per_pack,
            packer: Packer::new(1 << 20),
            in_pack: 0,
            done: Vec::new(),
        }
    }

    fn add(&mut self, plain: &[u8]) -> BlobId {
        let key = self.repo.key();
        let id = BlobId(key.blob_id(plain));
        let sealed = or_die(key.seal(self.kind.object_kind(), None, plain), "seal a blob");
        or_die(
            self.packer.add(self.kind, id, plain.len() as u32, &sealed),
            "pack a blob",
        );
        self.in_pack += 1;
        if self.in_pack >= self.per_pack {
            self.flush();
        }
        id
    }

    fn flush(&mut self) {
        if self.packer.is_empty() {
            return;
        }
        self.in_pack = 0;
        let packer = std::mem::replace(&mut self.packer, Packer::new(1 << 20));
        let pack = or_die(packer.finish(self.repo.key()), "finish a pack");
        let PackBytes::Memory(bytes) = pack.bytes else {
            panic!("a packer made without a spool packs in memory")
        };
        let storage = self.repo.storage().clone();
        or_die(
            self.repo
                .block_on(storage.put(FileKind::Pack, &pack.id.to_hex(), bytes)),
            "store a pack",
        );
        self.done.push(pack.index);
    }

    fn finish(mut self) -> Vec<IndexPack> {
        self.flush();
        self.done
    }
}

/// Index files as a backup writes them: `INDEX_BATCH` packs or about
/// `INDEX_BLOBS` blobs each.
#[derive(Default)]
struct IndexWriter {
    packs: Vec<IndexPack>,
    blobs: usize,
    files: usize,
}

impl IndexWriter {
    fn add(&mut self, repo: &Repository, pack: IndexPack) {
        self.blobs += pack.blobs.len();
        self.packs.push(pack);
        if self.packs.len() >= INDEX_BATCH || self.blobs >= INDEX_BLOBS {
            self.flush(repo);
        }
    }

    fn flush(&mut self, repo: &Repository) {
        if self.packs.is_empty() {
            return;
        }
        let file = IndexFile {
            supersedes: vec![],
            packs: std::mem::take(&mut self.packs),
            marked: vec![],
        };
        or_die(repo.save_file(FileKind::Index, &file.encode()), "store an index file");
        self.blobs = 0;
        self.files += 1;
    }
}

fn file_node(i: usize, id: BlobId, size: u64) -> Node {
    let mut node = Node::new(format!("f{i:03}").into_bytes(), NodeKind::File);
    node.size = size;
    node.content = vec![Content::Blob(id)];
    node
}

fn dir_node(name: String, tree: BlobId) -> Node {
    let mut node = Node::new(name.into_bytes(), NodeKind::Dir);
    node.subtree = Some(TreeId(tree.0));
    node
}

/// One task: the blobs of directories `dirs` (of `blobs` in all), their
/// packs stored; returns the packs and each directory's tree id.
fn write_dirs(
    repo: &Repository,
    blobs: usize,
    per_pack: usize,
    dirs: std::ops::Range<usize>,
) -> (Vec<IndexPack>, Vec<BlobId>) {
    let mut data = Packs::new(repo, BlobKind::Data, per_pack);
    let mut trees = Packs::new(repo, BlobKind::Tree, usize::MAX);
    let mut tree_ids = Vec::with_capacity(dirs.len());
    for d in dirs {
        let first = d * FAN_OUT;
        let nodes = (first..blobs.min(first + FAN_OUT))
            .map(|i| {
                let mut plain = [0u8; 16];
                plain[..8].copy_from_slice(&(i as u64).to_le_bytes());
                plain[8..].copy_from_slice(b"cairnsyn");
                file_node(i - first, data.add(&plain), plain.len() as u64)
            })
            .collect();
        tree_ids.push(trees.add(&Tree { nodes }.encode()));
    }
    let mut packs = data.finish();
    packs.extend(trees.finish());
    (packs, tree_ids)
}

fn main() {
    let Some(dir) = std::env::var_os("CAIRN_BENCH_REPO").map(PathBuf::from) else {
        eprintln!("CAIRN_BENCH_REPO must name the directory of the repository to create");
        std::process::exit(2);
    };
    if dir.exists() {
        eprintln!("{}: already exists; remove it or name another", dir.display());
        std::process::exit(2);
    }
    let blobs = env_number("CAIRN_BENCH_BLOBS", 10_000_000);
    let per_pack = env_number("CAIRN_BENCH_PER_PACK", 16);
    let password = std::env::var("CAIRN_PASSWORD").unwrap_or_else(|_| "bench-password-not-secret".into());
    let started = Instant::now();
    let storage: DynStorage = Arc::new(LocalStorage::new(dir.clone()));
    let repo = or_die(
        Repository::init(storage, password.as_bytes(), InitOptions::default()),
        "init",
    );
    let dirs = blobs.div_ceil(FAN_OUT);
    let tasks: Vec<std::ops::Range<usize>> = (0..dirs)
        .step_by(DIRS_PER_TASK)
        .map(|d| d..dirs.min(d + DIRS_PER_TASK))
        .collect();
    let pool = or_die(
        rayon::ThreadPoolBuilder::new().num_threads(WRITERS).build(),
        "start the writers",
    );
    let mut index = IndexWriter::default();
    let mut level: Vec<BlobId> = Vec::with_capacity(dirs);
    for round in tasks.chunks(TASKS_PER_ROUND) {
        let done: Vec<(Vec<IndexPack>, Vec<BlobId>)> = pool.install(|| {
            round
                .par_iter()
                .map(|r| write_dirs(&repo, blobs, per_pack, r.clone()))
                .collect()
        });
        for (packs, trees) in done {
            packs.into_iter().for_each(|p| index.add(&repo, p));
            level.extend(trees);
        }
        eprint!("\r{} of {blobs} blobs", blobs.min(level.len() * FAN_OUT));
    }
    eprintln!();
    // Directories of directories until one root remains.
    let mut trees = Packs::new(&repo, BlobKind::Tree, usize::MAX);
    let mut depth = 0;
    while level.len() > 1 || depth == 0 {
        depth += 1;
        level = level
            .chunks(FAN_OUT)
            .map(|group| {
                let nodes = group
                    .iter()
                    .enumerate()
                    .map(|(i, id)| dir_node(format!("d{depth}-{i:03}"), *id))
                    .collect();
                trees.add(&Tree { nodes }.encode())
            })
            .collect();
    }
    trees.finish().into_iter().for_each(|p| index.add(&repo, p));
    index.flush(&repo);
    let root = level[0];
    or_die(
        repo.save_snapshot(&Snapshot {
            time_ns: 1,
            tree: TreeId(root.0),
            paths: vec!["/synthetic".into()],
            hostname: "synthetic".into(),
            username: "bench".into(),
            uid: 0,
            gid: 0,
            tags: vec!["synthetic".into()],
            parent: None,
            original: None,
            excludes: vec![],
            program_version: "cairn scale_repo".into(),
            partial: false,
            summary: Summary::default(),
        }),
        "store the snapshot",
    );
    println!(
        "{}: {blobs} data blobs, {per_pack} per pack, {} index files, in {:.1}s",
        dir.display(),
        index.files,
        started.elapsed().as_secs_f64()
    );
}
