//! End-to-end tests of `cairn backup` and `cairn restore` on a local repository.

mod cli_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cli_support::*;

/// A tree with the kinds of entries and metadata a backup must keep.
fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("nested/deeper")).unwrap();
    fs::write(src.join("a.txt"), b"hello, cairn\n").unwrap();
    fs::set_permissions(src.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    // Not every file system has user xattrs; where it does, one must survive.
    let _ = xattr::set(src.join("a.txt"), "user.comment", b"kept");
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("nested/deeper/empty2"), b"").unwrap();
    fs::write(src.join("nested/deeper/c.txt"), b"first version\n").unwrap();
    fs::write(src.join("big.bin"), pseudo_random(5 << 20, 7)).unwrap();
    fs::write(src.join("suid"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    fs::write(src.join("hl1"), b"linked twice\n").unwrap();
    fs::hard_link(src.join("hl1"), src.join("nested/hl2")).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut t = 1_600_000_000_123_456_789i64;
    for rel in [
        "a.txt",
        "empty",
        "nested/deeper/empty2",
        "nested/deeper/c.txt",
        "big.bin",
        "suid",
        "link",
        "hl1",
        "fifo",
        "nested/deeper",
        "nested",
    ] {
        set_mtime_ns(&src.join(rel), t);
        t += 1_000_000_007;
    }
}

fn backup_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let out = cairn(repo).arg("--json").arg("backup").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_summary(&out)
}

fn restore_ok(repo: &Path, spec: &str, target: &Path, extra: &[&str]) -> String {
    let out = cairn(repo)
        .arg("restore")
        .arg(spec)
        .arg("--target")
        .arg(target)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn round_trip_keeps_bytes_and_metadata_across_incremental_backups() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let repo = tmp.path().join("repo");
    build_tree(&src);
    init(&repo, &[]);
    let first_state = describe(&src);
    let has_xattr = !first_state[Path::new("a.txt")].xattrs.is_empty();

    // Human output on a pipe: the summary on stdout, nothing on stderr.
    let out = cairn(&repo).arg("backup").arg(&src).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Files:") && stdout.contains("saved"), "{stdout}");
    let first = fs::read_dir(repo.join("snapshots")).unwrap().next().unwrap().unwrap();
    let first_id = first.file_name().to_string_lossy().into_owned();

    let out1 = tmp.path().join("out1");
    restore_ok(&repo, &first_id[..8], &out1, &[]);
    let restored_src = restored(&out1, &src);
    assert_same_tree(&first_state, &describe(&restored_src));
    let md1 = fs::metadata(restored_src.join("hl1")).unwrap();
    let md2 = fs::metadata(restored_src.join("nested/hl2")).unwrap();
    assert_eq!(md1.ino(), md2.ino(), "hard links must share an inode");
    assert_eq!(md1.nlink(), 2);
    assert_eq!(first_state[Path::new("fifo")].kind, "fifo");
    assert_eq!(fs::read_link(restored_src.join("link")).unwrap(), Path::new("a.txt"));
    if has_xattr {
        let got = xattr::get(restored_src.join("a.txt"), "user.comment").unwrap();
        assert_eq!(got.as_deref(), Some(&b"kept"[..]));
    }

    // Modify one file, add one, delete one.
    fs::write(src.join("nested/deeper/c.txt"), b"second version, longer\n").unwrap();
    set_mtime_ns(&src.join("nested/deeper/c.txt"), 1_700_000_000_000_000_001);
    fs::write(src.join("new.txt"), b"new file\n").unwrap();
    fs::remove_file(src.join("empty")).unwrap();
    let second_state = describe(&src);
    let summary = backup_json(&repo, &[src.to_str().unwrap()]);
    assert_eq!(summary["files_changed"], 1, "{summary}");
    assert_eq!(summary["files_new"], 1, "{summary}");
    // a.txt, empty2, big.bin, suid, hl1, hl2
    assert_eq!(summary["files_unmodified"], 6, "{summary}");
    assert_eq!(
        summary["parent"],
        serde_json::Value::from(first_id.clone()),
        "{summary}"
    );
    assert!(summary["data_added"].as_u64().unwrap() < 1 << 20, "{summary}");
    let second_id = summary["snapshot_id"].as_str().unwrap().to_owned();

    // Each snapshot restores to the tree as it was when it was taken.
    let out1b = tmp.path().join("out1b");
    restore_ok(&repo, &first_id, &out1b, &[]);
    assert_same_tree(&first_state, &describe(&restored(&out1b, &src)));
    let out2 = tmp.path().join("out2");
    let text = restore_ok(&repo, &second_id, &out2, &["--verify"]);
    // Eight regular files; the second name of the hard link pair is a link.
    assert!(
        text.contains("verified 7 files") && text.contains("1 hard links"),
        "{text}"
    );
    assert_same_tree(&second_state, &describe(&restored(&out2, &src)));
    assert!(!restored(&out2, &src).join("empty").exists());
}

