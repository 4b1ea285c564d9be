//! A repository that may be hostile, through the binary: trees nested far
//! too deep or sharing subtrees to list 2^31 entries, a config that is not a
//! file, and file names made of terminal escape sequences.

mod cli_support;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn::format::limits::MAX_TREE_DEPTH;
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::format::tree::{Node, NodeKind, Tree};
use cairn::format::BlobKind;
use cairn::id::{SnapshotId, TreeId};
use cairn::repo::saver::{BlobSaver, SaverOptions};
use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cairn::storage::DynStorage;
use cli_support::{cairn, PASSWORD};

/// Nested trees in the deep chain: far more than the depth limit.
const CHAIN: usize = 100_000;
/// Levels of the tree whose two entries share one subtree at every level.
const LEVELS: usize = 30;
/// The entry limit the shared-subtree tests run with, so that they fail
/// fast; the default (format.md §14) is far higher.
const ENTRY_LIMIT: &str = "100000";
/// Long enough for any of these commands on a loaded machine; a walk that
/// never ends, or one of 2^31 entries, takes far longer.
const TIMEOUT: Duration = Duration::from_secs(300);

struct Hostile {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    /// A chain of CHAIN nested directories.
    chain: SnapshotId,
    /// A chain exactly MAX_TREE_DEPTH directories deep.
    at_limit: SnapshotId,
    /// LEVELS levels of `a` and `b` sharing one subtree: 2^31 - 2 directories
    /// and 2^30 files when listed.
    wide: SnapshotId,
    /// An empty root.
    empty: SnapshotId,
}

fn dir_node(name: &str, subtree: TreeId) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
    n.mode = 0o755;
    n.links = 1;
    n.subtree = Some(subtree);
    n
}

fn save(saver: &BlobSaver, nodes: Vec<Node>) -> TreeId {
    let tree = Tree { nodes };
    TreeId(saver.save(BlobKind::Tree, &tree.encode()).unwrap().id.0)
}

fn snapshot(tree: TreeId) -> Snapshot {
    Snapshot {
        time_ns: 1_700_000_000_000_000_000,
        tree,
        paths: vec!["/hostile".into()],
        hostname: "host".into(),
        username: "u".into(),
        uid: 1000,
        gid: 1000,
        tags: Vec::new(),
        parent: None,
        original: None,
        excludes: Vec::new(),
        program_version: "test".into(),
        partial: false,
        summary: Summary::default(),
    }
}

