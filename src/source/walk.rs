//! A deterministic depth-first walk over the trees to back up.
//!
//! The walk reports [`WalkEvent`]s: [`WalkEvent::Enter`] for a directory,
//! then the events of its entries sorted by raw name bytes, then
//! [`WalkEvent::Leave`]; [`WalkEvent::Item`] for every other entry. So the
//! backup layer can finish one tree per directory at its `Leave`, bottom-up.
//!
//! Symlinks are never followed. Problems with single entries (a directory
//! that cannot be listed, an entry that cannot be stat'ed) become
//! [`WalkEvent::Error`] events and the walk goes on; only a missing root is an
//! error up front.
//!
//! Entries are reached through directory descriptors, never by path: each
//! directory on the current path is held open, its entries are `fstatat`ed
//! relative to it without following symlinks, and a subdirectory is opened
//! relative to it with `O_NOFOLLOW` and accepted only if it has the device
//! and inode its `fstatat` showed. A directory replaced between the two (by a
//! symlink or by another directory) is reported as an error and left out,
//! never followed. Each entry carries its directory's descriptor, so the
//! backup opens files relative to it too (see [`super::open`]).
//!
//! Memory: the walker holds the names of the directories on the current path
//! (one listing and one descriptor per level) and nothing else; metadata is
//! read entry by entry, as the walk reaches it.
//!
//! # Exclusion patterns
//!
//! Globs as in restic, matched on raw bytes, where `*` and `?` never match `/`
//! and `**` matches any number of path components:
//!
//! - a pattern without `/` is matched against each path component, so `*.log`
//!   excludes every `.log` file at any depth and `cache` every entry so named;
//! - a pattern starting with `/` is matched against the full absolute path,
//!   e.g. `/home/*/.cache`;
//! - any other pattern with `/` may match at any depth: `foo/bar` is read as
//!   `**/foo/bar`.
//!
//! A trailing `/` is ignored. An excluded directory is not descended into, so
//! everything below it is excluded too.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::meta::Stat;
use super::open::{is_replaced, open_dir, open_dir_path, stat_at};
use super::{Hook, SourceError};

/// What to leave out of a walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Exclusion patterns (see the module documentation).
    pub excludes: Vec<String>,
    /// Exclusion patterns matched without regard to case.
    pub iexcludes: Vec<String>,
    /// File names whose presence in a directory excludes the whole directory,
    /// the directory itself included.
    pub exclude_if_present: Vec<String>,
    /// Do not descend into directories on another device than their root;
    /// such a mount point is reported as an empty directory.
    pub one_file_system: bool,
    /// Runs after a directory's `fstatat` and before it is opened (tests).
    #[doc(hidden)]
    pub before_open_dir: Hook,
}

impl WalkOptions {
    /// Options with the patterns of the given exclude files (`--exclude-file`)
    /// and case-insensitive exclude files (`--iexclude-file`).
    pub fn from_exclude_files(exclude_files: &[PathBuf], iexclude_files: &[PathBuf]) -> Result<Self, SourceError> {
        let mut opts = Self::default();
        for path in exclude_files {
            opts.add_exclude_file(path, false)?;
        }
        for path in iexclude_files {
            opts.add_exclude_file(path, true)?;
        }
        Ok(opts)
    }

    /// Adds the patterns of one exclude file.
    pub fn add_exclude_file(&mut self, path: &Path, case_insensitive: bool) -> Result<(), SourceError> {
        let patterns = read_pattern_file(path)?;
        if case_insensitive {
            self.iexcludes.extend(patterns);
        } else {
            self.excludes.extend(patterns);
        }
        Ok(())
    }
}

/// The patterns of an exclude file: one per line, surrounding white space
/// removed, blank lines and lines starting with `#` ignored.
pub fn read_pattern_file(path: &Path) -> Result<Vec<String>, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::ExcludeFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// One entry reached by the walk.
#[derive(Debug)]
pub struct WalkEntry {
    /// The absolute path, lexically normalised (no `.` or `..` components).
    pub path: PathBuf,
    /// The last component of `path`, raw bytes; empty only for the root `/`.
    pub name: Vec<u8>,
    /// The entry's own metadata (`lstat`, symlinks not followed).
    pub metadata: Stat,
    /// 0 for a root, 1 for its entries, and so on.
    pub depth: usize,
    /// The directory holding the entry, open: the entry is
    /// [`WalkEntry::name_in_dir`] in it.
    pub dir: Arc<OwnedFd>,
    /// The entry is `dir` itself: the root `/`, or a root given as an open
    /// directory ([`Walker::from_dir`]).
    pub itself: bool,
}

