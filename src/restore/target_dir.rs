//! The restore target, reached only through directory descriptors.
//!
//! The target directory is opened once; every entry below it is reached
//! from that descriptor one name at a time (`openat` with `O_NOFOLLOW`,
//! `mkdirat`, `unlinkat`, `linkat`, `fstatat` without following), never by
//! resolving a path. A symlink swapped in for a directory on the way stops
//! the walk instead of leading out of the target.
//!
//! Each directory and file the restore checked or created has its identity
//! (device, inode) recorded the first time it is seen; every later open
//! compares against it, so an entry replaced during the restore (by a
//! symlink, another directory, another file) is reported, not written.
//! Open directory descriptors are kept in a bounded cache, which the
//! restorer empties between phases so that each phase walks the tree again
//! and notices what changed in between.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::walk::Entry;
use super::RestoreError;

/// Device and inode of an entry.
pub(crate) type Ident = (u64, u64);

fn ident(st: &FileStat) -> Ident {
    (st.st_dev, st.st_ino)
}

fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// Why an entry is not the one the restore expects.
const REPLACED: &str = "was replaced during the restore; nothing is written through it";
const NOT_A_DIR: &str = "is a symlink or not a directory; the restore does not follow it";
const NOT_A_FILE: &str = "is a symlink or not a regular file; the restore does not follow it";

/// Opens `name` in `dir` without following a symlink there.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, mode)?;
    // SAFETY: `openat` succeeded, so `fd` is a new descriptor that nothing
    // else owns; the OwnedFd becomes its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat` of `name` in `dir`, not following a symlink; `None` if absent.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileStat>> {
    match nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How a file is reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// The target directory and the entries of one restore inside it.
pub(crate) struct TargetDir<'a> {
    root: Arc<OwnedFd>,
    root_path: PathBuf,
    entries: &'a [Entry],
    /// Identity of each entry once checked or created.
    idents: Vec<OnceLock<Ident>>,
    /// Open directories by entry index; emptied when full.
    dirs: Mutex<HashMap<usize, Arc<OwnedFd>>>,
    capacity: usize,
}

impl<'a> TargetDir<'a> {
    /// Opens the target directory, creating it (and its parents) if
    /// `create` is set; `None` if it does not exist and `create` is not set.
    /// The target's own path is resolved as given, symlinks included, unless
    /// the directory comes open (`dir`): then the path only names it.
    pub fn open(
        root_path: &Path,
        dir: Option<&Arc<OwnedFd>>,
        entries: &'a [Entry],
        create: bool,
    ) -> Result<Option<Self>, RestoreError> {
        let io_err = |op| super::error::io_err(root_path, op);
        // Tree decoding rejects such names already; a name that could leave
        // its directory is never passed to an `*at` call all the same.
        if let Some(i) = entries.iter().position(|e| !single_name(&e.node.name)) {
            return Err(RestoreError::Blocked {
                path: root_path.join(super::walk::rel_path(entries, i)),
                reason: "the snapshot names an entry '.', '..' or with a '/'",
            });
        }
        if let Some(dir) = dir {
            return Ok(Some(Self::with_root(dir.clone(), root_path, entries)));
        }
        if create {
            std::fs::create_dir_all(root_path).map_err(io_err("create directory"))?;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let root = match nix::fcntl::open(root_path, flags, Mode::empty()) {
            Ok(fd) => {
                // SAFETY: `open` succeeded, so `fd` is a new descriptor owned
                // by nothing else.
                unsafe { OwnedFd::from_raw_fd(fd) }
            }
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(e) => return Err(io_err("open directory")(e.into())),
        };
        Ok(Some(Self::with_root(Arc::new(root), root_path, entries)))
    }

    fn with_root(root: Arc<OwnedFd>, root_path: &Path, entries: &'a [Entry]) -> Self {
        Self {
            root,
            root_path: root_path.to_owned(),
            entries,
            idents: entries.iter().map(|_| OnceLock::new()).collect(),
            dirs: Mutex::new(HashMap::new()),
            capacity: dir_cache_capacity(),
        }
    }

    /// The full path of entry `i`, for messages only.
    pub fn path(&self, i: usize) -> PathBuf {
        self.root_path.join(super::walk::rel_path(self.entries, i))
    }

    /// The name of entry `i` inside its directory.
    pub fn name(&self, i: usize) -> &'a OsStr {
        let entries: &'a [Entry] = self.entries;
        OsStr::from_bytes(&entries[i].node.name)
    }

    fn blocked(&self, i: usize, reason: &'static str) -> RestoreError {
        RestoreError::Blocked {
            path: self.path(i),
            reason,
        }
    }

    fn io(&self, i: usize, op: &'static str) -> impl FnOnce(io::Error) -> RestoreError + '_ {
        move |source| RestoreError::Io {
            path: self.path(i),
            op,
            source,
        }
    }

    /// Records that entry `i` is `id`, or checks that it still is.
    fn check_ident(&self, i: usize, id: Ident) -> Result<(), RestoreError> {
        if *self.idents[i].get_or_init(|| id) == id {
            Ok(())
        } else {
            Err(self.blocked(i, REPLACED))
        }
    }

    /// Closes every cached directory: the next use of each walks again from
    /// the target and checks that it is still the same directory.
    pub fn forget_dirs(&self) {
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// The directory holding entry `i`.
    pub fn parent(&self, i: usize) -> Result<Arc<OwnedFd>, RestoreError> {
        match self.entries[i].parent {
            None => Ok(self.root.clone()),
            Some(p) => self.dir(p),
        }
    }

    /// The directory entry `i` (a directory entry), opened from its parent
    /// without following a symlink and checked against its identity.
    pub fn dir(&self, i: usize) -> Result<Arc<OwnedFd>, RestoreError> {
        if let Some(fd) = self.dirs.lock().unwrap_or_else(PoisonError::into_inner).get(&i) {
            return Ok(fd.clone());
        }
        let parent = self.parent(i)?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        let fd = match open_at(parent.as_fd(), self.name(i), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Err(self.blocked(i, NOT_A_DIR))
            }
            Err(e) => return Err(self.io(i, "open directory")(e)),
        };
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| self.io(i, "inspect")(e.into()))?;
        self.check_ident(i, ident(&st))?;
        let fd = Arc::new(fd);
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        if dirs.len() >= self.capacity {
            dirs.clear();
        }
        dirs.insert(i, fd.clone());
        Ok(fd)
    }

