//! `cairn k8s restore` where things are not as they were: `latest` in a
//! repository that holds other snapshots and other clusters' manifests,
//! objects stored at a version the target no longer serves, and a server
//! that throttles, fails or goes away.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cli_support::{cairn, json_summary, small_repo_options, PASSWORD};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

struct Repo {
    dir: tempfile::TempDir,
    path: PathBuf,
}

fn repo() -> Repo {
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

fn k8s(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> Command {
    let mut cmd = cairn(repo);
    cmd.env_remove("KUBECONFIG")
        .arg("--json")
        .arg("k8s")
        .args(args)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig());
    cmd
}

fn ok(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    json_summary(&out)
}

fn cluster_with(configmaps: &[&str]) -> FakeCluster {
    let cluster = FakeCluster::empty();
    {
        let mut s = cluster.state();
        s.seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
        for name in configmaps {
            s.seed(
                "",
                "configmaps",
                json!({"metadata": {"name": name, "namespace": "shop"}, "data": {"k": "v"}}),
            );
        }
    }
    cluster
}

fn outcome_of<'a>(summary: &'a Value, resource: &str, name: &str) -> &'a Value {
    summary["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["resource"] == resource && o["name"] == name)
        .unwrap_or_else(|| panic!("no {resource} {name} in {summary}"))
}

#[test]
fn latest_is_the_latest_manifest_snapshot_of_one_cluster() {
    let repo = repo();
    let prod = cluster_with(&["from-prod"]);
    ok(k8s(&repo.path, &prod, &["backup", "--host", "prod"])
        .arg("--include-namespaces")
        .arg("shop"));
    // A later snapshot of files, even tagged `k8s`, is not what `latest` means.
    let files = repo.dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("a"), "a").unwrap();
    cairn(&repo.path)
        .args(["backup", "--tag", "k8s", "--host", "prod"])
        .arg(&files)
        .assert()
        .success();

    let target = FakeCluster::empty();
    let summary = ok(&mut k8s(&repo.path, &target, &["restore", "latest"]));
    assert_eq!(outcome_of(&summary, "configmaps", "from-prod")["outcome"], "created");

    // Manifests of a second cluster: `latest` is ambiguous unless --host picks.
    let staging = cluster_with(&["from-staging"]);
    ok(&mut k8s(&repo.path, &staging, &["backup", "--host", "staging"]));
    let other = FakeCluster::empty();
    let out = k8s(&repo.path, &other, &["restore", "latest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("manifest snapshots of 2 clusters (prod, staging): pick one with --host"),
        "{stderr}"
    );
    assert!(other.objects().is_empty());
    let summary = ok(&mut k8s(&repo.path, &other, &["restore", "latest", "--host", "prod"]));
    assert_eq!(outcome_of(&summary, "configmaps", "from-prod")["outcome"], "created");
    assert!(other.get("", "configmaps", "shop", "from-staging").is_none());
    let out = k8s(&repo.path, &other, &["restore", "latest", "--host", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest snapshot of host nowhere"));
}
