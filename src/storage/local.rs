//! Local directory backend.
//!
//! Objects live under the root in the repository layout. A put writes a
//! temporary file (`.tmp-…`) in the target's directory, fsyncs it, makes it
//! read-only, and hard-links it under its final name, which fails rather than
//! replace an existing object; the directory is then fsynced, so the object
//! is durable when `put` returns. Blocking file system calls run on tokio's
//! blocking pool.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::{check_name, FileKind, ObjectInfo, Result, Storage, StorageError};

/// Prefix of files being written; never listed.
const TMP_PREFIX: &str = ".tmp-";

/// Mode of stored objects: nothing rewrites them.
const OBJECT_MODE: u32 = 0o444;

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
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
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
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(dir, e)),
            }
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

fn get_range_blocking(path: &Path, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
    let file = File::open(path).map_err(|e| object_error(kind, name, path, e))?;
    let size = file.metadata().map_err(|e| io_error(path, e))?.len();
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

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        check_name(kind, name)?;
        let path = self.object_path(kind, name);
        let name = name.to_owned();
        blocking(move || {
            fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| object_error(kind, &name, &path, e))
        })
        .await
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
        assert_eq!(mode, 0o444);
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
}
