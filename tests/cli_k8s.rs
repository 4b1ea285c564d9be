//! End-to-end tests of `cairn k8s backup` and `cairn k8s restore` against a
//! fake API server on loopback (tests/k8s_support), through the binary and
//! its real kube client.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_cli;
mod k8s_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cli_support::{cairn, json_summary};
use k8s_cli::{backup, k8s, key, outcomes, repo, restore, stored};
use k8s_support::{FakeCluster, Key};
use serde_json::{json, Value};

fn paths(repo: &Path) -> BTreeSet<String> {
    stored(repo).into_keys().collect()
}

/// What a test compares: the object without what the server, the restore
/// or the cluster's controllers set.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    let map = o.as_object_mut().unwrap();
    map.remove("status");
    let meta = map.get_mut("metadata").unwrap().as_object_mut().unwrap();
    for f in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "ownerReferences",
    ] {
        meta.remove(f);
    }
    if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        labels.retain(|k, _| !k.starts_with("backup.cairn.io/"));
        if labels.is_empty() {
            meta.remove("labels");
        }
    }
    if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
        if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
    // A restored claim is created unbound; the PV controller marks it
    // bound again.
    if let Some(a) = o.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        a.remove("pv.kubernetes.io/bind-completed");
        a.remove("pv.kubernetes.io/bound-by-controller");
        if a.is_empty() {
            o["metadata"].as_object_mut().unwrap().remove("annotations");
        }
    }
    if let Some(claim) = o.pointer_mut("/spec/claimRef").and_then(Value::as_object_mut) {
        claim.remove("uid");
        claim.remove("resourceVersion");
    }
    o
}

fn mutating(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .log()
        .into_iter()
        .filter(|l| l.method != "GET")
        .map(|l| format!("{} {}", l.method, l.path))
        .collect()
}

#[test]
fn full_backup_restores_into_an_empty_cluster_as_the_same_objects() {
    let source = FakeCluster::seeded();
    let repo = repo();
    let summary = backup(&repo.path, &source, &[]);
    assert_eq!(summary["partial"], false, "{summary}");
    assert_eq!(summary["cluster"], "fake");
    assert!(summary["snapshot_id"].is_string());

    let target = FakeCluster::empty();
    let report = restore(&repo.path, &target, &[]);
    let results = outcomes(&report);
    // The service accounts the target made in each new namespace are
    // merged into.
    assert!(
        results
            .iter()
            .all(|(k, (o, _))| o == "created" || o == "skipped" || o == "merged" && k.ends_with("/default")),
        "{results:#?}"
    );

    // Everything but what controllers recreate, noise and the excluded
    // object arrives, equal once normalised.
    let leave_out = |k: &Key| {
        matches!(
            (k.0.as_str(), k.1.as_str()),
            ("", "pods")
                | ("apps", "replicasets")
                | ("batch", "jobs")
                | ("discovery.k8s.io", "endpointslices")
                | ("", "events")
                | ("", "nodes")
        ) || k.3 == "scratch"
    };
    let want: BTreeMap<Key, Value> = source
        .objects()
        .into_iter()
        .filter(|(k, _)| !leave_out(k))
        .map(|(k, v)| (k, comparable(&v)))
        .collect();
    let got: BTreeMap<Key, Value> = target.objects().into_iter().map(|(k, v)| (k, comparable(&v))).collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (k, v) in &want {
        assert_eq!(&got[k], v, "{k:?}");
    }
    // Restored objects are labelled with the snapshot and the restore.
    let cm = &target.objects()[&key("", "configmaps", "web", "frontend-config")];
    let short = &summary["snapshot_id"].as_str().unwrap()[..8];
    assert_eq!(cm["metadata"]["labels"]["backup.cairn.io/snapshot"], short);
    assert_eq!(cm["metadata"]["labels"]["backup.cairn.io/restore"], report["restore"]);
    // The Service got a new cluster IP from the target; the claim kept its
    // volume, which was restored too.
    let svc = &target.objects()[&key("", "services", "web", "frontend")];
    assert_ne!(svc["spec"]["clusterIP"], "10.96.0.10");
    let pvc = &target.objects()[&key("", "persistentvolumeclaims", "data", "data-db-0")];
    assert_eq!(pvc["spec"]["volumeName"], "pv-data-db-0");
}

