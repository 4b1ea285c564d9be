//! Executing a restore: decide, plan, create, write, link, metadata, verify.

use crate::repo::cancel::{canceled, CancelToken};
use std::collections::hash_map::{Entry as MapEntry, HashMap};
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::error::io_err;
use super::fsmeta::{apply_metadata_at, apply_metadata_fd, create_special_at, matches_stat};
use super::plan::{self, PlanLimits, ReadRange, RestorePlan};
use super::target_dir::{open_file_limit, Access, TargetDir};
use super::walk::{rel_path, walk, Entry, EntryKind, Filter};
use super::{Overwrite, Phase, ProgressFn, RestoreError, RestoreOptions, RestoreProgress, RestoreSummary};
use crate::format::tree::NodeKind;
use crate::format::BlobKind;
use crate::id::TreeId;
use crate::repo::IndexedRepository;
use crate::storage::FileKind;

/// Files a restore thread keeps open while writing one range, at most.
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
    let existing = TargetDir::open(&opts.target, opts.target_dir.as_ref(), &entries, false)?;
    let actions = decide(existing.as_ref(), &entries, opts.overwrite)?;
    let files: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].kind == EntryKind::File && actions[i].writes())
        .collect();
    // Paths inside the target, joined to it only for a message.
    let plan = plan::plan(
        files
            .iter()
            .map(|&i| (rel_path(&entries, i), entries[i].node.content.as_slice())),
        |id| repo.index().get(BlobKind::Data, id),
        PlanLimits::default(),
    )
    .map_err(|e| e.under(&opts.target))?;
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
    let target = match existing {
        Some(target) => target,
        None => TargetDir::open(&opts.target, opts.target_dir.as_ref(), &entries, true)?
            .ok_or_else(|| io_err(&opts.target, "open directory")(ErrorKind::NotFound.into()))?,
    };
    let phase = |stage| {
        target.forget_dirs();
        test_hook::run(&opts.target, stage);
    };
    phase(test_hook::Stage::Planned);
    create_dirs(&target, &entries, &actions)?;

    let cancel = opts.cancel.as_ref();
    if canceled(cancel) {
        return Err(RestoreError::Canceled);
    }
    let mut writer = Writer::new(repo, &plan, &target, &files, threads, progress);
    writer.cancel = cancel;
    let replace: Vec<bool> = files.iter().map(|&i| actions[i] == Action::Replace).collect();
    let written = pool.install(|| {
        target.forget_dirs();
        writer.create_files(&replace)?;
        phase(test_hook::Stage::Created);
        writer.write_all()
    });
    if let Err(e) = written {
        writer.remove_incomplete();
        return Err(e);
    }

    phase(test_hook::Stage::Written);
    link(&target, &entries, &actions, &mut summary)?;
    create_specials(&target, &entries, &actions)?;
    writer.report(Phase::Metadata);
    phase(test_hook::Stage::Linked);
    pool.install(|| apply_all_metadata(&target, &entries, &actions, opts))?;
    if opts.verify {
        writer.report(Phase::Verifying);
        phase(test_hook::Stage::Applied);
        let targets: Vec<_> = files.iter().map(|&i| (i, entries[i].node.content.as_slice())).collect();
        summary.files_verified = pool.install(|| super::verify::verify_files(repo, &target, &targets))?;
    }
    writer.report(Phase::Done);
    Ok(summary)
}

/// Decides per entry what to do, looking at what the target holds (nothing,
/// when it does not exist yet). Entries inside a directory that is created
/// are created without looking.
fn decide(
    target: Option<&TargetDir<'_>>,
    entries: &[Entry],
    overwrite: Overwrite,
) -> Result<Vec<Action>, RestoreError> {
    let mut actions: Vec<Action> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let action = match (entry.parent.map(|p| actions[p]), target) {
            (Some(Action::Skip), _) => Action::Skip,
            (Some(Action::Create | Action::Replace), _) | (_, None) => Action::Create,
            (Some(Action::Keep) | None, Some(target)) => existing(target, i, entry, overwrite)?,
        };
        actions.push(action);
    }
    Ok(actions)
}

