//! End-to-end tests of the `cairn` binary on object store repositories:
//! S3 served by a real S3 server on 127.0.0.1 (SeaweedFS, see `s3_support`)
//! and Azure Blob served by Azurite (see `azure_support`).

mod azure_support;
mod cli_support;
mod s3_support;

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;
use azure_support::AzuriteServer;
use cli_support::*;
use s3_support::S3Server;

/// `cairn -r URL` with the server's credentials and endpoint in the
/// environment, as a user would set them.
fn cairn_s3(server: &S3Server, url: &str) -> Command {
    let mut cmd = Command::cargo_bin("cairn").unwrap();
    cmd.env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_REPOSITORY")
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_PASSWORD_COMMAND")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .envs(server.env())
        .env("CAIRN_CACHE_DIR", server.cache_dir())
        .arg("-r")
        .arg(url);
    cmd
}

fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail with `code` and print exactly one line
/// containing `needle` on stderr.
fn fails_with(cmd: &mut Command, code: i32, needle: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: stderr {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{cmd:?}: not one line: {stderr}");
    assert!(stderr.contains(needle), "{cmd:?}: {stderr:?} lacks {needle:?}");
    stderr
}

fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("docs/deep")).unwrap();
    fs::write(src.join("docs/readme.txt"), b"cairn on s3\n").unwrap();
    fs::write(src.join("docs/deep/empty"), b"").unwrap();
    fs::write(src.join("big.bin"), pseudo_random(3 << 20, 11)).unwrap();
    fs::write(src.join("other.bin"), pseudo_random(700 << 10, 12)).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", src.join("link")).unwrap();
}