impl WalkEntry {
    /// The name of the entry relative to [`WalkEntry::dir`]: its name, or
    /// `.` when `dir` is the entry itself.
    pub fn name_in_dir(&self) -> &OsStr {
        if self.itself || self.name.is_empty() {
            OsStr::new(".")
        } else {
            OsStr::from_bytes(&self.name)
        }
    }

    /// A path that reaches the entry through its open directory rather than
    /// through the directories above it: `/proc/self/fd/N/NAME`, for calls
    /// that take only paths (extended attributes). `None` without `/proc`.
    pub fn path_via_dir(&self) -> Option<PathBuf> {
        use std::os::fd::AsRawFd;
        static PROC_FDS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let proc = *PROC_FDS.get_or_init(|| Path::new("/proc/self/fd").is_dir());
        proc.then(|| {
            let mut path = PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
            path.push(self.name_in_dir());
            path
        })
    }

    /// The target of a symlink entry, read relative to its directory.
    pub fn read_link(&self) -> io::Result<Vec<u8>> {
        use std::os::fd::AsRawFd;
        let target = nix::fcntl::readlinkat(Some(self.dir.as_raw_fd()), self.name_in_dir())?;
        Ok(target.into_vec())
    }
}

/// One step of a walk.
#[derive(Debug)]
pub enum WalkEvent {
    /// A directory; the events of its entries follow, then [`WalkEvent::Leave`].
    Enter(WalkEntry),
    /// An entry that is not a directory.
    Item(WalkEntry),
    /// The end of the directory last entered.
    Leave { path: PathBuf },
    /// `path` could not be listed or stat'ed. The walk goes on: an unreadable
    /// directory still gets its `Enter`/`Leave` around this event; an entry
    /// that cannot be stat'ed is left out.
    Error { path: PathBuf, error: io::Error },
}

/// The compiled exclusion patterns.
#[derive(Debug)]
struct Excluder {
    /// Patterns without `/`, matched against single components.
    names: GlobSet,
    /// Patterns with `/`, matched against full paths.
    paths: GlobSet,
}

impl Excluder {
    fn new(opts: &WalkOptions) -> Result<Self, SourceError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let sensitive = opts.excludes.iter().map(|p| (p, false));
        let insensitive = opts.iexcludes.iter().map(|p| (p, true));
        for (pattern, case_insensitive) in sensitive.chain(insensitive) {
            let trimmed = match pattern.trim_end_matches('/') {
                "" if pattern.is_empty() => continue,
                "" => "/",
                t => t,
            };
            let (glob, set) = if !trimmed.contains('/') {
                (trimmed.to_owned(), &mut names)
            } else if trimmed.starts_with('/') {
                (trimmed.to_owned(), &mut paths)
            } else {
                (format!("**/{trimmed}"), &mut paths)
            };
            let glob = GlobBuilder::new(&glob)
                .literal_separator(true)
                .case_insensitive(case_insensitive)
                .build()
                .map_err(|source| SourceError::Pattern {
                    pattern: pattern.clone(),
                    source,
                })?;
            set.add(glob);
        }
        let build = |b: GlobSetBuilder, pattern: &str| {
            b.build().map_err(|source| SourceError::Pattern {
                pattern: pattern.to_owned(),
                source,
            })
        };
        Ok(Self {
            names: build(names, "(component patterns)")?,
            paths: build(paths, "(path patterns)")?,
        })
    }

    /// Whether an entry below a root is excluded; its ancestors were not.
    fn excludes_entry(&self, path: &Path, name: &[u8]) -> bool {
        self.names.is_match(Path::new(std::ffi::OsStr::from_bytes(name))) || self.paths.is_match(path)
    }

    /// Whether a root is excluded, by itself or by one of its ancestors.
    fn excludes_root(&self, path: &Path) -> bool {
        let by_name = path.components().any(|c| match c {
            Component::Normal(name) => self.names.is_match(Path::new(name)),
            _ => false,
        });
        by_name || path.ancestors().any(|a| self.paths.is_match(a))
    }
}

