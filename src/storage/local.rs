//! Local directory backend.
//!
//! Objects live under the root in the repository layout. A put writes a
//! temporary file (`.tmp-…`) in the target's directory, fsyncs it, makes it
//! read-only, and hard-links it under its final name, which fails rather than
//! replace an existing object; the directory is then fsynced, so the object
//! is durable when `put` returns. Blocking file system calls run on tokio's
//! blocking pool.
//!
//! Nothing of a repository is for other users: key files can be attacked
//! offline. Directories are made 0700 and objects 0400 whatever the umask.
//! Reads open objects without following a symbolic link and without
//! blocking on a FIFO, and refuse anything that is not a regular file.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    check_name, check_size, no_object_lock, FileKind, Keep, ObjectInfo, Result, Retention, Spool, Storage, StorageError,
};

/// Prefix of files being written; never listed.
const TMP_PREFIX: &str = ".tmp-";

/// Mode of stored objects: nothing rewrites them, and only the owner reads them.
const OBJECT_MODE: u32 = 0o400;

/// Mode of the directories of a repository.
const DIR_MODE: u32 = 0o700;

/// A repository in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

fn io_error(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Maps "no such file" to `NotFound` for the object, anything else to `Io`.
fn object_error(kind: FileKind, name: &str, path: &Path, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::NotFound {
        StorageError::NotFound {
            kind,
            name: name.to_owned(),
        }
    } else {
        io_error(path, e)
    }
}

/// Runs blocking file system work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StorageError::Backend {
            message: format!("a local storage task failed: {e}"),
            transient: false,
        })
    })
}

/// Creates `dir` and any missing parent with mode 0700, whatever the umask.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    make_private_dir(dir)
}

/// Creates `dir`, whose parent exists, with mode 0700 whatever the umask;
/// one that exists already is left as it is.
fn make_private_dir(dir: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        // The umask may have taken bits away; the mode is set exactly.
        Ok(()) => fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens an object for reading: never through a symbolic link, never
/// waiting on a FIFO, and only if it is a regular file. Returns its size.
fn open_object(path: &Path, kind: FileKind, name: &str) -> Result<(File, u64)> {
    let not_a_file = |what| StorageError::NotAFile {
        kind,
        name: name.to_owned(),
        path: path.display().to_string(),
        what,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_a_file("a symbolic link"),
            _ => object_error(kind, name, path, e),
        })?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let file_type = meta.file_type();
    if !file_type.is_file() {
        use std::os::unix::fs::FileTypeExt;
        return Err(not_a_file(if file_type.is_dir() {
            "a directory"
        } else if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_char_device() || file_type.is_block_device() {
            "a device"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "not a file"
        }));
    }
    Ok((file, meta.len()))
}

/// Reads a whole object, at most one byte more than its kind's cap.
fn get_blocking(path: &Path, kind: FileKind, name: &str) -> Result<Bytes> {
    let (file, size) = open_object(path, kind, name)?;
    check_size(kind, name, size)?;
    let cap = kind.max_size();
    // size <= cap, which a reader of this kind may hold in memory.
    let mut buf = Vec::with_capacity(size as usize);
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(path, e))?;
    // The file may have grown since it was measured.
    check_size(kind, name, buf.len() as u64)?;
    Ok(Bytes::from(buf))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))
}

/// A name for a temporary file that no other writer picks.
fn tmp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = getrandom::u64()
        .unwrap_or_else(|_| u64::from(std::process::id()) << 32 | COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{TMP_PREFIX}{name}-{unique:016x}")
}

impl LocalStorage {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn object_path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }
}

