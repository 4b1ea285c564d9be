//! Opening what the walk found, relative to the directory it was found in.
//!
//! Between the walk's `lstat` of an entry and its opening, anyone who can
//! write the directory may replace the entry: by a symlink to a file the
//! backup may read but they may not, by a FIFO that blocks an open or a read
//! forever, by a device. So entries are opened relative to the directory
//! descriptor the walk holds, never by path, with `O_NOFOLLOW` (a symlink is
//! not followed), `O_NONBLOCK` (opening a FIFO does not wait for a writer)
//! and `O_NOCTTY`; the descriptor is then `fstat`ed and accepted only if it
//! is what the walk saw: the same type, device and inode.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{FcntlArg, OFlag};
use nix::sys::stat::Mode;

use super::meta::Stat;

/// Opens `name` in `dir` with `flags`, adding `O_NOATIME` where permitted
/// (the owner or root), so a backup leaves access times as it found them.
fn openat_noatime(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> io::Result<OwnedFd> {
    let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY;
    let raw = match nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(Errno::EPERM) => nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, Mode::empty()),
        other => other,
    }
    .map_err(io::Error::from)?;
    // SAFETY: `openat` just returned this descriptor; nothing else owns or
    // closes it, so the OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The metadata of `name` in `dir`, symlinks not followed.
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Stat> {
    let st = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(Stat::from_raw(&st))
}

/// The metadata of an open descriptor.
pub fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Ok(Stat::from_raw(&nix::sys::stat::fstat(fd.as_raw_fd())?))
}

/// The error for an entry that is no longer what the walk saw; says what it
/// is now when that can be told.
fn replaced(dir: BorrowedFd<'_>, name: &OsStr, now: Option<Stat>, walked: &Stat) -> io::Error {
    let now = now.or_else(|| stat_at(dir, name).ok());
    let what = match now {
        Some(now) if now.kind() != walked.kind() => format!("replaced by {} while backing up", now.describe()),
        Some(_) => format!("replaced by another {} while backing up", kind_noun(walked)),
        None => "removed or replaced while backing up".to_owned(),
    };
    io::Error::other(Replaced(format!("{what}; not read")))
}

/// The error inside an [`io::Error`] for an entry replaced since the walk.
#[derive(Debug)]
struct Replaced(String);

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Replaced {}

/// Whether an error of [`open_file`] or [`open_dir`] means the entry was
/// replaced since the walk (rather than that it could not be opened).
pub fn is_replaced(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|e| e.is::<Replaced>())
}

fn kind_noun(st: &Stat) -> &'static str {
    st.describe().trim_start_matches("a ")
}

/// Whether `now` is the entry the walk saw: same type, device and inode.
fn same_entry(now: &Stat, walked: &Stat) -> bool {
    now.kind() == walked.kind() && now.dev == walked.dev && now.ino == walked.ino
}

/// Opens the regular file `name` in `dir` for reading, if it is still the
/// file the walk saw (`walked`). Anything else — a symlink, a FIFO, a device,
/// another file — is refused with an error saying what it is now, without
/// following it, waiting on it or reading from it. Returns the file (in
/// blocking mode again) and its metadata at opening.
pub fn open_file(dir: BorrowedFd<'_>, name: &OsStr, walked: &Stat) -> io::Result<(File, Stat)> {
    let fd = match openat_noatime(dir, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK) {
        Ok(fd) => fd,
        // O_NOFOLLOW on a symlink.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(replaced(dir, name, None, walked)),
        Err(e) => return Err(e),
    };
    let now = stat_fd(fd.as_fd())?;
    if !now.is_file() || !same_entry(&now, walked) {
        return Err(replaced(dir, name, Some(now), walked));
    }
    // A regular file never blocks; clear the flag anyway so reads behave as
    // on any file, keeping the others (O_NOATIME).
    let flags = OFlag::from_bits_truncate(nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok((File::from(fd), now))
}

/// Opens the directory `name` in `dir` for listing, if it is still the
/// directory the walk saw: a symlink is not followed, another directory is
/// refused.
pub fn open_dir(dir: BorrowedFd<'_>, name: &OsStr, walked: &Stat) -> io::Result<OwnedFd> {
    let fd = match openat_noatime(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            return Err(replaced(dir, name, None, walked));
        }
        Err(e) => return Err(e),
    };
    let now = stat_fd(fd.as_fd())?;
    if !now.is_dir() || !same_entry(&now, walked) {
        return Err(replaced(dir, name, Some(now), walked));
    }
    Ok(fd)
}

/// Opens the directory `name` in `dir`: a symlink there is refused
/// (`ELOOP`), anything but a directory too (`ENOTDIR`).
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    openat_noatime(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
}

/// Opens a directory by path, following symlinks (for the directories that
/// hold the roots named on the command line, which are resolved like `lstat`
/// resolves them).
pub fn open_dir_path(path: &std::path::Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let raw = nix::fcntl::open(path, flags, Mode::empty()).map_err(io::Error::from)?;
    // SAFETY: `open` just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