/// A directory being walked.
#[derive(Debug)]
struct Frame {
    path: PathBuf,
    /// The directory, open; `None` if it could not be opened (then it has no
    /// names either).
    dir: Option<Arc<OwnedFd>>,
    /// The names not visited yet, sorted by bytes.
    names: std::vec::IntoIter<OsString>,
    /// The device of the root this directory belongs to.
    root_device: u64,
    depth: usize,
}

/// The walk over a set of roots; an iterator of [`WalkEvent`]s.
#[derive(Debug)]
pub struct Walker {
    excluder: Excluder,
    markers: Vec<OsString>,
    one_file_system: bool,
    before_open_dir: Hook,
    roots: Vec<PathBuf>,
    /// The open directory of the one root of [`Walker::from_dir`].
    root_dir: Option<Arc<OwnedFd>>,
    next_root: usize,
    stack: Vec<Frame>,
    pending: VecDeque<WalkEvent>,
}

impl Walker {
    /// Prepares a walk over `roots`.
    ///
    /// Roots are made absolute and lexically normalised (like restic, `..` is
    /// resolved without following symlinks), sorted by bytes and deduplicated;
    /// a root inside another root is dropped, as the outer walk covers it.
    /// Fails if a root does not exist or an exclusion pattern is invalid.
    pub fn new(roots: &[PathBuf], opts: &WalkOptions) -> Result<Self, SourceError> {
        let excluder = Excluder::new(opts)?;
        let mut absolute = Vec::with_capacity(roots.len());
        for root in roots {
            let io_err = |source| SourceError::Io {
                path: root.clone(),
                source,
            };
            let abs = normalize(&std::path::absolute(root).map_err(io_err)?);
            match std::fs::symlink_metadata(&abs) {
                Ok(_) => absolute.push(abs),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(SourceError::NotFound { path: root.clone() });
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        absolute.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        absolute.dedup();
        let mut kept: Vec<PathBuf> = Vec::with_capacity(absolute.len());
        for root in absolute {
            if !kept.iter().any(|outer| root.starts_with(outer)) {
                kept.push(root);
            }
        }
        Ok(Self {
            excluder,
            markers: opts.exclude_if_present.iter().map(OsString::from).collect(),
            one_file_system: opts.one_file_system,
            before_open_dir: opts.before_open_dir.clone(),
            roots: kept,
            root_dir: None,
            next_root: 0,
            stack: Vec::new(),
            pending: VecDeque::new(),
        })
    }

    /// Prepares a walk of the open directory `dir`, whose entries are
    /// named below `logical` (an absolute path that need not exist here:
    /// `/volumes/shop/data` for a pod volume). Nothing is resolved by path:
    /// the walk starts at `dir` and goes down with `openat`.
    pub fn from_dir(dir: OwnedFd, logical: &Path, opts: &WalkOptions) -> Result<Self, SourceError> {
        let normal = normalize(logical);
        if !logical.is_absolute() || normal != logical || logical.file_name().is_none() {
            return Err(SourceError::Io {
                path: logical.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a logical root must be an absolute, normal path below /",
                ),
            });
        }
        let mut walker = Self::new(&[], opts)?;
        walker.roots = vec![normal];
        walker.root_dir = Some(Arc::new(dir));
        Ok(walker)
    }

    /// Whether the roots are logical names of open directories
    /// ([`Walker::from_dir`]) rather than paths of this machine.
    pub fn has_logical_roots(&self) -> bool {
        self.root_dir.is_some()
    }

    /// The roots this walk covers, in walk order.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Visits the entry `name` of the open directory `dir`: stats it and
    /// queues its events; a directory that is entered is pushed on the stack.
    fn visit(&mut self, dir: Arc<OwnedFd>, path: PathBuf, name: Vec<u8>, depth: usize, root_device: Option<u64>) {
        let itself = name.is_empty() || (depth == 0 && self.root_dir.is_some());
        let in_dir = if itself {
            OsStr::new(".")
        } else {
            OsStr::from_bytes(&name)
        };
        let metadata = match stat_at(dir.as_fd(), in_dir) {
            Ok(md) => md,
            Err(error) => {
                self.pending.push_back(WalkEvent::Error { path, error });
                return;
            }
        };
        let device = metadata.dev;
        let foreign = self.one_file_system && root_device.is_some_and(|d| d != device);
        let root_device = root_device.unwrap_or(device);
        let entry = WalkEntry {
            path,
            name,
            metadata,
            depth,
            dir,
            itself,
        };
        if !metadata.is_dir() {
            // A file bind-mounted from another file system is left out.
            if !foreign {
                self.pending.push_back(WalkEvent::Item(entry));
            }
            return;
        }
        if foreign {
            // A mount point: kept, but empty.
            let leave = WalkEvent::Leave {
                path: entry.path.clone(),
            };
            self.pending.push_back(WalkEvent::Enter(entry));
            self.pending.push_back(leave);
            return;
        }
        self.before_open_dir.call(&entry.path);
        let (opened, names, list_error) = match open_dir(entry.dir.as_fd(), entry.name_in_dir(), &metadata) {
            Ok(fd) => {
                let (names, error) = list_dir(&fd);
                (Some(Arc::new(fd)), names, error)
            }
            Err(error) if is_replaced(&error) => {
                // Replaced since its stat: neither followed nor stored.
                self.pending.push_back(WalkEvent::Error {
                    path: entry.path,
                    error,
                });
                return;
            }
            Err(error) => (None, Vec::new(), Some(error)),
        };
        if self.has_marker(&names) {
            return;
        }
        let path = entry.path.clone();
        self.pending.push_back(WalkEvent::Enter(entry));
        if let Some(error) = list_error {
            self.pending.push_back(WalkEvent::Error {
                path: path.clone(),
                error,
            });
        }
        self.stack.push(Frame {
            path,
            dir: opened,
            names: names.into_iter(),
            root_device,
            depth,
        });
    }

    /// Visits a root: opens the directory holding it (by path, as `lstat`
    /// resolves it) and visits it there.
    fn visit_root(&mut self, root: PathBuf) {
        if let Some(dir) = self.root_dir.clone() {
            let name = root.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
            self.visit(dir, root, name, 0, None);
            return;
        }
        let (parent, name) = match (root.parent(), root.file_name()) {
            (Some(parent), Some(name)) => (parent, name.as_bytes().to_vec()),
            // The root `/`: its own directory, entry `.`.
            _ => (root.as_path(), Vec::new()),
        };
        match open_dir_path(parent) {
            Ok(dir) => self.visit(Arc::new(dir), root, name, 0, None),
            Err(error) => self.pending.push_back(WalkEvent::Error { path: root, error }),
        }
    }

    fn has_marker(&self, sorted_names: &[OsString]) -> bool {
        self.markers.iter().any(|marker| {
            sorted_names
                .binary_search_by(|n| n.as_bytes().cmp(marker.as_bytes()))
                .is_ok()
        })
    }
}

impl Iterator for Walker {
    type Item = WalkEvent;

