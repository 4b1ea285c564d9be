//! Walking a snapshot's trees: what to restore, in depth-first order, and
//! finding the tree of a path inside a snapshot.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::RestoreError;
use crate::format::tree::{Node, NodeKind};
use crate::id::{SnapshotId, TreeId};
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::{IndexedRepository, TreeBudget};

/// What an entry becomes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    File,
    /// A later name of a hard-linked file: linked to the entry `primary`.
    HardLink {
        primary: usize,
    },
    /// Symlink, fifo, device or socket.
    Special,
}

/// One entry to restore. Its path is not kept (a path per entry was a
/// large share of a restore's memory with many small files): [`rel_path`]
/// makes it from the parents' names where a message needs it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub node: Node,
    pub kind: EntryKind,
    /// The entry of the directory holding this one (`None`: the target itself).
    pub parent: Option<usize>,
    /// Number of directories between the target and this entry.
    pub depth: usize,
}

/// The path of `entries[i]` relative to the restore target, from its own
/// name and its parents'.
pub(crate) fn rel_path(entries: &[Entry], i: usize) -> PathBuf {
    let mut names = Vec::new();
    let mut at = Some(i);
    while let Some(e) = at.and_then(|j| entries.get(j)) {
        names.push(OsStr::from_bytes(&e.node.name));
        at = e.parent;
    }
    names.iter().rev().collect()
}

/// Include and exclude globs over paths inside the snapshot.
///
/// A pattern without `/` matches an entry's name at any depth; a pattern
/// starting with `/` matches the whole path; any other pattern matches a
/// path's tail. `*` never crosses a `/`, `**` does.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

fn glob_set(option: &'static str, patterns: &[String]) -> Result<Option<GlobSet>, RestoreError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let bad = |pattern: &str| {
        let pattern = pattern.to_owned();
        move |source| RestoreError::Pattern {
            option,
            pattern,
            source,
        }
    };
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let full = if pattern.starts_with('/') {
            pattern.clone()
        } else {
            format!("**/{pattern}")
        };
        let glob = GlobBuilder::new(&full)
            .literal_separator(true)
            .build()
            .map_err(bad(pattern))?;
        builder.add(glob);
    }
    builder.build().map(Some).map_err(bad(&patterns.join(" ")))
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, RestoreError> {
        Ok(Self {
            include: glob_set("include", include)?,
            exclude: glob_set("exclude", exclude)?,
        })
    }

    fn excluded(&self, path: &Path) -> bool {
        self.exclude.as_ref().is_some_and(|set| set.is_match(path))
    }

    fn included(&self, path: &Path) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(path))
    }
}

struct Walker<'a> {
    repo: &'a IndexedRepository,
    filter: &'a Filter,
    entries: Vec<Entry>,
    /// First restored name of each hard-linked (device, inode).
    inodes: HashMap<(u64, u64), usize>,
    /// Depth and entries walked, against the limits of format.md §14.
    budget: TreeBudget,
}

/// Lists everything under `tree` that the filter keeps, directories before
/// their contents. `base` is the tree's path inside the snapshot.
pub(crate) fn walk(
    repo: &IndexedRepository,
    tree: TreeId,
    base: &Path,
    filter: &Filter,
) -> Result<Vec<Entry>, RestoreError> {
    let mut walker = Walker {
        repo,
        filter,
        entries: Vec::new(),
        inodes: HashMap::new(),
        budget: TreeBudget::default(),
    };
    let base = Path::new("/").join(base);
    walker.run(tree, &base)?;
    // The entries live through the whole restore: give back the growth slack.
    walker.entries.shrink_to_fit();
    Ok(walker.entries)
}

/// A directory being walked.
struct Frame {
    tree: TreeId,
    nodes: std::vec::IntoIter<Node>,
    /// Its path inside the snapshot.
    snap: PathBuf,
    /// Its own entry (none for the root) and the depth of its entries.
    entry: Option<usize>,
    depth: usize,
    /// Whether the directory itself is included (so is all it holds).
    inside_included: bool,
    /// Whether any entry below it is kept.
    kept: bool,
}

