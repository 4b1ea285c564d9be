//! Crash safety of the `cairn` binary: a backup killed at any moment leaves
//! the repository usable, and a full target disk fails a restore cleanly.

mod cli_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cli_support::*;

const DATA_FILES: usize = 10;
const FILE_SIZE: usize = 4_000_000;

fn index_files(repo: &Path) -> usize {
    object_count(&repo.join("index"))
}

/// When a killed backup is killed: once it has stored this many new packs,
/// or as soon as it has written an index file. Counting its own writes
/// keeps the kill points the same however fast the machine is.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    NewPacks(usize),
    NewIndex,
}

fn pack_files(repo: &Path) -> usize {
    object_count(&repo.join("data"))
}

/// Starts a backup of `data` and kills it (SIGKILL) at `at`; returns
/// whether it was killed before finishing.
fn killed_backup(repo: &Path, data: &Path, at: KillAt) -> bool {
    let indexes_before = index_files(repo);
    let packs_before = pack_files(repo);
    let bin = assert_cmd::cargo::cargo_bin("cairn");
    let mut child = std::process::Command::new(bin)
        .env("CAIRN_PASSWORD", PASSWORD)
        .arg("-r")
        .arg(repo)
        .arg("-q")
        .arg("backup")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let due = match at {
            KillAt::NewPacks(n) => pack_files(repo) >= packs_before + n,
            KillAt::NewIndex => index_files(repo) > indexes_before,
        };
        if due || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Child::kill sends SIGKILL: no cleanup code of the backup runs.
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

fn snapshots_via_library(repo: &Path) -> usize {
    let storage = Arc::new(LocalStorage::new(repo.to_owned()));
    let repo = Repository::open(storage, PASSWORD.as_bytes()).unwrap();
    repo.list_snapshots().unwrap().len()
}

fn assert_restores(repo: &Path, id: &str, source: &Path, target: &Path) {
    cairn(repo)
        .arg("restore")
        .arg(id)
        .arg("--target")
        .arg(target)
        .assert()
        .success();
    let want = describe(source);
    let got = describe(&restored(target, source));
    assert_same_tree(&want, &got);
    fs::remove_dir_all(target).unwrap();
}

#[test]
fn killed_backups_leave_a_usable_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let early = tmp.path().join("early");
    let data = tmp.path().join("data");
    fs::create_dir_all(&early).unwrap();
    fs::write(early.join("one"), pseudo_random(300_000, 1)).unwrap();
    fs::write(early.join("two"), b"two").unwrap();
    fs::create_dir_all(&data).unwrap();
    for i in 0..DATA_FILES {
        fs::write(data.join(format!("f{i:02}")), pseudo_random(FILE_SIZE, 100 + i as u64)).unwrap();
    }
    let data_size = (DATA_FILES * FILE_SIZE) as u64;
    init(&repo, &["--chunk-size", "64K", "--pack-size", "1M"]);
    let out = cairn(&repo).arg("--json").arg("backup").arg(&early).output().unwrap();
    assert!(out.status.success());
    let early_id = json_summary(&out)["snapshot_id"].as_str().unwrap().to_owned();
    let target = tmp.path().join("target");

    let mut killed = 0;
    let mut snapshots = 1;
    // A whole backup stores about 40 packs and writes its first index file
    // after 32: every kill point falls in the middle of a run.
    for at in [
        KillAt::NewPacks(1),
        KillAt::NewPacks(3),
        KillAt::NewPacks(8),
        KillAt::NewPacks(16),
        KillAt::NewIndex,
    ] {
        let was_killed = killed_backup(&repo, &data, at);
        // A backup that finished first, or was killed after its snapshot was
        // stored (the last write), leaves one complete snapshot.
        if !was_killed || snapshots_via_library(&repo) == snapshots + 1 {
            snapshots += 1;
        } else {
            killed += 1;
        }
        assert_eq!(
            snapshots_via_library(&repo),
            snapshots,
            "a killed backup must not leave a snapshot"
        );
        assert_eq!(snapshot_count(&repo), snapshots);
        assert_restores(&repo, &early_id, &early, &target);
    }
    assert!(
        killed >= 3,
        "the backups finished before they could be killed ({killed} killed)"
    );
    let indexes_before = index_files(&repo);
    assert!(indexes_before >= 2, "the last killed backup wrote no index file");

    // A full backup now succeeds and reuses the packs indexed by the killed runs.
    let out = cairn(&repo).arg("--json").arg("backup").arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = json_summary(&out);
    let added = summary["data_added"].as_u64().unwrap();
    assert!(
        added < data_size,
        "the backup stored all {added} bytes again: {summary}"
    );
    if summary["total_duration"].as_f64().unwrap() > 1.5 {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(r#""message_type":"status""#),
            "no status lines: {stdout}"
        );
    }
    let id = summary["snapshot_id"].as_str().unwrap().to_owned();
    assert_restores(&repo, &id, &data, &target);
    assert_restores(&repo, &early_id, &early, &target);

    let storage = Arc::new(LocalStorage::new(repo.clone()));
    let indexed = Repository::open(storage, PASSWORD.as_bytes())
        .unwrap()
        .load_index()
        .unwrap();
    assert_eq!(indexed.index().duplicates(), 0, "a blob is indexed twice");
    let indexed_bytes: u64 = indexed.index().packs().map(|(_, size)| size).sum();
    assert!(
        indexed_bytes < data_size * 3 / 2,
        "indexed packs hold {indexed_bytes} bytes for {data_size} bytes of data"
    );
    // Packs of killed runs that no index names are garbage for prune; they
    // are bounded by what the runs could upload between two index files.
    let (_, on_disk) = files_and_size(&repo.join("data"));
    assert!(on_disk >= indexed_bytes);
}

/// Unmounts a tmpfs when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn mount_small_tmpfs(dir: &Path) -> Option<Mount> {
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| Mount(dir.to_owned()))
}

#[test]
fn restore_into_a_full_or_unwritable_target_fails_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), pseudo_random(5 << 20, 5)).unwrap();
    init(&repo, &[]);
    cairn(&repo).arg("backup").arg(&src).assert().success();

    let place = tmp.path().join("place");
    fs::create_dir_all(&place).unwrap();
    let mounted = if is_root() { mount_small_tmpfs(&place) } else { None };
    let (target, expected) = match (&mounted, is_root()) {
        (Some(_), _) => (place.join("out"), "No space left on device"),
        (None, false) => {
            fs::set_permissions(&place, fs::Permissions::from_mode(0o555)).unwrap();
            (place.join("out"), "Permission denied")
        }
        (None, true) => {
            // Root without mount rights: a path below a regular file.
            fs::write(place.join("file"), b"x").unwrap();
            (place.join("file/out"), "Not a directory")
        }
    };
    let out = cairn(&repo)
        .arg("restore")
        .arg("latest")
        .arg("--target")
        .arg(&target)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(expected), "{stderr}");
    assert!(stderr.contains(place.to_str().unwrap()), "{stderr}");
    if mounted.is_some() {
        // The incomplete file was removed again.
        let file = restored(&target, &src).join("big.bin");
        assert!(!file.exists(), "{} was left behind", file.display());
    }
    drop(mounted);
    let _ = fs::set_permissions(&place, fs::Permissions::from_mode(0o755));
}