#[test]
fn objects_are_stored_normalised_one_file_each_and_deduplicate() {
    let cluster = FakeCluster::seeded();
    let repo = repo();
    let first = backup(&repo.path, &cluster, &["--tag", "nightly"]);
    let objects = stored(&repo.path);
    let dep = &objects["/resources/apps/deployments/namespaces/web/frontend.json"];
    assert_eq!(dep["apiVersion"], "apps/v1");
    assert_eq!(dep["kind"], "Deployment");
    for gone in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
    ] {
        assert!(dep["metadata"].get(gone).is_none(), "{gone} kept");
    }
    // Status is kept whole.
    assert_eq!(dep["status"], json!({"readyReplicas": 2}));
    assert!(objects.contains_key("/resources/core/persistentvolumes/cluster/pv-data-db-0.json"));
    assert!(objects.contains_key("/resources/example.com/widgets/namespaces/team-a/gizmo.json"));
    // Owned objects are backed up (and skipped on restore); noise and the
    // excluded object are not.
    assert!(objects.contains_key("/resources/core/pods/namespaces/web/frontend-5d9c7-abcde.json"));
    assert!(!objects
        .keys()
        .any(|p| p.contains("/events/") || p.contains("/nodes/") || p.contains("scratch")));
    assert_eq!(first["objects"].as_u64().unwrap() as usize, objects.len());

    // The snapshot is tagged with the cluster and the filters.
    let out = cairn(&repo.path).args(["--json", "snapshots"]).output().unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tags: Vec<&str> = list[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in ["k8s", "cluster=fake", "include-cluster-resources=auto", "nightly"] {
        assert!(tags.contains(&t), "{tags:?}");
    }
    assert_eq!(list[0]["host"], "fake");

    // A single object restores as a file like any other.
    let dir = tempfile::tempdir().unwrap();
    cairn(&repo.path)
        .args([
            "restore",
            "latest:/resources/core/configmaps/namespaces/web",
            "--target",
        ])
        .arg(dir.path())
        .assert()
        .success();
    let text = std::fs::read_to_string(dir.path().join("frontend-config.json")).unwrap();
    let cm: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cm["data"]["nginx.conf"], "server { listen 80; }");

    // Unchanged objects deduplicate; a changed one is seen as changed.
    let second = backup(&repo.path, &cluster, &["--tag", "nightly"]);
    assert_eq!(second["objects_unmodified"], first["objects"], "{second}");
    assert_eq!(second["data_added"], 0, "{second}");
    cluster
        .state()
        .objects
        .get_mut(&key("", "configmaps", "web", "frontend-config"))
        .unwrap()["data"]["x"] = json!("1");
    let third = backup(&repo.path, &cluster, &["--tag", "nightly"]);
    assert_eq!(third["objects_changed"], 1, "{third}");
}