fn create_blocking(root: &Path) -> Result<()> {
    let config = root.join(FileKind::Config.path("config"));
    match fs::symlink_metadata(&config) {
        Ok(_) => {
            return Err(StorageError::AlreadyExists {
                kind: FileKind::Config,
                name: "config".to_owned(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&config, e)),
    }
    let mut dirs: Vec<PathBuf> = [FileKind::Key, FileKind::Index, FileKind::Snapshot, FileKind::Lock]
        .iter()
        .map(|k| root.join(k.dir()))
        .collect();
    let data = root.join(FileKind::Pack.dir());
    dirs.extend((0..=255u8).map(|b| data.join(format!("{b:02x}"))));
    for dir in &dirs {
        create_private_dir(dir).map_err(|e| io_error(dir, e))?;
    }
    sync_dir(&data)?;
    sync_dir(root)
}

fn put_blocking(target: &Path, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(tmp_name(name));
    let open = || OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp);
    let mut file = match open() {
        // A pack shard directory may be missing (a repository created by
        // another tool); its parent `data/` must exist.
        Err(e) if e.kind() == io::ErrorKind::NotFound && kind == FileKind::Pack => {
            make_private_dir(dir).map_err(|e| io_error(dir, e))?;
            open()
        }
        other => other,
    }
    .map_err(|e| io_error(&tmp, e))?;
    let written = file
        .write_all(data)
        .and_then(|()| file.sync_all())
        .and_then(|()| file.set_permissions(Permissions::from_mode(OBJECT_MODE)));
    drop(file);
    let linked = written.map_err(|e| io_error(&tmp, e)).and_then(|()| {
        fs::hard_link(&tmp, target).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                StorageError::AlreadyExists {
                    kind,
                    name: name.to_owned(),
                }
            } else {
                io_error(target, e)
            }
        })
    });
    // The temporary name goes either way. Failing to remove it leaves a
    // `.tmp-` file that is never listed; the object itself is in place.
    let _ = fs::remove_file(&tmp);
    linked?;
    sync_dir(dir)
}

/// Stores a spool by linking its file under `target`; where it cannot be
/// linked (another file system, no `/proc`), by copying its bytes.
fn put_file_blocking(target: &Path, kind: FileKind, name: &str, spool: &Spool) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut linked = spool.link_as(target, OBJECT_MODE);
    if matches!(&linked, Err(e) if e.kind() == io::ErrorKind::NotFound) && kind == FileKind::Pack && !dir.exists() {
        // A missing shard directory, as in `put_blocking`.
        make_private_dir(dir).map_err(|e| io_error(dir, e))?;
        linked = spool.link_as(target, OBJECT_MODE);
    }
    match linked {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StorageError::AlreadyExists {
            kind,
            name: name.to_owned(),
        }),
        Err(_) => put_blocking(target, kind, name, &spool.read_all(kind, name)?),
    }
}

fn get_range_blocking(path: &Path, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
    let (file, size) = open_object(path, kind, name)?;
    let end = offset.checked_add(len).filter(|end| *end <= size);
    if end.is_none() {
        return Err(StorageError::OutOfRange {
            kind,
            name: name.to_owned(),
            offset,
            len,
            size,
        });
    }
    // len <= size, which fits in memory for any file that could be read.
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset).map_err(|e| io_error(path, e))?;
    Ok(Bytes::from(buf))
}

/// Regular files in `dir` whose names are object names.
fn list_dir(dir: &Path, out: &mut Vec<ObjectInfo>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Deleted since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&entry.path(), e)),
        };
        if meta.is_file() {
            out.push(ObjectInfo { name, size: meta.len() });
        }
    }
    Ok(())
}