    /// What is at entry `i` now (not following a symlink), if anything.
    /// A directory found there is remembered as the one to restore into.
    pub fn stat(&self, i: usize) -> Result<Option<FileStat>, RestoreError> {
        let parent = self.parent(i)?;
        let st = stat_at(parent.as_fd(), self.name(i)).map_err(self.io(i, "inspect"))?;
        if let Some(st) = &st {
            if is_kind(st, SFlag::S_IFDIR) {
                self.check_ident(i, ident(st))?;
            }
        }
        Ok(st)
    }

    /// Creates directory `i` (owner-only until its metadata is applied).
    pub fn mkdir(&self, i: usize) -> Result<(), RestoreError> {
        let parent = self.parent(i)?;
        nix::sys::stat::mkdirat(Some(parent.as_raw_fd()), self.name(i), Mode::S_IRWXU)
            .map_err(|e| self.io(i, "create directory")(e.into()))?;
        self.dir(i).map(drop)
    }

    /// Removes the non-directory at entry `i`; one already gone is fine.
    pub fn remove(&self, i: usize) -> Result<(), RestoreError> {
        let parent = self.parent(i)?;
        match nix::unistd::unlinkat(Some(parent.as_raw_fd()), self.name(i), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(self.io(i, "remove the existing entry")(e.into())),
        }
    }

    /// Creates file `i`, which must not exist, empty and owner-only.
    pub fn create_file(&self, i: usize) -> Result<File, RestoreError> {
        let parent = self.parent(i)?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = open_at(parent.as_fd(), self.name(i), flags, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(self.io(i, "create file"))?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| self.io(i, "inspect")(e.into()))?;
        self.check_ident(i, ident(&st))?;
        Ok(File::from(fd))
    }

    /// Reopens file `i`, which this restore created, checking that it is
    /// still that file.
    pub fn open_file(&self, i: usize, access: Access) -> Result<File, RestoreError> {
        let parent = self.parent(i)?;
        let flags = match access {
            Access::Read => OFlag::O_RDONLY,
            Access::Write => OFlag::O_WRONLY,
        } | OFlag::O_NONBLOCK;
        let fd = match open_at(parent.as_fd(), self.name(i), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(self.blocked(i, NOT_A_FILE)),
            Err(e) => return Err(self.io(i, "open")(e)),
        };
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| self.io(i, "inspect")(e.into()))?;
        if !is_kind(&st, SFlag::S_IFREG) {
            return Err(self.blocked(i, NOT_A_FILE));
        }
        if self.idents[i].get() != Some(&ident(&st)) {
            return Err(self.blocked(i, REPLACED));
        }
        Ok(File::from(fd))
    }

    /// Links entry `i` to the file at entry `primary` (not following a
    /// symlink there).
    pub fn link(&self, primary: usize, i: usize) -> Result<(), RestoreError> {
        let from = self.parent(primary)?;
        let to = self.parent(i)?;
        nix::unistd::linkat(
            Some(from.as_raw_fd()),
            self.name(primary),
            Some(to.as_raw_fd()),
            self.name(i),
            AtFlags::empty(),
        )
        .map_err(|e| RestoreError::Link {
            path: self.path(i),
            original: self.path(primary),
            source: e.into(),
        })
    }

    /// Removes file `i` if it is still the one this restore created. Best
    /// effort, for cleaning up after a failure.
    pub fn remove_if_created(&self, i: usize) {
        let Some(&id) = self.idents[i].get() else {
            return;
        };
        let Ok(parent) = self.parent(i) else {
            return;
        };
        if let Ok(Some(st)) = stat_at(parent.as_fd(), self.name(i)) {
            if ident(&st) == id && is_kind(&st, SFlag::S_IFREG) {
                let _ = nix::unistd::unlinkat(Some(parent.as_raw_fd()), self.name(i), UnlinkatFlags::NoRemoveDir);
            }
        }
    }
}

/// Whether `name` is one entry inside a directory: not empty, `.` or `..`,
/// without `/` or NUL.
fn single_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Directory descriptors to keep open: a quarter of the process's limit,
/// between 16 and 1024. Unit tests keep two, so that every restore they run
/// also reopens evicted directories.
fn dir_cache_capacity() -> usize {
    if cfg!(test) {
        return 2;
    }
    (open_file_limit() / 4).clamp(16, 1024)
}

/// The soft limit on open descriptors (1024 if it cannot be read).
pub(crate) fn open_file_limit() -> usize {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if soft != RLIM_INFINITY => usize::try_from(soft).unwrap_or(usize::MAX),
        _ => 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::single_name;

    #[test]
    fn only_single_names_pass() {
        assert!(single_name(b"a") && single_name(b"..a") && single_name(b"\xff"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0"] {
            assert!(!single_name(bad), "{bad:?}");
        }
    }
}
