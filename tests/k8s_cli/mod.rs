//! What the tests of `cairn k8s backup` and `restore` share: a repository
//! in a temporary directory, the binary pointed at a fake cluster, and
//! readers of its summaries and of the stored objects.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use cairn::k8s::manifests::stored::load_objects;
use cairn::repo::snapshots::SnapshotFilter;
use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use serde_json::Value;

use crate::cli_support::{cairn, json_summary, small_repo_options, PASSWORD};
use crate::k8s_support::{FakeCluster, Key};

/// A repository in its own temporary directory (removed when dropped).
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// A new repository with the tests' small options.
pub fn repo() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    Repository::init(
        Arc::new(LocalStorage::new(path.clone())),
        PASSWORD.as_bytes(),
        small_repo_options(),
    )
    .unwrap();
    Repo { dir, path }
}

/// `cairn --json k8s ARGS --kubeconfig` of `cluster`, on `repo`.
pub fn k8s(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> Command {
    let mut cmd = cairn(repo);
    cmd.env_remove("KUBECONFIG")
        .arg("--json")
        .arg("k8s")
        .args(args)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig());
    cmd
}

/// A backup that must succeed; its summary.
pub fn backup(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> Value {
    let mut all = vec!["backup"];
    all.extend_from_slice(args);
    let out = k8s(repo, cluster, &all).output().unwrap();
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_summary(&out)
}

/// A restore of `latest`'s exit code and summary, whether or not every
/// object was restored.
pub fn restore_any(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["restore", "latest"];
    all.extend_from_slice(args);
    let out = k8s(repo, cluster, &all).output().unwrap();
    (out.status.code(), json_summary(&out))
}

/// A restore of `latest` that must succeed; its summary.
pub fn restore(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> Value {
    let (code, summary) = restore_any(repo, cluster, args);
    assert_eq!(code, Some(0), "{summary:#}");
    summary
}

/// The objects of the latest snapshot, by path.
pub fn stored(repo: &Path) -> BTreeMap<String, Value> {
    let repo = Repository::open(Arc::new(LocalStorage::new(repo.to_path_buf())), PASSWORD.as_bytes())
        .unwrap()
        .load_index()
        .unwrap();
    let (_, objects) = load_objects(&repo, "latest", &SnapshotFilter::default()).unwrap();
    objects.into_iter().map(|o| (o.path, o.object)).collect()
}

/// The fake store's key of an object.
pub fn key(group: &str, plural: &str, ns: &str, name: &str) -> Key {
    (group.into(), plural.into(), ns.into(), name.into())
}

/// Each object of a restore summary: `resource ns/name` to (outcome, reason).
pub fn outcomes(summary: &Value) -> BTreeMap<String, (String, String)> {
    summary["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let ns = o["namespace"].as_str().map(|n| format!("{n}/")).unwrap_or_default();
            (
                format!(
                    "{} {ns}{}",
                    o["resource"].as_str().unwrap(),
                    o["name"].as_str().unwrap()
                ),
                (
                    o["outcome"].as_str().unwrap().to_owned(),
                    o["reason"].as_str().unwrap_or("").to_owned(),
                ),
            )
        })
        .collect()
}
