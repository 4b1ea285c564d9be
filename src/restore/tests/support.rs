//! Test fixtures: a small in-memory storage and a builder for snapshot trees.

use std::sync::Arc;

use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{Content, Node, NodeKind, Tree};
use crate::format::BlobKind;
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::repo::saver::{BlobSaver, SaverOptions};
use crate::repo::{IndexedRepository, InitOptions, Repository};
use crate::storage::memory::MemoryStorage;

/// Every node's mtime and atime.
pub const MTIME: i64 = 1_600_000_000_123_456_789;

/// A piece of file content in a test tree.
#[derive(Clone)]
pub enum Piece {
    Data(Vec<u8>),
    Hole(u64),
}

/// An entry of a test tree.
pub enum Item {
    File(&'static str, Vec<Piece>),
    /// A file with `links = 2` and this inode.
    Linked(&'static str, Vec<Piece>, u64),
    Dir(&'static str, Vec<Item>),
    Symlink(&'static str, &'static str),
    Fifo(&'static str),
    /// A file whose content names a blob that was never stored.
    Lost(&'static str),
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The bytes a file of `pieces` holds.
pub fn expected(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Data(d) => out.extend_from_slice(d),
            Piece::Hole(n) => out.resize(out.len() + *n as usize, 0),
        }
    }
    out
}

pub struct Fixture {
    pub store: Arc<MemoryStorage>,
    pub repo: IndexedRepository,
}

impl Fixture {
    pub fn new() -> Self {
        let store = Arc::new(MemoryStorage::new());
        let opts = InitOptions {
            chunker: InitOptions::default().chunker,
            pack_size: crate::repo::DEFAULT_PACK_SIZE,
            ..crate::repo::test_options()
        };
        let repo = Repository::init(store.clone(), b"secret", opts)
            .unwrap()
            .load_index()
            .unwrap();
        Self { store, repo }
    }

    /// Stores the tree of `items` and returns its id (the index is reloaded).
    pub fn tree(&mut self, items: &[Item]) -> TreeId {
        let saver = BlobSaver::new(&self.repo, SaverOptions::default()).unwrap();
        let id = save_tree(&saver, items);
        saver.finish().unwrap();
        self.repo = self.repo.repo().clone().load_index().unwrap();
        id
    }

    pub fn snapshot(&self, tree: TreeId) -> SnapshotId {
        self.repo
            .save_snapshot(&Snapshot {
                time_ns: MTIME,
                tree,
                paths: vec!["/home/u/docs".into()],
                hostname: "host".into(),
                username: "u".into(),
                uid: 1000,
                gid: 1000,
                tags: Vec::new(),
                parent: None,
                original: None,
                excludes: Vec::new(),
                program_version: "test".into(),
                partial: false,
                summary: Summary::default(),
            })
            .unwrap()
    }

    /// The pack holding a data blob and the blob's offset and length in it.
    pub fn blob_place(&self, data: &[u8]) -> (PackId, u32, u32) {
        let id = BlobId(self.repo.key().blob_id(data));
        let loc = self.repo.index().get(BlobKind::Data, &id).unwrap();
        (loc.pack, loc.offset, loc.length)
    }
}

fn node(name: &str, kind: NodeKind, mode: u32) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), kind);
    n.mode = mode;
    n.mtime_ns = MTIME;
    n.atime_ns = MTIME;
    n.links = 1;
    n
}

fn file_node(saver: &BlobSaver, name: &str, pieces: &[Piece]) -> Node {
    let mut n = node(name, NodeKind::File, 0o644);
    for p in pieces {
        match p {
            Piece::Data(d) => {
                n.content.push(Content::Blob(saver.save(BlobKind::Data, d).unwrap().id));
                n.size += d.len() as u64;
            }
            Piece::Hole(len) => {
                n.content.push(Content::Hole(*len));
                n.size += len;
            }
        }
    }
    n
}

fn save_tree(saver: &BlobSaver, items: &[Item]) -> TreeId {
    let mut tree = Tree::default();
    for item in items {
        let n = match item {
            Item::File(name, pieces) => file_node(saver, name, pieces),
            Item::Linked(name, pieces, inode) => {
                let mut n = file_node(saver, name, pieces);
                n.links = 2;
                n.device = 7;
                n.inode = *inode;
                n
            }
            Item::Dir(name, children) => {
                let mut n = node(name, NodeKind::Dir, 0o755);
                n.subtree = Some(save_tree(saver, children));
                n
            }
            Item::Symlink(name, target) => {
                let mut n = node(name, NodeKind::Symlink, 0o777);
                n.link_target = Some(target.as_bytes().to_vec());
                n
            }
            Item::Fifo(name) => node(name, NodeKind::Fifo, 0o640),
            Item::Lost(name) => {
                let mut n = node(name, NodeKind::File, 0o644);
                n.content.push(Content::Blob(BlobId([0xab; 32])));
                n.size = 10;
                n
            }
        };
        tree.nodes.push(n);
    }
    tree.sort();
    TreeId(saver.save(BlobKind::Tree, &tree.encode()).unwrap().id.0)
}
