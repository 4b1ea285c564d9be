//! The archiver: walk events in, trees and a root tree id out.
//!
//! The walk runs on the calling thread. Files whose content must be read are
//! handed to a small pool of reader threads through a bounded queue (the
//! walk waits when the queue is full); each reader chunks its file and saves
//! the chunks, in parallel batches on the rayon pool. A directory's tree is
//! built when the walk leaves it, after the results of its files are in, so
//! trees are written bottom-up and in a deterministic order.

use crate::repo::cancel::{canceled, CancelToken};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::file::{save_file, FileContent, FileFailure, ReadBuffers, ReadContext, SourceFile};
use super::throttle::ReadLimit;

/// Large files chunked at once, each through a buffer of the maximum chunk
/// size; more reading threads only add small files in flight.
const LARGE_FILES_AT_ONCE: usize = 3;
use super::progress::{Message, Progress};
use super::BackupError;
use crate::chunker::Chunker;
use crate::format::snapshot::Summary;
use crate::format::tree::{Content, Node, NodeKind, Tree};
use crate::format::BlobKind;
use crate::id::TreeId;
use crate::repo::saver::BlobSaver;
use crate::repo::IndexedRepository;
use crate::source::meta::{node_from_entry, node_from_metadata, OwnerNames};
use crate::source::walk::{WalkEntry, WalkEvent, Walker};
use crate::source::Hook;

/// A directory entry whose node may still be waiting for its content.
enum Pending {
    Ready(Node),
    File {
        node: Node,
        path: PathBuf,
        /// No parent node: counted as new, else as changed.
        new: bool,
        result: Receiver<Result<FileContent, FileFailure>>,
    },
}

struct Frame {
    node: Node,
    parent: Option<Arc<Tree>>,
    parent_subtree: Option<TreeId>,
    entries: Vec<Pending>,
}

struct Job {
    file: SourceFile,
    result: SyncSender<Result<FileContent, FileFailure>>,
}

/// Walks and stores one backup's file trees.
pub struct Archiver<'a> {
    pub repo: &'a IndexedRepository,
    pub saver: &'a BlobSaver,
    pub chunker: &'a Chunker,
    pub progress: &'a Progress,
    /// The parent snapshot's root tree.
    pub parent_root: Option<Arc<Tree>>,
    /// Read every file even if the parent has it unchanged.
    pub force: bool,
    /// Threads reading files.
    pub readers: usize,
    /// What the walk found: the counting fields of the snapshot summary.
    pub summary: Summary,
    /// Files that changed while they were read (stored as read).
    pub changed_while_read: u64,
    /// Runs before each file is opened (tests).
    pub before_read: Hook,
    /// Runs after each file is opened, before it is read (tests).
    pub after_open: Hook,
    /// Checked before each entry of the walk.
    pub cancel: Option<CancelToken>,
    /// Caps the rate at which file contents are read.
    pub read_limit: Option<Arc<ReadLimit>>,
    /// The roots are logical names of open directories: the directories
    /// above them are not looked up on this machine.
    pub logical_roots: bool,
    owners: OwnerNames,
}

impl<'a> Archiver<'a> {
    pub fn new(
        repo: &'a IndexedRepository,
        saver: &'a BlobSaver,
        chunker: &'a Chunker,
        progress: &'a Progress,
        parent_root: Option<Arc<Tree>>,
    ) -> Self {
        Self {
            repo,
            saver,
            chunker,
            progress,
            parent_root,
            force: false,
            readers: 4,
            summary: Summary::default(),
            changed_while_read: 0,
            before_read: Hook::default(),
            after_open: Hook::default(),
            cancel: None,
            read_limit: None,
            logical_roots: false,
            owners: OwnerNames::new(),
        }
    }

    /// Runs the walk and returns the id of the root tree.
    pub fn run(&mut self, walker: Walker) -> Result<TreeId, BackupError> {
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(self.readers * 2);
        let jobs_rx = Mutex::new(jobs_rx);
        let buffers = ReadBuffers::new(LARGE_FILES_AT_ONCE);
        let cancel = self.cancel.clone();
        let read_limit = self.read_limit.clone();
        let ctx = ReadContext {
            chunker: self.chunker,
            saver: self.saver,
            progress: self.progress,
            buffers: &buffers,
            cancel: cancel.as_ref(),
            read_limit: read_limit.as_deref(),
        };
        let progress = self.progress;
        let (before_read, after_open) = (self.before_read.clone(), self.after_open.clone());
        std::thread::scope(|scope| {
            for _ in 0..self.readers.max(1) {
                let jobs_rx = &jobs_rx;
                let (before_read, after_open) = (&before_read, &after_open);
                scope.spawn(move || loop {
                    let job = match jobs_rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    progress.set_current(&job.file.path);
                    before_read.call(&job.file.path);
                    let result = save_file(&job.file, &ctx, after_open);
                    // The walk may have stopped on an error; nobody waits then.
                    let _ = job.result.send(result);
                });
            }
            let result = self.walk(walker, &jobs_tx);
            drop(jobs_tx);
            result
        })
    }

