//! Metadata of a file system entry as a tree node.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};

use super::walk::WalkEntry;
use super::SourceError;
use crate::format::tree::{Node, NodeKind, Xattr};

/// A cache of user and group names by id, so each id is looked up once per
/// backup rather than once per file.
#[derive(Debug, Default)]
pub struct OwnerNames {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl OwnerNames {
    pub fn new() -> Self {
        Self::default()
    }

    /// The name of user `uid` on this system, or an empty string when it has none.
    pub fn user(&mut self, uid: u32) -> &str {
        self.users
            .entry(uid)
            .or_insert_with(|| match User::from_uid(Uid::from_raw(uid)) {
                Ok(Some(user)) => user.name,
                _ => String::new(),
            })
    }

    /// The name of group `gid` on this system, or an empty string when it has none.
    pub fn group(&mut self, gid: u32) -> &str {
        self.groups
            .entry(gid)
            .or_insert_with(|| match Group::from_gid(Gid::from_raw(gid)) {
                Ok(Some(group)) => group.name,
                _ => String::new(),
            })
    }
}

/// What `lstat` (or `fstatat` without following symlinks, or `fstat`)
/// says about an entry: the fields a tree node and change detection need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stat {
    /// From the result of `stat`, `fstatat` or `fstat`.
    // The field widths differ between targets; the casts only widen.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    pub fn from_raw(st: &libc::stat) -> Self {
        Self {
            mode: st.st_mode as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            rdev: st.st_rdev as u64,
            atime_ns: time_ns(st.st_atime as i64, st.st_atime_nsec as i64),
            mtime_ns: time_ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: time_ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }

    /// From std's metadata of a path or an open file.
    pub fn from_metadata(md: &Metadata) -> Self {
        Self {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            blocks: md.blocks(),
            dev: md.dev(),
            ino: md.ino(),
            nlink: md.nlink(),
            rdev: md.rdev(),
            atime_ns: time_ns(md.atime(), md.atime_nsec()),
            mtime_ns: time_ns(md.mtime(), md.mtime_nsec()),
            ctime_ns: time_ns(md.ctime(), md.ctime_nsec()),
        }
    }

    fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }

    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }

    /// The size in bytes (as `Metadata::len`).
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the size is zero.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The node kind of the entry (symlinks not followed).
    pub fn kind(&self) -> NodeKind {
        match self.file_type() {
            libc::S_IFDIR => NodeKind::Dir,
            libc::S_IFLNK => NodeKind::Symlink,
            libc::S_IFIFO => NodeKind::Fifo,
            libc::S_IFCHR => NodeKind::CharDevice,
            libc::S_IFBLK => NodeKind::BlockDevice,
            libc::S_IFSOCK => NodeKind::Socket,
            _ => NodeKind::File,
        }
    }

    /// What the entry is, in words, for messages.
    pub fn describe(&self) -> &'static str {
        match self.kind() {
            NodeKind::Dir => "a directory",
            NodeKind::Symlink => "a symbolic link",
            NodeKind::Fifo => "a FIFO",
            NodeKind::CharDevice => "a character device",
            NodeKind::BlockDevice => "a block device",
            NodeKind::Socket => "a socket",
            NodeKind::File => "a regular file",
        }
    }
}

/// The kind of an entry, from its (not followed) file type.
pub fn node_kind(md: &Metadata) -> NodeKind {
    Stat::from_metadata(md).kind()
}