#[test]
fn s3_repository_backs_up_incrementally_restores_and_checks() {
    let server = S3Server::start();
    let url = server.url("cairn-test", "team/repo");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);

    run_ok(cairn_s3(&server, &url).args([
        "init",
        "--chunk-size",
        "64K",
        "--pack-size",
        "1M",
        "--kdf-memory",
        "8192",
    ]));
    // A second init finds the repository and refuses.
    let out = cairn_s3(&server, &url)
        .args(["init", "--kdf-memory", "8192"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "init over an existing S3 repository succeeded");

    let first = json_summary(&run_ok(cairn_s3(&server, &url).arg("--json").arg("backup").arg(&src)));
    assert_eq!(first["files_new"], 4, "{first}");

    // Incremental: one file changes, one is added, the rest is reused.
    fs::write(src.join("docs/readme.txt"), b"cairn on s3, second edition\n").unwrap();
    fs::write(src.join("new.bin"), pseudo_random(200 << 10, 13)).unwrap();
    let second = json_summary(&run_ok(
        cairn_s3(&server, &url)
            .args(["--connections", "4", "--json", "backup"])
            .arg(&src),
    ));
    assert_eq!(second["files_new"], 1, "{second}");
    assert_eq!(second["files_changed"], 1, "{second}");
    assert_eq!(second["files_unmodified"], 3, "{second}");

    let listed = run_ok(cairn_s3(&server, &url).args(["--json", "snapshots"]));
    let snapshots: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(snapshots.as_array().map(Vec::len), Some(2), "{snapshots}");

    let target = tmp.path().join("restored");
    run_ok(
        cairn_s3(&server, &url)
            .args(["restore", "latest", "--verify", "--target"])
            .arg(&target),
    );
    assert_same_tree(&describe(&src), &describe(&restored(&target, &src)));

    run_ok(cairn_s3(&server, &url).args(["check", "--read-data"]));

    // Index files and snapshots were cached locally (one directory for the
    // repository), each under the hash of its bytes.
    let repos: Vec<_> = fs::read_dir(server.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(repos.len(), 1, "{repos:?}");
    for (kind, at_least) in [("snapshots", 2), ("index", 1)] {
        let files: Vec<_> = fs::read_dir(repos[0].join(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.len() >= at_least, "{kind}: {files:?}");
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(blake3::hash(&fs::read(&file).unwrap()).to_hex().as_str(), name);
        }
    }
    // Without the cache, the same answers.
    let uncached = run_ok(cairn_s3(&server, &url).args(["--no-cache", "--json", "snapshots"]));
    assert_eq!(uncached.stdout, listed.stdout);

    // The repository really is on the server: without it, nothing answers.
    let mut server = server;
    server.kill();
    fails_with(cairn_s3(&server, &url).arg("snapshots"), 23, "cannot reach");
}

/// The files below `dir`, by name.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn s3_listings_read_packs_of_trees_from_the_cache() {
    let server = S3Server::start();
    let url = server.url("cairn-test", "team/trees");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    run_ok(cairn_s3(&server, &url).args([
        "init",
        "--chunk-size",
        "64K",
        "--pack-size",
        "1M",
        "--kdf-memory",
        "8192",
    ]));
    run_ok(cairn_s3(&server, &url).arg("backup").arg(&src));
    // The backup kept the packs of trees it stored in the default cache.
    let repo_cache = |root: &Path| {
        let dirs = names_in(root);
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        root.join(&dirs[0])
    };
    let written = names_in(&repo_cache(&server.cache_dir()).join("data"));
    assert!(!written.is_empty(), "no pack of trees kept by the backup");

    // A first listing with an empty cache fetches the packs of trees and
    // keeps them, each under the hash of its bytes; data packs stay out.
    let fresh = tmp.path().join("fresh-cache");
    let ls = |cache: &Path| {
        run_ok(
            cairn_s3(&server, &url)
                .arg("--cache-dir")
                .arg(cache)
                .args(["ls", "latest"]),
        )
    };
    let listed = ls(&fresh);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("readme.txt"));
    let data_dir = repo_cache(&fresh).join("data");
    let kept = names_in(&data_dir);
    assert_eq!(kept, written, "the listing kept other packs than those of trees");
    for name in &kept {
        assert_eq!(
            blake3::hash(&fs::read(data_dir.join(name)).unwrap()).to_hex().as_str(),
            name
        );
    }

    // With those packs gone from the server, the cached listing still
    // answers the same: it read no pack of trees. Without the cache the
    // listing names the missing pack.
    for name in &kept {
        server.delete_object("cairn-test", &format!("team/trees/data/{}/{name}", &name[..2]));
    }
    assert_eq!(ls(&fresh).stdout, listed.stdout);
    fails_with(
        cairn_s3(&server, &url).args(["--no-cache", "ls", "latest"]),
        1,
        &kept[0][..16],
    );

    // A damaged copy is fetched again, not reported as damage (here the
    // pack is gone, so fetching it fails and names it).
    let copy = data_dir.join(&kept[0]);
    let mut bytes = fs::read(&copy).unwrap();
    bytes[0] ^= 1;
    fs::write(&copy, &bytes).unwrap();
    let out = cairn_s3(&server, &url)
        .arg("--cache-dir")
        .arg(&fresh)
        .args(["ls", "latest"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!copy.exists(), "the damaged copy was kept");
}

#[test]
fn s3_problems_each_get_one_line_and_their_exit_code() {
    let server = S3Server::start();
    let url = server.url("cairn-test", "r");

    // Bad URLs and options: 20, before any request.
    fails_with(
        cairn_s3(&server, "s3://Not_A_Bucket/x").arg("snapshots"),
        20,
        "repository URL \"s3://Not_A_Bucket/x\"",
    );
    fails_with(cairn_s3(&server, "ftp://host/x").arg("snapshots"), 20, "unknown scheme");
    fails_with(
        cairn_s3(&server, &url).args(["-o", "s3.colour=blue", "snapshots"]),
        20,
        "s3.colour=blue",
    );
    fails_with(
        cairn_s3(&server, "/tmp/local-repo").args(["-o", "s3.region=x", "snapshots"]),
        20,
        "local repository",
    );

    // A bucket that does not exist: 21, and init writes nothing.
    fails_with(
        cairn_s3(&server, "s3://missing-bucket/r").args(["init", "--kdf-memory", "8192"]),
        21,
        "bucket missing-bucket does not exist",
    );

    // The server checks signatures: a wrong secret is refused with 22, and
    // init leaves nothing behind.
    fails_with(
        cairn_s3(&server, &url)
            .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
            .args(["init", "--kdf-memory", "8192"]),
        22,
        "access denied",
    );
    fails_with(
        cairn_s3(&server, &url)
            .env("AWS_ACCESS_KEY_ID", "unknown-key")
            .arg("snapshots"),
        22,
        "access denied",
    );
    // No credentials at all: 22 too, saying what to set.
    fails_with(
        cairn_s3(&server, &url)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", "/nonexistent")
            .arg("snapshots"),
        22,
        "no usable credentials found; set AWS_ACCESS_KEY_ID",
    );
    fails_with(
        cairn_s3(&server, &url).arg("snapshots"),
        10,
        "is not a cairn repository",
    );

    // Nothing listens on the endpoint: 23.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    fails_with(
        cairn_s3(&server, &url)
            .args([
                "-o",
                &format!("s3.endpoint=http://127.0.0.1:{closed}"),
                "-o",
                "timeout=5s",
            ])
            .arg("snapshots"),
        23,
        &format!("cannot reach http://127.0.0.1:{closed}"),
    );

    // The -o endpoint wins over AWS_ENDPOINT_URL; path-style is the default
    // for a custom endpoint and can be given explicitly.
    run_ok(
        cairn_s3(&server, &url)
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}"))
            .args([
                "-o",
                &format!("s3.endpoint={}", server.endpoint),
                "-o",
                "s3.path-style=true",
            ])
            .args(["init", "--kdf-memory", "8192"]),
    );
    run_ok(cairn_s3(&server, &url).arg("snapshots"));
}