fn list_blocking(root: &Path, kind: FileKind) -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    match kind {
        FileKind::Config => {
            let path = root.join(FileKind::Config.path("config"));
            match fs::metadata(&path) {
                Ok(meta) => out.push(ObjectInfo {
                    name: "config".to_owned(),
                    size: meta.len(),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // An empty list only for a root that exists.
                    fs::metadata(root).map_err(|e| io_error(root, e))?;
                }
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        FileKind::Pack => {
            let data = root.join(kind.dir());
            for shard in fs::read_dir(&data).map_err(|e| io_error(&data, e))? {
                let shard = shard.map_err(|e| io_error(&data, e))?;
                let is_dir = shard.file_type().map_err(|e| io_error(&shard.path(), e))?.is_dir();
                if is_dir && !shard.file_name().to_string_lossy().starts_with('.') {
                    list_dir(&shard.path(), &mut out)?;
                }
            }
        }
        _ => list_dir(&root.join(kind.dir()), &mut out)?,
    }
    Ok(out)
}

#[async_trait]
impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn create(&self) -> Result<()> {
        let root = self.root.clone();
        blocking(move || create_blocking(&root)).await
    }

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        check_name(kind, name)?;
        let target = self.object_path(kind, name);
        let name = name.to_owned();
        blocking(move || put_blocking(&target, kind, &name, &data)).await
    }

    /// Spools of packs are made in `data/`, on the file system of the
    /// objects, so that storing one is a link.
    fn spool(&self, kind: FileKind) -> Result<Spool> {
        let dir = self.root.join(kind.dir());
        match Spool::create_in(&dir) {
            Ok(spool) => Ok(spool),
            // Where the repository's directory refuses, copying still works.
            Err(_) => Spool::temporary(),
        }
    }

    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, _keep: bool) -> Result<()> {
        check_name(kind, name)?;
        let target = self.object_path(kind, name);
        let name = name.to_owned();
        let spool = spool.try_clone()?;
        blocking(move || put_file_blocking(&target, kind, &name, &spool)).await
    }

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        check_name(kind, name)?;
        let path = self.object_path(kind, name);
        let name = name.to_owned();
        blocking(move || get_blocking(&path, kind, &name)).await
    }

    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        check_name(kind, name)?;
        let path = self.object_path(kind, name);
        let name = name.to_owned();
        blocking(move || get_range_blocking(&path, kind, &name, offset, len)).await
    }

    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        check_name(kind, name)?;
        let path = self.object_path(kind, name);
        let name = name.to_owned();
        blocking(move || {
            fs::metadata(&path)
                .map(|m| m.len())
                .map_err(|e| object_error(kind, &name, &path, e))
        })
        .await
    }

    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        let root = self.root.clone();
        blocking(move || list_blocking(&root, kind)).await
    }

    async fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        check_name(kind, name)?;
        let path = self.object_path(kind, name);
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, e)),
        })
        .await
    }

    async fn check_object_lock(&self) -> Result<()> {
        Err(no_object_lock(self.location()))
    }

    fn set_retention(&self, _retention: Retention) -> Result<()> {
        Err(no_object_lock(self.location()))
    }

    /// Nothing here is ever locked.
    async fn locked_until(&self, _kind: FileKind, _name: &str) -> Result<Option<i64>> {
        Ok(None)
    }

    async fn extend_lock(&self, _kind: FileKind, _name: &str, _until: i64) -> Result<()> {
        Err(no_object_lock(self.location()))
    }

    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, _keep: Keep) -> Result<Bytes> {
        self.get_range(kind, name, offset, len).await
    }

    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.put(kind, name, data).await
    }

    async fn preferred(&self, _kind: FileKind) -> Option<String> {
        None
    }

    async fn set_preferred(&self, _kind: FileKind, _name: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &tempfile::TempDir) -> LocalStorage {
        LocalStorage::new(dir.path().join("repo"))
    }

    #[tokio::test]
    async fn local_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        crate::storage::conformance::run_all(&storage(&dir)).await;
    }

    #[tokio::test]
    async fn create_lays_out_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        s.create().await.unwrap();
        for sub in ["keys", "index", "snapshots", "locks", "data/00", "data/7f", "data/ff"] {
            assert!(s.root().join(sub).is_dir(), "{sub} missing");
        }
        s.put(FileKind::Config, "config", Bytes::from_static(b"c"))
            .await
            .unwrap();
        assert!(matches!(s.create().await, Err(StorageError::AlreadyExists { .. })));
    }

    #[tokio::test]
    async fn stored_objects_are_read_only_and_no_temporary_file_remains() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        s.create().await.unwrap();
        let name = "ab".repeat(32);
        s.put(FileKind::Pack, &name, Bytes::from_static(b"pack")).await.unwrap();
        let path = s.root().join("data/ab").join(&name);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        let entries: Vec<String> = fs::read_dir(s.root().join("data/ab"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries, vec![name]);
    }

    #[tokio::test]
    async fn temporary_files_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        s.create().await.unwrap();
        fs::write(s.root().join("index/.tmp-abc-1"), b"half").unwrap();
        fs::write(s.root().join("data/12/.tmp-12ab-1"), b"half").unwrap();
        assert!(s.list(FileKind::Index).await.unwrap().is_empty());
        assert!(s.list(FileKind::Pack).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_missing_shard_directory_is_made_on_put() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        s.create().await.unwrap();
        fs::remove_dir(s.root().join("data/cd")).unwrap();
        s.put(FileKind::Pack, "cdef", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(s.get(FileKind::Pack, "cdef").await.unwrap(), Bytes::from_static(b"x"));
    }

    #[tokio::test]
    async fn a_missing_root_gives_not_found_or_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        assert!(s.get(FileKind::Config, "config").await.unwrap_err().is_not_found());
        assert!(s.size(FileKind::Index, "ab").await.unwrap_err().is_not_found());
        assert!(s
            .get_range(FileKind::Pack, "abcd", 0, 1)
            .await
            .unwrap_err()
            .is_not_found());
        for kind in FileKind::ALL {
            match s.list(kind).await {
                Err(StorageError::Io { path, .. }) => assert!(path.contains("repo"), "{path}"),
                other => panic!("list {kind} of a missing root gave {other:?}"),
            }
        }
        let put = s.put(FileKind::Snapshot, "ab", Bytes::new()).await.unwrap_err();
        assert!(put.to_string().contains("repo"), "{put}");
    }

    #[tokio::test]
    async fn directories_are_the_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        s.create().await.unwrap();
        fs::remove_dir(s.root().join("data/cd")).unwrap();
        s.put(FileKind::Pack, "cdef", Bytes::from_static(b"x")).await.unwrap();
        s.put(FileKind::Key, "k1", Bytes::from_static(b"key")).await.unwrap();
        for sub in ["", "keys", "index", "snapshots", "locks", "data", "data/00", "data/cd"] {
            let mode = fs::metadata(s.root().join(sub)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{sub:?}");
        }
        let mode = fs::metadata(s.root().join("keys/k1")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
    }

    /// The error of reading the config after `replace` put something in its place.
    async fn config_read_error(replace: impl FnOnce(&Path)) -> StorageError {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        s.create().await.unwrap();
        replace(&s.root().join("config"));
        let read = tokio::time::timeout(std::time::Duration::from_secs(60), s.get(FileKind::Config, "config"));
        read.await.expect("reading the config hangs").unwrap_err()
    }

    #[tokio::test]
    async fn a_fifo_config_is_refused_at_once() {
        let e = config_read_error(|p| nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).unwrap()).await;
        assert!(matches!(e, StorageError::NotAFile { what: "a FIFO", .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("config") && msg.contains("FIFO"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[tokio::test]
    async fn a_config_linked_to_a_device_is_refused() {
        let e = config_read_error(|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap()).await;
        assert!(
            matches!(
                e,
                StorageError::NotAFile {
                    what: "a symbolic link",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = config_read_error(|p| fs::create_dir(p).unwrap()).await;
        assert!(
            matches!(
                e,
                StorageError::NotAFile {
                    what: "a directory",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_config_is_refused_before_it_is_read() {
        let e = config_read_error(|p| {
            let f = File::create(p).unwrap();
            // Sparse: no bytes are written, the size alone is huge.
            f.set_len(1 << 40).unwrap();
        })
        .await;
        assert!(
            matches!(
                e,
                StorageError::TooLarge {
                    kind: FileKind::Config,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("config"), "{e}");
    }

    #[tokio::test]
    async fn ranges_refuse_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        s.create().await.unwrap();
        let name = "ab".repeat(32);
        nix::unistd::mkfifo(&s.root().join("data/ab").join(&name), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = s.get_range(FileKind::Pack, &name, 0, 4).await.unwrap_err();
        assert!(matches!(e, StorageError::NotAFile { .. }), "{e:?}");
    }
}