#[test]
fn excludes_leave_entries_out() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(src.join("cache/inner")).unwrap();
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("keep.txt"), b"keep").unwrap();
    fs::write(src.join("a.log"), b"log").unwrap();
    fs::write(src.join("sub/b.log"), b"log").unwrap();
    fs::write(src.join("sub/SHOUT.TMP"), b"tmp").unwrap();
    fs::write(src.join("sub/listed"), b"listed").unwrap();
    fs::write(src.join("cache/.nobackup"), b"").unwrap();
    fs::write(src.join("cache/inner/data"), b"cached").unwrap();
    let exclude_file = tmp.path().join("excludes");
    fs::write(&exclude_file, "# comment\n\nlisted\n").unwrap();
    init(&repo, &[]);
    let summary = backup_json(
        &repo,
        &[
            "--exclude",
            "*.log",
            "--iexclude",
            "*.tmp",
            "--exclude-if-present",
            ".nobackup",
            "--exclude-file",
            exclude_file.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(summary["files_new"], 1, "{summary}");
    let out = tmp.path().join("out");
    restore_ok(&repo, "latest", &out, &[]);
    let got: Vec<_> = describe(&restored(&out, &src)).into_keys().collect();
    assert_eq!(got, [Path::new("keep.txt"), Path::new("sub")]);
}

#[test]
fn stdin_and_command_output_become_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, &[]);
    let out = cairn(&repo)
        .args([
            "--json",
            "backup",
            "--stdin",
            "--stdin-filename",
            "note.txt",
            "--tag",
            "a,b",
        ])
        .write_stdin("hello from stdin\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = json_summary(&out)["snapshot_id"].as_str().unwrap().to_owned();
    let target = tmp.path().join("t1");
    restore_ok(&repo, &id, &target, &[]);
    assert_eq!(fs::read(target.join("note.txt")).unwrap(), b"hello from stdin\n");

    let summary = backup_json(
        &repo,
        &[
            "--stdin-from-command",
            "--stdin-filename",
            "db.sql",
            "--",
            "sh",
            "-c",
            "printf 'dump %s' data",
        ],
    );
    let id = summary["snapshot_id"].as_str().unwrap();
    let target = tmp.path().join("t2");
    restore_ok(&repo, id, &target, &[]);
    assert_eq!(fs::read(target.join("db.sql")).unwrap(), b"dump data");

    // `latest` with a tag filter finds the stdin snapshot, not the newer one.
    let target = tmp.path().join("t3");
    restore_ok(&repo, "latest", &target, &["--tag", "a"]);
    assert!(target.join("note.txt").exists() && !target.join("db.sql").exists());

    let before = snapshot_count(&repo);
    let out = cairn(&repo)
        .args([
            "backup",
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            "echo partial; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exit status: 3") && stderr.contains("sh -c"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = cairn(&repo)
        .args(["backup", "--stdin-from-command", "--", "/no/such/program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/program"));
    assert_eq!(
        snapshot_count(&repo),
        before,
        "a failed command must not leave a snapshot"
    );
}

#[test]
fn subpath_restore_and_dry_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(src.join("sub/inner")).unwrap();
    fs::write(src.join("top.txt"), b"top").unwrap();
    fs::write(src.join("sub/inner/deep.txt"), b"deep").unwrap();
    init(&repo, &[]);

    let dry = backup_json(&repo, &["--dry-run", src.to_str().unwrap()]);
    assert!(dry["snapshot_id"].is_null(), "{dry}");
    assert_eq!(dry["files_new"], 2, "{dry}");
    assert_eq!(snapshot_count(&repo), 0, "a dry run must not save a snapshot");
    let out = cairn(&repo).args(["backup", "-n"]).arg(&src).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("dry run"));
    assert_eq!(snapshot_count(&repo), 0);

    let summary = backup_json(&repo, &["--time", "2024-02-03T04:05:06Z", src.to_str().unwrap()]);
    assert_eq!(summary["time"], "2024-02-03T04:05:06Z", "{summary}");
    let id = summary["snapshot_id"].as_str().unwrap();
    // Another host has no latest snapshot of these paths; --parent names one.
    let other = backup_json(
        &repo,
        &["--host", "elsewhere", "--parent", &id[..8], src.to_str().unwrap()],
    );
    assert_eq!(other["parent"], id, "{other}");
    assert_eq!(other["files_unmodified"], 2, "{other}");
    let out = cairn(&repo)
        .args(["backup", "--parent", "0123abcd"])
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--parent"));
    let spec = format!("{}:{}", &id[..10], src.join("sub").display());
    let target = tmp.path().join("part");
    restore_ok(&repo, &spec, &target, &[]);
    assert_eq!(fs::read(target.join("inner/deep.txt")).unwrap(), b"deep");
    assert!(!target.join("top.txt").exists());

    let target = tmp.path().join("dry");
    let text = restore_ok(&repo, id, &target, &["--dry-run"]);
    assert!(text.contains("would restore 2 files"), "{text}");
    assert!(!target.exists(), "a dry-run restore must write nothing");

    let out = cairn(&repo)
        .args(["--json", "restore", id, "--target"])
        .arg(tmp.path().join("j"))
        .output()
        .unwrap();
    let summary = json_summary(&out);
    assert_eq!(summary["files_restored"], 2, "{summary}");
    assert_eq!(summary["snapshot_id"], id);
}

