//! Pod volumes end to end, on the fake cluster with its kubelet: a
//! namespace with a StatefulSet pod and a standalone pod, a claim both
//! mount, an emptyDir and a configMap. The Backup stores the manifests and
//! one snapshot per volume (the claim once; the configMap is in the
//! manifests, not read as a volume), with
//! the excluded paths left out; the next Backup reads only what changed.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use controller_support::{
    cairn_ok, cluster, create, init_repository, repository, snapshots_tagged, uid, wait_phase, Agent, Controller,
};
use k8s_support::kubelet::Kubelet;
use k8s_support::FakeCluster;
use serde_json::{json, Value};

const NODES: [&str; 2] = ["node-1", "node-2"];

/// The pod template both the StatefulSet and its pod use.
fn web_spec() -> Value {
    json!({"containers": [{"name": "web", "image": "nginx:1.27",
                           "volumeMounts": [{"name": "shared", "mountPath": "/srv"},
                                            {"name": "cache", "mountPath": "/cache"},
                                            {"name": "config", "mountPath": "/etc/web"}]}],
           "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}},
                       {"name": "cache", "emptyDir": {}},
                       {"name": "config", "configMap": {"name": "web-config"}}],
           "nodeSelector": {"kubernetes.io/hostname": "node-1"}})
}

/// Seeds namespace `app`: ConfigMap, claim `shared` (RWX), StatefulSet
/// `web` with its pod web-0 on node-1, and pod `report` on node-2 that
/// mounts the same claim.
fn seed_app(cluster: &FakeCluster) {
    let mut s = cluster.state();
    s.seed("", "namespaces", json!({"metadata": {"name": "app"}}));
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "web-config", "namespace": "app"}, "data": {"web.conf": "port 80"}}),
    );
    s.seed(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "shared", "namespace": "app"},
               "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    let labels = json!({"app": "web"});
    s.seed(
        "apps",
        "statefulsets",
        json!({"metadata": {"name": "web", "namespace": "app", "labels": labels},
               "spec": {"replicas": 1, "serviceName": "web", "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": web_spec()}}}),
    );
    let sts_uid = s
        .objects
        .get(&(
            "apps".to_owned(),
            "statefulsets".to_owned(),
            "app".to_owned(),
            "web".to_owned(),
        ))
        .and_then(|o| o.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    s.seed(
        "",
        "pods",
        json!({"metadata": {"name": "web-0", "namespace": "app", "labels": labels,
                            "annotations": {"backup.cairn.io/exclude-paths": "/tmp,*.bak"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                                 "uid": sts_uid, "controller": true}]},
               "spec": web_spec()}),
    );
    s.seed(
        "",
        "pods",
        json!({"metadata": {"name": "report", "namespace": "app"},
               "spec": {"containers": [{"name": "report", "image": "busybox",
                                        "volumeMounts": [{"name": "shared", "mountPath": "/srv"}]}],
                        "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}],
                        "nodeSelector": {"kubernetes.io/hostname": "node-2"}}}),
    );
}

