//! Creating special entries and applying metadata when restoring.
//!
//! The restorer creates regular files and directories itself; this module
//! creates everything else ([`create_special`]) and sets owners, mode,
//! extended attributes and times on any entry ([`apply_metadata`]).
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
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Group, User};

use crate::format::tree::{Node, NodeKind};

/// Errors creating entries or applying their metadata.
#[derive(Debug, thiserror::Error)]
pub enum RestoreFsError {
    /// Creating a symlink, FIFO or device node failed.
    #[error("cannot create {what} {}: {source}", path.display())]
    Create {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    /// Creating a device node needs privileges this process lacks.
    #[error("cannot create device node {}: not permitted (needs root or CAP_MKNOD)", path.display())]
    DeviceNotPermitted { path: PathBuf },
    /// A symlink node without a target.
    #[error("cannot create symlink {}: the snapshot records no target", path.display())]
    MissingTarget { path: PathBuf },
    /// [`create_special`] was given a regular file or a directory.
    #[error("cannot create {}: a {kind:?} is not a special entry", path.display())]
    NotSpecial { path: PathBuf, kind: NodeKind },
    #[error("cannot set owner of {} to {uid}:{gid}: {source}", path.display())]
    Owner {
        path: PathBuf,
        uid: u32,
        gid: u32,
        source: io::Error,
    },
    #[error("cannot set mode of {} to {mode:o}: {source}", path.display())]
    Mode {
        path: PathBuf,
        mode: u32,
        source: io::Error,
    },
    #[error("cannot set times of {}: {source}", path.display())]
    Times { path: PathBuf, source: io::Error },
    /// Some extended attributes could not be set; everything else was applied.
    /// Not fatal: see [`RestoreFsError::is_fatal`].
    #[error("cannot set extended attributes {} on {}: {source}", names.join(", "), path.display())]
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

/// Creates the symlink, FIFO or device node `node` describes at `path`,
/// which must not exist.
///
/// Sockets are skipped: nothing is created and the result is `Ok`, as in
/// restic, since a socket is only meaningful to the process that bound it.
/// Permission bits are finished by [`apply_metadata`].
pub fn create_special(path: &Path, node: &Node) -> Result<(), RestoreFsError> {
    let create_err = |what, source| RestoreFsError::Create {
        path: path.to_owned(),
        what,
        source,
    };
    let perm = Mode::from_bits_truncate(node.mode & 0o777);
    match node.kind {
        NodeKind::Symlink => {
            let target = node
                .link_target
                .as_deref()
                .ok_or_else(|| RestoreFsError::MissingTarget { path: path.to_owned() })?;
            std::os::unix::fs::symlink(OsStr::from_bytes(target), path).map_err(|e| create_err("symlink", e))
        }
        NodeKind::Fifo => nix::unistd::mkfifo(path, perm).map_err(|e| create_err("FIFO", e.into())),
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let (kind, what) = if node.kind == NodeKind::CharDevice {
                (SFlag::S_IFCHR, "character device")
            } else {
                (SFlag::S_IFBLK, "block device")
            };
            mknod(path, kind, perm, node.rdev).map_err(|e| match e {
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
/// symlink at `path`.
///
/// In order: owners (`lchown`, when [`MetaOptions::owners`] is set and the
/// process runs as root; by name when the recorded name exists here unless
/// [`MetaOptions::numeric_owner`]), extended attributes, mode (not for
/// symlinks; after the owner, as a change of owner clears setuid and setgid),
/// and last the access and modification times with nanoseconds.
///
/// See the module documentation for when to call it. A failure to set
/// extended attributes does not stop the other steps and is returned at the
/// end as the non-fatal [`RestoreFsError::Xattr`].
pub fn apply_metadata(path: &Path, node: &Node, opts: &MetaOptions) -> Result<(), RestoreFsError> {
    if opts.owners && nix::unistd::geteuid().is_root() {
        let (uid, gid) = opts.owner_ids(node);
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|source| RestoreFsError::Owner {
            path: path.to_owned(),
            uid,
            gid,
            source,
        })?;
    }
    let xattr_result = set_xattrs(path, node);
    if node.kind != NodeKind::Symlink {
        let mode = node.mode & 0o7777;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
            RestoreFsError::Mode {
                path: path.to_owned(),
                mode,
                source,
            }
        })?;
    }
    utimensat(
        None,
        path,
        &timespec(node.atime_ns),
        &timespec(node.mtime_ns),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| RestoreFsError::Times {
        path: path.to_owned(),
        source: e.into(),
    })?;
    xattr_result
}

/// Sets every recorded extended attribute, trying all of them; reports the
/// ones that failed.
fn set_xattrs(path: &Path, node: &Node) -> Result<(), RestoreFsError> {
    let mut failed = Vec::new();
    let mut first = None;
    for attr in &node.xattrs {
        // `xattr::set` does not follow symlinks (lsetxattr).
        if let Err(e) = xattr::set(path, OsStr::from_bytes(&attr.name), &attr.value) {
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
    if node.kind != NodeKind::File {
        return false;
    }
    match std::fs::symlink_metadata(path) {
        Ok(md) => {
            let mtime_ns = md.mtime().saturating_mul(1_000_000_000).saturating_add(md.mtime_nsec());
            md.file_type().is_file() && md.size() == node.size && mtime_ns == node.mtime_ns
        }
        Err(_) => false,
    }
}

#[cfg(test)]
#[path = "fsmeta_tests.rs"]
mod tests;
