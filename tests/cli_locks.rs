//! End-to-end tests of repository locks: commands that meet a live lock,
//! `--retry-lock`, `cairn unlock`, and backups that leave no lock behind.

mod cli_support;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::format::lock::{Lock, LockKind};
use cairn::repo::lock::ProcessSpace;
use cairn::repo::{now_ns, Repository};
use cairn::storage::local::LocalStorage;
use cairn::storage::FileKind;
use cli_support::*;

/// A repository with cheap key derivation and a small source tree.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"locked in\n").unwrap();
    init(&repo, &["--kdf-memory", "8192"]);
    (tmp, repo, src)
}

/// A process that stays alive until killed; its pid names a live holder.
struct Holder(Child);

impl Holder {
    fn spawn() -> Self {
        Self(Command::new("sleep").arg("600").spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes a lock of `kind` for `pid` on this host into the repository, as
/// another cairn process would; returns the lock file's name.
fn plant_lock(repo: &Path, kind: LockKind, pid: u32) -> String {
    let r = Repository::open(Arc::new(LocalStorage::new(repo.to_path_buf())), PASSWORD.as_bytes()).unwrap();
    let now = now_ns();
    let space = ProcessSpace::current();
    let lock = Lock {
        time_ns: now,
        expires_ns: now + 1_800_000_000_000,
        hostname: space.hostname,
        username: "alice".into(),
        pid,
        kind,
        boot_id: space.boot_id,
        pid_ns: space.pid_ns,
    };
    r.save_file(FileKind::Lock, &lock.encode()).unwrap()
}

fn lock_files(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    names.sort();
    names
}

/// Asserts a command failed with exit code 11 and one line naming the holder.
fn assert_locked(out: &std::process::Output, pid: u32, lock: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected: {stderr}");
    let host = cairn::repo::hostname();
    for part in [
        "locked",
        "exclusive lock",
        &lock[..8],
        &format!("alice@{host}"),
        &format!("pid {pid}"),
    ] {
        assert!(stderr.contains(part), "{stderr:?} lacks {part:?}");
    }
}

#[test]
fn backup_meets_a_live_exclusive_lock_and_fails_with_exit_code_11() {
    let (_tmp, repo, src) = setup();
    let holder = Holder::spawn();
    let lock = plant_lock(&repo, LockKind::Exclusive, holder.pid());
    let out = cairn(&repo).arg("backup").arg(&src).output().unwrap();
    assert_locked(&out, holder.pid(), &lock);
    assert_eq!(snapshot_count(&repo), 0);
    assert_eq!(lock_files(&repo), vec![lock], "only the holder's lock remains");
}

#[test]
fn retry_lock_waits_about_that_long_then_fails() {
    let (_tmp, repo, src) = setup();
    let holder = Holder::spawn();
    let lock = plant_lock(&repo, LockKind::Exclusive, holder.pid());
    let start = Instant::now();
    let out = cairn(&repo)
        .args(["--retry-lock", "2s", "backup"])
        .arg(&src)
        .output()
        .unwrap();
    let waited = start.elapsed();
    assert_locked(&out, holder.pid(), &lock);
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}");
    assert_eq!(lock_files(&repo), vec![lock]);
}

#[test]
fn a_bad_retry_lock_duration_is_a_usage_error() {
    let (_tmp, repo, src) = setup();
    let out = cairn(&repo)
        .args(["--retry-lock", "2 hours", "backup"])
        .arg(&src)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--retry-lock") && stderr.contains("2 hours"),
        "{stderr}"
    );
}

#[test]
fn unlock_keeps_a_live_lock_and_removes_it_once_its_process_is_gone() {
    let (_tmp, repo, _src) = setup();
    let mut holder = Holder::spawn();
    let lock = plant_lock(&repo, LockKind::Exclusive, holder.pid());
    let out = cairn(&repo).arg("unlock").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "removed 0 stale locks");
    assert_eq!(lock_files(&repo), vec![lock]);

    holder.kill();
    let out = cairn(&repo).arg("unlock").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "removed 1 stale lock");
    assert!(lock_files(&repo).is_empty());
}

