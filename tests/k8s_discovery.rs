//! What a manifest backup takes of what the cluster serves: every version
//! of a group (a resource served only at an older version of its group is
//! still taken), only resources that can be restored, a group whose
//! discovery fails as a warning, and nothing that is being deleted.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cairn::k8s::manifests::stored::load_objects;
use cairn::repo::snapshots::SnapshotFilter;
use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cli_support::{cairn, json_summary, small_repo_options, PASSWORD};
use k8s_support::{Aggregated, FakeCluster};
use serde_json::{json, Value};

fn crd(cluster: &FakeCluster, group: &str, kind: &str, plural: &str, versions: &[&str]) {
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"name": v, "served": true, "storage": i == 0,
                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
        })
        .collect();
    cluster.state().seed(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        json!({"metadata": {"name": format!("{plural}.{group}")},
               "spec": {"group": group, "scope": "Namespaced",
                        "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                        "versions": versions},
               "status": {"conditions": [{"type": "Established", "status": "True"}]}}),
    );
}

/// A repository, a cluster with namespace `mon`, and what `cairn k8s
/// backup ARGS` printed: (exit code, summary, stderr).
fn backup(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> (i32, Value, String) {
    let out = cairn(repo)
        .env_remove("KUBECONFIG")
        .args(["--json", "k8s", "backup", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .args(args)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    (
        code,
        json_summary(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn stored(repo: &Path) -> BTreeMap<String, Value> {
    let repo = Repository::open(Arc::new(LocalStorage::new(repo.to_path_buf())), PASSWORD.as_bytes())
        .unwrap()
        .load_index()
        .unwrap();
    let (_, objects) = load_objects(&repo, "latest", &SnapshotFilter::default()).unwrap();
    objects.into_iter().map(|o| (o.path, o.object)).collect()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, FakeCluster) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    Repository::init(
        Arc::new(LocalStorage::new(path.clone())),
        PASSWORD.as_bytes(),
        small_repo_options(),
    )
    .unwrap();
    let cluster = FakeCluster::empty();
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "mon"}}));
    (dir, path, cluster)
}

#[test]
fn a_resource_served_only_at_an_older_version_of_its_group_is_taken_there() {
    let (_dir, repo, cluster) = setup();
    crd(&cluster, "monitoring.coreos.com", "Prometheus", "prometheuses", &["v1"]);
    crd(
        &cluster,
        "monitoring.coreos.com",
        "AlertmanagerConfig",
        "alertmanagerconfigs",
        &["v1alpha1"],
    );
    let mut s = cluster.state();
    s.seed(
        "monitoring.coreos.com",
        "prometheuses",
        json!({"metadata": {"name": "main", "namespace": "mon"}, "spec": {"replicas": 2}}),
    );
    s.seed(
        "monitoring.coreos.com",
        "alertmanagerconfigs",
        json!({"metadata": {"name": "pager", "namespace": "mon"}, "spec": {"route": {"receiver": "pager"}}}),
    );
    drop(s);
    let (code, summary, stderr) = backup(&repo, &cluster, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["partial"], false, "{summary}");
    let objects = stored(&repo);
    let am = &objects["/resources/monitoring.coreos.com/alertmanagerconfigs/namespaces/mon/pager.json"];
    assert_eq!(am["apiVersion"], "monitoring.coreos.com/v1alpha1");
    let prom = &objects["/resources/monitoring.coreos.com/prometheuses/namespaces/mon/main.json"];
    assert_eq!(prom["apiVersion"], "monitoring.coreos.com/v1");
    // Both definitions go with them.
    assert!(objects.contains_key(
        "/resources/apiextensions.k8s.io/customresourcedefinitions/cluster/alertmanagerconfigs.monitoring.coreos.com.json"
    ));
}

#[test]
fn resources_that_cannot_be_restored_are_not_backed_up() {
    let (_dir, repo, cluster) = setup();
    let mut s = cluster.state();
    s.aggregated.push(Aggregated::new(
        "metrics.k8s.io",
        "v1beta1",
        "PodMetrics",
        "pods",
        true,
        &["get", "list"],
    ));
    s.seed(
        "metrics.k8s.io",
        "pods",
        json!({"metadata": {"name": "web-0", "namespace": "mon"}, "containers": []}),
    );
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "kept", "namespace": "mon"}}),
    );
    drop(s);
    let (code, summary, stderr) = backup(&repo, &cluster, &[]);
    assert_eq!(code, 0, "{stderr}");
    let objects = stored(&repo);
    assert!(
        objects.contains_key("/resources/core/configmaps/namespaces/mon/kept.json"),
        "{objects:?}"
    );
    assert!(
        !objects.keys().any(|p| p.contains("metrics.k8s.io")),
        "metrics cannot be created: {:?}",
        objects.keys()
    );
    assert!(summary["resources"].get("pods.metrics.k8s.io").is_none(), "{summary}");
}