#[test]
fn object_lock_options_are_refused_where_they_cannot_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    // A missing argument is named in the one line, not on a second one.
    let out = cairn(&repo)
        .args(["init", "--object-lock-mode", "governance"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--object-lock-days"), "{stderr}");
    // A local directory cannot lock objects: one line, nothing written.
    let out = cairn(&repo).args(["init", "--object-lock-days", "3"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot lock objects"), "{stderr}");
    assert!(!repo.exists(), "init wrote something");
}

#[test]
fn bad_invocations_exit_with_their_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, &[]);

    let out = cairn(&repo).arg("backup").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PATH"));

    let out = cairn(&repo)
        .env("CAIRN_PASSWORD", "not the password")
        .arg("backup")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));

    let not_repo = tmp.path().join("plain");
    fs::create_dir(&not_repo).unwrap();
    let out = cairn(&not_repo).arg("backup").arg(tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a cairn repository"));

    let missing = tmp.path().join("does-not-exist");
    let out = cairn(&repo).arg("backup").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(missing.to_str().unwrap()) && stderr.contains("no such file"),
        "{stderr}"
    );
    assert_eq!(snapshot_count(&repo), 0);

    let out = cairn(&repo)
        .args(["restore", "latest", "--target"])
        .arg(tmp.path().join("t"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("latest"));

    let out = cairn(&repo)
        .args(["restore", "latest", "--overwrite", "sometimes", "-t", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The largest pack file of a local repository.
fn largest_pack(repo: &Path) -> std::path::PathBuf {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    for dir in fs::read_dir(repo.join("data")).unwrap() {
        for file in fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let len = fs::metadata(&path).unwrap().len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, path));
            }
        }
    }
    best.unwrap().1
}

#[test]
fn damaged_pack_fails_the_restore_without_wrong_content() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&src).unwrap();
    let big = pseudo_random(5 << 20, 99);
    fs::write(src.join("big.bin"), &big).unwrap();
    init(&repo, &["--chunk-size", "256K"]);
    let summary = backup_json(&repo, &[src.to_str().unwrap()]);
    let id = summary["snapshot_id"].as_str().unwrap().to_owned();

    let good = tmp.path().join("good");
    let text = restore_ok(&repo, &id, &good, &["--verify"]);
    assert!(text.contains("verified 1 files"), "{text}");

    let pack = largest_pack(&repo);
    let pack_name = pack.file_name().unwrap().to_string_lossy().into_owned();
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&pack, &bytes).unwrap();

    let target = tmp.path().join("bad");
    let out = cairn(&repo)
        .arg("restore")
        .arg(&id)
        .arg("--target")
        .arg(&target)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&pack_name[..8]) || stderr.contains("blob"), "{stderr}");
    let file = restored(&target, &src).join("big.bin");
    if let Ok(content) = fs::read(&file) {
        assert!(content == big, "{} holds wrong content", file.display());
    }
}

/// `cairn` as a user that cannot read files it does not own: the current
/// user, or `nobody` when running as root (root reads everything).
fn unprivileged(repo: &Path) -> assert_cmd::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"));
    cmd.env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_REPOSITORY")
        .arg("-r")
        .arg(repo);
    if is_root() {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    assert_cmd::Command::from_std(cmd)
}

#[test]
fn unreadable_file_makes_a_partial_snapshot_with_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.path().join("src");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok.txt"), b"readable").unwrap();
    fs::write(src.join("secret"), b"not readable").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::create_dir(&repo).unwrap();
    if is_root() {
        nix::unistd::chown(&repo, Some(65534.into()), Some(65534.into())).unwrap();
    }
    unprivileged(&repo).arg("init").assert().success();

    let out = unprivileged(&repo).arg("backup").arg(&src).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let secret = src.join("secret");
    let line = format!("error: {}: ", secret.display());
    assert!(stderr.lines().any(|l| l.starts_with(&line)), "{stderr}");
    assert!(stderr.contains("partial"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved"));

    let out = unprivileged(&repo)
        .args(["--json", "backup"])
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let error: serde_json::Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["message_type"] == "error")
        .unwrap_or_else(|| panic!("no error line: {stdout}"));
    assert_eq!(error["path"], secret.to_str().unwrap());
    let summary = json_summary(&out);
    assert_eq!(summary["partial"], true, "{summary}");
    assert_eq!(summary["errors"], 1, "{summary}");
    assert_eq!(snapshot_count(&repo), 2);
}
