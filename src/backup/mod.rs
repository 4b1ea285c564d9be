//! The backup: a source becomes chunks, blobs, trees and a snapshot.
//!
//! Order of writes (format-spec, "read and write ordering"): packs, then
//! the index files naming them, then the snapshot, which is written only
//! after the blob saver has made every pack and index durable.

use crate::repo::cancel::{canceled, CancelToken};
use std::path::PathBuf;
use std::sync::Arc;

use crate::chunker::Chunker;
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{Content, Node, NodeKind, Tree};
use crate::format::BlobKind;
use crate::id::{SnapshotId, TreeId};
use crate::repo::lock::LockWatch;
use crate::repo::saver::{BlobSaver, SaverOptions};
use crate::repo::{now_ns, IndexedRepository, RepoError};
use crate::source::walk::{WalkOptions, Walker};
use crate::source::SourceError;

pub mod archiver;
pub mod file;
pub mod memory;
pub mod progress;
pub mod throttle;

use archiver::Archiver;
pub use memory::{backup_files, MemoryFile};
use progress::Progress;

/// Errors that stop a backup. (Unreadable source entries do not: they are
/// reported through [`Progress`] and mark the snapshot partial.)
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("reading standard input: {0}")]
    Stdin(std::io::Error),
    #[error("command {command:?} failed: {reason}")]
    Command { command: String, reason: String },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the backup was canceled; no snapshot was written")]
    Canceled,
}

/// Which snapshot a backup compares against.
#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The latest snapshot of the same host and paths.
    #[default]
    Latest,
    /// This one.
    Id(SnapshotId),
    /// None: every file is read.
    None,
}

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub walk: WalkOptions,
    pub tags: Vec<String>,
    /// Defaults to this machine's name.
    pub hostname: Option<String>,
    pub parent: ParentChoice,
    /// Read every file even if unchanged since the parent.
    pub force: bool,
    /// Do everything but store anything.
    pub dry_run: bool,
    pub saver: SaverOptions,
    /// Snapshot time in ns since the epoch; defaults to the start time.
    pub time_ns: Option<i64>,
    /// Excludes recorded in the snapshot.
    pub excludes: Vec<String>,
    /// Files read at once (0: the default, 4).
    pub readers: usize,
    /// The lock the backup runs under: checked before the snapshot is written.
    pub lock: Option<LockWatch>,
    /// Stops the backup between files and between chunks; no snapshot is
    /// written then.
    pub cancel: Option<CancelToken>,
    /// Caps the rate at which file contents are read (shared by all the
    /// reading threads; none: as fast as the disk goes).
    pub read_limit: Option<Arc<throttle::ReadLimit>>,
    /// Runs before each file is opened for reading (tests).
    #[doc(hidden)]
    pub before_read: crate::source::Hook,
    /// Runs after each file is opened, before its first byte is read (tests).
    #[doc(hidden)]
    pub after_open: crate::source::Hook,
}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// None for a dry run.
    pub id: Option<SnapshotId>,
    pub snapshot: Snapshot,
    /// Files that changed while they were read; what was read is stored and
    /// the snapshot is not partial for it.
    pub changed_while_read: u64,
}

/// The blob saver and the chunker of one backup.
fn writers(repo: &IndexedRepository, opts: &BackupOptions) -> Result<(BlobSaver, Chunker), BackupError> {
    let saver = BlobSaver::new(
        repo,
        SaverOptions {
            dry_run: opts.dry_run,
            ..opts.saver
        },
    )?;
    Ok((saver, Chunker::new(repo.key().gear_table(), repo.config().chunker)))
}