#[test]
fn a_group_whose_discovery_fails_is_a_warning_unless_something_in_it_was_asked_for() {
    let (_dir, repo, cluster) = setup();
    let mut down = Aggregated::new(
        "custom.metrics.k8s.io",
        "v1beta2",
        "MetricValueList",
        "metrics",
        true,
        &["get", "list", "create", "delete"],
    );
    down.down = true;
    let mut s = cluster.state();
    s.aggregated.push(down);
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "kept", "namespace": "mon"}}),
    );
    drop(s);
    let (code, summary, stderr) = backup(&repo, &cluster, &[]);
    assert_eq!(code, 0, "not partial for a group nobody asked for: {stderr}");
    assert_eq!(summary["partial"], false, "{summary}");
    assert!(
        stderr.contains("warning: API group custom.metrics.k8s.io: discovery of custom.metrics.k8s.io/v1beta2 failed"),
        "{stderr}"
    );
    assert_eq!(summary["warnings"].as_array().unwrap().len(), 1, "{summary}");
    assert!(stored(&repo).contains_key("/resources/core/configmaps/namespaces/mon/kept.json"));

    // Named in --include-resources: what was asked for is missing.
    let (code, summary, stderr) = backup(
        &repo,
        &cluster,
        &["--include-resources", "configmaps,metrics.custom.metrics.k8s.io"],
    );
    assert_eq!(code, 3, "partial: {stderr}");
    assert_eq!(summary["partial"], true, "{summary}");
    assert!(summary["errors"][0]
        .as_str()
        .unwrap()
        .starts_with("API group custom.metrics.k8s.io"));
}

#[test]
fn objects_being_deleted_and_terminating_namespaces_are_left_out() {
    let (_dir, repo, cluster) = setup();
    let mut s = cluster.state();
    let hold = json!(["example.com/hold"]);
    s.seed("", "namespaces", json!({"metadata": {"name": "going"}}));
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "inside", "namespace": "going", "finalizers": hold}}),
    );
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "kept", "namespace": "mon"}}),
    );
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "leaving", "namespace": "mon", "finalizers": hold}}),
    );
    s.seed(
        "rbac.authorization.k8s.io",
        "clusterroles",
        json!({"metadata": {"name": "old-role", "finalizers": hold}}),
    );
    // Deleted while finalizers hold them (the namespace by what it still
    // holds): marked with a deletion timestamp.
    for (group, plural, ns, name) in [
        ("", "namespaces", "", "going"),
        ("", "configmaps", "mon", "leaving"),
        ("rbac.authorization.k8s.io", "clusterroles", "", "old-role"),
    ] {
        let def = s.def_of(group, plural).unwrap();
        let key = (group.to_owned(), plural.to_owned(), ns.to_owned(), name.to_owned());
        s.delete(&def, &key, false).unwrap();
        let marked = s
            .objects
            .get(&key)
            .and_then(|o| o.pointer("/metadata/deletionTimestamp"));
        assert!(marked.is_some(), "{key:?}");
    }
    drop(s);
    let (code, _, stderr) = backup(&repo, &cluster, &[]);
    assert_eq!(code, 0, "{stderr}");
    let paths: Vec<String> = stored(&repo).into_keys().collect();
    assert!(
        paths.contains(&"/resources/core/configmaps/namespaces/mon/kept.json".to_owned()),
        "{paths:?}"
    );
    for gone in ["leaving", "going", "inside", "old-role"] {
        assert!(
            !paths.iter().any(|p| p.contains(gone)),
            "{gone} was backed up: {paths:?}"
        );
    }
}
