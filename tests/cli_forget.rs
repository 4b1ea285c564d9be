//! End-to-end tests of `cairn forget` through the binary: snapshots made by
//! `backup --time`, then forgotten by policy, by id, or only shown (dry run).

mod cli_support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use cli_support::{json_summary, snapshot_count};
use serde_json::Value;

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    src: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let src = dir.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("file"), b"forget me not\n").unwrap();
        let fx = Self { _dir: dir, repo, src };
        fx.cmd().args(["init", "--kdf-memory", "8192"]).assert().success();
        fx
    }

    /// `cairn -r REPO` with the password set and local time UTC.
    fn cmd(&self) -> Command {
        let mut cmd = cli_support::cairn(&self.repo);
        cmd.env("TZ", "UTC");
        cmd
    }

    /// Backs up the source at `time` ("YYYY-MM-DD HH:MM:SS", UTC); returns
    /// the snapshot id.
    fn backup(&self, time: &str, host: &str, tags: &[&str]) -> String {
        let mut cmd = self.cmd();
        cmd.args(["--json", "backup", "--time", time, "--host", host]);
        for t in tags {
            cmd.args(["--tag", t]);
        }
        let out = cmd.arg(&self.src).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json_summary(&out)["snapshot_id"].as_str().unwrap().to_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with `code` and a one-line message;
    /// returns the message.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.cmd().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "cairn {args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected: {stderr}");
        stderr
    }

    /// Ids of the snapshots in the repository.
    fn remaining(&self) -> BTreeSet<String> {
        let list: Value = serde_json::from_str(&self.ok(&["--json", "snapshots"])).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn repo(&self) -> &Path {
        &self.repo
    }
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn short(id: &str) -> &str {
    &id[..8]
}

/// The table line of a snapshot.
fn row<'a>(stdout: &'a str, id: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(short(id)))
        .unwrap_or_else(|| panic!("no row for {id} in:\n{stdout}"))
}

#[test]
fn dry_run_shows_kept_and_removed_and_removes_nothing() {
    let fx = Fixture::new();
    let a = fx.backup("2024-01-01 10:00:00", "h", &[]);
    let b = fx.backup("2024-01-01 20:00:00", "h", &[]);
    let c = fx.backup("2024-01-02 09:00:00", "h", &[]);
    let d = fx.backup("2024-01-03 08:00:00", "h", &[]);

    let stdout = fx.ok(&["forget", "--keep-daily", "2", "--dry-run"]);
    assert_eq!(snapshot_count(fx.repo()), 4, "a dry run removes nothing");
    assert!(row(&stdout, &d).contains("keep") && row(&stdout, &d).contains("daily snapshot"));
    assert!(row(&stdout, &c).contains("keep"), "{stdout}");
    for removed in [&a, &b] {
        let r = row(&stdout, removed);
        assert!(r.contains("remove") && !r.contains("daily"), "{r}");
    }
    assert!(stdout.contains("applying policy: keep 2 daily snapshots"), "{stdout}");
    assert!(stdout.contains("keep 2 snapshots, remove 2 snapshots"), "{stdout}");
    assert!(stdout.contains("would remove 2 snapshots"), "{stdout}");
    assert_eq!(fx.remaining(), set(&[&a, &b, &c, &d]));
}

#[test]
fn policy_removes_exactly_the_rest() {
    let fx = Fixture::new();
    let jan = fx.backup("2023-12-31 23:59:00", "h", &[]);
    let feb1 = fx.backup("2024-02-01 10:00:00", "h", &[]);
    let feb2 = fx.backup("2024-02-29 10:00:00", "h", &["prod"]);
    let mar1 = fx.backup("2024-03-01 00:00:00", "h", &[]);
    let mar2 = fx.backup("2024-03-01 12:00:00", "h", &[]);

    let stdout = fx.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--keep-monthly",
        "2",
        "--keep-tag",
        "prod",
    ]);
    // Last: mar2. Monthly: mar2 (March), feb2 (February). Tag: feb2.
    assert_eq!(fx.remaining(), set(&[&feb2, &mar2]));
    assert!(row(&stdout, &feb2).contains("tag prod"), "{stdout}");
    assert!(stdout.contains("removed 3 snapshots"), "{stdout}");
    for gone in [&jan, &feb1, &mar1] {
        assert!(row(&stdout, gone).contains("remove"), "{stdout}");
    }
    // Again: nothing more to remove.
    let stdout = fx.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--keep-monthly",
        "2",
        "--keep-tag",
        "prod",
    ]);
    assert!(stdout.contains("removed 0 snapshots"), "{stdout}");
    assert_eq!(fx.remaining(), set(&[&feb2, &mar2]));
}