#[test]
fn a_backup_cut_off_by_a_server_crash_fails_cleanly_and_the_next_one_works() {
    let mut server = S3Server::start();
    let url = server.url("cairn-test", "crash");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..24 {
        fs::write(src.join(format!("f{i:02}.bin")), pseudo_random(2 << 20, 100 + i)).unwrap();
    }
    run_ok(cairn_s3(&server, &url).arg("init").args(SMALL_UNCOMPRESSED));

    let mut backup = std::process::Command::cargo_bin("cairn").unwrap();
    backup
        .env("CAIRN_PASSWORD", PASSWORD)
        .envs(server.env())
        .args(["-r", &url, "backup"])
        .arg(&src)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = backup.spawn().unwrap();
    // Stop the server once the first packs have landed.
    let started = std::time::Instant::now();
    while !server.has_objects_under("cairn-test", "crash/data") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no pack was uploaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "backup succeeded without its server: {stderr}");
    assert!(
        stderr.contains("s3://cairn-test/crash"),
        "the failure names the repository: {stderr}"
    );

    server.restart();
    // SeaweedFS answers before its volumes serve what was stored earlier.
    server.wait_readable("cairn-test", "crash/config");
    // After the restart a failure shows the server's side too.
    let run = |cmd: &mut Command| -> std::process::Output {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}\nserver log after the restart:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
        out
    };
    // No snapshot refers to what was lost, and the repository is sound.
    let listed = run(cairn_s3(&server, &url).args(["--json", "snapshots"]));
    let snapshots: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(snapshots.as_array().map(Vec::len), Some(0), "{snapshots}");
    run(cairn_s3(&server, &url).args(["check", "--read-data"]));

    run(cairn_s3(&server, &url).arg("backup").arg(&src));
    let target = tmp.path().join("restored");
    run(cairn_s3(&server, &url)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    assert_same_tree(&describe(&src), &describe(&restored(&target, &src)));
    run(cairn_s3(&server, &url).args(["check", "--read-data"]));
}

