//! Executing a restore: decide, plan, create, write, link, metadata, verify.

use std::collections::hash_map::{Entry as MapEntry, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::error::io_err;
use super::fsmeta::{apply_metadata, create_special, matches_on_disk};
use super::plan::{self, PlanLimits, ReadRange, RestorePlan};
use super::walk::{walk, Entry, EntryKind, Filter};
use super::{Overwrite, Phase, ProgressFn, RestoreError, RestoreOptions, RestoreProgress, RestoreSummary};
use crate::format::tree::NodeKind;
use crate::format::BlobKind;
use crate::id::TreeId;
use crate::repo::IndexedRepository;
use crate::storage::FileKind;

/// Files a restore thread keeps open while writing one range.
const MAX_OPEN_FILES: usize = 64;

/// What happens to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Nothing is there: create it.
    Create,
    /// Something is there: remove it, then create.
    Replace,
    /// An existing directory: restore into it.
    Keep,
    /// Leave the path as it is.
    Skip,
}

impl Action {
    fn writes(self) -> bool {
        matches!(self, Self::Create | Self::Replace)
    }
}

/// Restores the contents of `tree` into `opts.target`.
///
/// Stops at the first error: a blob that is missing from the index (before
/// anything is written), a pack that cannot be read, a blob that does not
/// open or does not match its id, or a file system error. Files this run
/// created but did not complete are removed again, so no file is left
/// holding bytes that were not verified.
pub fn restore(
    repo: &IndexedRepository,
    tree: TreeId,
    opts: &RestoreOptions,
    progress: Option<ProgressFn<'_>>,
) -> Result<RestoreSummary, RestoreError> {
    if let Some(progress) = progress {
        progress(&RestoreProgress {
            phase: Phase::Planning,
            files_total: 0,
            files_done: 0,
            bytes_total: 0,
            bytes_done: 0,
            ranges_total: 0,
            ranges_done: 0,
        });
    }
    let filter = Filter::new(&opts.include, &opts.exclude)?;
    let entries = walk(repo, tree, &opts.subpath, &filter)?;
    let paths: Vec<PathBuf> = entries.iter().map(|e| opts.target.join(&e.rel)).collect();
    let actions = decide(&entries, &paths, opts.overwrite)?;
    let files: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].kind == EntryKind::File && actions[i].writes())
        .collect();
    let plan = plan::plan(
        files
            .iter()
            .map(|&i| (paths[i].as_path(), entries[i].node.content.as_slice())),
        |id| repo.index().get(BlobKind::Data, id),
        PlanLimits::default(),
    )?;
    let mut summary = count(&entries, &actions, &plan, opts.dry_run);
    if opts.dry_run {
        return Ok(summary);
    }

    let threads = opts.connections.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("cairn-restore-{i}"))
        .build()
        .map_err(|e| RestoreError::Pool(threads, e.to_string()))?;
    fs::create_dir_all(&opts.target).map_err(io_err(&opts.target, "create directory"))?;
    create_dirs(&entries, &actions, &paths)?;

    let writer = Writer::new(
        repo,
        &plan,
        files.iter().map(|&i| paths[i].as_path()).collect(),
        progress,
    );
    let replace: Vec<bool> = files.iter().map(|&i| actions[i] == Action::Replace).collect();
    let written = pool.install(|| writer.create_files(&replace).and_then(|()| writer.write_all()));
    if let Err(e) = written {
        writer.remove_incomplete();
        return Err(e);
    }

    link(&entries, &actions, &paths, &mut summary)?;
    create_specials(&entries, &actions, &paths)?;
    writer.report(Phase::Metadata);
    pool.install(|| apply_all_metadata(&entries, &actions, &paths, opts))?;
    if opts.verify {
        writer.report(Phase::Verifying);
        let targets: Vec<_> = files
            .iter()
            .map(|&i| (paths[i].as_path(), entries[i].node.content.as_slice()))
            .collect();
        summary.files_verified = pool.install(|| super::verify::verify_files(repo, &targets))?;
    }
    writer.report(Phase::Done);
    Ok(summary)
}

/// Decides per entry what to do, looking at what the target holds. Entries
/// inside a directory that is created are created without looking.
fn decide(entries: &[Entry], paths: &[PathBuf], overwrite: Overwrite) -> Result<Vec<Action>, RestoreError> {
    let mut actions: Vec<Action> = Vec::with_capacity(entries.len());
    for (entry, path) in entries.iter().zip(paths) {
        let action = match entry.parent.map(|p| actions[p]) {
            Some(Action::Skip) => Action::Skip,
            Some(Action::Create | Action::Replace) => Action::Create,
            Some(Action::Keep) | None => existing(entry, path, overwrite)?,
        };
        actions.push(action);
    }
    Ok(actions)
}