impl Walker<'_> {
    /// Adds the kept entries below `root`, depth first without recursion;
    /// a directory without kept entries is dropped unless it is included.
    fn run(&mut self, root: TreeId, base: &Path) -> Result<(), RestoreError> {
        let mut stack = vec![self.open(root, base.to_owned(), None, 0, false)?];
        while let Some(top) = stack.last_mut() {
            let Some(node) = top.nodes.next() else {
                let Some(done) = stack.pop() else { break };
                if let (Some(parent), Some(index)) = (stack.last_mut(), done.entry) {
                    if done.inside_included || done.kept {
                        parent.kept = true;
                    } else {
                        self.entries.truncate(index);
                    }
                }
                continue;
            };
            let name = OsStr::from_bytes(&node.name);
            let snap_path = top.snap.join(name);
            if self.filter.excluded(&snap_path) {
                continue;
            }
            let included = top.inside_included || self.filter.included(&snap_path);
            let (parent, depth) = (top.entry, top.depth);
            match node.kind {
                NodeKind::Dir => {
                    let subtree = node.subtree.ok_or_else(|| RestoreError::BadTree {
                        tree: top.tree.to_hex(),
                        name: node.name_lossy().into_owned(),
                    })?;
                    let index = self.entries.len();
                    self.entries.push(Entry {
                        node,
                        kind: EntryKind::Dir,
                        parent,
                        depth,
                    });
                    let frame = self.open(subtree, snap_path, Some(index), depth + 1, included)?;
                    stack.push(frame);
                }
                _ if !included => {}
                NodeKind::File => {
                    let index = self.entries.len();
                    let kind = if node.links > 1 {
                        match self.inodes.get(&(node.device, node.inode)) {
                            Some(&primary) => EntryKind::HardLink { primary },
                            None => {
                                self.inodes.insert((node.device, node.inode), index);
                                EntryKind::File
                            }
                        }
                    } else {
                        EntryKind::File
                    };
                    self.push(node, kind, parent, depth);
                    top.kept = true;
                }
                _ => {
                    self.push(node, EntryKind::Special, parent, depth);
                    top.kept = true;
                }
            }
        }
        Ok(())
    }

    /// Reads the directory `tree`, whose entries lie at `depth` (0 for the
    /// root's), within the limits of format.md §14.
    fn open(
        &mut self,
        tree: TreeId,
        snap: PathBuf,
        entry: Option<usize>,
        depth: usize,
        inside_included: bool,
    ) -> Result<Frame, RestoreError> {
        let listing = self.repo.load_tree(&tree)?;
        self.budget.visit(&tree, depth + 1, listing.nodes.len())?;
        Ok(Frame {
            tree,
            nodes: listing.nodes.into_iter(),
            snap,
            entry,
            depth,
            inside_included,
            kept: false,
        })
    }

    fn push(&mut self, node: Node, kind: EntryKind, parent: Option<usize>, depth: usize) {
        self.entries.push(Entry {
            node,
            kind,
            parent,
            depth,
        });
    }
}

/// The tree of the directory at `path` inside the snapshot whose root tree
/// is `root`. `/` (or an empty path) is the root itself.
pub fn subtree(repo: &IndexedRepository, root: TreeId, path: &Path) -> Result<TreeId, RestoreError> {
    let mut tree = root;
    let mut walked = PathBuf::from("/");
    for component in path.components() {
        let name = match component {
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir | Component::Prefix(_) => {
                return Err(RestoreError::InvalidSubpath(path.display().to_string()))
            }
            Component::Normal(name) => name,
        };
        walked.push(name);
        let listing = repo.load_tree(&tree)?;
        let node = listing
            .find(name.as_bytes())
            .ok_or_else(|| RestoreError::PathNotFound {
                path: walked.display().to_string(),
                component: name.to_string_lossy().into_owned(),
            })?;
        tree = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(subtree)) => subtree,
            _ => {
                return Err(RestoreError::NotADirectory {
                    path: walked.display().to_string(),
                })
            }
        };
    }
    Ok(tree)
}

/// A snapshot, or a directory inside one, to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSource {
    pub snapshot: SnapshotId,
    /// The tree whose contents land in the target.
    pub tree: TreeId,
    /// Its path inside the snapshot (`/` for the whole snapshot); pass it as
    /// `RestoreOptions::subpath` so patterns see full snapshot paths.
    pub subpath: PathBuf,
}

/// Splits `SNAPSHOT[:PATH]` at its first `:`; the path (default `/`) is
/// taken as raw bytes, so names that are not UTF-8 can be given. The
/// snapshot part is text: ids and `latest` are ASCII, anything else is not
/// found.
pub fn split_spec(spec: &std::ffi::OsStr) -> (String, &Path) {
    use std::os::unix::ffi::OsStrExt;
    let bytes = spec.as_bytes();
    match bytes.iter().position(|&b| b == b':') {
        Some(at) => (
            String::from_utf8_lossy(&bytes[..at]).into_owned(),
            Path::new(std::ffi::OsStr::from_bytes(&bytes[at + 1..])),
        ),
        None => (String::from_utf8_lossy(bytes).into_owned(), Path::new("/")),
    }
}

/// Resolves `ID` or `ID:subpath` (ID: `latest`, a full id or a unique
/// prefix) to the tree to restore.
pub fn resolve_source(
    repo: &IndexedRepository,
    spec: &(impl AsRef<std::ffi::OsStr> + ?Sized),
    filter: &SnapshotFilter,
) -> Result<RestoreSource, RestoreError> {
    let (id, subpath) = split_spec(spec.as_ref());
    let (snapshot, snap) = repo.find_snapshot(&id, filter)?;
    let subpath = Path::new("/").join(subpath);
    let tree = subtree(repo, snap.tree, &subpath)?;
    Ok(RestoreSource {
        snapshot,
        tree,
        subpath,
    })
}