/// Finds the parent snapshot and its root tree.
fn parent(
    repo: &IndexedRepository,
    choice: &ParentChoice,
    hostname: &str,
    paths: &[PathBuf],
) -> Result<(Option<SnapshotId>, Option<Arc<Tree>>), BackupError> {
    let id = match choice {
        ParentChoice::None => return Ok((None, None)),
        ParentChoice::Id(id) => *id,
        ParentChoice::Latest => {
            let mut want: Vec<&PathBuf> = paths.iter().collect();
            want.sort();
            // Newest first. A snapshot that a concurrent backup wrote after
            // this one loaded the index has its trees in index files this
            // backup has not read: it is passed over, as if it were not
            // there yet.
            for (id, s) in repo.list_snapshots()?.into_iter().rev() {
                let mut have: Vec<&PathBuf> = s.paths.iter().collect();
                have.sort();
                if s.hostname != hostname || have != want {
                    continue;
                }
                match repo.load_tree(&s.tree) {
                    Ok(tree) => return Ok((Some(id), Some(Arc::new(tree)))),
                    Err(RepoError::BlobNotFound { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok((None, None));
        }
    };
    let snap = repo.load_snapshot(&id)?;
    let tree = repo.load_tree(&snap.tree)?;
    Ok((Some(id), Some(Arc::new(tree))))
}

fn new_snapshot(opts: &BackupOptions, tree: TreeId, paths: Vec<PathBuf>, start: i64) -> Snapshot {
    Snapshot {
        time_ns: opts.time_ns.unwrap_or(start),
        tree,
        paths,
        hostname: opts.hostname.clone().unwrap_or_else(crate::repo::hostname),
        username: crate::repo::username(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        tags: opts.tags.clone(),
        parent: None,
        original: None,
        excludes: opts.excludes.clone(),
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        partial: false,
        summary: Summary {
            backup_start_ns: start,
            ..Summary::default()
        },
    }
}

/// Finishes the saver, then writes the snapshot (unless a dry run) if the
/// lock, when there is one, still holds.
fn commit(
    repo: &IndexedRepository,
    saver: BlobSaver,
    mut snapshot: Snapshot,
    opts: &BackupOptions,
) -> Result<BackupOutcome, BackupError> {
    if canceled(opts.cancel.as_ref()) {
        return Err(BackupError::Canceled);
    }
    let stats = saver.finish()?;
    snapshot.summary.data_blobs = stats.data_blobs;
    snapshot.summary.tree_blobs = stats.tree_blobs;
    snapshot.summary.data_added = stats.data_added;
    snapshot.summary.data_added_packed = stats.data_added_packed;
    snapshot.summary.backup_end_ns = now_ns();
    snapshot.partial = snapshot.summary.errors > 0;
    let id = if opts.dry_run {
        None
    } else {
        if let Some(lock) = &opts.lock {
            lock.ensure_held()?;
        }
        Some(repo.save_snapshot(&snapshot)?)
    };
    Ok(BackupOutcome {
        id,
        snapshot,
        changed_while_read: 0,
    })
}

/// Backs up files and directories.
pub fn backup_paths(
    repo: &IndexedRepository,
    paths: &[PathBuf],
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupOutcome, BackupError> {
    let walker = Walker::new(paths, &opts.walk)?;
    backup_walk(repo, walker, opts, progress)
}

/// Backs up the open directory `dir` as if it were at `logical` (an
/// absolute path such as `/volumes/shop/data`), which decides the parent
/// snapshot and the snapshot's path. Every file is reached from `dir` with
/// `openat`; nothing is resolved by path, so a directory that changes
/// meanwhile cannot lead the backup elsewhere.
pub fn backup_dir(
    repo: &IndexedRepository,
    dir: std::os::fd::OwnedFd,
    logical: &std::path::Path,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupOutcome, BackupError> {
    let walker = Walker::from_dir(dir, logical, &opts.walk)?;
    backup_walk(repo, walker, opts, progress)
}

fn backup_walk(
    repo: &IndexedRepository,
    walker: Walker,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupOutcome, BackupError> {
    let start = now_ns();
    // Stored exactly, as bytes.
    let roots: Vec<PathBuf> = walker.roots().to_vec();
    let hostname = opts.hostname.clone().unwrap_or_else(crate::repo::hostname);
    let (parent_id, parent_root) = parent(repo, &opts.parent, &hostname, &roots)?;
    let (saver, chunker) = writers(repo, opts)?;
    let mut archiver = Archiver::new(repo, &saver, &chunker, progress, parent_root);
    archiver.force = opts.force;
    archiver.before_read = opts.before_read.clone();
    archiver.after_open = opts.after_open.clone();
    archiver.cancel = opts.cancel.clone();
    archiver.read_limit = opts.read_limit.clone();
    archiver.logical_roots = walker.has_logical_roots();
    if opts.readers > 0 {
        archiver.readers = opts.readers;
    }
    let tree = archiver.run(walker)?;
    let mut snapshot = new_snapshot(opts, tree, roots, start);
    snapshot.parent = parent_id;
    snapshot.summary = Summary {
        backup_start_ns: start,
        ..archiver.summary
    };
    let changed_while_read = archiver.changed_while_read;
    let outcome = commit(repo, saver, snapshot, opts)?;
    Ok(BackupOutcome {
        changed_while_read,
        ..outcome
    })
}

/// A stream read and saved, its snapshot not yet written.
struct Staged {
    saver: BlobSaver,
    snapshot: Snapshot,
}

fn stage_reader<R: std::io::Read>(
    repo: &IndexedRepository,
    reader: R,
    filename: &str,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<Staged, BackupError> {
    crate::format::tree::check_name(filename.as_bytes())
        .map_err(|_| BackupError::InvalidOption(format!("--stdin-filename {filename:?} is not a valid file name")))?;
    let start = now_ns();
    let (saver, chunker) = writers(repo, opts)?;
    let mut content: Vec<Content> = Vec::new();
    let buffers = file::ReadBuffers::new(1);
    let ctx = file::ReadContext {
        chunker: &chunker,
        saver: &saver,
        progress,
        buffers: &buffers,
        cancel: opts.cancel.as_ref(),
        read_limit: opts.read_limit.as_deref(),
    };
    let read = match file::save_stream(reader, u64::MAX, &ctx, &mut content) {
        Ok(n) => n,
        Err(file::FileFailure::Unreadable(e)) => return Err(BackupError::Stdin(e)),
        Err(file::FileFailure::Fatal(e)) => return Err(e),
    };
    let mut node = Node::new(filename.as_bytes().to_vec(), NodeKind::File);
    node.mode = 0o644;
    node.uid = nix::unistd::getuid().as_raw();
    node.gid = nix::unistd::getgid().as_raw();
    node.user = crate::repo::username();
    node.mtime_ns = start;
    node.atime_ns = start;
    node.ctime_ns = start;
    node.size = read;
    node.content = content;
    let tree = Tree { nodes: vec![node] };
    let saved = saver.save(BlobKind::Tree, &tree.encode())?;
    progress.file_done();
    let mut snapshot = new_snapshot(
        opts,
        TreeId::from_bytes(saved.id.0),
        vec![PathBuf::from(format!("/{filename}"))],
        start,
    );
    snapshot.summary.files_new = 1;
    snapshot.summary.total_files_processed = 1;
    snapshot.summary.total_bytes_processed = read;
    Ok(Staged { saver, snapshot })
}

/// Backs up one stream (such as standard input) as a single file named
/// `filename` at the root of the snapshot.
pub fn backup_reader<R: std::io::Read>(
    repo: &IndexedRepository,
    reader: R,
    filename: &str,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupOutcome, BackupError> {
    let staged = stage_reader(repo, reader, filename, opts, progress)?;
    commit(repo, staged.saver, staged.snapshot, opts)
}

/// Runs `command` and backs up its standard output. A command that cannot
/// start or exits non-zero fails the backup and no snapshot is written.
pub fn backup_command(
    repo: &IndexedRepository,
    command: &[String],
    filename: &str,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupOutcome, BackupError> {
    backup_command_without_env(repo, command, &[], filename, opts, progress)
}

/// [`backup_command`], with the environment variables `hidden` removed
/// from the command's environment (passwords the caller was given).
pub fn backup_command_without_env(
    repo: &IndexedRepository,
    command: &[String],
    hidden: &[&str],
    filename: &str,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<BackupOutcome, BackupError> {
    let shown = command.join(" ");
    let fail = |reason: String| BackupError::Command {
        command: shown.clone(),
        reason,
    };
    let (program, args) = command.split_first().ok_or_else(|| fail("no command given".into()))?;
    let mut child = std::process::Command::new(program);
    for name in hidden {
        child.env_remove(name);
    }
    let mut child = child
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let stdout = child.stdout.take().ok_or_else(|| fail("no output pipe".into()))?;
    let staged = stage_reader(repo, stdout, filename, opts, progress);
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    let staged = staged?;
    if !status.success() {
        // What was saved stays unreferenced; prune removes it.
        staged.saver.finish()?;
        return Err(fail(status.to_string()));
    }
    commit(repo, staged.saver, staged.snapshot, opts)
}