fn existing(entry: &Entry, path: &Path, overwrite: Overwrite) -> Result<Action, RestoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Action::Create),
        Err(e) => return Err(io_err(path, "inspect")(e)),
    };
    let never = overwrite == Overwrite::Never;
    Ok(match entry.kind {
        EntryKind::Dir if meta.is_dir() => Action::Keep,
        _ if never => Action::Skip,
        EntryKind::Dir => Action::Replace,
        _ if meta.is_dir() => {
            return Err(RestoreError::Blocked {
                path: path.to_owned(),
                reason: "an existing directory is in the way of a non-directory from the snapshot",
            })
        }
        EntryKind::File if overwrite == Overwrite::IfChanged && matches_on_disk(path, &entry.node) => Action::Skip,
        EntryKind::File | EntryKind::HardLink { .. } | EntryKind::Special => Action::Replace,
    })
}

fn count(entries: &[Entry], actions: &[Action], plan: &RestorePlan, dry_run: bool) -> RestoreSummary {
    let mut s = RestoreSummary {
        dry_run,
        bytes_written: plan.write_bytes,
        packs_read: plan.packs as u64,
        ranges_read: plan.ranges.len() as u64,
        blobs_read: plan.blobs as u64,
        bytes_read: plan.read_bytes,
        ..RestoreSummary::default()
    };
    for (entry, action) in entries.iter().zip(actions) {
        let counter = match (entry.kind, action) {
            (EntryKind::Dir, Action::Skip) => continue,
            (EntryKind::Dir, _) => &mut s.dirs,
            (_, Action::Skip) => &mut s.files_skipped,
            (EntryKind::File, _) => &mut s.files_restored,
            (EntryKind::HardLink { .. }, _) => &mut s.hard_links,
            (EntryKind::Special, _) if entry.node.kind == NodeKind::Socket => continue,
            (EntryKind::Special, _) => &mut s.specials,
        };
        *counter += 1;
    }
    s
}

/// Removes a file or symlink in the way; one already gone is fine.
fn remove_existing(path: &Path) -> Result<(), RestoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err(path, "remove the existing entry")(e)),
        _ => Ok(()),
    }
}

fn create_dirs(entries: &[Entry], actions: &[Action], paths: &[PathBuf]) -> Result<(), RestoreError> {
    for ((entry, action), path) in entries.iter().zip(actions).zip(paths) {
        if entry.kind != EntryKind::Dir || !action.writes() {
            continue;
        }
        if *action == Action::Replace {
            remove_existing(path)?;
        }
        fs::create_dir(path).map_err(io_err(path, "create directory"))?;
    }
    Ok(())
}

fn link(
    entries: &[Entry],
    actions: &[Action],
    paths: &[PathBuf],
    summary: &mut RestoreSummary,
) -> Result<(), RestoreError> {
    for ((entry, action), path) in entries.iter().zip(actions).zip(paths) {
        let EntryKind::HardLink { primary } = entry.kind else {
            continue;
        };
        if !action.writes() {
            continue;
        }
        let original = &paths[primary];
        if fs::symlink_metadata(original).is_err() {
            // The first name was left out (below a directory `Never` kept).
            summary.hard_links -= 1;
            summary.files_skipped += 1;
            continue;
        }
        if *action == Action::Replace {
            if same_inode(path, original) {
                summary.hard_links -= 1;
                summary.files_skipped += 1;
                continue;
            }
            remove_existing(path)?;
        }
        fs::hard_link(original, path).map_err(|source| RestoreError::Link {
            path: path.clone(),
            original: original.clone(),
            source,
        })?;
    }
    Ok(())
}

fn same_inode(a: &Path, b: &Path) -> bool {
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn create_specials(entries: &[Entry], actions: &[Action], paths: &[PathBuf]) -> Result<(), RestoreError> {
    for ((entry, action), path) in entries.iter().zip(actions).zip(paths) {
        if entry.kind != EntryKind::Special || !action.writes() {
            continue;
        }
        if *action == Action::Replace {
            remove_existing(path)?;
        }
        create_special(path, &entry.node)?;
    }
    Ok(())
}

/// Metadata of files and specials first (in parallel), then directories,
/// deepest first, so that nothing written afterwards changes their times.
fn apply_all_metadata(
    entries: &[Entry],
    actions: &[Action],
    paths: &[PathBuf],
    opts: &RestoreOptions,
) -> Result<(), RestoreError> {
    (0..entries.len()).into_par_iter().try_for_each(|i| {
        let entry = &entries[i];
        let wanted = match entry.kind {
            EntryKind::File => actions[i].writes(),
            EntryKind::Special => actions[i].writes() && entry.node.kind != NodeKind::Socket,
            EntryKind::Dir | EntryKind::HardLink { .. } => false,
        };
        if wanted {
            apply_metadata(&paths[i], &entry.node, &opts.meta)?;
        }
        Ok::<_, RestoreError>(())
    })?;
    let mut dirs: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            entries[i].kind == EntryKind::Dir
                && match actions[i] {
                    Action::Create | Action::Replace => true,
                    Action::Keep => opts.overwrite != Overwrite::Never,
                    Action::Skip => false,
                }
        })
        .collect();
    dirs.sort_by(|&a, &b| entries[b].depth.cmp(&entries[a].depth));
    for i in dirs {
        apply_metadata(&paths[i], &entries[i].node, &opts.meta)?;
    }
    Ok(())
}

