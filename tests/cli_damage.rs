//! Damaged repositories through the binary: every command that meets the
//! damage stops with one line naming the object, and a restore never leaves
//! a file with wrong content.

mod cli_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn::format::BlobKind;
use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cli_support::{cairn, pseudo_random, PASSWORD};

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    src: PathBuf,
    target: PathBuf,
}

impl Fixture {
    /// The repository, opened through the library, with its index.
    fn indexed(&self) -> cairn::repo::IndexedRepository {
        let storage = Arc::new(LocalStorage::new(self.repo.clone()));
        Repository::open(storage, PASSWORD.as_bytes())
            .unwrap()
            .load_index()
            .unwrap()
    }

    /// Every indexed blob with its full id.
    fn indexed_blobs(&self) -> Vec<(cairn::id::BlobId, cairn::repo::BlobLocation)> {
        cli_support::indexed_blobs(&self.indexed())
    }

    /// Where a pack file lives in the local repository.
    fn pack_path(&self, pack: &cairn::id::PackId) -> PathBuf {
        let name = pack.to_hex();
        self.repo.join("data").join(&name[..2]).join(name)
    }
}

/// A repository with one snapshot of a small tree.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(300_000, 1)).unwrap();
    fs::write(src.join("sub/b.txt"), b"hello b").unwrap();
    cairn(&repo)
        .args([
            "init",
            "--chunk-size",
            "64K",
            "--pack-size",
            "1M",
            "--kdf-memory",
            "8192",
        ])
        .assert()
        .success();
    cairn(&repo).arg("backup").arg(&src).assert().success();
    let target = dir.path().join("target");
    Fixture {
        _dir: dir,
        repo,
        src,
        target,
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_in(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(path).unwrap();
    change(&mut bytes);
    fs::write(path, bytes).unwrap();
}

/// Runs a command expected to fail; returns its stderr.
fn fails(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    err
}

/// Restoring must fail naming `what`, and every file it left behind must
/// hold exactly the source's bytes.
fn restore_fails_naming(fx: &Fixture, what: &str) {
    let err = fails(cairn(&fx.repo).args(["restore", "latest", "--target"]).arg(&fx.target));
    assert!(err.contains(what), "{what} not named in: {err}");
    if fx.target.exists() {
        let restored_root = cli_support::restored(&fx.target, &fx.src);
        for file in files_in(&fx.target) {
            let rel = file
                .strip_prefix(&restored_root)
                .unwrap_or_else(|_| panic!("unexpected file {}", file.display()));
            assert_eq!(
                fs::read(&file).unwrap(),
                fs::read(fx.src.join(rel)).unwrap(),
                "{} has wrong bytes",
                file.display()
            );
        }
    }
}

fn only(dir: &Path) -> PathBuf {
    let files = files_in(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn truncated_pack_is_named_by_restore() {
    let fx = fixture();
    let mut named = Vec::new();
    for pack in files_in(&fx.repo.join("data")) {
        edit(&pack, |b| b.truncate(b.len() / 2));
        named.push(pack.file_name().unwrap().to_string_lossy().into_owned());
    }
    let err = fails(cairn(&fx.repo).args(["restore", "latest", "--target"]).arg(&fx.target));
    assert!(
        named.iter().any(|n| err.contains(n.as_str())),
        "no pack named in: {err}"
    );
}

#[test]
fn truncated_snapshot_is_named_by_snapshots_and_restore() {
    let fx = fixture();
    let snap = only(&fx.repo.join("snapshots"));
    let id = snap.file_name().unwrap().to_string_lossy().into_owned();
    edit(&snap, |b| b.truncate(b.len() - 7));
    let err = fails(cairn(&fx.repo).arg("snapshots"));
    assert!(err.contains(&id), "{err}");
    restore_fails_naming(&fx, &id);
    let err = fails(cairn(&fx.repo).args(["cat", "snapshot", &id]));
    assert!(err.contains(&id), "{err}");
}

#[test]
fn flipped_byte_in_a_tree_is_named_by_restore_ls_and_cat() {
    let fx = fixture();
    let indexed = fx.indexed();
    let snapshot = &indexed.list_snapshots().unwrap()[0].1;
    let root = cairn::id::BlobId::from(snapshot.tree);
    let loc = indexed.index().get(BlobKind::Tree, &root).unwrap();
    let pack = fx.pack_path(&loc.pack);
    edit(&pack, |b| b[(loc.offset + loc.length / 2) as usize] ^= 0x40);
    let id = root.to_hex();
    restore_fails_naming(&fx, &id);
    assert!(
        !fx.target.exists() || files_in(&fx.target).is_empty(),
        "nothing is restored without its tree"
    );
    let err = fails(cairn(&fx.repo).args(["ls", "latest"]));
    assert!(err.contains(&id), "{err}");
    let err = fails(cairn(&fx.repo).args(["cat", "tree", &id]));
    assert!(err.contains(&id), "{err}");
}

#[test]
fn flipped_byte_in_an_index_is_named_by_restore() {
    let fx = fixture();
    let index = only(&fx.repo.join("index"));
    let id = index.file_name().unwrap().to_string_lossy().into_owned();
    edit(&index, |b| {
        let mid = b.len() / 2;
        b[mid] ^= 1;
    });
    restore_fails_naming(&fx, &id);
    let err = fails(cairn(&fx.repo).args(["cat", "index", &id]));
    assert!(err.contains(&id), "{err}");
}

#[test]
fn flipped_byte_in_a_data_blob_is_named_and_never_restored() {
    let fx = fixture();
    let (id, loc) = fx
        .indexed_blobs()
        .into_iter()
        .find(|(_, l)| l.kind == BlobKind::Data && l.raw_length > 1000)
        .unwrap();
    let pack = fx.pack_path(&loc.pack);
    edit(&pack, |b| b[(loc.offset + loc.length / 2) as usize] ^= 0x01);
    restore_fails_naming(&fx, &id.to_hex());
    let err = fails(cairn(&fx.repo).args(["cat", "blob", &id.to_hex()]));
    assert!(err.contains(&id.to_hex()), "{err}");
}

#[test]
fn missing_pack_is_named_by_restore() {
    let fx = fixture();
    let (_, loc) = fx
        .indexed_blobs()
        .into_iter()
        .find(|(_, l)| l.kind == BlobKind::Data)
        .unwrap();
    let name = loc.pack.to_hex();
    fs::remove_file(fx.pack_path(&loc.pack)).unwrap();
    restore_fails_naming(&fx, &name);
}

/// The local index tables kept for the fixture's repository.
fn tables(fx: &Fixture) -> Vec<PathBuf> {
    let cache = cli_support::cache_of(&fx.repo);
    if !cache.exists() {
        return Vec::new();
    }
    files_in(&cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "table"))
        .collect()
}

#[test]
fn a_damaged_index_table_is_rebuilt_with_a_warning_and_never_trusted() {
    let fx = fixture();
    let described = cli_support::describe(&fx.src);
    for (round, damage) in ["head", "truncated", "entries"].into_iter().enumerate() {
        let found = tables(&fx);
        assert_eq!(found.len(), 1, "{found:?}");
        edit(&found[0], |bytes| match damage {
            "head" => bytes[30] ^= 1,
            "truncated" => bytes.truncate(bytes.len() - 1),
            _ => {
                // Every entry byte of every bucket.
                let len = bytes.len();
                for b in &mut bytes[len / 2..] {
                    *b ^= 0x55;
                }
            }
        });
        fs::write(
            fx.src.join(format!("new-{round}.bin")),
            pseudo_random(200_000, 40 + round as u64),
        )
        .unwrap();
        let out = cairn(&fx.repo).arg("backup").arg(&fx.src).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{damage}: {err}");
        let warnings = err.lines().filter(|l| l.contains("local index table")).count();
        assert_eq!(warnings, 1, "{damage}: one warning expected: {err}");
        assert!(err.contains("unusable"), "{err}");
    }
    // A table that failed while in use is gone; the next open rebuilds it.
    assert!(tables(&fx).is_empty());
    cairn(&fx.repo).args(["check", "--read-data"]).assert().success();
    cairn(&fx.repo)
        .args(["restore", "latest", "--target"])
        .arg(&fx.target)
        .assert()
        .success();
    assert_eq!(tables(&fx).len(), 1);
    let mut want = cli_support::describe(&fx.src);
    want.retain(|path, _| described.contains_key(path) || path.to_string_lossy().contains("new-"));
    cli_support::assert_same_tree(
        &want,
        &cli_support::describe(&cli_support::restored(&fx.target, &fx.src)),
    );
}

#[test]
fn no_cache_keeps_the_index_in_memory_and_writes_no_table() {
    let fx = fixture();
    fs::remove_dir_all(cli_support::cache_of(&fx.repo)).unwrap();
    fs::write(fx.src.join("more.bin"), pseudo_random(100_000, 9)).unwrap();
    cairn(&fx.repo)
        .args(["--no-cache", "backup"])
        .arg(&fx.src)
        .assert()
        .success();
    cairn(&fx.repo)
        .args(["--no-cache", "check", "--read-data"])
        .assert()
        .success();
    assert!(tables(&fx).is_empty());
    assert!(!cli_support::cache_of(&fx.repo).exists());
    // With the cache again, a table is written and agrees.
    cairn(&fx.repo).args(["check"]).assert().success();
    cairn(&fx.repo).arg("backup").arg(&fx.src).assert().success();
    assert_eq!(tables(&fx).len(), 1);
}