/// Writes the hostile trees with the library's own tree writer.
fn hostile() -> Hostile {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let storage: DynStorage = Arc::new(LocalStorage::new(repo_dir.clone()));
    let repo = Repository::init(storage, PASSWORD.as_bytes(), cli_support::small_repo_options()).unwrap();
    let indexed = repo.clone().load_index().unwrap();
    let saver = BlobSaver::new(&indexed, SaverOptions::default()).unwrap();
    let empty = save(&saver, Vec::new());
    let mut chain = empty;
    let mut at_limit = empty;
    for depth in 1..=CHAIN {
        chain = save(&saver, vec![dir_node("d", chain)]);
        if depth == MAX_TREE_DEPTH - 1 {
            // Its entries lie MAX_TREE_DEPTH deep under the root below.
            at_limit = chain;
        }
    }
    let at_limit = save(&saver, vec![dir_node("d", at_limit)]);
    let mut file = Node::new(b"f".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.links = 1;
    let mut wide = save(&saver, vec![file]);
    for _ in 0..LEVELS {
        wide = save(&saver, vec![dir_node("a", wide), dir_node("b", wide)]);
    }
    saver.finish().unwrap();
    Hostile {
        chain: repo.save_snapshot(&snapshot(chain)).unwrap(),
        at_limit: repo.save_snapshot(&snapshot(at_limit)).unwrap(),
        wide: repo.save_snapshot(&snapshot(wide)).unwrap(),
        empty: repo.save_snapshot(&snapshot(empty)).unwrap(),
        repo: repo_dir,
        _dir: dir,
    }
}

/// Runs `cairn` with `args`; returns its exit code, stdout and stderr.
fn run(repo: &Path, envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = cairn(repo);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.args(args).timeout(TIMEOUT).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The command fails with exit code 1 and a message containing `needle`;
/// no signal (a stack overflow aborts) and no timeout.
fn fails_with(repo: &Path, envs: &[(&str, &str)], args: &[&str], needle: &str) -> String {
    let (code, _, err) = run(repo, envs, args);
    assert_eq!(code, Some(1), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    err
}

#[test]
fn trees_nested_too_deep_stop_every_walk_with_one_error() {
    let h = hostile();
    let (chain, at_limit, empty) = (h.chain.to_hex(), h.at_limit.to_hex(), h.empty.to_hex());
    let deep = "directories deep";
    // Exactly at the limit everything is listed: the walks hold that deep.
    let (code, out, err) = run(&h.repo, &[], &["ls", &at_limit]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), MAX_TREE_DEPTH);
    let (code, out, err) = run(&h.repo, &[], &["diff", &empty, &at_limit]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with('+')).count(), MAX_TREE_DEPTH);
    let (code, _, err) = run(&h.repo, &[], &["stats", &at_limit]);
    assert_eq!(code, Some(0), "{err}");

    // One level more, or a hundred thousand, is refused by each.
    let target = h.repo.parent().unwrap().join("restored");
    let target = target.to_str().unwrap();
    for args in [
        vec!["ls", &chain],
        vec!["diff", &empty, &chain],
        vec!["diff", &chain, &empty],
        vec!["stats", &chain],
        vec!["restore", &chain, "--target", target],
        vec!["repair", "snapshots", "--dry-run", &chain],
    ] {
        let err = fails_with(&h.repo, &[], &args, deep);
        assert!(err.contains(&format!("more than {MAX_TREE_DEPTH}")), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    assert!(!Path::new(target).exists(), "restore wrote before walking");
    // check reads every tree once: it reports the tree below the limit.
    let (code, out, err) = run(&h.repo, &[], &["check"]);
    let report = format!("{out}{err}");
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains(deep), "{report}");
    assert!(
        report.contains(&h.chain.to_hex()) || report.contains(&h.chain.short()),
        "{report}"
    );

    // copy stops before writing a snapshot.
    let to = h.repo.parent().unwrap().join("copy");
    cli_support::init(&to, &["--kdf-memory", "8192"]);
    let from = h.repo.to_str().unwrap();
    let mut cmd = cairn(&to);
    let out = cmd
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .args(["copy", "--from-repo", from, &chain])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(deep), "{err}");
    assert_eq!(fs::read_dir(to.join("snapshots")).unwrap().count(), 0);
}

#[test]
fn shared_subtrees_stop_a_walk_at_the_entry_limit() {
    let h = hostile();
    let (wide, empty) = (h.wide.to_hex(), h.empty.to_hex());
    let limit = [("CAIRN_MAX_TREE_ENTRIES", ENTRY_LIMIT)];
    let target = h.repo.parent().unwrap().join("restored");
    let target = target.to_str().unwrap();
    for args in [
        vec!["ls", &wide],
        vec!["diff", &empty, &wide],
        vec!["restore", &wide, "--target", target],
    ] {
        let err = fails_with(&h.repo, &limit, &args, &format!("more than {ENTRY_LIMIT} entries"));
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    assert!(!Path::new(target).exists(), "restore wrote before walking");
    // Commands that read each distinct tree once are not held up.
    let (code, out, err) = run(&h.repo, &limit, &["--json", "stats", &wide]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["total_file_count"], 1u64 << LEVELS, "{v}");
    // (It fails on the deep chain of the same repository, nothing else.)
    let (code, out, err) = run(&h.repo, &limit, &["check"]);
    assert!(code == Some(1) && out.contains("directories deep"), "{out}{err}");
    assert!(!out.contains(&format!("more than {ENTRY_LIMIT} entries")), "{out}");
}

#[test]
fn a_config_that_is_no_file_fails_at_once_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    cli_support::init(&repo, &["--kdf-memory", "8192"]);
    let config = repo.join("config");
    fs::remove_file(&config).unwrap();
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let err = fails_with(&repo, &[], &["snapshots"], "FIFO");
    assert!(err.contains("config"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let err = fails_with(&repo, &[], &["snapshots"], "symbolic link");
    assert!(err.contains("config"), "{err}");
    fs::remove_file(&config).unwrap();
    fs::File::create(&config).unwrap().set_len(1 << 40).unwrap();
    let err = fails_with(&repo, &[], &["snapshots"], "refusing to read it");
    assert!(err.contains("config"), "{err}");
}

/// Paths below `dir` that group or other may access.
fn shared(dir: &Path, out: &mut Vec<String>) {
    let meta = fs::symlink_metadata(dir).unwrap();
    if meta.permissions().mode() & 0o077 != 0 {
        out.push(format!("{} {:o}", dir.display(), meta.permissions().mode()));
    }
    if meta.is_dir() {
        for e in fs::read_dir(dir).unwrap() {
            shared(&e.unwrap().path(), out);
        }
    }
}

#[test]
fn a_repository_made_under_an_open_umask_is_the_owners_only() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    let bin = assert_cmd::cargo::cargo_bin("cairn");
    for args in [
        "init --kdf-memory 8192".to_owned(),
        format!("backup {}", src.display()),
        format!(
            "key add --kdf-memory 8192 --new-password-file {}",
            src.join("f").display()
        ),
    ] {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask 000 && exec \"$0\" -r {} {args}", repo.display()))
            .arg(&bin)
            .env("CAIRN_PASSWORD", PASSWORD)
            .status()
            .unwrap();
        assert!(status.success(), "{args}");
    }
    let mut open = Vec::new();
    shared(&repo, &mut open);
    assert!(open.is_empty(), "{open:?}");
    assert!(fs::read_dir(repo.join("keys")).unwrap().count() >= 2);
}

