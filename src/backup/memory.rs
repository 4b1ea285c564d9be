//! Backing up files that are already in memory (such as documents read from
//! an API) as one snapshot tree.
//!
//! Each file is chunked and saved like a file read from disk, so unchanged
//! content deduplicates across snapshots. A file's times are those of the
//! parent snapshot's node when its content is unchanged, and the backup's
//! start time otherwise; directories whose contents did not change keep the
//! parent's node, so an unchanged source gives the same trees again.
//!
//! [`MemoryBackup`] takes the files one at a time and saves each one's
//! content as it comes, keeping only its path and content ids until the
//! trees are written: a caller that reads its files in pages (a cluster's
//! objects) never holds all of them at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::file::{save_stream, FileFailure, ReadBuffers, ReadContext};
use super::progress::Progress;
use super::{commit, new_snapshot, parent, writers, BackupError, BackupOptions, BackupOutcome};
use crate::chunker::Chunker;
use crate::format::snapshot::Summary;
use crate::format::tree::{check_name, Content, Node, NodeKind, Tree};
use crate::format::BlobKind;
use crate::id::TreeId;
use crate::repo::saver::BlobSaver;
use crate::repo::{now_ns, IndexedRepository};

/// One file to back up: its path below the snapshot root (`a/b/c.json`,
/// `/`-separated, no `.` or `..`) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryFile {
    pub path: String,
    pub data: Vec<u8>,
}

/// A directory being assembled: subdirectories and files by name.
#[derive(Default)]
struct Dir {
    dirs: BTreeMap<Vec<u8>, Dir>,
    files: BTreeMap<Vec<u8>, usize>,
}

fn split(path: &str) -> Result<Vec<&str>, BackupError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(BackupError::InvalidOption(format!(
            "in-memory file {path:?} has no name"
        )));
    }
    for part in &parts {
        check_name(part.as_bytes()).map_err(|e| BackupError::InvalidOption(format!("in-memory file {path:?}: {e}")))?;
    }
    Ok(parts)
}

fn layout<'p>(paths: impl IntoIterator<Item = &'p str>) -> Result<Dir, BackupError> {
    let mut root = Dir::default();
    for (i, path) in paths.into_iter().enumerate() {
        let parts = split(path)?;
        let (name, dirs) = parts
            .split_last()
            .ok_or_else(|| BackupError::InvalidOption(format!("in-memory file {path:?} has no name")))?;
        let mut dir = &mut root;
        for d in dirs {
            if dir.files.contains_key(d.as_bytes()) {
                return Err(BackupError::InvalidOption(format!(
                    "in-memory file {path:?}: {d:?} is both a file and a directory"
                )));
            }
            dir = dir.dirs.entry(d.as_bytes().to_vec()).or_default();
        }
        if dir.dirs.contains_key(name.as_bytes()) || dir.files.insert(name.as_bytes().to_vec(), i).is_some() {
            return Err(BackupError::InvalidOption(format!(
                "in-memory file {path:?} is given twice"
            )));
        }
    }
    Ok(root)
}

/// A file whose content is saved: its path, content ids and size.
struct Saved {
    path: String,
    content: Vec<Content>,
    size: u64,
}

struct Builder<'a> {
    repo: &'a IndexedRepository,
    saver: &'a BlobSaver,
    progress: &'a Progress,
    files: &'a [Saved],
    start: i64,
    summary: Summary,
}

impl Builder<'_> {
    fn parent_tree(&self, id: Option<TreeId>) -> Option<Tree> {
        // A parent tree that cannot be read only costs the comparison.
        id.and_then(|id| self.repo.load_tree(&id).ok())
    }

    /// Saves `dir` and returns its tree id; `parent` is the parent
    /// snapshot's tree at the same place.
    fn dir(&mut self, dir: &Dir, parent: Option<&Tree>) -> Result<TreeId, BackupError> {
        let mut nodes = Vec::with_capacity(dir.dirs.len() + dir.files.len());
        for (name, sub) in &dir.dirs {
            let old = parent.and_then(|t| t.find(name)).filter(|n| n.kind == NodeKind::Dir);
            let old_tree = self.parent_tree(old.and_then(|n| n.subtree));
            let id = self.dir(sub, old_tree.as_ref())?;
            let node = match old {
                Some(old) if old.subtree == Some(id) => {
                    self.summary.dirs_unchanged += 1;
                    old.clone()
                }
                _ => {
                    if old.is_some() {
                        self.summary.dirs_changed += 1;
                    } else {
                        self.summary.dirs_new += 1;
                    }
                    let mut node = self.fresh(name.clone(), NodeKind::Dir, 0o755);
                    node.subtree = Some(id);
                    node
                }
            };
            self.progress.dir_done();
            nodes.push(node);
        }
        for (name, &i) in &dir.files {
            let Saved {
                content, size: read, ..
            } = &self.files[i];
            let (content, read) = (content.clone(), *read);
            let old = parent.and_then(|t| t.find(name)).filter(|n| n.kind == NodeKind::File);
            let node = match old {
                Some(old) if old.content == content && old.size == read => {
                    self.summary.files_unchanged += 1;
                    old.clone()
                }
                _ => {
                    if old.is_some() {
                        self.summary.files_changed += 1;
                    } else {
                        self.summary.files_new += 1;
                    }
                    let mut node = self.fresh(name.clone(), NodeKind::File, 0o600);
                    node.size = read;
                    node.content = content;
                    node
                }
            };
            self.summary.total_files_processed += 1;
            self.summary.total_bytes_processed += read;
            self.progress.file_done();
            nodes.push(node);
        }
        let mut tree = Tree { nodes };
        tree.sort();
        let saved = self.saver.save(BlobKind::Tree, &tree.encode())?;
        Ok(TreeId::from_bytes(saved.id.0))
    }

    fn fresh(&self, name: Vec<u8>, kind: NodeKind, mode: u32) -> Node {
        let mut node = Node::new(name, kind);
        node.mode = mode;
        node.uid = nix::unistd::getuid().as_raw();
        node.gid = nix::unistd::getgid().as_raw();
        node.user = crate::repo::username();
        node.mtime_ns = self.start;
        node.atime_ns = self.start;
        node.ctime_ns = self.start;
        node
    }
}

