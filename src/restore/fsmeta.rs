//! Creating special entries and applying metadata when restoring.
//!
//! The restorer creates regular files and directories itself; this module
//! creates everything else ([`create_special`]) and sets owners, mode,
//! extended attributes and times on any entry ([`apply_metadata`]).
//!
//! The `_at` and `_fd` forms work relative to an open directory or on an
//! open file and never follow a symlink; the restorer uses only those (see
//! `format-spec/security.md`, "Restore targets"). The path forms resolve the
//! directory holding the path as given.
//!
//! # Ordering the caller must follow
//!
//! [`apply_metadata`] sets times last, so it must be called for an entry only
//! when nothing more will be written to it: for a file after its content is
//! written, for a directory after all its children are restored (creating a
//! child changes the directory's mtime, and a read-only mode would forbid
//! creating children at all).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmodat, mknodat, utimensat, FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Group, Uid, User};
use xattr::FileExt as _;

use crate::format::tree::{Node, NodeKind};

/// Errors creating entries or applying their metadata.
#[derive(Debug, thiserror::Error)]
pub enum RestoreFsError {
    /// Creating a symlink, FIFO or device node failed.
    #[error("cannot create {what} {}: {source}", crate::format::escape::path(path))]
    Create {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    /// Creating a device node needs privileges this process lacks.
    #[error(
        "cannot create device node {}: not permitted (needs root or CAP_MKNOD)",
        crate::format::escape::path(path)
    )]
    DeviceNotPermitted { path: PathBuf },
    /// The entry, or the directory holding it, cannot be opened.
    #[error("cannot open {}: {source}", crate::format::escape::path(path))]
    Open { path: PathBuf, source: io::Error },
    /// A symlink node without a target.
    #[error(
        "cannot create symlink {}: the snapshot records no target",
        crate::format::escape::path(path)
    )]
    MissingTarget { path: PathBuf },
    /// [`create_special`] was given a regular file or a directory.
    #[error(
        "cannot create {}: a {kind:?} is not a special entry",
        crate::format::escape::path(path)
    )]
    NotSpecial { path: PathBuf, kind: NodeKind },
    #[error("cannot set owner of {} to {uid}:{gid}: {source}", crate::format::escape::path(path))]
    Owner {
        path: PathBuf,
        uid: u32,
        gid: u32,
        source: io::Error,
    },
    #[error("cannot set mode of {} to {mode:o}: {source}", crate::format::escape::path(path))]
    Mode {
        path: PathBuf,
        mode: u32,
        source: io::Error,
    },
    #[error("cannot set times of {}: {source}", crate::format::escape::path(path))]
    Times { path: PathBuf, source: io::Error },
    /// Some extended attributes could not be set; everything else was applied.
    /// Not fatal: see [`RestoreFsError::is_fatal`].
    #[error("cannot set extended attributes {} on {}: {source}", names.join(", "), crate::format::escape::path(path))]
    Xattr {
        path: PathBuf,
        /// The attributes that failed, lossily decoded.
        names: Vec<String>,
        /// The first failure.
        source: io::Error,
    },
}

impl RestoreFsError {
    /// Whether the entry is left without the metadata it should have beyond
    /// its extended attributes. A restore may report non-fatal errors as
    /// warnings and go on.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Xattr { .. })
    }
}

/// How metadata is applied.
#[derive(Debug, Default)]
pub struct MetaOptions {
    /// Restore owners. Takes effect only when running as root; otherwise
    /// entries keep the restoring user as owner, as restic does.
    pub owners: bool,
    /// Use the recorded numeric ids even when the recorded user or group
    /// name exists on this system.
    pub numeric_owner: bool,
    /// Ids of user and group names on this system, looked up once each.
    ids: Mutex<IdCache>,
}

impl Clone for MetaOptions {
    /// A copy of the choices with an empty name cache.
    fn clone(&self) -> Self {
        Self::new(self.owners, self.numeric_owner)
    }
}

#[derive(Debug, Default)]
struct IdCache {
    users: HashMap<String, Option<u32>>,
    groups: HashMap<String, Option<u32>>,
}

impl MetaOptions {
    pub fn new(owners: bool, numeric_owner: bool) -> Self {
        Self {
            owners,
            numeric_owner,
            ids: Mutex::default(),
        }
    }

    /// The uid and gid to give an entry recorded with `node`'s owners.
    fn owner_ids(&self, node: &Node) -> (u32, u32) {
        if self.numeric_owner {
            return (node.uid, node.gid);
        }
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let uid = match node.user.as_str() {
            "" => None,
            name => *ids
                .users
                .entry(name.to_owned())
                .or_insert_with(|| match User::from_name(name) {
                    Ok(Some(user)) => Some(user.uid.as_raw()),
                    _ => None,
                }),
        };
        let gid = match node.group.as_str() {
            "" => None,
            name => *ids
                .groups
                .entry(name.to_owned())
                .or_insert_with(|| match Group::from_name(name) {
                    Ok(Some(group)) => Some(group.gid.as_raw()),
                    _ => None,
                }),
        };
        (uid.unwrap_or(node.uid), gid.unwrap_or(node.gid))
    }
}