/// Creates the planned files and writes every range into them.
struct Writer<'a> {
    repo: &'a IndexedRepository,
    plan: &'a RestorePlan,
    paths: Vec<&'a Path>,
    /// Writes each file still waits for, plus one for its creation.
    remaining: Vec<AtomicUsize>,
    created: Vec<AtomicBool>,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    ranges_done: AtomicU64,
    progress: Option<ProgressFn<'a>>,
}

impl<'a> Writer<'a> {
    fn new(
        repo: &'a IndexedRepository,
        plan: &'a RestorePlan,
        paths: Vec<&'a Path>,
        progress: Option<ProgressFn<'a>>,
    ) -> Self {
        Self {
            repo,
            plan,
            remaining: plan.file_writes.iter().map(|w| AtomicUsize::new(w + 1)).collect(),
            created: paths.iter().map(|_| AtomicBool::new(false)).collect(),
            paths,
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            ranges_done: AtomicU64::new(0),
            progress,
        }
    }

    fn report(&self, phase: Phase) {
        if let Some(progress) = self.progress {
            progress(&RestoreProgress {
                phase,
                files_total: self.paths.len() as u64,
                files_done: self.files_done.load(Ordering::Relaxed),
                bytes_total: self.plan.write_bytes,
                bytes_done: self.bytes_done.load(Ordering::Relaxed),
                ranges_total: self.plan.ranges.len() as u64,
                ranges_done: self.ranges_done.load(Ordering::Relaxed),
            });
        }
    }

    fn one_done(&self, file: usize) {
        if self.remaining[file].fetch_sub(1, Ordering::AcqRel) == 1 {
            self.files_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Creates every file at its final length: holes stay holes, and empty
    /// files are complete.
    fn create_files(&self, replace: &[bool]) -> Result<(), RestoreError> {
        self.report(Phase::Writing);
        (0..self.paths.len()).into_par_iter().try_for_each(|f| {
            let path = self.paths[f];
            if replace[f] {
                remove_existing(path)?;
            }
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io_err(path, "create file"))?;
            self.created[f].store(true, Ordering::Release);
            let len = self.plan.file_lengths[f];
            if len > 0 {
                file.set_len(len).map_err(io_err(path, "set the length of"))?;
            }
            self.one_done(f);
            Ok(())
        })
    }

    fn write_all(&self) -> Result<(), RestoreError> {
        self.plan
            .ranges
            .par_iter()
            .try_for_each(|range| self.write_range(range))
    }

    /// Reads one range, opens and verifies each blob in it and writes the
    /// plaintext to every target.
    fn write_range(&self, range: &ReadRange) -> Result<(), RestoreError> {
        let name = range.pack.to_hex();
        let bytes = self
            .repo
            .block_on(
                self.repo
                    .storage()
                    .get_range(FileKind::Pack, &name, range.offset, range.length),
            )
            .map_err(|source| RestoreError::ReadPack {
                pack: range.pack,
                source,
            })?;
        let short = |got: usize| RestoreError::ShortRead {
            pack: range.pack,
            offset: range.offset,
            expected: range.length,
            got: got as u64,
        };
        if bytes.len() as u64 != range.length {
            return Err(short(bytes.len()));
        }
        let mut open: HashMap<usize, File> = HashMap::new();
        for blob in &range.blobs {
            let sealed = range.slice(&bytes, blob).ok_or_else(|| short(bytes.len()))?;
            let plain = self
                .repo
                .open_blob(&blob.id, &blob.location, sealed)
                .map_err(|source| RestoreError::Blob {
                    path: blob
                        .targets
                        .first()
                        .map_or_else(PathBuf::new, |t| self.paths[t.file].to_owned()),
                    source,
                })?;
            for target in &blob.targets {
                let path = self.paths[target.file];
                if open.len() >= MAX_OPEN_FILES && !open.contains_key(&target.file) {
                    open.clear();
                }
                let file = match open.entry(target.file) {
                    MapEntry::Occupied(e) => e.into_mut(),
                    MapEntry::Vacant(e) => e.insert(
                        OpenOptions::new()
                            .write(true)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(path)
                            .map_err(io_err(path, "open for writing"))?,
                    ),
                };
                file.write_all_at(&plain, target.offset)
                    .map_err(io_err(path, "write"))?;
                self.bytes_done.fetch_add(plain.len() as u64, Ordering::Relaxed);
                self.one_done(target.file);
            }
        }
        self.ranges_done.fetch_add(1, Ordering::Relaxed);
        self.report(Phase::Writing);
        Ok(())
    }

    /// After a failure: removes the files this run created but did not
    /// finish. Best effort; the error being reported matters more.
    fn remove_incomplete(&self) {
        for (f, path) in self.paths.iter().enumerate() {
            if self.created[f].load(Ordering::Acquire) && self.remaining[f].load(Ordering::Acquire) > 0 {
                let _ = fs::remove_file(path);
            }
        }
    }
}