/// A snapshot of in-memory files being written: each file's content is
/// saved when it is added; [`finish`](Self::finish) writes the trees and
/// the snapshot.
pub struct MemoryBackup<'a> {
    repo: &'a IndexedRepository,
    opts: &'a BackupOptions,
    progress: &'a Progress,
    saver: BlobSaver,
    chunker: Chunker,
    buffers: ReadBuffers,
    start: i64,
    files: Vec<Saved>,
}

impl<'a> MemoryBackup<'a> {
    pub fn new(
        repo: &'a IndexedRepository,
        opts: &'a BackupOptions,
        progress: &'a Progress,
    ) -> Result<Self, BackupError> {
        let (saver, chunker) = writers(repo, opts)?;
        Ok(Self {
            repo,
            opts,
            progress,
            saver,
            chunker,
            buffers: ReadBuffers::new(1),
            start: now_ns(),
            files: Vec::new(),
        })
    }

    /// Chunks and saves one file (its path as in [`MemoryFile`]); only the
    /// path and the content ids are kept.
    pub fn add(&mut self, path: String, data: &[u8]) -> Result<(), BackupError> {
        split(&path)?;
        let ctx = ReadContext {
            chunker: &self.chunker,
            saver: &self.saver,
            progress: self.progress,
            buffers: &self.buffers,
            cancel: self.opts.cancel.as_ref(),
            read_limit: None,
        };
        let mut content = Vec::new();
        let size = save_stream(data, data.len() as u64, &ctx, &mut content).map_err(|e| match e {
            FileFailure::Fatal(e) => e,
            FileFailure::Unreadable(e) => BackupError::Internal(format!("reading memory: {e}")),
        })?;
        self.files.push(Saved { path, content, size });
        Ok(())
    }

    /// Files added so far.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Writes the trees of the files added and the snapshot, whose paths
    /// are `paths`. `errors` is the number of entries the caller could not
    /// read: a non-zero count marks the snapshot partial.
    pub fn finish(self, paths: Vec<String>, errors: u64) -> Result<BackupOutcome, BackupError> {
        let paths: Vec<std::path::PathBuf> = paths.into_iter().map(Into::into).collect();
        let root = layout(self.files.iter().map(|f| f.path.as_str()))?;
        let hostname = self.opts.hostname.clone().unwrap_or_else(crate::repo::hostname);
        let (parent_id, parent_root) = parent(self.repo, &self.opts.parent, &hostname, &paths)?;
        let mut builder = Builder {
            repo: self.repo,
            saver: &self.saver,
            progress: self.progress,
            files: &self.files,
            start: self.start,
            summary: Summary {
                backup_start_ns: self.start,
                errors,
                ..Summary::default()
            },
        };
        let parent_root: Option<Arc<Tree>> = parent_root;
        let tree = builder.dir(&root, parent_root.as_deref())?;
        let summary = builder.summary;
        let mut snapshot = new_snapshot(self.opts, tree, paths, self.start);
        snapshot.parent = parent_id;
        snapshot.summary = summary;
        commit(self.repo, self.saver, snapshot, self.opts)
    }
}

/// Backs up `files` as one snapshot whose paths are `paths`. `errors` is
/// the number of entries the caller could not read: a non-zero count marks
/// the snapshot partial.
pub fn backup_files(
    repo: &IndexedRepository,
    files: &[MemoryFile],
    paths: Vec<String>,
    errors: u64,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupOutcome, BackupError> {
    // Clashes are found before anything is saved.
    layout(files.iter().map(|f| f.path.as_str()))?;
    let mut backup = MemoryBackup::new(repo, opts, progress)?;
    for file in files {
        backup.add(file.path.clone(), &file.data)?;
    }
    backup.finish(paths, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> MemoryFile {
        MemoryFile {
            path: path.into(),
            data: b"x".to_vec(),
        }
    }

    fn lay(files: &[MemoryFile]) -> Result<Dir, BackupError> {
        layout(files.iter().map(|f| f.path.as_str()))
    }

    #[test]
    fn lays_out_nested_directories() {
        let root = lay(&[file("a/b/c.json"), file("a/d.json"), file("e")]).unwrap();
        assert_eq!(root.files.len(), 1);
        let a = &root.dirs[b"a".as_slice()];
        assert_eq!(a.files.keys().collect::<Vec<_>>(), [&b"d.json".to_vec()]);
        assert_eq!(a.dirs[b"b".as_slice()].files[b"c.json".as_slice()], 0);
    }

    #[test]
    fn rejects_duplicates_clashes_and_bad_names() {
        assert!(lay(&[file("a/b"), file("a/b")]).is_err());
        assert!(lay(&[file("a"), file("a/b")]).is_err());
        assert!(lay(&[file("a/b"), file("a")]).is_err());
        assert!(lay(&[file("a/../b")]).is_err());
        assert!(lay(&[file("/")]).is_err());
    }
}
