//! File system metadata for restored entries: special files, owners, modes,
//! extended attributes and times.
//!
//! TEMPORARY STUB with the final signatures; replaced by the full
//! implementation when the branches are merged.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::format::tree::{Node, NodeKind};

/// What metadata a restore applies besides modes and times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaOptions {
    /// Restore owners (only effective when running as root).
    pub owners: bool,
    /// Use the stored uid/gid instead of looking up the stored names.
    pub numeric_owner: bool,
}

/// A file system operation of the restore that failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreFsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RestoreFsError + '_ {
    move |source| RestoreFsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn errno(path: &Path) -> impl FnOnce(nix::errno::Errno) -> RestoreFsError + '_ {
    move |e| RestoreFsError::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

/// Creates a symlink, fifo or device node; sockets are skipped.
pub fn create_special(path: &Path, node: &Node) -> Result<(), RestoreFsError> {
    let mode = Mode::from_bits_truncate(node.mode & 0o777);
    match node.kind {
        NodeKind::Symlink => {
            let target = node.link_target.as_deref().unwrap_or_default();
            std::os::unix::fs::symlink(OsStr::from_bytes(target), path).map_err(io(path))
        }
        NodeKind::Fifo => nix::unistd::mkfifo(path, mode).map_err(errno(path)),
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let kind = if node.kind == NodeKind::CharDevice {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(path, kind, mode, node.rdev).map_err(errno(path))
        }
        NodeKind::Socket | NodeKind::File | NodeKind::Dir => Ok(()),
    }
}

/// Applies mode and times (the stub leaves owners and xattrs alone).
pub fn apply_metadata(path: &Path, node: &Node, _opts: &MetaOptions) -> Result<(), RestoreFsError> {
    if node.kind != NodeKind::Symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777)).map_err(io(path))?;
    }
    let ts = |ns: i64| TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    utimensat(
        None,
        path,
        &ts(node.atime_ns),
        &ts(node.mtime_ns),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(errno(path))
}

/// Whether `path` is a regular file with the node's size and mtime.
pub fn matches_on_disk(path: &Path, node: &Node) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            m.file_type().is_file()
                && m.len() == node.size
                && m.mtime() * 1_000_000_000 + m.mtime_nsec() == node.mtime_ns
        }
        Err(_) => false,
    }
}
