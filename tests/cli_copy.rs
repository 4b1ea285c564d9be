//! `cairn copy` and `cairn init --copy-chunker-params` through the binary.

mod cli_support;

use std::fs;
use std::path::{Path, PathBuf};

use cli_support::{
    cairn_pw, describe, fails_with, json_summary, pseudo_random, restore_described, set_mtime_ns, snapshot_ids,
    snapshots_json, succeeds,
};

const FROM_PW: &str = "source secret";
const TO_PW: &str = "destination secret";

struct Fixture {
    dir: tempfile::TempDir,
    /// The source repository (password `FROM_PW`), with two snapshots of `src`.
    from: PathBuf,
    src: PathBuf,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn init(repo: &Path, password: &str, extra: &[&str]) {
    succeeds(
        cairn_pw(repo, password)
            .args(["init", "--pack-size", "1M", "--kdf-memory", "8192"])
            .args(extra),
    );
}

fn backup(repo: &Path, password: &str, src: &Path) {
    succeeds(cairn_pw(repo, password).arg("backup").arg(src));
}

/// A source tree, backed up twice into a new repository (the second time
/// after a change).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("big.bin"), pseudo_random(700_000, 1)).unwrap();
    fs::write(src.join("sub/b.txt"), b"hello b").unwrap();
    fs::write(src.join("sub/deeper/c.bin"), pseudo_random(200_000, 2)).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("sub/b.txt", src.join("link")).unwrap();
    let from = dir.path().join("from");
    init(&from, FROM_PW, &["--chunk-size", "64K"]);
    backup(&from, FROM_PW, &src);
    fs::write(src.join("sub/b.txt"), b"hello again, b").unwrap();
    fs::write(src.join("new.bin"), pseudo_random(150_000, 3)).unwrap();
    for (i, rel) in ["sub/b.txt", "new.bin", "sub"].iter().enumerate() {
        set_mtime_ns(&src.join(rel), 1_600_000_000_000_000_000 + i as i64);
    }
    backup(&from, FROM_PW, &src);
    Fixture { dir, from, src }
}

/// `cairn copy --json` from the fixture's source into `to`; returns the summary.
fn copy(fx: &Fixture, to: &Path, to_pw: &str, extra: &[&str]) -> serde_json::Value {
    let out = cairn_pw(to, to_pw)
        .env("CAIRN_FROM_PASSWORD", FROM_PW)
        .arg("--json")
        .arg("copy")
        .arg("--from-repo")
        .arg(&fx.from)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_summary(&out)
}

#[test]
fn copy_between_passwords_restores_identically_and_a_second_copy_copies_nothing() {
    let fx = fixture();
    let to = fx.path("to");
    init(&to, TO_PW, &[]);

    let dry = copy(&fx, &to, TO_PW, &["--dry-run"]);
    assert_eq!(dry["snapshots_copied"], 2, "{dry}");
    assert!(snapshot_ids(&to, TO_PW).is_empty(), "a dry run writes no snapshot");
    assert_eq!(
        cli_support::object_count(&to.join("data")),
        0,
        "a dry run writes no pack"
    );

    let first = copy(&fx, &to, TO_PW, &[]);
    assert_eq!(first["snapshots_copied"], 2, "{first}");
    assert_eq!(first["snapshots_skipped"], 0, "{first}");
    assert_eq!(first["same_ids"], false, "{first}");
    assert!(first["data_blobs"].as_u64().unwrap() > 0, "{first}");

    // The copies name their originals and restore what was backed up.
    let originals = snapshot_ids(&fx.from, FROM_PW);
    let copies = snapshots_json(&to, TO_PW);
    let mut named: Vec<String> = copies
        .iter()
        .map(|s| s["original"].as_str().unwrap().to_owned())
        .collect();
    named.sort();
    let mut want = originals.clone();
    want.sort();
    assert_eq!(named, want);
    assert!(copies.iter().all(|s| s["parent"].is_null()));
    let restored = restore_described(&to, TO_PW, "latest", fx.dir.path(), &fx.src);
    cli_support::assert_same_tree(&describe(&fx.src), &restored);
    succeeds(cairn_pw(&to, TO_PW).arg("check"));

    let second = copy(&fx, &to, TO_PW, &[]);
    assert_eq!(second["snapshots_copied"], 0, "{second}");
    assert_eq!(second["snapshots_skipped"], 2, "{second}");
    assert_eq!(second["data_blobs"], 0, "{second}");
    assert_eq!(second["tree_blobs"], 0, "{second}");
    assert_eq!(snapshot_ids(&to, TO_PW).len(), 2);

    // Copying the copies back is recognised too: they share the original.
    let back = fx.path("back");
    init(&back, FROM_PW, &[]);
    let chained = cairn_pw(&back, FROM_PW)
        .env("CAIRN_FROM_PASSWORD", TO_PW)
        .args(["--json", "copy", "--from-repo"])
        .arg(&to)
        .output()
        .unwrap();
    assert_eq!(json_summary(&chained)["snapshots_copied"], 2);
    assert_eq!(copy(&fx, &back, FROM_PW, &[])["snapshots_skipped"], 2);
}