/// Opens the directory holding `path` (resolving it as given) and returns
/// it with the last component of `path`.
fn open_parent(path: &Path) -> Result<(OwnedFd, &OsStr), RestoreFsError> {
    let open_err = |source| RestoreFsError::Open {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| open_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(parent, flags, Mode::empty()).map_err(|e| open_err(e.into()))?;
    // SAFETY: `open` succeeded, so `fd` is a new descriptor owned by nothing
    // else; the OwnedFd closes it once.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, name))
}

/// Creates the symlink, FIFO or device node `node` describes at `path`,
/// which must not exist. The directory holding `path` is resolved as given;
/// the restorer uses [`create_special_at`].
pub fn create_special(path: &Path, node: &Node) -> Result<(), RestoreFsError> {
    let (dir, name) = open_parent(path)?;
    create_special_at(dir.as_fd(), name, path, node)
}

/// Creates the symlink, FIFO or device node `node` describes as `name` in
/// the directory `dir` (`path` names it in messages); `name` must not exist.
///
/// Sockets are skipped: nothing is created and the result is `Ok`, as in
/// restic, since a socket is only meaningful to the process that bound it.
/// Permission bits are finished by [`apply_metadata_at`].
pub fn create_special_at(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, node: &Node) -> Result<(), RestoreFsError> {
    let create_err = |what, source| RestoreFsError::Create {
        path: path.to_owned(),
        what,
        source,
    };
    let dirfd = Some(dir.as_raw_fd());
    let perm = Mode::from_bits_truncate(node.mode & 0o777);
    match node.kind {
        NodeKind::Symlink => {
            let target = node
                .link_target
                .as_deref()
                .ok_or_else(|| RestoreFsError::MissingTarget { path: path.to_owned() })?;
            nix::unistd::symlinkat(OsStr::from_bytes(target), dirfd, name).map_err(|e| create_err("symlink", e.into()))
        }
        NodeKind::Fifo => nix::unistd::mkfifoat(dirfd, name, perm).map_err(|e| create_err("FIFO", e.into())),
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let (kind, what) = if node.kind == NodeKind::CharDevice {
                (SFlag::S_IFCHR, "character device")
            } else {
                (SFlag::S_IFBLK, "block device")
            };
            mknodat(dirfd, name, kind, perm, node.rdev).map_err(|e| match e {
                Errno::EPERM => RestoreFsError::DeviceNotPermitted { path: path.to_owned() },
                other => create_err(what, other.into()),
            })
        }
        NodeKind::Socket => Ok(()),
        NodeKind::File | NodeKind::Dir => Err(RestoreFsError::NotSpecial {
            path: path.to_owned(),
            kind: node.kind,
        }),
    }
}

/// Applies `node`'s metadata to the entry at `path`, never following a
/// symlink at `path`. The directory holding `path` is resolved as given; the
/// restorer uses [`apply_metadata_fd`] and [`apply_metadata_at`].
///
/// In order: owners (when [`MetaOptions::owners`] is set and the process
/// runs as root; by name when the recorded name exists here unless
/// [`MetaOptions::numeric_owner`]), extended attributes, mode (not for
/// symlinks; after the owner, as a change of owner clears setuid and setgid),
/// and last the access and modification times with nanoseconds.
///
/// See the module documentation for when to call it. A failure to set
/// extended attributes does not stop the other steps and is returned at the
/// end as the non-fatal [`RestoreFsError::Xattr`].
pub fn apply_metadata(path: &Path, node: &Node, opts: &MetaOptions) -> Result<(), RestoreFsError> {
    let (dir, name) = open_parent(path)?;
    let flags = match node.kind {
        NodeKind::File => OFlag::O_RDONLY | OFlag::O_NONBLOCK,
        NodeKind::Dir => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        _ => return apply_metadata_at(dir.as_fd(), name, path, node, opts),
    };
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd =
        nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, Mode::empty()).map_err(|e| RestoreFsError::Open {
            path: path.to_owned(),
            source: e.into(),
        })?;
    // SAFETY: `openat` succeeded, so `fd` is a new descriptor owned by
    // nothing else; the File closes it once.
    let file = unsafe { File::from_raw_fd(fd) };
    apply_metadata_fd(&file, path, node, opts)
}

/// Applies `node`'s metadata (see [`apply_metadata`]) to the open regular
/// file or directory `file`; `path` names it in messages.
pub fn apply_metadata_fd(file: &File, path: &Path, node: &Node, opts: &MetaOptions) -> Result<(), RestoreFsError> {
    apply(Place::Fd(file), path, node, opts)
}