    fn walk(&mut self, walker: Walker, jobs: &SyncSender<Job>) -> Result<TreeId, BackupError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut top: Vec<(PathBuf, Pending)> = Vec::new();
        for event in walker {
            if canceled(self.cancel.as_ref()) {
                return Err(BackupError::Canceled);
            }
            match event {
                WalkEvent::Enter(entry) => {
                    let parent_node = self.parent_node(&stack, &entry);
                    let parent_subtree = parent_node.as_ref().and_then(|n| n.subtree);
                    let parent = parent_subtree.and_then(|id| self.load_parent_tree(&entry.path, &id));
                    let node = self
                        .node(&entry)
                        .unwrap_or_else(|| Node::new(entry.name.clone(), NodeKind::Dir));
                    stack.push(Frame {
                        node,
                        parent,
                        parent_subtree,
                        entries: Vec::new(),
                    });
                }
                WalkEvent::Item(entry) => {
                    let Some(node) = self.node(&entry) else { continue };
                    let pending = self.item(&stack, &entry, node, jobs)?;
                    match stack.last_mut() {
                        Some(frame) => frame.entries.push(pending),
                        None => top.push((entry.path, pending)),
                    }
                }
                WalkEvent::Leave { path } => {
                    let Some(frame) = stack.pop() else { continue };
                    let node = self.finish_dir(frame)?;
                    let pending = Pending::Ready(node);
                    match stack.last_mut() {
                        Some(frame) => frame.entries.push(pending),
                        None => top.push((path, pending)),
                    }
                }
                WalkEvent::Error { path, error } => {
                    self.summary.errors += 1;
                    self.progress.report(Message::Error {
                        path,
                        error: error.to_string(),
                    });
                }
            }
        }
        // Roots hang below their parent directories, which become trees too.
        let mut dirs: BTreeMap<PathBuf, Vec<Node>> = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Vec::new());
        for (path, pending) in top {
            let Some(node) = self.resolve(pending)? else { continue };
            let parent = path.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            if path == Path::new("/") {
                // Backing up "/" itself: its tree is the root tree.
                if let Some(id) = node.subtree {
                    return Ok(id);
                }
            }
            dirs.entry(parent).or_default().push(node);
        }
        self.build_ancestors(dirs)
    }

    /// Builds the trees of the directories above the roots, deepest first.
    fn build_ancestors(&mut self, mut dirs: BTreeMap<PathBuf, Vec<Node>>) -> Result<TreeId, BackupError> {
        loop {
            let deepest = dirs.keys().max_by_key(|p| p.components().count()).cloned();
            let Some(path) = deepest else { break };
            let nodes = dirs.remove(&path).unwrap_or_default();
            let id = self.save_tree(nodes)?;
            let Some(parent) = path.parent() else { return Ok(id) };
            let name = path.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
            // The directories above roots named by path: their metadata
            // only, looked up as the walk resolved the roots (nothing is
            // opened or read through them). Logical roots have no
            // directories of this machine above them.
            let found = if self.logical_roots {
                None
            } else {
                std::fs::symlink_metadata(&path).ok()
            };
            let mut node = found
                .and_then(|md| node_from_metadata(name.clone(), &path, &md, &mut self.owners).ok())
                .unwrap_or_else(|| Node::new(name.clone(), NodeKind::Dir));
            node.kind = NodeKind::Dir;
            node.subtree = Some(id);
            dirs.entry(parent.to_path_buf()).or_default().push(node);
        }
        self.save_tree(Vec::new())
    }

    fn node(&mut self, entry: &WalkEntry) -> Option<Node> {
        match node_from_entry(entry, &mut self.owners) {
            Ok(node) => Some(node),
            Err(e) => {
                self.summary.errors += 1;
                self.progress.report(Message::Error {
                    path: entry.path.clone(),
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// The parent snapshot's node for a walk entry.
    fn parent_node(&self, stack: &[Frame], entry: &WalkEntry) -> Option<Node> {
        match stack.last() {
            Some(frame) => frame.parent.as_ref()?.find(&entry.name).cloned(),
            None => {
                let dir = entry.path.parent()?;
                let tree = self.parent_tree_at(dir)?;
                tree.find(&entry.name).cloned()
            }
        }
    }

    /// The parent snapshot's tree of an absolute directory path.
    fn parent_tree_at(&self, dir: &Path) -> Option<Arc<Tree>> {
        let mut tree = self.parent_root.clone()?;
        for c in dir.components() {
            if let Component::Normal(name) = c {
                let node = tree.find(name.as_bytes())?;
                let id = node.subtree?;
                tree = self.load_parent_tree(dir, &id)?;
            }
        }
        Some(tree)
    }

    fn load_parent_tree(&self, path: &Path, id: &TreeId) -> Option<Arc<Tree>> {
        match self.repo.load_tree(id) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                self.progress.report(Message::Warning(format!(
                    "{}: parent snapshot unusable here, reading everything: {e}",
                    crate::format::escape::path(path)
                )));
                None
            }
        }
    }

    fn item(
        &mut self,
        stack: &[Frame],
        entry: &WalkEntry,
        mut node: Node,
        jobs: &SyncSender<Job>,
    ) -> Result<Pending, BackupError> {
        if node.kind != NodeKind::File {
            return Ok(Pending::Ready(node));
        }
        let parent = self.parent_node(stack, entry);
        if let Some(old) = parent.as_ref().filter(|old| !self.force && self.unchanged(old, &node)) {
            node.content = old.content.clone();
            self.summary.files_unchanged += 1;
            self.count_file(&node);
            self.progress.add_bytes(node.size);
            return Ok(Pending::Ready(node));
        }
        let (tx, rx) = sync_channel(1);
        let job = Job {
            file: SourceFile {
                dir: entry.dir.clone(),
                name: entry.name_in_dir().to_owned(),
                path: entry.path.clone(),
                walked: entry.metadata,
            },
            result: tx,
        };
        jobs.send(job)
            .map_err(|_| BackupError::Internal("the file readers stopped".into()))?;
        Ok(Pending::File {
            node,
            path: entry.path.clone(),
            new: parent.is_none(),
            result: rx,
        })
    }

    fn count_file(&mut self, node: &Node) {
        self.summary.total_files_processed += 1;
        self.summary.total_bytes_processed += node.size;
        self.progress.file_done();
    }

    /// A file is unchanged when size, mtime, ctime and inode agree with the
    /// parent's node and all of its content is still indexed.
    fn unchanged(&self, old: &Node, new: &Node) -> bool {
        old.kind == NodeKind::File
            && old.size == new.size
            && old.mtime_ns == new.mtime_ns
            && old.ctime_ns == new.ctime_ns
            && old.inode == new.inode
            && old.content.iter().all(|c| match c {
                Content::Blob(id) => self.repo.known(BlobKind::Data, id),
                Content::Hole(_) => true,
            })
    }

    /// Waits for a pending entry. `None`: it could not be read and is left out.
    fn resolve(&mut self, pending: Pending) -> Result<Option<Node>, BackupError> {
        match pending {
            Pending::Ready(node) => Ok(Some(node)),
            Pending::File {
                mut node,
                path,
                new,
                result,
            } => {
                let outcome = result
                    .recv()
                    .map_err(|_| BackupError::Internal(format!("no result for {}", path.display())))?;
                match outcome {
                    Ok(fc) => {
                        if let Some(how) = fc.changed {
                            self.changed_while_read += 1;
                            self.progress.report(Message::Changed { path, how });
                        }
                        if new {
                            self.summary.files_new += 1;
                        } else {
                            self.summary.files_changed += 1;
                        }
                        node.content = fc.content;
                        node.size = fc.size;
                        self.count_file(&node);
                        Ok(Some(node))
                    }
                    Err(FileFailure::Unreadable(e)) => {
                        self.summary.errors += 1;
                        self.progress.report(Message::Error {
                            path,
                            error: e.to_string(),
                        });
                        Ok(None)
                    }
                    Err(FileFailure::Fatal(e)) => Err(e),
                }
            }
        }
    }

    fn finish_dir(&mut self, frame: Frame) -> Result<Node, BackupError> {
        let mut nodes = Vec::with_capacity(frame.entries.len());
        for pending in frame.entries {
            if let Some(node) = self.resolve(pending)? {
                nodes.push(node);
            }
        }
        let id = self.save_tree(nodes)?;
        match frame.parent_subtree {
            None => self.summary.dirs_new += 1,
            Some(old) if old == id => self.summary.dirs_unchanged += 1,
            Some(_) => self.summary.dirs_changed += 1,
        }
        self.progress.dir_done();
        let mut node = frame.node;
        node.subtree = Some(id);
        Ok(node)
    }

    fn save_tree(&mut self, nodes: Vec<Node>) -> Result<TreeId, BackupError> {
        let mut tree = Tree { nodes };
        tree.sort();
        tree.nodes.dedup_by(|a, b| a.name == b.name);
        let saved = self.saver.save(BlobKind::Tree, &tree.encode())?;
        Ok(TreeId::from_bytes(saved.id.0))
    }
}
