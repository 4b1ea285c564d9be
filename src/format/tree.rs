//! Tree blobs: one directory's entries.

use serde::{Deserialize, Serialize};

use super::{from_postcard, limits, to_postcard, FormatError};
use crate::id::{BlobId, TreeId};

/// The type of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// One piece of a file's content, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Content {
    /// A data blob holding the next bytes.
    Blob(BlobId),
    /// A hole of this many zero bytes, not stored.
    Hole(u64),
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// A directory entry with its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The entry's name, raw bytes; never empty, `.`, `..`, nor containing `/` or NUL.
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits, including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Owner names at backup time; empty when unknown.
    pub user: String,
    pub group: String,
    /// Times in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub atime_ns: i64,
    pub ctime_ns: i64,
    pub device: u64,
    pub inode: u64,
    /// Hard-link count; entries with `links > 1` and equal `(device, inode)` are one file.
    pub links: u64,
    /// File size in bytes (files), 0 otherwise.
    pub size: u64,
    /// The file's content (files only).
    pub content: Vec<Content>,
    /// The directory's tree (directories only).
    pub subtree: Option<TreeId>,
    /// The symlink's target, raw bytes (symlinks only).
    pub link_target: Option<Vec<u8>>,
    /// Device number (character and block devices only).
    pub rdev: u64,
    pub xattrs: Vec<Xattr>,
}

impl Node {
    /// A node with the given name and kind and every other field empty.
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Self {
        Self {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime_ns: 0,
            atime_ns: 0,
            ctime_ns: 0,
            device: 0,
            inode: 0,
            links: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            link_target: None,
            rdev: 0,
            xattrs: Vec::new(),
        }
    }

    /// The name for display, lossily decoded.
    pub fn name_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
}

/// Checks that a name is a single safe path component.
pub fn check_name(name: &[u8]) -> Result<(), FormatError> {
    let bad = |reason: &str| {
        Err(FormatError::Decode {
            what: "tree",
            reason: format!("invalid entry name {:?}: {reason}", String::from_utf8_lossy(name)),
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == b"." || name == b".." {
        return bad("dot entry");
    }
    if name.contains(&b'/') || name.contains(&0) {
        return bad("contains '/' or NUL");
    }
    if name.len() > limits::MAX_NAME {
        return bad("too long");
    }
    Ok(())
}

/// The plaintext of a tree blob: entries sorted by name, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Encodes the tree; nodes must already be sorted (see [`Tree::sort`]).
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    /// Sorts nodes by name.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Decodes a tree and checks its names: each a safe path component,
    /// strictly increasing, so a restore can never leave its target.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let tree: Self = from_postcard("tree", bytes)?;
        let mut prev: Option<&[u8]> = None;
        for node in &tree.nodes {
            check_name(&node.name)?;
            if let Some(p) = prev {
                if p >= node.name.as_slice() {
                    return Err(FormatError::Decode {
                        what: "tree",
                        reason: format!("entries out of order at {:?}", node.name_lossy()),
                    });
                }
            }
            prev = Some(&node.name);
            if node.kind == NodeKind::Dir && node.subtree.is_none() {
                return Err(FormatError::Decode {
                    what: "tree",
                    reason: format!("directory {:?} has no subtree", node.name_lossy()),
                });
            }
        }
        Ok(tree)
    }

    /// Finds a node by name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}
