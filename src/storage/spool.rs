//! Files written before they are stored.
//!
//! A large object (a pack) is appended to a spool as it is made, so it never
//! has to be held in memory whole, and is stored with
//! [`Storage::put_file`](super::Storage::put_file). A backend says where its
//! spools live ([`Storage::spool`](super::Storage::spool)): a local directory
//! keeps them beside its objects, so that storing one is a hard link and
//! nothing is copied; other backends read them back while they upload.
//!
//! A spool is an unnamed temporary file (`O_TMPFILE`) wherever the file
//! system can make one: nothing of it is ever visible under a name, and it
//! is gone when the process ends, however it ends. Where the file system
//! cannot, it is a file named `.tmp-spool-…` (never listed as an object),
//! removed when the spool is dropped.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{check_size, FileKind, Result, StorageError};

/// Prefix of spools that have a name (never listed as objects).
pub const SPOOL_PREFIX: &str = ".tmp-spool-";

/// A temporary file an object is written to before it is stored.
#[derive(Debug)]
pub struct Spool {
    file: File,
    len: u64,
    /// Where the file was made (for messages and links).
    dir: PathBuf,
    /// The name of a named spool, removed on drop.
    name: Option<PathBuf>,
}

fn spool_error(dir: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: format!("a temporary file in {}", dir.display()),
        source,
    }
}

impl Spool {
    /// A new empty spool in `dir`: an unnamed file if the file system
    /// allows, else a named one that is removed on drop.
    pub fn create_in(dir: &Path) -> Result<Self> {
        let unnamed = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        match unnamed {
            Ok(file) => Ok(Self {
                file,
                len: 0,
                dir: dir.to_owned(),
                name: None,
            }),
            // File systems without O_TMPFILE answer EOPNOTSUPP (or EISDIR
            // on kernels that do not know the flag).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {
                let unique = getrandom::u64().map_err(|e| spool_error(dir, io::Error::other(e.to_string())))?;
                let path = dir.join(format!("{SPOOL_PREFIX}{unique:016x}"));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| spool_error(dir, e))?;
                Ok(Self {
                    file,
                    len: 0,
                    dir: dir.to_owned(),
                    name: Some(path),
                })
            }
            Err(e) => Err(spool_error(dir, e)),
        }
    }

    /// A new empty spool in the temporary directory (`TMPDIR`).
    pub fn temporary() -> Result<Self> {
        Self::create_in(&std::env::temp_dir())
    }

    /// Appends `data`.
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all_at(data, self.len)
            .map_err(|e| spool_error(&self.dir, e))?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The directory the spool was made in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads `len` bytes at `offset` (within what was written).
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if offset.checked_add(len as u64).is_none_or(|end| end > self.len) {
            return Err(spool_error(
                &self.dir,
                io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of a spooled object"),
            ));
        }
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| spool_error(&self.dir, e))?;
        Ok(buf)
    }

    /// Reads everything written, for a backend that stores whole objects;
    /// refuses more than an object of `kind` may hold.
    pub fn read_all(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        check_size(kind, name, self.len)?;
        let len = usize::try_from(self.len).map_err(|_| StorageError::TooLarge {
            kind,
            name: name.to_owned(),
            max: kind.max_size(),
        })?;
        self.read_at(0, len).map(Bytes::from)
    }

    /// Reads everything written on tokio's blocking pool.
    pub async fn read_all_async(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        let copy = self.try_clone()?;
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || copy.read_all(kind, &name))
            .await
            .unwrap_or_else(|e| {
                Err(StorageError::Backend {
                    message: format!("reading a spooled object failed: {e}"),
                    transient: false,
                })
            })
    }

    /// A second handle on the same file (for work on another thread); it
    /// does not remove a named spool when dropped.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            file: self.file.try_clone().map_err(|e| spool_error(&self.dir, e))?,
            len: self.len,
            dir: self.dir.clone(),
            name: None,
        })
    }

    /// Makes the written bytes durable and read-only (`mode`) and links the
    /// file under `target`, which must be on the same file system. Fails
    /// (`AlreadyExists`) rather than replace a file. The file is linked
    /// through its `/proc/self/fd` entry, which works for an unnamed file
    /// and needs no privilege (`AT_EMPTY_PATH` would); the caller falls back
    /// to copying where that is not possible.
    pub fn link_as(&self, target: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.file.sync_all()?;
        self.file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        let nul = |_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte");
        let to = CString::new(target.as_os_str().as_bytes()).map_err(nul)?;
        let from = CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd())).map_err(nul)?;
        // SAFETY: both paths are valid NUL-terminated strings that outlive
        // the call; no pointer is kept.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            // Failing to remove it leaves a `.tmp-` file that is never
            // listed; nothing else can be done here.
            let _ = std::fs::remove_file(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_reads_back_what_was_appended_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create_in(dir.path()).unwrap();
        spool.append(b"hello ").unwrap();
        spool.append(b"world").unwrap();
        assert_eq!(spool.len(), 11);
        assert_eq!(spool.read_all(FileKind::Pack, "p").unwrap(), &b"hello world"[..]);
        assert_eq!(spool.read_at(6, 5).unwrap(), b"world");
        assert!(spool.read_at(6, 6).is_err(), "reads stop at what was written");
        drop(spool);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_spool_links_into_place_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create_in(dir.path()).unwrap();
        spool.append(b"object").unwrap();
        let target = dir.path().join("obj");
        spool.link_as(&target, 0o400).unwrap();
        let again = spool.link_as(&target, 0o400).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        drop(spool);
        assert_eq!(std::fs::read(&target).unwrap(), b"object");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["obj"]);
    }
}
