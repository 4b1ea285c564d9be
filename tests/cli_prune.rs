//! End-to-end tests of `cairn prune` and `forget --prune` through the binary.

mod cli_support;

use std::fs;
use std::path::Path;

use cli_support::{
    cairn, describe, fails_with, files_and_size, init, pseudo_random, restore_described, succeeds, PASSWORD,
};

fn write_tree(root: &Path, seed: u64) {
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("big"), pseudo_random(3_000_000, seed)).unwrap();
    fs::write(root.join("sub/small"), pseudo_random(20_000, seed + 1)).unwrap();
}

fn pack_bytes(repo: &Path) -> u64 {
    files_and_size(&repo.join("data")).1
}

fn prune_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let out = succeeds(cairn(repo).args(["--json", "prune"]).args(args));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn forgotten_data_is_marked_then_deleted_and_what_is_kept_restores() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    init(
        &repo,
        &["--kdf-memory", "8192", "--pack-size", "1M", "--chunk-size", "64K"],
    );
    write_tree(&src, 1);
    succeeds(cairn(&repo).args(["backup"]).arg(&src));
    // A second generation replaces the big file.
    write_tree(&src, 7);
    succeeds(cairn(&repo).args(["backup"]).arg(&src));
    let want = describe(&src);
    let full = pack_bytes(&repo);
    succeeds(cairn(&repo).args(["forget", "--keep-last", "1"]));

    // Dry run: numbers, no change.
    let plan = prune_json(&repo, &["--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert!(plan["mark_packs"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!(pack_bytes(&repo), full);

    // First run: marks, deletes nothing.
    let first = prune_json(&repo, &["--grace", "30m"]);
    assert!(first["mark_packs"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["packs_deleted"], 0);
    assert!(pack_bytes(&repo) >= full);
    let check = succeeds(cairn(&repo).args(["check", "--read-data"]));
    assert!(check.contains("no errors"), "{check}");

    // Second run: the marks have not expired, but --instant-delete
    // deletes what no snapshot needs at once.
    let waiting = prune_json(&repo, &["--grace", "30m"]);
    assert_eq!(waiting["packs_deleted"], 0, "{waiting}");
    assert!(waiting["wait_packs"].as_u64().unwrap() > 0, "{waiting}");
    let second = prune_json(&repo, &["--instant-delete"]);
    assert!(second["packs_deleted"].as_u64().unwrap() > 0, "{second}");
    let left = pack_bytes(&repo);
    assert!(left < full * 6 / 10, "{left} of {full} bytes left");
    let check = succeeds(cairn(&repo).args(["check", "--read-data"]));
    assert!(check.contains("no errors"), "{check}");
    let got = restore_described(&repo, PASSWORD, "latest", dir.path(), &src);
    cli_support::assert_same_tree(&want, &got);

    // Nothing left to do.
    let third = prune_json(&repo, &["--instant-delete"]);
    assert_eq!(third["mark_packs"], 0, "{third}");
    assert_eq!(third["packs_deleted"], 0, "{third}");
}

#[test]
fn the_default_grace_period_keeps_marked_packs_and_forget_can_prune() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    init(
        &repo,
        &["--kdf-memory", "8192", "--pack-size", "1M", "--chunk-size", "64K"],
    );
    write_tree(&src, 1);
    succeeds(cairn(&repo).args(["backup"]).arg(&src));
    write_tree(&src, 9);
    succeeds(cairn(&repo).args(["backup"]).arg(&src));
    let out = succeeds(cairn(&repo).args(["forget", "--keep-last", "1", "--prune"]));
    assert!(out.contains("removed 1 snapshot"), "{out}");
    assert!(out.contains("marked"), "{out}");
    let full = pack_bytes(&repo);
    // Within the default 12 hours nothing is deleted.
    let again = succeeds(cairn(&repo).arg("prune"));
    assert!(again.contains("wait for the grace period"), "{again}");
    assert_eq!(pack_bytes(&repo), full);
}

#[test]
fn bad_prune_options_get_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo, &["--kdf-memory", "8192"]);
    for (option, value) in [
        ("--max-unused", "150%"),
        ("--grace", "12"),
        ("--max-repack-size", "lots"),
    ] {
        let err = fails_with(cairn(&repo).args(["prune", option, value]), 2);
        assert!(err.contains(value), "{option}: {err}");
    }
}

#[test]
fn a_grace_period_below_the_lock_lifetime_is_refused_without_instant_delete() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo, &["--kdf-memory", "8192"]);
    for args in [
        &["prune", "--grace", "29m"][..],
        &["prune", "--grace", "0"],
        &["forget", "--keep-last", "1", "--prune", "--grace", "10m"],
    ] {
        let err = fails_with(cairn(&repo).args(args), 2);
        assert!(err.contains("--grace") && err.contains("30m"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(
        !repo.join("locks").read_dir().unwrap().any(|_| true),
        "no lock was taken"
    );
    succeeds(cairn(&repo).args(["prune", "--grace", "30m"]));
    succeeds(cairn(&repo).args(["prune", "--grace", "0", "--instant-delete"]));
}

#[test]
fn instant_delete_frees_the_space_in_one_run_and_forget_can_ask_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    init(
        &repo,
        &["--kdf-memory", "8192", "--pack-size", "1M", "--chunk-size", "64K"],
    );
    write_tree(&src, 1);
    succeeds(cairn(&repo).args(["backup"]).arg(&src));
    write_tree(&src, 7);
    succeeds(cairn(&repo).args(["backup"]).arg(&src));
    let want = describe(&src);
    let full = pack_bytes(&repo);
    let out = succeeds(cairn(&repo).args(["forget", "--keep-last", "1", "--prune", "--instant-delete"]));
    assert!(out.contains("removed 1 snapshot"), "{out}");
    assert!(out.contains("deleted") && out.contains("at once"), "{out}");
    let left = pack_bytes(&repo);
    assert!(left < full * 6 / 10, "{left} of {full} bytes left");
    let check = succeeds(cairn(&repo).args(["check", "--read-data"]));
    assert!(check.contains("no errors"), "{check}");
    let got = restore_described(&repo, PASSWORD, "latest", dir.path(), &src);
    cli_support::assert_same_tree(&want, &got);
    // Nothing is left marked for a later run.
    let again = prune_json(&repo, &["--dry-run"]);
    assert_eq!(again["wait_packs"], 0, "{again}");
    assert_eq!(again["mark_packs"], 0, "{again}");
}