    fn next(&mut self) -> Option<WalkEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if let Some(frame) = self.stack.last_mut() {
                match frame.names.next() {
                    Some(name) => {
                        let path = frame.path.join(&name);
                        let (depth, device) = (frame.depth + 1, frame.root_device);
                        // Names exist only when the directory was opened.
                        let Some(dir) = frame.dir.clone() else { continue };
                        let name = name.into_vec();
                        if !self.excluder.excludes_entry(&path, &name) {
                            self.visit(dir, path, name, depth, Some(device));
                        }
                    }
                    None => {
                        let path = frame.path.clone();
                        self.stack.pop();
                        return Some(WalkEvent::Leave { path });
                    }
                }
                continue;
            }
            let root = self.roots.get(self.next_root)?.clone();
            self.next_root += 1;
            if !self.excluder.excludes_root(&root) {
                self.visit_root(root);
            }
        }
    }
}

/// The names in an open directory sorted by bytes, and the error that cut
/// the listing short, if any (then the names are those read before it).
fn list_dir(dir: &OwnedFd) -> (Vec<OsString>, Option<io::Error>) {
    let mut names = Vec::new();
    let mut error = None;
    // The listing reads through a duplicate, which `Dir` closes; `dir` stays
    // open for the entries' `fstatat` and `openat`.
    match dir
        .try_clone()
        .and_then(|fd| nix::dir::Dir::from(fd).map_err(io::Error::from))
    {
        Ok(mut listing) => {
            for entry in listing.iter() {
                match entry {
                    Ok(entry) => {
                        let name = entry.file_name().to_bytes();
                        if name != b"." && name != b".." {
                            names.push(OsString::from_vec(name.to_vec()));
                        }
                    }
                    Err(e) => {
                        error = Some(io::Error::from(e));
                        break;
                    }
                }
            }
        }
        Err(e) => error = Some(e),
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    (names, error)
}

/// Removes `.` and `..` components lexically (`/..` stays `/`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
