//! `cairn k8s restore` of objects whose names, taken from a snapshot that
//! may be hostile, are no plain path segments: against the fake API server,
//! which splits request paths after decoding them as the real one does.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_support;

use std::path::Path;
use std::sync::Arc;

use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cli_support::{cairn, json_summary, small_repo_options, PASSWORD};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

fn k8s(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> std::process::Output {
    cairn(repo)
        .env_remove("KUBECONFIG")
        .arg("--json")
        .arg("k8s")
        .args(args)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .output()
        .unwrap()
}

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "web"}, "data": {"k": "v"}})
}

/// The outcome and reason of the restore of config map `web/name`.
fn outcome(summary: &Value, name: &str) -> (String, String) {
    let o = summary["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["resource"] == "configmaps" && o["namespace"] == "web" && o["name"] == name)
        .unwrap_or_else(|| panic!("no outcome for {name}: {summary}"));
    (
        o["outcome"].as_str().unwrap().to_owned(),
        o["reason"].as_str().unwrap_or("").to_owned(),
    )
}

#[test]
fn names_are_path_segments_encoded_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    Repository::init(
        Arc::new(LocalStorage::new(repo.clone())),
        PASSWORD.as_bytes(),
        small_repo_options(),
    )
    .unwrap();
    let cluster = FakeCluster::seeded();
    // Names the API server never lets in, as a hostile snapshot can hold
    // them: put into the store behind its back, then backed up.
    for name in ["..", "50%", "a?b", "x#y", "red\x1b[31m"] {
        let key = (
            String::new(),
            "configmaps".to_owned(),
            "web".to_owned(),
            name.to_owned(),
        );
        cluster.state().objects.insert(key, config_map(name));
    }
    let out = k8s(&repo, &cluster, &["backup", "--include-namespaces", "web"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json_summary(&out);

    // Into a cluster that has config map `a` and none of the others.
    let cluster = FakeCluster::seeded();
    cluster.state().seed("", "configmaps", config_map("a"));
    let before = cluster.log().len();
    let out = k8s(
        &repo,
        &cluster,
        &["restore", "latest", "--dry-run", "--include-resources", "configmaps"],
    );
    let summary = json_summary(&out);
    // Refused before any request.
    let (state, why) = outcome(&summary, "..");
    assert_eq!(state, "failed", "{why}");
    assert!(why.contains("may not be '.' or '..'"), "{why}");
    let (state, why) = outcome(&summary, "50%");
    assert_eq!(state, "failed", "{why}");
    assert!(why.contains("'%'"), "{why}");
    // Asked for by their own names, not by the part before `?` or `#`
    // (config map `a` exists, `a?b` does not).
    assert_eq!(outcome(&summary, "a?b").0, "would_create", "{summary}");
    assert_eq!(outcome(&summary, "x#y").0, "would_create", "{summary}");
    let log = cluster.log()[before..].to_vec();
    let paths: Vec<&str> = log.iter().map(|l| l.path.as_str()).collect();
    assert!(paths.contains(&"/api/v1/namespaces/web/configmaps/a%3Fb"), "{paths:?}");
    assert!(paths.contains(&"/api/v1/namespaces/web/configmaps/x%23y"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.ends_with("/..") || p.contains("50%")),
        "{paths:?}"
    );
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));

    // The human plan shows names escaped.
    let out = cairn(&repo)
        .env_remove("KUBECONFIG")
        .args([
            "k8s",
            "restore",
            "latest",
            "--dry-run",
            "--include-resources",
            "configmaps",
        ])
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("create  configmaps web/red\\x1b[31m"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
}