#[test]
fn unlock_remove_all_removes_live_locks() {
    let (_tmp, repo, src) = setup();
    let holder = Holder::spawn();
    plant_lock(&repo, LockKind::Exclusive, holder.pid());
    plant_lock(&repo, LockKind::Shared, holder.pid());
    let out = cairn(&repo)
        .args(["--json", "unlock", "--remove-all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["removed"], 2, "{v}");
    assert!(lock_files(&repo).is_empty());
    cairn(&repo).arg("backup").arg(&src).assert().success();
}

#[test]
fn shared_locks_let_check_run_but_stop_key_remove() {
    let (_tmp, repo, _src) = setup();
    let holder = Holder::spawn();
    let lock = plant_lock(&repo, LockKind::Shared, holder.pid());
    cairn(&repo).arg("check").assert().success();
    let out = cairn(&repo).args(["key", "remove", "00"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    assert!(
        stderr.contains("shared lock") && stderr.contains(&lock[..8]),
        "{stderr}"
    );
    assert_eq!(lock_files(&repo), vec![lock]);
}

#[test]
fn backup_holds_a_shared_lock_while_it_runs_and_leaves_none_behind() {
    let (tmp, repo, _src) = setup();
    // The command runs inside the backup, so it sees the backup's lock.
    let count = tmp.path().join("count");
    let script = format!(
        "ls {} | grep -cv '^\\.tmp-' > {}",
        repo.join("locks").display(),
        count.display()
    );
    cairn(&repo)
        .args([
            "backup",
            "--stdin-from-command",
            "--stdin-filename",
            "x",
            "--",
            "sh",
            "-c",
        ])
        .arg(&script)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "1");
    assert!(lock_files(&repo).is_empty(), "lock left after a successful backup");
    assert_eq!(snapshot_count(&repo), 1);

    // A failing run (the command exits non-zero) removes its lock too.
    let out = cairn(&repo)
        .args(["backup", "--stdin-from-command", "--stdin-filename", "y", "--", "false"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(lock_files(&repo).is_empty(), "lock left after a failed backup");

    // So does one that fails on a missing source path.
    let out = cairn(&repo)
        .arg("backup")
        .arg(tmp.path().join("missing"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(lock_files(&repo).is_empty(), "lock left after a failed backup");
    assert_eq!(snapshot_count(&repo), 1);
}

#[test]
fn prune_and_forget_run_beside_backups_but_not_beside_their_own_kind() {
    let (_tmp, repo, src) = setup();
    cairn(&repo).arg("backup").arg(&src).assert().success();
    cairn(&repo).arg("backup").arg(&src).assert().success();
    let holder = Holder::spawn();
    // A backup is running.
    let shared = plant_lock(&repo, LockKind::Shared, holder.pid());
    cairn(&repo).arg("prune").assert().success();
    // A scheduled `forget --prune` does not wait for the backup.
    let out = cairn(&repo)
        .args(["forget", "--keep-last", "1", "--prune"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(snapshot_count(&repo), 1);
    // Deleting at once needs the repository to itself.
    let out = cairn(&repo).args(["prune", "--instant-delete"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    assert!(
        stderr.contains("shared lock") && stderr.contains(&shared[..8]),
        "{stderr}"
    );
    // A dry run changes nothing and takes no lock.
    cairn(&repo)
        .args(["forget", "--keep-last", "1", "--dry-run"])
        .assert()
        .success();

    let forgetting = plant_lock(&repo, LockKind::Forget, holder.pid());
    let out = cairn(&repo).args(["forget", "--keep-last", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    assert!(
        stderr.contains("forget lock") && stderr.contains(&forgetting[..8]),
        "{stderr}"
    );
    // A prune runs beside a forget.
    cairn(&repo).arg("prune").assert().success();

    let pruning = plant_lock(&repo, LockKind::Prune, holder.pid());
    let out = cairn(&repo).arg("prune").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    assert!(
        stderr.contains("prune lock") && stderr.contains(&pruning[..8]),
        "{stderr}"
    );
    // `forget --prune` takes both of its locks before it removes anything.
    std::fs::remove_file(repo.join("locks").join(&forgetting)).unwrap();
    cairn(&repo).arg("backup").arg(&src).assert().success();
    let out = cairn(&repo)
        .args(["forget", "--keep-last", "1", "--prune"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(snapshot_count(&repo), 2);
    let mut left = vec![shared, pruning];
    left.sort();
    assert_eq!(lock_files(&repo), left);
}

#[test]
fn a_lock_of_another_pid_namespace_on_this_host_is_not_stale() {
    let (_tmp, repo, _src) = setup();
    let r = Repository::open(Arc::new(LocalStorage::new(repo.clone())), PASSWORD.as_bytes()).unwrap();
    let space = ProcessSpace::current();
    // The pid of a process that has ended, here.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let now = now_ns();
    // Another container on this node, with host networking: same host
    // name, same kernel, its own pid namespace.
    let lock = Lock {
        time_ns: now,
        expires_ns: now + 1_800_000_000_000,
        hostname: space.hostname.clone(),
        username: "alice".into(),
        pid,
        kind: LockKind::Exclusive,
        boot_id: space.boot_id.clone(),
        pid_ns: space.pid_ns + 1,
    };
    let name = r.save_file(FileKind::Lock, &lock.encode()).unwrap();
    let out = cairn(&repo).arg("unlock").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "removed 0 stale locks");
    let out = cairn(&repo).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(11), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lock_files(&repo), vec![name]);
    // The same lock from this pid namespace names a process that is gone.
    let here = Lock {
        pid_ns: space.pid_ns,
        ..lock
    };
    r.save_file(FileKind::Lock, &here.encode()).unwrap();
    let out = cairn(&repo).arg("unlock").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "removed 1 stale lock");
}

#[test]
fn a_backup_whose_lock_file_is_removed_just_before_its_snapshot_fails_without_one() {
    let (_tmp, repo, _src) = setup();
    // The command's last act, right before the backup writes its snapshot,
    // removes every lock file, as `unlock --remove-all` elsewhere would.
    let script = format!("echo data; rm -f {}/*", repo.join("locks").display());
    let out = cairn(&repo)
        .args([
            "backup",
            "--stdin-from-command",
            "--stdin-filename",
            "x",
            "--",
            "sh",
            "-c",
        ])
        .arg(&script)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("removed by another process"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(snapshot_count(&repo), 0);
}
