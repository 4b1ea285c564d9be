//! Backing up files that are already in memory (such as documents read from
//! an API) as one snapshot tree.
//!
//! Each file is chunked and saved like a file read from disk, so unchanged
//! content deduplicates across snapshots. A file's times are those of the
//! parent snapshot's node when its content is unchanged, and the backup's
//! start time otherwise; directories whose contents did not change keep the
//! parent's node, so an unchanged source gives the same trees again.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::file::{save_stream, FileFailure, ReadBuffers, ReadContext};
use super::progress::Progress;
use super::{commit, new_snapshot, parent, writers, BackupError, BackupOptions, BackupOutcome};
use crate::format::snapshot::Summary;
use crate::format::tree::{check_name, Node, NodeKind, Tree};
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

fn layout(files: &[MemoryFile]) -> Result<Dir, BackupError> {
    let mut root = Dir::default();
    for (i, file) in files.iter().enumerate() {
        let parts = split(&file.path)?;
        let (name, dirs) = parts
            .split_last()
            .ok_or_else(|| BackupError::InvalidOption(format!("in-memory file {:?} has no name", file.path)))?;
        let mut dir = &mut root;
        for d in dirs {
            if dir.files.contains_key(d.as_bytes()) {
                return Err(BackupError::InvalidOption(format!(
                    "in-memory file {:?}: {d:?} is both a file and a directory",
                    file.path
                )));
            }
            dir = dir.dirs.entry(d.as_bytes().to_vec()).or_default();
        }
        if dir.dirs.contains_key(name.as_bytes()) || dir.files.insert(name.as_bytes().to_vec(), i).is_some() {
            return Err(BackupError::InvalidOption(format!(
                "in-memory file {:?} is given twice",
                file.path
            )));
        }
    }
    Ok(root)
}

struct Builder<'a> {
    repo: &'a IndexedRepository,
    saver: &'a BlobSaver,
    ctx: ReadContext<'a>,
    files: &'a [MemoryFile],
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
            self.ctx.progress.dir_done();
            nodes.push(node);
        }
        for (name, &i) in &dir.files {
            let data = &self.files[i].data;
            let mut content = Vec::new();
            let read =
                save_stream(data.as_slice(), data.len() as u64, &self.ctx, &mut content).map_err(|e| match e {
                    FileFailure::Fatal(e) => e,
                    FileFailure::Unreadable(e) => BackupError::Internal(format!("reading memory: {e}")),
                })?;
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
            self.ctx.progress.file_done();
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
    let start = now_ns();
    let paths: Vec<std::path::PathBuf> = paths.into_iter().map(Into::into).collect();
    let root = layout(files)?;
    let hostname = opts.hostname.clone().unwrap_or_else(crate::repo::hostname);
    let (parent_id, parent_root) = parent(repo, &opts.parent, &hostname, &paths)?;
    let (saver, chunker) = writers(repo, opts)?;
    let buffers = ReadBuffers::new(1);
    let mut builder = Builder {
        repo,
        saver: &saver,
        ctx: ReadContext {
            chunker: &chunker,
            saver: &saver,
            progress,
            buffers: &buffers,
            cancel: opts.cancel.as_ref(),
            read_limit: None,
        },
        files,
        start,
        summary: Summary {
            backup_start_ns: start,
            errors,
            ..Summary::default()
        },
    };
    let parent_root: Option<Arc<Tree>> = parent_root;
    let tree = builder.dir(&root, parent_root.as_deref())?;
    let summary = builder.summary;
    let mut snapshot = new_snapshot(opts, tree, paths, start);
    snapshot.parent = parent_id;
    snapshot.summary = summary;
    commit(repo, saver, snapshot, opts)
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

    #[test]
    fn lays_out_nested_directories() {
        let root = layout(&[file("a/b/c.json"), file("a/d.json"), file("e")]).unwrap();
        assert_eq!(root.files.len(), 1);
        let a = &root.dirs[b"a".as_slice()];
        assert_eq!(a.files.keys().collect::<Vec<_>>(), [&b"d.json".to_vec()]);
        assert_eq!(a.dirs[b"b".as_slice()].files[b"c.json".as_slice()], 0);
    }

    #[test]
    fn rejects_duplicates_clashes_and_bad_names() {
        assert!(layout(&[file("a/b"), file("a/b")]).is_err());
        assert!(layout(&[file("a"), file("a/b")]).is_err());
        assert!(layout(&[file("a/b"), file("a")]).is_err());
        assert!(layout(&[file("a/../b")]).is_err());
        assert!(layout(&[file("/")]).is_err());
    }
}