/// The files of the shared claim: modes, a symlink, a nested directory,
/// times in the past, and files the excludes leave out.
fn fill_shared(dir: &Path) {
    fs::create_dir_all(dir.join("site/img")).unwrap();
    fs::write(dir.join("site/index.html"), b"<h1>shop</h1>").unwrap();
    fs::write(dir.join("site/img/logo.svg"), vec![b'x'; 70_000]).unwrap();
    fs::write(dir.join("site/img/upload.tmp"), b"half an upload").unwrap();
    fs::write(dir.join("secret.key"), b"k").unwrap();
    fs::set_permissions(dir.join("secret.key"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(dir.join("site/img"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("site/index.html", dir.join("home")).unwrap();
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for f in ["site/index.html", "site/img/logo.svg", "secret.key"] {
        fs::File::options()
            .write(true)
            .open(dir.join(f))
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
}

/// The claim's PV directory in each pod that mounts it (no bind mounts in
/// the fake: each pod has its own copy).
fn shared_dirs(cluster: &FakeCluster, kubelet: &Kubelet) -> Vec<std::path::PathBuf> {
    let pv = cluster.get("", "persistentvolumeclaims", "app", "shared").unwrap()["spec"]["volumeName"]
        .as_str()
        .unwrap()
        .to_owned();
    let dirs = kubelet.pv_dirs(&pv);
    assert_eq!(dirs.len(), 2, "both pods mount the claim: {dirs:?}");
    dirs
}

fn volume_snapshots(repo: &Path, cluster: &FakeCluster, backup: &str) -> Vec<Value> {
    snapshots_tagged(repo, &format!("backup-uid={}", uid(cluster, "backups", backup)))
        .into_iter()
        .filter(|s| s["paths"][0].as_str().is_some_and(|p| p.starts_with("/volumes/")))
        .collect()
}

fn by_path<'a>(snaps: &'a [Value], path: &str) -> &'a Value {
    snaps
        .iter()
        .find(|s| s["paths"] == json!([path]))
        .unwrap_or_else(|| panic!("no snapshot of {path}: {snaps:?}"))
}

#[test]
fn two_pods_three_volumes_backed_up_once_each_then_incrementally() {
    let cluster = cluster();
    let kubelet = cluster.start_kubelet(&NODES);
    seed_app(&cluster);
    for pod in ["web-0", "report"] {
        kubelet.pod_volume_dir("app", pod, "shared");
    }
    for dir in shared_dirs(&cluster, &kubelet) {
        fill_shared(&dir);
    }
    let cache = kubelet.pod_volume_dir("app", "web-0", "cache");
    fs::create_dir_all(cache.join("tmp")).unwrap();
    fs::write(cache.join("dump.sql"), b"INSERT 1").unwrap();
    fs::write(cache.join("tmp/scratch"), b"excluded by the pod").unwrap();

    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    let _agents: Vec<Agent> = NODES
        .iter()
        .map(|n| Agent::start(&cluster, n, &kubelet.pods_dir(n), &work.path().join(format!("{n}.log"))))
        .collect();
    let controller = Controller::start(&cluster, &[]);
    let spec = json!({"includedNamespaces": ["app"],
                      "volumes": {"defaultVolumesToBackup": true, "excludePaths": ["*.tmp"]}});
    create(&cluster, "backups", "Backup", "first", spec.clone());
    let first = wait_phase(&cluster, &controller, "backups", "first", "Completed");
    assert_eq!(
        first["status"]["volumeBackups"],
        json!({"total": 2, "completed": 2, "failed": 0}),
        "the claim once, the emptyDir: {first}"
    );
    assert!(
        first["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("backed up the objects into snapshot"),
        "no restart happened: {first}"
    );
    let snaps = volume_snapshots(&repo, &cluster, "first");
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let shared = by_path(&snaps, "/volumes/app/shared");
    let cache_snap = by_path(&snaps, "/volumes/app/web-0/cache");
    for tag in ["namespace=app", "pvc=shared", "volume=shared", "backup=first"] {
        assert!(
            shared["tags"].as_array().unwrap().contains(&json!(tag)),
            "{tag}: {shared}"
        );
    }
    assert_eq!(shared["host"], "test", "the cluster's name: {shared}");
    let os = std::ffi::OsStr::new;
    let listing = cairn_ok(&repo, &[os("ls"), os(shared["id"].as_str().unwrap())]);
    assert!(listing.contains("/volumes/app/shared/site/img/logo.svg"), "{listing}");
    assert!(listing.contains("/volumes/app/shared/home"), "{listing}");
    assert!(
        !listing.contains("upload.tmp"),
        "*.tmp at any depth is excluded: {listing}"
    );
    let listing = cairn_ok(&repo, &[os("ls"), os(cache_snap["id"].as_str().unwrap())]);
    assert!(listing.contains("dump.sql"), "{listing}");
    assert!(!listing.contains("scratch"), "the pod's exclude-paths: {listing}");
    // The manifests hold the ConfigMap the skipped volume comes from.
    let manifests = first["status"]["manifestSnapshot"].as_str().unwrap();
    let listing = cairn_ok(&repo, &[os("ls"), os(manifests)]);
    assert!(
        listing.contains("configmaps/namespaces/app/web-config.json"),
        "{listing}"
    );

    // The next Backup reads only what changed.
    for dir in shared_dirs(&cluster, &kubelet) {
        fs::write(dir.join("site/index.html"), b"<h1>shop, updated</h1>").unwrap();
    }
    create(&cluster, "backups", "Backup", "second", spec);
    wait_phase(&cluster, &controller, "backups", "second", "Completed");
    let snaps = volume_snapshots(&repo, &cluster, "second");
    let shared2 = by_path(&snaps, "/volumes/app/shared");
    assert_eq!(shared2["parent"], shared["id"], "{shared2}");
    let summary = &shared2["summary"];
    assert_eq!(summary["files_changed"], 1, "{shared2}");
    assert_eq!(summary["files_new"], 0, "{shared2}");
    assert_eq!(summary["files_unchanged"], 2, "logo and secret.key: {shared2}");
    let cache2 = by_path(&snaps, "/volumes/app/web-0/cache");
    assert_eq!(cache2["summary"]["files_unchanged"], 1, "{cache2}");
    assert_eq!(cache2["summary"]["data_added"], 0, "{cache2}");
}

#[test]
fn backups_running_at_once_share_one_repository() {
    let cluster = cluster();
    let kubelet = cluster.start_kubelet(&NODES);
    seed_app(&cluster);
    for pod in ["web-0", "report"] {
        kubelet.pod_volume_dir("app", pod, "shared");
    }
    for dir in shared_dirs(&cluster, &kubelet) {
        fill_shared(&dir);
    }
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    let _agents: Vec<Agent> = NODES
        .iter()
        .map(|n| Agent::start(&cluster, n, &kubelet.pods_dir(n), &work.path().join(format!("{n}.log"))))
        .collect();
    let controller = Controller::start(&cluster, &[]);
    let names = ["one", "two", "three"];
    for name in names {
        create(
            &cluster,
            "backups",
            "Backup",
            name,
            json!({"includedNamespaces": ["app"], "volumes": {"defaultVolumesToBackup": true}}),
        );
    }
    for name in names {
        let done = wait_phase(&cluster, &controller, "backups", name, "Completed");
        assert_eq!(done["status"]["volumeBackups"]["completed"], 2, "{done}");
        assert_eq!(volume_snapshots(&repo, &cluster, name).len(), 2, "{name}");
    }
    let os = std::ffi::OsStr::new;
    cairn_ok(&repo, &[os("check"), os("--read-data")]);
}