#[test]
fn namespace_and_resource_filters_select_what_is_backed_up() {
    let cluster = FakeCluster::seeded();
    let repo = repo();

    backup(&repo.path, &cluster, &["--include-namespaces", "web"]);
    let p = paths(&repo.path);
    assert!(
        p.iter()
            .filter(|p| p.contains("/namespaces/") && !p.contains("/core/namespaces/"))
            .all(|p| p.contains("/namespaces/web/")),
        "{p:#?}"
    );
    assert!(p.contains("/resources/core/namespaces/cluster/web.json"));
    assert!(!p.contains("/resources/core/namespaces/cluster/data.json"));
    // auto: the cluster objects the web objects need, and no others.
    assert!(p.contains("/resources/rbac.authorization.k8s.io/clusterrolebindings/cluster/widget-editors.json"));
    assert!(p.contains("/resources/rbac.authorization.k8s.io/clusterroles/cluster/widget-editor.json"));
    assert!(!p.contains("/resources/rbac.authorization.k8s.io/clusterroles/cluster/system:unrelated.json"));
    assert!(!p.iter().any(|p| p.contains("persistentvolumes/cluster")));

    backup(
        &repo.path,
        &cluster,
        &["--include-namespaces", "d*", "--exclude-resources", "secrets,po"],
    );
    let p = paths(&repo.path);
    assert!(p.contains("/resources/core/persistentvolumeclaims/namespaces/data/data-db-0.json"));
    // The claim's volume and storage class come along.
    assert!(p.contains("/resources/core/persistentvolumes/cluster/pv-data-db-0.json"));
    assert!(p.contains("/resources/storage.k8s.io/storageclasses/cluster/standard.json"));
    assert!(!p.iter().any(|p| p.contains("/secrets/") || p.contains("/pods/")));

    backup(
        &repo.path,
        &cluster,
        &[
            "--exclude-namespaces",
            "web,kube-*",
            "--include-resources",
            "cm,deployments.apps,widgets",
        ],
    );
    let p = paths(&repo.path);
    let kinds: BTreeSet<&str> = p.iter().map(|p| p.split('/').nth(3).unwrap()).collect();
    assert_eq!(
        kinds,
        ["configmaps", "customresourcedefinitions", "namespaces", "widgets"].into()
    );
    assert!(!p.iter().any(|p| p.contains("/web/") || p.contains("kube-system")));

    backup(&repo.path, &cluster, &["--selector", "tier=back"]);
    let p = paths(&repo.path);
    let objects: BTreeSet<&str> = p
        .iter()
        .filter(|p| p.contains("/namespaces/") && !p.contains("core/namespaces"))
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(objects, ["doohickey.json", "gizmo.json", "team-settings.json"].into());
    assert!(p.contains("/resources/apiextensions.k8s.io/customresourcedefinitions/cluster/widgets.example.com.json"));

    backup(
        &repo.path,
        &cluster,
        &["--include-namespaces", "web", "--include-cluster-resources", "false"],
    );
    let p = paths(&repo.path);
    assert!(
        !p.iter()
            .any(|p| p.contains("/cluster/") && !p.contains("core/namespaces/")),
        "{p:#?}"
    );

    backup(
        &repo.path,
        &cluster,
        &["--include-namespaces", "web", "--include-cluster-resources", "true"],
    );
    assert!(
        paths(&repo.path).contains("/resources/rbac.authorization.k8s.io/clusterroles/cluster/system:unrelated.json")
    );

    let out = k8s(
        &repo.path,
        &cluster,
        &["backup", "--include-cluster-resources", "maybe"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = k8s(&repo.path, &cluster, &["backup", "--selector", "a in b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--selector"));
}

#[test]
fn restore_filters_select_what_is_restored() {
    let source = FakeCluster::seeded();
    let repo = repo();
    backup(&repo.path, &source, &[]);

    let target = FakeCluster::empty();
    restore(
        &repo.path,
        &target,
        &["--include-namespaces", "team-a", "--include-resources", "widgets"],
    );
    let keys: BTreeSet<(String, String)> = target.objects().into_keys().map(|k| (k.1, k.3)).collect();
    assert_eq!(
        keys,
        [
            ("customresourcedefinitions", "widgets.example.com"),
            ("namespaces", "team-a"),
            // Made by the cluster in the new namespace.
            ("serviceaccounts", "default"),
            ("widgets", "doohickey"),
            ("widgets", "gizmo")
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
    );

    let target = FakeCluster::empty();
    restore(
        &repo.path,
        &target,
        &["--selector", "app=db", "--exclude-resources", "secrets"],
    );
    let names: BTreeSet<String> = target
        .objects()
        .into_keys()
        .map(|k| format!("{}/{}", k.1, k.3))
        .collect();
    assert!(names.contains("configmaps/db-config"));
    assert!(names.contains("persistentvolumeclaims/data-db-0"));
    assert!(names.contains("persistentvolumes/pv-data-db-0"));
    assert!(!names.contains("secrets/db-credentials"));
    assert!(!names.iter().any(|n| n.starts_with("configmaps/frontend")));

    // Without its volume, a claim loses its binding (and gets a new volume).
    let target = FakeCluster::empty();
    restore(
        &repo.path,
        &target,
        &["--include-namespaces", "data", "--include-cluster-resources", "false"],
    );
    let objects = target.objects();
    assert!(!objects.keys().any(|k| k.1 == "persistentvolumes"));
    let pvc = &objects[&key("", "persistentvolumeclaims", "data", "data-db-0")];
    assert!(pvc["spec"].get("volumeName").is_none(), "{pvc}");
    assert!(pvc["metadata"]["annotations"]
        .get("pv.kubernetes.io/bind-completed")
        .is_none());
    assert_eq!(pvc["spec"]["storageClassName"], "standard");
}

#[test]
fn namespace_mapping_rewrites_namespaces_and_references() {
    let cluster = FakeCluster::seeded();
    let repo = repo();
    backup(&repo.path, &cluster, &["--include-namespaces", "web"]);
    let report = restore(&repo.path, &cluster, &["--namespace-mapping", "web:web-copy"]);
    let objects = cluster.objects();
    assert!(objects.contains_key(&key("", "namespaces", "", "web-copy")));
    assert!(objects.contains_key(&key("", "configmaps", "web-copy", "frontend-config")));
    let rb = &objects[&key(
        "rbac.authorization.k8s.io",
        "rolebindings",
        "web-copy",
        "frontend-reads-config",
    )];
    assert_eq!(rb["subjects"][0]["namespace"], "web-copy");
    assert_eq!(rb["metadata"]["namespace"], "web-copy");
    // The copy's Service got its own cluster IP (the old one is taken).
    let svc = &objects[&key("", "services", "web-copy", "frontend")];
    assert_ne!(svc["spec"]["clusterIP"], "10.96.0.10");
    // Cluster-scoped objects that exist are left alone.
    let results = outcomes(&report);
    assert_eq!(
        results["clusterrolebindings.rbac.authorization.k8s.io widget-editors"],
        ("skipped".to_owned(), "already exists".to_owned())
    );
    assert!(results.values().all(|(o, _)| o != "failed"), "{results:#?}");
}

#[test]
fn restore_creates_definitions_and_namespaces_before_what_needs_them() {
    let source = FakeCluster::seeded();
    let repo = repo();
    backup(&repo.path, &source, &[]);
    let target = FakeCluster::empty();
    restore(&repo.path, &target, &[]);
    let posts = target.posts();
    let pos = |needle: &str| {
        posts
            .iter()
            .position(|p| p.ends_with(needle))
            .unwrap_or_else(|| panic!("{needle} never created: {posts:#?}"))
    };
    assert_eq!(pos("/customresourcedefinitions"), 0);
    assert!(pos("/api/v1/namespaces") < pos("/namespaces/data/persistentvolumeclaims"));
    assert!(pos("/api/v1/persistentvolumes") < pos("/namespaces/data/persistentvolumeclaims"));
    assert!(pos("/namespaces/data/persistentvolumeclaims") < pos("/namespaces/data/secrets"));
    assert!(pos("/namespaces/web/serviceaccounts") < pos("/namespaces/web/secrets"));
    assert!(pos("/namespaces/web/secrets") < pos("/namespaces/web/configmaps"));
    assert!(pos("/namespaces/web/configmaps") < pos("/namespaces/web/services"));
    assert!(pos("/namespaces/web/services") < pos("/namespaces/web/deployments"));
    // Custom resources come last, after the definition was seen established.
    assert_eq!(pos("/namespaces/team-a/widgets"), posts.len() - 2);
    let log = target.log();
    let crd_gets = log
        .iter()
        .filter(|l| l.method == "GET" && l.path.ends_with("/customresourcedefinitions/widgets.example.com"))
        .count();
    assert!(crd_gets >= 2, "the restore did not wait for the definition");

    // --order adds to the priority list: config maps first.
    let target = FakeCluster::empty();
    restore(
        &repo.path,
        &target,
        &["--order", "configmaps", "--include-namespaces", "web"],
    );
    let first_object = target
        .log()
        .into_iter()
        .find(|l| l.method == "POST" && !l.path.ends_with("/api/v1/namespaces"))
        .unwrap();
    assert!(
        first_object.path.ends_with("/namespaces/web/configmaps"),
        "{first_object:?}"
    );
}

#[test]
fn the_server_rejects_objects_out_of_order() {
    // The fake server is strict: proof that the restore order matters.
    let cluster = FakeCluster::empty();
    let mut state = cluster.state();
    let defs = k8s_support::builtin();
    let pvc = defs.iter().find(|d| d.plural == "persistentvolumeclaims").unwrap();
    let err = state
        .insert(pvc, json!({"metadata": {"name": "c", "namespace": "nowhere"}}))
        .unwrap_err();
    assert_eq!(err.0, 404);
    assert!(state.served().iter().all(|d| d.plural != "widgets"));
}

#[test]
fn owned_objects_are_skipped_with_their_owner_named() {
    let source = FakeCluster::seeded();
    let repo = repo();
    backup(&repo.path, &source, &[]);
    let target = FakeCluster::empty();
    let report = restore(&repo.path, &target, &[]);
    let results = outcomes(&report);
    let skipped = |k: &str| {
        results
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} missing: {results:#?}"))
    };
    assert_eq!(
        skipped("pods web/frontend-5d9c7-abcde"),
        (
            "skipped".into(),
            "owned by ReplicaSet/frontend-5d9c7, which recreates it".into()
        )
    );
    assert_eq!(skipped("replicasets.apps web/frontend-5d9c7").0, "skipped");
    assert!(skipped("replicasets.apps web/frontend-5d9c7")
        .1
        .contains("Deployment/frontend"));
    assert!(skipped("jobs.batch data/nightly-28000000")
        .1
        .contains("CronJob/nightly"));
    assert!(skipped("pods data/db-0").1.contains("StatefulSet/db"));
    assert_eq!(
        skipped("endpointslices.discovery.k8s.io web/frontend-x7k2p").0,
        "skipped"
    );
    assert_eq!(report["resources"]["pods"]["skipped"], 3);
    assert!(!target
        .objects()
        .keys()
        .any(|k| k.1 == "pods" || k.1 == "replicasets" || k.1 == "jobs"));
}

#[test]
fn existing_objects_are_left_alone_or_updated_by_policy() {
    let cluster = FakeCluster::seeded();
    let repo = repo();
    backup(&repo.path, &cluster, &["--include-namespaces", "web"]);
    let cm_key = key("", "configmaps", "web", "frontend-config");
    cluster.state().objects.get_mut(&cm_key).unwrap()["data"] = json!({"nginx.conf": "changed"});

    let report = restore(&repo.path, &cluster, &["--include-resources", "configmaps"]);
    assert_eq!(
        outcomes(&report)["configmaps web/frontend-config"],
        ("skipped".into(), "already exists".into())
    );
    assert_eq!(cluster.objects()[&cm_key]["data"]["nginx.conf"], "changed");

    let report = restore(
        &repo.path,
        &cluster,
        &[
            "--include-resources",
            "configmaps",
            "--existing-resource-policy",
            "update",
        ],
    );
    assert_eq!(outcomes(&report)["configmaps web/frontend-config"].0, "updated");
    assert_eq!(report["resources"]["configmaps"]["updated"], 1);
    let cm = &cluster.objects()[&cm_key];
    assert_eq!(cm["data"]["nginx.conf"], "server { listen 80; }");
    assert!(cm["metadata"]["labels"]["backup.cairn.io/restore"].is_string());
    assert!(cluster
        .log()
        .iter()
        .any(|l| l.method == "PUT" && l.path.ends_with("/configmaps/frontend-config")));
}

#[test]
fn dry_run_changes_nothing() {
    let source = FakeCluster::seeded();
    let repo = repo();
    backup(&repo.path, &source, &[]);
    let target = FakeCluster::empty();
    let report = restore(&repo.path, &target, &["--dry-run"]);
    assert!(target.objects().is_empty());
    assert_eq!(mutating(&target), Vec::<String>::new());
    let results = outcomes(&report);
    assert_eq!(results["configmaps web/frontend-config"].0, "would_create");
    assert_eq!(results["widgets.example.com team-a/gizmo"].0, "would_create");
    assert_eq!(report["dry_run"], true);

    // Into the cluster it came from: everything exists.
    let report = restore(
        &repo.path,
        &source,
        &["--dry-run", "--existing-resource-policy", "update"],
    );
    assert_eq!(outcomes(&report)["configmaps web/frontend-config"].0, "would_update");
    assert_eq!(mutating(&source), Vec::<String>::new());

    // The human plan names each object.
    let out = cairn(&repo.path)
        .env_remove("KUBECONFIG")
        .args(["k8s", "restore", "latest", "--dry-run", "--kubeconfig"])
        .arg(target.kubeconfig())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("create  configmaps web/frontend-config"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(target.objects().is_empty());
}

fn one_error_line(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_kubeconfig_and_unreachable_server_are_named_in_one_line() {
    let cluster = FakeCluster::seeded();
    let repo = repo();
    let missing = cluster.dir().join("no-such-kubeconfig");
    let out = cairn(&repo.path)
        .env_remove("KUBECONFIG")
        .args(["k8s", "backup", "--kubeconfig"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = one_error_line(&out);
    assert!(
        line.contains("kubeconfig") && line.contains("no-such-kubeconfig"),
        "{line}"
    );

    let garbage = cluster.dir().join("garbage");
    std::fs::write(&garbage, "clusters: [this is not: a kubeconfig").unwrap();
    let out = cairn(&repo.path)
        .env_remove("KUBECONFIG")
        .args(["k8s", "backup", "--kubeconfig"])
        .arg(&garbage)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(one_error_line(&out).contains("kubeconfig"));

    let out = cairn(&repo.path)
        .env_remove("KUBECONFIG")
        .args(["k8s", "backup", "--context", "nope", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(one_error_line(&out).contains("nope"));

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = cluster.kubeconfig_for(&format!("http://{closed}"), "unreachable");
    let out = cairn(&repo.path)
        .env_remove("KUBECONFIG")
        .args(["k8s", "backup", "--kubeconfig"])
        .arg(&unreachable)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = one_error_line(&out);
    assert!(
        line.contains(&format!("cannot reach the Kubernetes API server at http://{closed}")),
        "{line}"
    );
    // Over TLS too: the one crypto provider builds the client, no panic.
    let tls = cluster.kubeconfig_for(&format!("https://{closed}"), "tls");
    let out = cairn(&repo.path)
        .env_remove("KUBECONFIG")
        .args(["k8s", "backup", "--kubeconfig"])
        .arg(&tls)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    // No snapshot was written by the failed backups.
    let out = cairn(&repo.path).args(["--json", "snapshots"]).output().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), json!([]));
}

#[test]
fn forbidden_resources_are_reported_and_the_rest_is_backed_up_as_partial() {
    let cluster = FakeCluster::seeded();
    cluster.forbid("", "secrets");
    let repo = repo();
    let out = k8s(&repo.path, &cluster, &["backup"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: secrets: forbidden: 403 Forbidden: secrets is forbidden"),
        "{stderr}"
    );
    let summary = json_summary(&out);
    assert_eq!(summary["partial"], true);
    assert_eq!(summary["errors"].as_array().unwrap().len(), 1);
    let p = paths(&repo.path);
    assert!(!p.iter().any(|p| p.contains("/secrets/")));
    assert!(p.contains("/resources/core/configmaps/namespaces/web/frontend-config.json"));
    let out = cairn(&repo.path).args(["--json", "snapshots"]).output().unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["partial"], true, "{list}");
}

#[test]
fn large_lists_are_read_page_by_page() {
    let cluster = FakeCluster::seeded();
    {
        let mut state = cluster.state();
        for i in 0..1203 {
            state.seed(
                "",
                "configmaps",
                json!({"metadata": {"name": format!("bulk-{i:04}"), "namespace": "default"}, "data": {"i": i.to_string()}}),
            );
        }
    }
    let repo = repo();
    let summary = backup(
        &repo.path,
        &cluster,
        &["--include-namespaces", "default", "--include-resources", "cm"],
    );
    assert_eq!(summary["resources"]["configmaps"], 1203);
    let pages: Vec<String> = cluster
        .log()
        .into_iter()
        .filter(|l| l.method == "GET" && l.path.ends_with("/namespaces/default/configmaps"))
        .map(|l| l.query)
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|q| q.contains("limit=500")));
    // Continue tokens are `RV:OFFSET`.
    let offset = |q: &str| {
        q.split('&')
            .find_map(|p| p.strip_prefix("continue="))
            .map(|t| t.replace("%3A", ":").rsplit(':').next().unwrap_or("").to_owned())
    };
    assert!(
        offset(&pages[1]).as_deref() == Some("500") && offset(&pages[2]).as_deref() == Some("1000"),
        "{pages:?}"
    );
    assert_eq!(paths(&repo.path).iter().filter(|p| p.contains("/bulk-")).count(), 1203);
}

#[test]
fn context_picks_the_cluster_of_a_kubeconfig() {
    let cluster = FakeCluster::seeded();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let kubeconfig = cluster.dir().join("two-contexts");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://{closed}\n\
             - name: staging\n  cluster:\n    server: {}\n\
             users:\n- name: tester\n  user:\n    token: t\n\
             contexts:\n- name: old\n  context:\n    cluster: gone\n    user: tester\n\
             - name: stage\n  context:\n    cluster: staging\n    user: tester\n\
             current-context: old\n",
            cluster.url
        ),
    )
    .unwrap();
    let repo = repo();
    let run = |extra: &[&str]| {
        cairn(&repo.path)
            .env_remove("KUBECONFIG")
            .args(["--json", "k8s", "backup", "--include-namespaces", "web"])
            .args(extra)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .unwrap()
    };
    assert_eq!(run(&[]).status.code(), Some(1));
    let out = run(&["--context", "stage"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_summary(&out)["cluster"], "staging");
    // KUBECONFIG is read when --kubeconfig is not given.
    let out = cairn(&repo.path)
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "--json",
            "k8s",
            "backup",
            "--context",
            "stage",
            "--include-namespaces",
            "web",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_summary(&out)["objects_unmodified"], json_summary(&out)["objects"]);
}

#[test]
fn restore_wait_removes_the_marker_and_names_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("cairn");
    let run = |args: &[&str]| {
        std::process::Command::new(&bin)
            .args(["k8s", "restore-wait", "--dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    std::fs::write(dir.path().join(".cairn-restore-u1"), b"").unwrap();
    let ok = run(&["--marker", ".cairn-restore-u1", "--timeout", "30s"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(".cairn-restore-u1 found and removed"));
    assert!(!dir.path().join(".cairn-restore-u1").exists());

    let bad = run(&["--marker", "data/.cairn"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("must start with \".cairn\""), "{stderr}");

    let late = run(&["--marker", ".cairn-restore-never", "--timeout", "1s"]);
    assert_eq!(late.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert!(stderr.contains(".cairn-restore-never: not there after 1s"), "{stderr}");
}