fn existing(target: &TargetDir<'_>, i: usize, entry: &Entry, overwrite: Overwrite) -> Result<Action, RestoreError> {
    let Some(st) = target.stat(i)? else {
        return Ok(Action::Create);
    };
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let never = overwrite == Overwrite::Never;
    Ok(match entry.kind {
        EntryKind::Dir if is_dir => Action::Keep,
        _ if never => Action::Skip,
        EntryKind::Dir => Action::Replace,
        _ if is_dir => {
            return Err(RestoreError::Blocked {
                path: target.path(i),
                reason: "an existing directory is in the way of a non-directory from the snapshot",
            })
        }
        EntryKind::File if overwrite == Overwrite::IfChanged && matches_stat(&st, &entry.node) => Action::Skip,
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

fn create_dirs(target: &TargetDir<'_>, entries: &[Entry], actions: &[Action]) -> Result<(), RestoreError> {
    for (i, (entry, action)) in entries.iter().zip(actions).enumerate() {
        if entry.kind != EntryKind::Dir || !action.writes() {
            continue;
        }
        if *action == Action::Replace {
            target.remove(i)?;
        }
        target.mkdir(i)?;
    }
    Ok(())
}

fn link(
    target: &TargetDir<'_>,
    entries: &[Entry],
    actions: &[Action],
    summary: &mut RestoreSummary,
) -> Result<(), RestoreError> {
    for (i, (entry, action)) in entries.iter().zip(actions).enumerate() {
        let EntryKind::HardLink { primary } = entry.kind else {
            continue;
        };
        if !action.writes() {
            continue;
        }
        // The first name may have been left out (below a directory `Never`
        // kept): then there is nothing to link to.
        let kept_out = entries[primary].parent.is_some_and(|p| actions[p] == Action::Skip);
        let original = if kept_out { None } else { target.stat(primary)? };
        let Some(original) = original else {
            summary.hard_links -= 1;
            summary.files_skipped += 1;
            continue;
        };
        if *action == Action::Replace {
            let same = target
                .stat(i)?
                .is_some_and(|st| (st.st_dev, st.st_ino) == (original.st_dev, original.st_ino));
            if same {
                summary.hard_links -= 1;
                summary.files_skipped += 1;
                continue;
            }
            target.remove(i)?;
        }
        target.link(primary, i)?;
    }
    Ok(())
}

fn create_specials(target: &TargetDir<'_>, entries: &[Entry], actions: &[Action]) -> Result<(), RestoreError> {
    for (i, (entry, action)) in entries.iter().zip(actions).enumerate() {
        if entry.kind != EntryKind::Special || !action.writes() {
            continue;
        }
        if *action == Action::Replace {
            target.remove(i)?;
        }
        let parent = target.parent(i)?;
        create_special_at(parent.as_fd(), target.name(i), &target.path(i), &entry.node)?;
    }
    Ok(())
}

/// Metadata of files and specials first (in parallel), then directories,
/// deepest first, so that nothing written afterwards changes their times.
/// Files are reopened and checked to be the ones this restore created;
/// specials are reached by name in their directory without following.
fn apply_all_metadata(
    target: &TargetDir<'_>,
    entries: &[Entry],
    actions: &[Action],
    opts: &RestoreOptions,
) -> Result<(), RestoreError> {
    (0..entries.len()).into_par_iter().try_for_each(|i| {
        let entry = &entries[i];
        match entry.kind {
            EntryKind::File if actions[i].writes() => {
                let file = target.open_file(i, Access::Read)?;
                apply_metadata_fd(&file, &target.path(i), &entry.node, &opts.meta)?;
            }
            EntryKind::Special if actions[i].writes() && entry.node.kind != NodeKind::Socket => {
                let parent = target.parent(i)?;
                apply_metadata_at(parent.as_fd(), target.name(i), &target.path(i), &entry.node, &opts.meta)?;
            }
            _ => {}
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
    target.forget_dirs();
    for i in dirs {
        let dir = File::from(
            target
                .dir(i)?
                .try_clone()
                .map_err(io_err(&target.path(i), "duplicate the descriptor of"))?,
        );
        apply_metadata_fd(&dir, &target.path(i), &entries[i].node, &opts.meta)?;
    }
    Ok(())
}

/// Creates the planned files and writes every range into them.
struct Writer<'a> {
    repo: &'a IndexedRepository,
    plan: &'a RestorePlan,
    target: &'a TargetDir<'a>,
    /// The entry of each planned file.
    files: &'a [usize],
    /// Files one thread keeps open while writing one range.
    max_open: usize,
    /// Writes each file still waits for, plus one for its creation.
    remaining: Vec<AtomicUsize>,
    created: Vec<AtomicBool>,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    ranges_done: AtomicU64,
    progress: Option<ProgressFn<'a>>,
    /// Checked before each file is created and each range of a pack read.
    cancel: Option<&'a CancelToken>,
}

impl<'a> Writer<'a> {
    fn new(
        repo: &'a IndexedRepository,
        plan: &'a RestorePlan,
        target: &'a TargetDir<'a>,
        files: &'a [usize],
        threads: usize,
        progress: Option<ProgressFn<'a>>,
    ) -> Self {
        Self {
            repo,
            plan,
            target,
            files,
            // Half the descriptor limit for the files of all threads.
            max_open: (open_file_limit() / 2 / threads).clamp(1, MAX_OPEN_FILES),
            remaining: plan.file_writes.iter().map(|w| AtomicUsize::new(w + 1)).collect(),
            created: files.iter().map(|_| AtomicBool::new(false)).collect(),
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            ranges_done: AtomicU64::new(0),
            progress,
            cancel: None,
        }
    }

    /// The path of planned file `f`, for messages.
    fn path(&self, f: usize) -> PathBuf {
        self.target.path(self.files[f])
    }

    fn check_cancel(&self) -> Result<(), RestoreError> {
        if canceled(self.cancel) {
            return Err(RestoreError::Canceled);
        }
        Ok(())
    }

    fn report(&self, phase: Phase) {
        if let Some(progress) = self.progress {
            progress(&RestoreProgress {
                phase,
                files_total: self.files.len() as u64,
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
        (0..self.files.len()).into_par_iter().try_for_each(|f| {
            self.check_cancel()?;
            let entry = self.files[f];
            if replace[f] {
                self.target.remove(entry)?;
            }
            let file = self.target.create_file(entry)?;
            self.created[f].store(true, Ordering::Release);
            let len = self.plan.file_lengths[f];
            if len > 0 {
                file.set_len(len).map_err(io_err(&self.path(f), "set the length of"))?;
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
        self.check_cancel()?;
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
                    path: blob.targets.first().map_or_else(PathBuf::new, |t| self.path(t.file)),
                    source,
                })?;
            for target in &blob.targets {
                if open.len() >= self.max_open && !open.contains_key(&target.file) {
                    open.clear();
                }
                let file = match open.entry(target.file) {
                    MapEntry::Occupied(e) => e.into_mut(),
                    MapEntry::Vacant(e) => e.insert(self.target.open_file(self.files[target.file], Access::Write)?),
                };
                file.write_all_at(&plain, target.offset)
                    .map_err(io_err(&self.path(target.file), "write"))?;
                self.bytes_done.fetch_add(plain.len() as u64, Ordering::Relaxed);
                self.one_done(target.file);
            }
        }
        self.ranges_done.fetch_add(1, Ordering::Relaxed);
        self.report(Phase::Writing);
        Ok(())
    }

    /// After a failure: removes the files this run created but did not
    /// finish, if they are still the files it created. Best effort; the
    /// error being reported matters more.
    fn remove_incomplete(&self) {
        self.target.forget_dirs();
        for (f, &entry) in self.files.iter().enumerate() {
            if self.created[f].load(Ordering::Acquire) && self.remaining[f].load(Ordering::Acquire) > 0 {
                self.target.remove_if_created(entry);
            }
        }
    }
}

/// Lets tests change the target between the phases of a restore.
#[cfg(test)]
pub(crate) mod test_hook {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// Where a restore is when the hook runs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Stage {
        /// Planned; nothing below the target created yet.
        Planned,
        /// Directories and (empty) files created; nothing written.
        Created,
        /// File contents written; no links, specials or metadata yet.
        Written,
        /// Links and specials created; no metadata yet.
        Linked,
        /// Metadata applied; not verified yet (only with `verify`).
        Applied,
    }

    type Hook = Box<dyn Fn(Stage) + Send>;

    static HOOKS: Mutex<Vec<(PathBuf, Hook)>> = Mutex::new(Vec::new());

    /// Runs `hook` at every stage of restores into `target` until [`clear`].
    pub(crate) fn set(target: &Path, hook: impl Fn(Stage) + Send + 'static) {
        HOOKS.lock().unwrap().push((target.to_owned(), Box::new(hook)));
    }

    pub(crate) fn clear(target: &Path) {
        HOOKS.lock().unwrap().retain(|(t, _)| t != target);
    }

    pub(super) fn run(target: &Path, stage: Stage) {
        let hooks = HOOKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (t, hook) in hooks.iter() {
            if t == target {
                hook(stage);
            }
        }
    }
}

#[cfg(not(test))]
mod test_hook {
    #[derive(Clone, Copy)]
    pub(super) enum Stage {
        Planned,
        Created,
        Written,
        Linked,
        Applied,
    }

    #[inline(always)]
    pub(super) fn run(_target: &std::path::Path, _stage: Stage) {}
}