#[test]
fn names_with_escape_sequences_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let evil = std::ffi::OsStr::from_bytes(b"title\x1b]0;owned\x07\nfake\xff");
    fs::write(src.join("plain"), b"x").unwrap();
    cli_support::init(&repo, &["--kdf-memory", "8192"]);
    cairn(&repo).args(["backup", src.to_str().unwrap()]).assert().success();
    fs::write(src.join(evil), b"y").unwrap();
    cairn(&repo).args(["backup", src.to_str().unwrap()]).assert().success();
    let shown = "title\\x1b]0;owned\\x07\\nfake\\xff";
    for args in [vec!["ls", "latest"], vec!["ls", "--long", "latest"]] {
        let (code, out, err) = run(&repo, &[], &args);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains(shown), "{args:?}: {out}");
        assert!(!out.contains('\x1b') && !out.contains('\x07'), "{args:?}: {out:?}");
        assert!(!out.lines().any(|l| l.starts_with("fake")), "{args:?}: {out:?}");
    }
    let snaps = run(&repo, &[], &["--json", "snapshots"]).1;
    let snaps: serde_json::Value = serde_json::from_str(&snaps).unwrap();
    let ids: Vec<String> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{snaps}");
    let (code, out, err) = run(&repo, &[], &["diff", &ids[0], &ids[1]]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("+    {}/{shown}", src.display())), "{out}");
    assert!(!out.contains('\x1b'), "{out:?}");
    // JSON keeps the name (with its control characters) for programs.
    let (_, out, _) = run(&repo, &[], &["--json", "ls", "latest"]);
    assert!(out.contains("title\\u001b]0;owned\\u0007\\nfake"), "{out}");
    let raw = hex::encode(b"title\x1b]0;owned\x07\nfake\xff");
    assert!(out.contains(&format!("\"name_raw\":\"{raw}\"")), "{out}");
}