#[test]
fn shared_chunker_params_make_copies_deduplicate() {
    let fx = fixture();
    let shared = fx.path("shared");
    succeeds(
        cairn_pw(&shared, TO_PW)
            .env("CAIRN_FROM_PASSWORD", FROM_PW)
            .args(["init", "--kdf-memory", "8192", "--copy-chunker-params", "--from-repo"])
            .arg(&fx.from),
    );
    let config: serde_json::Value =
        serde_json::from_str(&succeeds(cairn_pw(&shared, TO_PW).args(["--json", "cat", "config"]))).unwrap();
    assert_eq!(config["chunker"]["avg_size"], 64 << 10, "{config}");
    // The destination backs up the same data itself first.
    backup(&shared, TO_PW, &fx.src);
    let before = snapshot_ids(&shared, TO_PW);

    let latest = &snapshot_ids(&fx.from, FROM_PW)[1];
    let summary = copy(&fx, &shared, TO_PW, &[latest]);
    assert_eq!(summary["same_ids"], true, "{summary}");
    assert_eq!(summary["snapshots_copied"], 1, "{summary}");
    assert_eq!(summary["data_blobs"], 0, "no data blob may be stored again: {summary}");
    let copied = snapshot_ids(&shared, TO_PW)
        .into_iter()
        .find(|id| !before.contains(id))
        .unwrap();
    let restored = restore_described(&shared, TO_PW, &copied, fx.dir.path(), &fx.src);
    cli_support::assert_same_tree(&describe(&fx.src), &restored);

    // Without shared parameters the same copy stores the data anew and
    // still restores the same tree.
    let plain = fx.path("plain");
    init(&plain, TO_PW, &["--chunk-size", "64K"]);
    backup(&plain, TO_PW, &fx.src);
    let before = snapshot_ids(&plain, TO_PW);
    let summary = copy(&fx, &plain, TO_PW, &[latest]);
    assert_eq!(summary["same_ids"], false, "{summary}");
    assert!(summary["data_blobs"].as_u64().unwrap() > 0, "{summary}");
    let copied = snapshot_ids(&plain, TO_PW)
        .into_iter()
        .find(|id| !before.contains(id))
        .unwrap();
    let restored = restore_described(&plain, TO_PW, &copied, fx.dir.path(), &fx.src);
    cli_support::assert_same_tree(&describe(&fx.src), &restored);
}

#[test]
fn copy_filters_select_snapshots() {
    let fx = fixture();
    let to = fx.path("to");
    init(&to, TO_PW, &[]);
    let none = copy(&fx, &to, TO_PW, &["--host", "no-such-host"]);
    assert_eq!(none["snapshots_copied"], 0, "{none}");
    assert!(snapshot_ids(&to, TO_PW).is_empty());
    let first = &snapshot_ids(&fx.from, FROM_PW)[0];
    let one = copy(&fx, &to, TO_PW, &[&first[..8]]);
    assert_eq!(one["snapshots_copied"], 1, "{one}");
    assert_eq!(snapshots_json(&to, TO_PW)[0]["original"], first.as_str());
}

#[test]
fn bad_copy_options_fail_with_one_line() {
    let fx = fixture();
    let to = fx.path("to");
    init(&to, TO_PW, &[]);

    let err = fails_with(cairn_pw(&to, TO_PW).arg("copy"), 2);
    assert!(err.contains("--from-repo"), "{err}");

    let err = fails_with(
        cairn_pw(&to, TO_PW)
            .env("CAIRN_FROM_PASSWORD", "not it")
            .args(["copy", "--from-repo"])
            .arg(&fx.from),
        12,
    );
    assert!(
        err.contains("source repository") && err.contains("wrong password"),
        "{err}"
    );
    assert!(err.contains(&fx.from.display().to_string()), "{err}");

    let err = fails_with(
        cairn_pw(&to, TO_PW)
            .env("CAIRN_FROM_PASSWORD", FROM_PW)
            .args(["copy", "--from-repo"])
            .arg(fx.path("nowhere")),
        10,
    );
    assert!(err.contains("source repository") && err.contains("nowhere"), "{err}");

    let err = fails_with(
        cairn_pw(&to, TO_PW)
            .env("CAIRN_FROM_PASSWORD", TO_PW)
            .args(["copy", "--from-repo"])
            .arg(&to),
        1,
    );
    assert!(err.contains("same repository"), "{err}");

    let err = fails_with(
        cairn_pw(&fx.path("new"), TO_PW).args(["init", "--kdf-memory", "8192", "--copy-chunker-params"]),
        2,
    );
    assert!(err.contains("--from-repo"), "{err}");
    assert!(!fx.path("new").join("config").exists(), "nothing may be created");

    // The password file option is read like the global one.
    let pw_file = fx.path("from-pw");
    fs::write(&pw_file, format!("{FROM_PW}\n")).unwrap();
    let out = cairn_pw(&to, TO_PW)
        .args(["--json", "copy", "--from-repo"])
        .arg(&fx.from)
        .arg("--from-password-file")
        .arg(&pw_file)
        .output()
        .unwrap();
    assert_eq!(json_summary(&out)["snapshots_copied"], 2);
    assert_eq!(snapshot_ids(&to, TO_PW).len(), 2);
}