/// Nanoseconds since the epoch from a `stat` seconds/nanoseconds pair,
/// saturating far outside the representable range (year 1678 to 2262).
fn time_ns(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

/// Builds the node of the entry at `path` named `name`, from its metadata as
/// returned by `symlink_metadata`.
///
/// Fills every field except `content` and `subtree`, which the backup layer
/// sets. Reads the symlink target and the extended attributes from `path`
/// (never following a symlink); a file system without extended attributes
/// yields none rather than an error.
pub fn node_from_metadata(
    name: Vec<u8>,
    path: &Path,
    md: &Metadata,
    names: &mut OwnerNames,
) -> Result<Node, SourceError> {
    let mut node = node_from_stat(name, &Stat::from_metadata(md), names);
    if node.kind == NodeKind::Symlink {
        let target = std::fs::read_link(path).map_err(|source| SourceError::Io {
            path: path.to_owned(),
            source,
        })?;
        node.link_target = Some(target.as_os_str().as_bytes().to_vec());
    }
    node.xattrs = read_xattrs(path)?;
    Ok(node)
}

/// The node of an entry the walk reached, from its walk metadata; the
/// symlink target is read relative to the entry's open directory.
pub fn node_from_entry(entry: &WalkEntry, names: &mut OwnerNames) -> Result<Node, SourceError> {
    let mut node = node_from_stat(entry.name.clone(), &entry.metadata, names);
    if node.kind == NodeKind::Symlink {
        let target = entry.read_link().map_err(|source| SourceError::Io {
            path: entry.path.clone(),
            source,
        })?;
        node.link_target = Some(target);
    }
    node.xattrs = match entry.path_via_dir() {
        Some(via) => read_xattrs_at(&via, &entry.path)?,
        None => read_xattrs(&entry.path)?,
    };
    Ok(node)
}

/// The node of an entry from its metadata alone: every field except
/// `link_target`, `xattrs`, `content` and `subtree`.
pub fn node_from_stat(name: Vec<u8>, md: &Stat, names: &mut OwnerNames) -> Node {
    let kind = md.kind();
    let mut node = Node::new(name, kind);
    node.mode = md.mode & 0o7777;
    node.uid = md.uid;
    node.gid = md.gid;
    node.user = names.user(md.uid).to_owned();
    node.group = names.group(md.gid).to_owned();
    node.mtime_ns = md.mtime_ns;
    node.atime_ns = md.atime_ns;
    node.ctime_ns = md.ctime_ns;
    node.device = md.dev;
    node.inode = md.ino;
    node.links = md.nlink;
    match kind {
        NodeKind::File => node.size = md.size,
        NodeKind::CharDevice | NodeKind::BlockDevice => node.rdev = md.rdev,
        NodeKind::Symlink | NodeKind::Dir | NodeKind::Fifo | NodeKind::Socket => {}
    }
    node
}

/// Whether an error means "this file system has no extended attributes".
fn xattrs_unsupported(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Unsupported
        || matches!(err.raw_os_error(), Some(code) if code == libc::ENOTSUP || code == libc::EOPNOTSUPP)
}

/// The extended attributes of `path` (not following symlinks), sorted by name.
pub fn read_xattrs(path: &Path) -> Result<Vec<Xattr>, SourceError> {
    read_xattrs_at(path, path)
}

/// The extended attributes of the entry at `at` (not following a final
/// symlink), sorted by name; errors name `shown`.
fn read_xattrs_at(at: &Path, shown: &Path) -> Result<Vec<Xattr>, SourceError> {
    let path = at;
    if !xattr::SUPPORTED_PLATFORM {
        return Ok(Vec::new());
    }
    let err = |source| SourceError::Xattr {
        path: shown.to_owned(),
        source,
    };
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if xattrs_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut out = Vec::new();
    for name in names {
        // An attribute removed between listing and reading is simply absent.
        if let Some(value) = xattr::get(path, &name).map_err(err)? {
            out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn capture(path: &Path) -> Node {
        let md = std::fs::symlink_metadata(path).unwrap();
        let name = path.file_name().unwrap().as_bytes().to_vec();
        node_from_metadata(name, path, &md, &mut OwnerNames::new()).unwrap()
    }

    #[test]
    fn regular_file_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        let md = std::fs::symlink_metadata(&path).unwrap();
        let node = capture(&path);
        assert_eq!(node.name, b"f");
        assert_eq!(node.kind, NodeKind::File);
        assert_eq!(node.mode, 0o640);
        assert_eq!(node.size, 5);
        assert_eq!(node.uid, md.uid());
        assert_eq!(node.gid, md.gid());
        assert_eq!(node.inode, md.ino());
        assert_eq!(node.device, md.dev());
        assert_eq!(node.links, 1);
        assert_eq!(node.mtime_ns, md.mtime() * 1_000_000_000 + md.mtime_nsec());
        assert!(node.link_target.is_none());
        assert!(node.content.is_empty());
        assert!(node.subtree.is_none());
    }

    #[test]
    fn symlink_target_is_raw_and_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let target = std::ffi::OsStr::from_bytes(b"does/not/exist\xff");
        symlink(target, &path).unwrap();
        let node = capture(&path);
        assert_eq!(node.kind, NodeKind::Symlink);
        assert_eq!(node.link_target.as_deref(), Some(&b"does/not/exist\xff"[..]));
        assert_eq!(node.size, 0);
    }

    #[test]
    fn directory_and_fifo_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(capture(&sub).kind, NodeKind::Dir);
        assert_eq!(capture(&sub).size, 0);
        let fifo = dir.path().join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(capture(&fifo).kind, NodeKind::Fifo);
    }

    #[test]
    fn hard_links_share_inode() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"x").unwrap();
        std::fs::hard_link(&a, &b).unwrap();
        let (na, nb) = (capture(&a), capture(&b));
        assert_eq!(na.links, 2);
        assert_eq!((na.device, na.inode), (nb.device, nb.inode));
    }

    #[test]
    fn xattrs_sorted_when_supported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let supported = xattr::set(&path, "user.zeta", b"1").is_ok();
        let node = capture(&path);
        if supported {
            xattr::set(&path, "user.alpha", b"2").unwrap();
            let node = capture(&path);
            let names: Vec<&[u8]> = node.xattrs.iter().map(|x| x.name.as_slice()).collect();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "not sorted: {names:?}");
            let alpha = node.xattrs.iter().find(|x| x.name == b"user.alpha").unwrap();
            assert_eq!(alpha.value, b"2");
        } else {
            assert!(!node.xattrs.iter().any(|x| x.name.starts_with(b"user.")));
        }
    }

    #[test]
    fn owner_names_for_root_and_unknown_ids() {
        let mut names = OwnerNames::new();
        assert_eq!(names.user(0), "root");
        assert_eq!(names.user(0xfff0_0000), "");
        assert_eq!(names.group(0xfff0_0000), "");
    }
}