/// Applies `node`'s metadata (see [`apply_metadata`]) to the symlink, FIFO
/// or device node `name` in the directory `dir`, never following a symlink
/// there; `path` names it in messages. Extended attributes are set through
/// `/proc/self/fd`, without following the last component.
pub fn apply_metadata_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    node: &Node,
    opts: &MetaOptions,
) -> Result<(), RestoreFsError> {
    apply(Place::At(dir, name), path, node, opts)
}

/// Where metadata goes: an open file, or a name in an open directory.
#[derive(Clone, Copy)]
enum Place<'a> {
    Fd(&'a File),
    At(BorrowedFd<'a>, &'a OsStr),
}

impl Place<'_> {
    fn chown(self, uid: u32, gid: u32) -> nix::Result<()> {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match self {
            Self::Fd(file) => nix::unistd::fchown(file.as_raw_fd(), uid, gid),
            Self::At(dir, name) => {
                nix::unistd::fchownat(Some(dir.as_raw_fd()), name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
            }
        }
    }

    fn set_xattr(self, name: &OsStr, value: &[u8]) -> io::Result<()> {
        match self {
            Self::Fd(file) => file.set_xattr(name, value),
            Self::At(dir, entry) => {
                // lsetxattr: /proc/self/fd/N is the directory itself, and the
                // entry's name is not followed.
                let path = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(entry);
                xattr::set(path, name, value)
            }
        }
    }

    fn chmod(self, mode: u32) -> nix::Result<()> {
        let mode = Mode::from_bits_truncate(mode);
        match self {
            Self::Fd(file) => nix::sys::stat::fchmod(file.as_raw_fd(), mode),
            Self::At(dir, name) => fchmodat(Some(dir.as_raw_fd()), name, mode, FchmodatFlags::NoFollowSymlink),
        }
    }

    fn set_times(self, atime: &TimeSpec, mtime: &TimeSpec) -> nix::Result<()> {
        match self {
            Self::Fd(file) => nix::sys::stat::futimens(file.as_raw_fd(), atime, mtime),
            Self::At(dir, name) => utimensat(
                Some(dir.as_raw_fd()),
                name,
                atime,
                mtime,
                UtimensatFlags::NoFollowSymlink,
            ),
        }
    }
}

fn apply(place: Place<'_>, path: &Path, node: &Node, opts: &MetaOptions) -> Result<(), RestoreFsError> {
    if opts.owners && nix::unistd::geteuid().is_root() {
        let (uid, gid) = opts.owner_ids(node);
        place.chown(uid, gid).map_err(|e| RestoreFsError::Owner {
            path: path.to_owned(),
            uid,
            gid,
            source: e.into(),
        })?;
    }
    let xattr_result = set_xattrs(place, path, node);
    if node.kind != NodeKind::Symlink {
        let mode = node.mode & 0o7777;
        place.chmod(mode).map_err(|e| RestoreFsError::Mode {
            path: path.to_owned(),
            mode,
            source: e.into(),
        })?;
    }
    place
        .set_times(&timespec(node.atime_ns), &timespec(node.mtime_ns))
        .map_err(|e| RestoreFsError::Times {
            path: path.to_owned(),
            source: e.into(),
        })?;
    xattr_result
}

/// Sets every recorded extended attribute, trying all of them; reports the
/// ones that failed.
fn set_xattrs(place: Place<'_>, path: &Path, node: &Node) -> Result<(), RestoreFsError> {
    let mut failed = Vec::new();
    let mut first = None;
    for attr in &node.xattrs {
        if let Err(e) = place.set_xattr(OsStr::from_bytes(&attr.name), &attr.value) {
            failed.push(String::from_utf8_lossy(&attr.name).into_owned());
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(source) => Err(RestoreFsError::Xattr {
            path: path.to_owned(),
            names: failed,
            source,
        }),
    }
}

/// A `timespec` from nanoseconds since the epoch (negative times included).
fn timespec(ns: i64) -> TimeSpec {
    TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// Whether `path` is a regular file (not through a symlink) whose size and
/// modification time (to the nanosecond) equal `node`'s, itself a file; the
/// `--overwrite if-changed` test for skipping a file. Any error reads as "no".
pub fn matches_on_disk(path: &Path, node: &Node) -> bool {
    nix::sys::stat::lstat(path).is_ok_and(|st| matches_stat(&st, node))
}

/// [`matches_on_disk`] for what `fstatat` (not following) found.
pub fn matches_stat(st: &FileStat, node: &Node) -> bool {
    let mtime_ns = st
        .st_mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec);
    node.kind == NodeKind::File
        && st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits()
        && u64::try_from(st.st_size).is_ok_and(|size| size == node.size)
        && mtime_ns == node.mtime_ns
}

#[cfg(test)]
#[path = "fsmeta_tests.rs"]
mod tests;