#[test]
fn json_output_lists_groups_kept_removed_and_reasons() {
    let fx = Fixture::new();
    let a1 = fx.backup("2024-05-01 10:00:00", "a", &[]);
    let a2 = fx.backup("2024-05-02 10:00:00", "a", &[]);
    let b1 = fx.backup("2024-05-01 11:00:00", "b", &[]);

    let out = fx.ok(&["--json", "forget", "--keep-last", "1", "--dry-run"]);
    assert_eq!(out.lines().count(), 1, "one JSON document: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["kept"], 2);
    assert_eq!(v["removed"], 1);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{v}");
    assert_eq!(groups[0]["host"], "a");
    assert_eq!(groups[0]["tags"], Value::Null, "not grouped by tags");
    assert_eq!(groups[0]["keep"][0]["id"], a2.as_str());
    assert_eq!(groups[0]["keep"][0]["reasons"][0], "last snapshot");
    assert_eq!(groups[0]["remove"][0]["id"], a1.as_str());
    assert_eq!(groups[0]["remove"][0]["reasons"].as_array().unwrap().len(), 0);
    assert_eq!(groups[1]["host"], "b");
    assert_eq!(groups[1]["keep"][0]["id"], b1.as_str());
    assert_eq!(snapshot_count(fx.repo()), 3);

    // Without grouping the newest of all is the only "last" one.
    let out = fx.ok(&["--json", "forget", "--keep-last", "1", "--group-by", ""]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dry_run"], false);
    assert_eq!(v["groups"].as_array().unwrap().len(), 1);
    assert_eq!(fx.remaining(), set(&[&a2]));
}

#[test]
fn filters_narrow_what_the_policy_sees() {
    let fx = Fixture::new();
    let a1 = fx.backup("2024-05-01 10:00:00", "a", &[]);
    let a2 = fx.backup("2024-05-02 10:00:00", "a", &[]);
    let b1 = fx.backup("2024-04-01 10:00:00", "b", &[]);
    let b2 = fx.backup("2024-04-02 10:00:00", "b", &[]);
    fx.ok(&["forget", "--keep-last", "1", "--host", "b"]);
    assert_eq!(fx.remaining(), set(&[&a1, &a2, &b2]));
    assert!(!fx.remaining().contains(&b1));
}

#[test]
fn forget_by_id_removes_exactly_those() {
    let fx = Fixture::new();
    let a = fx.backup("2024-01-01 10:00:00", "h", &[]);
    let b = fx.backup("2024-01-02 10:00:00", "h", &[]);
    let c = fx.backup("2024-01-03 10:00:00", "h", &[]);

    let stdout = fx.ok(&["forget", short(&a), c.as_str()]);
    assert!(row(&stdout, &a).contains("remove"), "{stdout}");
    assert!(stdout.contains("removed 2 snapshots"), "{stdout}");
    assert_eq!(fx.remaining(), set(&[&b]));

    // An unknown id: nothing is removed, the id is named.
    let err = fx.fails(&["forget", &b[..10], "ffffffffff"], 1);
    assert!(err.contains("ffffffffff"), "{err}");
    assert_eq!(fx.remaining(), set(&[&b]));

    // `latest` works as elsewhere; a dry run by id keeps it.
    let stdout = fx.ok(&["forget", "latest", "--dry-run"]);
    assert!(row(&stdout, &b).contains("remove"), "{stdout}");
    assert_eq!(fx.remaining(), set(&[&b]));
}

#[test]
fn bad_options_give_one_line_and_exit_2() {
    let fx = Fixture::new();
    let a = fx.backup("2024-01-01 10:00:00", "h", &[]);
    for (args, needle) in [
        (&["forget"][..], "no policy given"),
        (&["forget", "--keep-daily", "x"][..], "--keep-daily \"x\""),
        (&["forget", "--keep-weekly", "-2"][..], "--keep-weekly -2"),
        (&["forget", "--keep-within", "3w"][..], "--keep-within: duration \"3w\""),
        (&["forget", "--keep-within-monthly", "1m2"][..], "--keep-within-monthly"),
        (
            &["forget", "--keep-last", "1", "--group-by", "colour"][..],
            "--group-by",
        ),
        (&["forget", "--keep-last", "1", short(&a)][..], "not both"),
    ] {
        let err = fx.fails(args, 2);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(fx.remaining(), set(&[&a]));
}