#[test]
fn azblob_repository_backs_up_restores_and_checks() {
    let server = AzuriteServer::with_containers(&["cairn-az"]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let cairn_az = |url: &str| {
        let mut cmd = Command::cargo_bin("cairn").unwrap();
        cmd.env("CAIRN_PASSWORD", PASSWORD)
            .env_remove("CAIRN_REPOSITORY")
            .env("AZURE_STORAGE_ACCOUNT", azure_support::ACCOUNT)
            .env("AZURE_STORAGE_KEY", azure_support::KEY)
            .env_remove("AZURE_STORAGE_SAS_TOKEN")
            .args([
                "--no-cache",
                "-r",
                url,
                "-o",
                &format!("azblob.endpoint={}", server.endpoint),
            ]);
        cmd
    };
    let url = "azblob://cairn-az/backups/one";
    run_ok(cairn_az(url).args([
        "init",
        "--chunk-size",
        "64K",
        "--pack-size",
        "1M",
        "--kdf-memory",
        "8192",
    ]));
    run_ok(cairn_az(url).arg("backup").arg(&src));
    fs::write(src.join("docs/readme.txt"), b"changed on azure\n").unwrap();
    let second = json_summary(&run_ok(cairn_az(url).args(["--json", "backup"]).arg(&src)));
    assert_eq!(second["files_changed"], 1, "{second}");
    let target = tmp.path().join("restored");
    run_ok(
        cairn_az(url)
            .args(["restore", "latest", "--verify", "--target"])
            .arg(&target),
    );
    assert_same_tree(&describe(&src), &describe(&restored(&target, &src)));
    run_ok(cairn_az(url).args(["check", "--read-data"]));

    fails_with(
        cairn_az("azblob://missing-container/x").arg("snapshots"),
        21,
        "container missing-container does not exist",
    );
    fails_with(
        cairn_az(url)
            .env("AZURE_STORAGE_KEY", "d3Jvbmcta2V5LXdyb25nLWtleQ==")
            .arg("snapshots"),
        22,
        "access denied",
    );
}

/// The maintenance commands on S3, and a cross-cloud copy: a local
/// repository is copied to S3 (another password), the copy restores from
/// S3 identically, and forget plus two prunes free the space of a replaced
/// file on the server while check with every byte read stays clean.
#[test]
fn s3_copy_from_local_forget_prune_and_restore() {
    let server = S3Server::start();
    let url = server.url("cairn-test", "offsite");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let local = tmp.path().join("local");
    init(
        &local,
        &["--chunk-size", "64K", "--pack-size", "1M", "--kdf-memory", "8192"],
    );
    succeeds(cairn(&local).arg("backup").arg(&src));
    let first = describe(&src);
    fs::write(src.join("big.bin"), pseudo_random(3 << 20, 99)).unwrap();
    succeeds(cairn(&local).arg("backup").arg(&src));
    let second = describe(&src);

    run_ok(cairn_s3(&server, &url).env("CAIRN_PASSWORD", "another password").args([
        "init",
        "--kdf-memory",
        "8192",
        "--pack-size",
        "1M",
    ]));
    run_ok(
        cairn_s3(&server, &url)
            .env("CAIRN_PASSWORD", "another password")
            .env("CAIRN_FROM_PASSWORD", PASSWORD)
            .arg("copy")
            .arg("--from-repo")
            .arg(&local),
    );
    // Copied again: nothing to do.
    let again = run_ok(
        cairn_s3(&server, &url)
            .env("CAIRN_PASSWORD", "another password")
            .env("CAIRN_FROM_PASSWORD", PASSWORD)
            .args(["--json", "copy", "--from-repo"])
            .arg(&local),
    );
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains("\"snapshots_copied\":0"), "{text}");

    let s3 = |cmd: &mut Command| {
        cmd.env("CAIRN_PASSWORD", "another password");
    };
    let mut restore = cairn_s3(&server, &url);
    s3(&mut restore);
    let target = tmp.path().join("from-s3");
    run_ok(restore.args(["restore", "latest", "--verify", "--target"]).arg(&target));
    assert_same_tree(&second, &describe(&restored(&target, &src)));

    let mut forget = cairn_s3(&server, &url);
    s3(&mut forget);
    run_ok(forget.args(["forget", "--keep-last", "1"]));
    let size = |server: &S3Server| {
        let mut cmd = cairn_s3(server, &url);
        s3(&mut cmd);
        // Bytes of all packs on the server, as prune sees them.
        let out = run_ok(cmd.args(["--json", "prune", "--dry-run"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["bytes"].as_u64().unwrap()
    };
    let before = size(&server);
    for _ in 0..2 {
        let mut prune = cairn_s3(&server, &url);
        s3(&mut prune);
        run_ok(prune.args(["prune", "--instant-delete", "--max-unused", "0%"]));
    }
    let after = size(&server);
    assert!(after < before, "prune freed nothing on S3: {before} -> {after}");
    let mut check = cairn_s3(&server, &url);
    s3(&mut check);
    let out = run_ok(check.args(["check", "--read-data"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no errors"));
    let mut restore = cairn_s3(&server, &url);
    s3(&mut restore);
    let target = tmp.path().join("after-prune");
    run_ok(restore.args(["restore", "latest", "--target"]).arg(&target));
    assert_same_tree(&second, &describe(&restored(&target, &src)));
    // The forgotten first snapshot is gone from S3, the local one is not.
    let local_list = succeeds(cairn(&local).args(["--json", "snapshots"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&local_list)
            .unwrap()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let target = tmp.path().join("first-local");
    succeeds(
        cairn(&local)
            .args(["restore"])
            .arg(snapshot_ids(&local, PASSWORD)[0].as_str())
            .arg("--target")
            .arg(&target),
    );
    assert_same_tree(&first, &describe(&restored(&target, &src)));
}

#[test]
fn object_lock_protects_every_object_and_prune_waits_for_it() {
    let server = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    fs::write(src.join("big.bin"), pseudo_random(2 << 20, 7)).unwrap();
    let init = |url: &str| {
        let mut cmd = cairn_s3(&server, url);
        cmd.args([
            "init",
            "--kdf-memory",
            "8192",
            "--pack-size",
            "1M",
            "--object-lock-days",
            "2",
        ]);
        cmd
    };

    // A bucket without Object Lock: one line, and nothing written.
    let plain = server.url("cairn-test", "plain");
    let line = fails_with(&mut init(&plain), 1, "does not have Object Lock enabled");
    assert!(line.contains("s3://cairn-test/plain"), "{line}");
    assert!(!server.has_objects_under("cairn-test", "plain"), "init wrote something");

    server.create_locked_bucket("cairn-locked");
    let url = server.url("cairn-locked", "repo");
    let out = run_ok(&mut init(&url));
    assert!(String::from_utf8_lossy(&out.stdout).contains("object lock"));
    run_ok(cairn_s3(&server, &url).arg("backup").arg(&src));
    fs::write(src.join("big.bin"), pseudo_random(2 << 20, 8)).unwrap();
    run_ok(cairn_s3(&server, &url).arg("backup").arg(&src));
    let second = describe(&src);

    // Every object but lock files carries a retention of two days.
    let keys = server.keys("cairn-locked", "repo/");
    for dir in [
        "repo/config",
        "repo/keys/",
        "repo/data/",
        "repo/index/",
        "repo/snapshots/",
    ] {
        assert!(keys.iter().any(|k| k.starts_with(dir)), "nothing under {dir}: {keys:?}");
    }
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    for key in &keys {
        let until = server
            .retain_until("cairn-locked", key)
            .unwrap_or_else(|| panic!("{key} has no retention"));
        let until = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
        assert!(until > tomorrow, "{key} is locked only until {until}");
    }

    // Forget the first snapshot: its packs are marked, then wait for the
    // lock even once the grace period is over.
    run_ok(cairn_s3(&server, &url).args(["forget", "--keep-last", "1"]));
    let packs_before = server.keys("cairn-locked", "repo/data/").len();
    let first_prune = run_ok(cairn_s3(&server, &url).args(["prune", "--instant-delete", "--max-unused", "0%"]));
    let text = String::from_utf8_lossy(&first_prune.stdout).into_owned();
    assert!(!text.contains("marked 0 packs"), "nothing to mark: {text}");
    let second_prune = run_ok(cairn_s3(&server, &url).args(["prune", "--instant-delete", "--max-unused", "0%"]));
    let text = String::from_utf8_lossy(&second_prune.stdout).into_owned();
    assert!(text.contains("under object lock"), "{text}");
    assert!(text.contains("deleted 0 packs (0 B)"), "{text}");
    assert!(
        server.keys("cairn-locked", "repo/data/").len() >= packs_before,
        "a locked pack was deleted"
    );

    // The repository stays whole and the kept snapshot restores.
    let out = run_ok(cairn_s3(&server, &url).args(["check", "--read-data"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no errors"));
    let target = tmp.path().join("restored");
    run_ok(
        cairn_s3(&server, &url)
            .args(["restore", "latest", "--target"])
            .arg(&target),
    );
    assert_same_tree(&second, &describe(&restored(&target, &src)));
}
