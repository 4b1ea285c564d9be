//! A Restore with volume data, end to end: the claim is created anew and
//! provisioned fresh, a helper pod mounts it and really runs
//! `cairn k8s restore-wait`, the node's agent writes the snapshot and the
//! marker, the helper goes, and only then are the workloads created.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use controller_support::{
    cluster, create, init_repository, key, repository, set_status, wait_phase, wait_phase_logged, Agent, Controller,
    NS, WAIT,
};
use k8s_support::kubelet::Kubelet;
use k8s_support::FakeCluster;
use serde_json::{json, Value};

/// Namespace web with StatefulSet web, its pod web-0 and claim data-web-0
/// (class `class`, none for the default binding), the pod opting its
/// `data` volume in.
fn seed_app(cluster: &FakeCluster, class: Option<&str>) {
    let mut s = cluster.state();
    s.seed("", "namespaces", json!({"metadata": {"name": "web"}}));
    let mut claim = json!({"metadata": {"name": "data-web-0", "namespace": "web"},
                           "spec": {"accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(class) = class {
        s.seed(
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": class}, "provisioner": "fake.csi.cairn.io",
                   "volumeBindingMode": "WaitForFirstConsumer"}),
        );
        claim["spec"]["storageClassName"] = json!(class);
    }
    s.seed("", "persistentvolumeclaims", claim);
    s.seed(
        "apps",
        "statefulsets",
        json!({"metadata": {"name": "web", "namespace": "web"},
               "spec": {"serviceName": "web", "replicas": 1,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "app", "image": "x"}]}}}}),
    );
    let sts_uid = s
        .objects
        .get(&(
            "apps".to_owned(),
            "statefulsets".to_owned(),
            "web".to_owned(),
            "web".to_owned(),
        ))
        .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_owned))
        .unwrap_or_default();
    s.seed(
        "",
        "pods",
        json!({"metadata": {"name": "web-0", "namespace": "web", "labels": {"app": "web"},
                            "annotations": {"backup.cairn.io/volumes": "data"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                                 "uid": sts_uid, "controller": true}]},
               "spec": {"containers": [{"name": "app", "image": "x",
                                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}]}}),
    );
}

/// Files with different modes and times, a symlink and a nested directory.
fn write_data(dir: &Path) {
    fs::create_dir_all(dir.join("db/wal")).unwrap();
    fs::write(dir.join("db/orders.db"), b"orders").unwrap();
    fs::write(dir.join("db/wal/000001"), vec![7u8; 100_000]).unwrap();
    fs::write(dir.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(dir.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(dir.join("db/orders.db"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("db/orders.db", dir.join("current")).unwrap();
    // Another owner where the test may give one (as root); the tree
    // compares owners either way.
    let _ = std::os::unix::fs::chown(dir.join("db/wal/000001"), Some(1234), Some(2345));
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    for f in ["db/orders.db", "run.sh"] {
        fs::File::options()
            .write(true)
            .open(dir.join(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
}

/// Every entry below `dir`: (relative path, mode, mtime in seconds for
/// files, contents or link target, owner and group).
type Entry = (String, u32, i64, Vec<u8>, (u32, u32));

fn tree(dir: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(dir.join(&rel)).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = rel.join(e.file_name());
            let meta = fs::symlink_metadata(dir.join(&path)).unwrap();
            let content = if meta.is_symlink() {
                fs::read_link(dir.join(&path))
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_file() {
                fs::read(dir.join(&path)).unwrap()
            } else {
                stack.push(path.clone());
                Vec::new()
            };
            let mtime = if meta.is_file() { meta.mtime() } else { 0 };
            out.push((
                path.display().to_string(),
                meta.mode(),
                mtime,
                content,
                (meta.uid(), meta.gid()),
            ));
        }
    }
    out.sort();
    out
}

struct Setup {
    cluster: FakeCluster,
    kubelet: Kubelet,
    work: tempfile::TempDir,
    repo: PathBuf,
}

/// A cluster with the app, a repository, the kubelet of node-1 and its
/// pod's data written.
fn setup(class: Option<&str>) -> Setup {
    let cluster = cluster();
    let kubelet = cluster.start_kubelet(&["node-1"]);
    seed_app(&cluster, class);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    let data = kubelet.pod_volume_dir("web", "web-0", "data");
    write_data(&data);
    Setup {
        cluster,
        kubelet,
        work,
        repo,
    }
}

fn agent(s: &Setup, cluster: &FakeCluster, kubelet: &Kubelet, name: &str) -> Agent {
    Agent::start(
        cluster,
        "node-1",
        &kubelet.pods_dir("node-1"),
        &s.work.path().join(format!("{name}.log")),
    )
}

fn volume_restores(cluster: &FakeCluster) -> Vec<Value> {
    controller_support::objects_of(cluster, "volumerestores")
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

/// Checks a finished Restore into `cluster`'s namespace `ns`: the claim
/// bound to a new PV holding the data as backed up, the helper gone, the
/// StatefulSet created after the VolumeRestore completed.
fn check_restored(cluster: &FakeCluster, kubelet: &Kubelet, ns: &str, old_pv: &str, expected: &[Entry]) {
    let claim = cluster.get("", "persistentvolumeclaims", ns, "data-web-0").unwrap();
    let pv = claim["spec"]["volumeName"].as_str().unwrap().to_owned();
    assert_ne!(pv, old_pv, "{claim}");
    assert_eq!(claim["status"]["phase"], "Bound");
    let pv_obj = cluster.get("", "persistentvolumes", "", &pv).unwrap();
    assert_eq!(pv_obj["spec"]["claimRef"]["namespace"], ns);
    let vrs = volume_restores(cluster);
    assert_eq!(vrs.len(), 1, "{vrs:?}");
    let vr = &vrs[0];
    assert_eq!(vr["spec"]["pvc"]["namespace"], ns, "{vr}");
    assert_eq!(vr["spec"]["pvc"]["name"], "data-web-0", "{vr}");
    assert_eq!(vr["status"]["phase"], "Completed", "{vr}");
    assert_eq!(vr["metadata"]["ownerReferences"][0]["kind"], "Restore");
    let helper = vr["spec"]["pod"]["name"].as_str().unwrap().to_owned();
    assert!(
        cluster.get("", "pods", ns, &helper).is_none(),
        "the helper pod was not deleted"
    );
    let log = kubelet.container_log(ns, &helper, "restore-wait");
    assert!(log.contains("found and removed"), "{log}");
    // The data, as backed up, and no marker.
    let dirs = kubelet.pv_dirs(&pv);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let got = tree(&dirs[0]);
    assert!(got.iter().all(|(p, ..)| !p.starts_with(".cairn")), "{got:?}");
    assert_eq!(got, expected);
    // The workload came after the data.
    let sts = cluster.get("apps", "statefulsets", ns, "web").unwrap();
    assert!(
        rv(&sts) > rv(vr),
        "StatefulSet {} before VolumeRestore {}",
        rv(&sts),
        rv(vr)
    );
}

/// Backs namespace `web` up with an agent, stops the agent, then starts
/// Restore `r1` into `web-copy` and waits until its VolumeRestore exists
/// (no agent takes it).
fn backed_up_then_restoring(s: &Setup, controller: &Controller) {
    let agent = agent(s, &s.cluster, &s.kubelet, "agent");
    create(
        &s.cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["web"]}),
    );
    wait_phase(&s.cluster, controller, "backups", "nightly", "Completed");
    drop(agent);
    create(
        &s.cluster,
        "restores",
        "Restore",
        "r1",
        json!({"backupName": "nightly", "namespaceMapping": {"web": "web-copy"}}),
    );
    let made = s
        .cluster
        .wait_for(|o| o.iter().any(|(k, _)| k.1 == "volumerestores"), WAIT);
    assert!(made, "no VolumeRestore:\n{}", controller.log());
}

#[test]
fn a_restore_into_another_namespace_writes_the_claims_data_before_the_statefulset() {
    let s = setup(None);
    let data = s.kubelet.pod_volume_dir("web", "web-0", "data");
    let expected = tree(&data);
    let old_pv = s
        .cluster
        .get("", "persistentvolumeclaims", "web", "data-web-0")
        .unwrap()["spec"]["volumeName"]
        .as_str()
        .unwrap()
        .to_owned();
    let controller = Controller::start(&s.cluster, &[]);
    let agent = agent(&s, &s.cluster, &s.kubelet, "agent");
    create(
        &s.cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["web"]}),
    );
    let backup = wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");
    assert_eq!(backup["status"]["volumeBackups"]["completed"], 1, "{backup}");

    create(
        &s.cluster,
        "restores",
        "Restore",
        "r1",
        json!({"backupName": "nightly", "namespaceMapping": {"web": "web-copy"}}),
    );
    let done = wait_phase_logged(&s.cluster, "restores", "r1", "Completed", || {
        format!("controller:\n{}\nagent:\n{}", controller.log(), agent.log())
    });
    assert_eq!(
        done["status"]["volumeRestores"],
        json!({"total": 1, "completed": 1, "failed": 0}),
        "{done}"
    );
    check_restored(&s.cluster, &s.kubelet, "web-copy", &old_pv, &expected);
    // The finalizer that guards its helper pods is gone with them.
    let released = s.cluster.wait_for(
        |o| {
            o.get(&key("restores", "r1"))
                .is_some_and(|r| r["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty))
        },
        WAIT,
    );
    assert!(released, "the Restore kept its finalizer:\n{}", controller.log());
    // The pod is the StatefulSet's to make; the original is untouched.
    assert!(s.cluster.get("", "pods", "web-copy", "web-0").is_none());
    assert_eq!(tree(&data), expected);
    let _ = &s.repo;
}

#[test]
fn a_restore_into_another_cluster_sharing_the_repository() {
    let s = setup(None);
    let expected = tree(&s.kubelet.pod_volume_dir("web", "web-0", "data"));
    let controller = Controller::start(&s.cluster, &[]);
    let _agent = agent(&s, &s.cluster, &s.kubelet, "agent");
    create(
        &s.cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["web"]}),
    );
    wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");
    drop(controller);

    // Another cluster: the Backup arrives there by the repository's sync.
    let other = cluster();
    let other_kubelet = other.start_kubelet(&["node-1"]);
    repository(&other, "default", &s.repo, json!({}));
    let other_controller = Controller::start(&other, &[]);
    let other_agent = agent(&s, &other, &other_kubelet, "other-agent");
    let synced = other.wait_for(|o| o.contains_key(&key("backups", "nightly")), WAIT);
    assert!(synced, "the Backup was not synced:\n{}", other_controller.log());
    wait_phase(&other, &other_controller, "backups", "nightly", "Completed");
    create(&other, "restores", "Restore", "r1", json!({"backupName": "nightly"}));
    let done = wait_phase_logged(&other, "restores", "r1", "Completed", || {
        format!("controller:\n{}\nagent:\n{}", other_controller.log(), other_agent.log())
    });
    assert_eq!(done["status"]["volumeRestores"]["completed"], 1, "{done}");
    check_restored(&other, &other_kubelet, "web", "none", &expected);
}

#[test]
fn a_failed_volume_restore_makes_the_restore_partially_failed_naming_the_claim() {
    let s = setup(None);
    let controller = Controller::start(&s.cluster, &[]);
    // No agent from here on: what one writes when the snapshot cannot be
    // read is set by hand.
    backed_up_then_restoring(&s, &controller);
    let vr = volume_restores(&s.cluster).remove(0);
    let helper = vr["spec"]["pod"]["name"].as_str().unwrap().to_owned();
    assert!(s.cluster.get("", "pods", "web-copy", &helper).is_some());
    // The workloads wait for the volume.
    assert!(s.cluster.get("apps", "statefulsets", "web-copy", "web").is_none());
    set_status(
        &s.cluster,
        "backup.cairn.io",
        "volumerestores",
        NS,
        vr["metadata"]["name"].as_str().unwrap(),
        json!({"phase": "Failed", "message": "snapshot 0123abcd not found"}),
    );
    let done = wait_phase(&s.cluster, &controller, "restores", "r1", "PartiallyFailed");
    assert_eq!(
        done["status"]["volumeRestores"],
        json!({"total": 1, "completed": 0, "failed": 1}),
        "{done}"
    );
    let errors = done["status"]["errors"].to_string();
    assert!(
        errors.contains("claim web-copy/data-web-0: snapshot 0123abcd not found"),
        "{done}"
    );
    let gone = s.cluster.wait_for(
        |o| !o.contains_key(&(String::new(), "pods".into(), "web-copy".into(), helper.clone())),
        WAIT,
    );
    assert!(gone, "the helper pod was not deleted");
    // The workloads are restored all the same, after the volume.
    assert!(s.cluster.get("apps", "statefulsets", "web-copy", "web").is_some());
}

#[test]
fn a_wait_for_first_consumer_claim_is_bound_by_the_helper_pod() {
    let s = setup(Some("local-wffc"));
    let expected = tree(&s.kubelet.pod_volume_dir("web", "web-0", "data"));
    let controller = Controller::start(&s.cluster, &[]);
    let agent = agent(&s, &s.cluster, &s.kubelet, "agent");
    create(
        &s.cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["web"]}),
    );
    wait_phase(&s.cluster, &controller, "backups", "nightly", "Completed");
    create(
        &s.cluster,
        "restores",
        "Restore",
        "r1",
        json!({"backupName": "nightly", "namespaceMapping": {"web": "web-copy"}}),
    );
    wait_phase_logged(&s.cluster, "restores", "r1", "Completed", || {
        format!("controller:\n{}\nagent:\n{}", controller.log(), agent.log())
    });
    let claim = s
        .cluster
        .get("", "persistentvolumeclaims", "web-copy", "data-web-0")
        .unwrap();
    // Bound by its first consumer, the helper pod, on the helper's node.
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"], "node-1",
        "{claim}"
    );
    check_restored(&s.cluster, &s.kubelet, "web-copy", "none", &expected);
}

#[test]
fn a_controller_killed_while_the_volumes_are_restored_resumes_them() {
    let s = setup(None);
    let expected = tree(&s.kubelet.pod_volume_dir("web", "web-0", "data"));
    let mut controller = Controller::start(&s.cluster, &[]);
    backed_up_then_restoring(&s, &controller);
    let restore = s.cluster.get("backup.cairn.io", "restores", NS, "r1").unwrap();
    assert_eq!(restore["status"]["step"], "Volumes", "{restore}");
    controller.kill();
    controller.restart();
    let agent = agent(&s, &s.cluster, &s.kubelet, "agent-2");
    let done = wait_phase_logged(&s.cluster, "restores", "r1", "Completed", || {
        format!("controller:\n{}\nagent:\n{}", controller.log(), agent.log())
    });
    assert_eq!(done["status"]["volumeRestores"]["completed"], 1, "{done}");
    // Resumed, not redone: one VolumeRestore, and the first pass's counts kept.
    assert_eq!(volume_restores(&s.cluster).len(), 1);
    assert_eq!(done["status"]["objects"]["failed"], 0, "{done}");
    check_restored(&s.cluster, &s.kubelet, "web-copy", "none", &expected);
}

#[test]
fn a_restore_deleted_while_its_volumes_wait_deletes_its_helper_pods() {
    let s = setup(None);
    let controller = Controller::start(&s.cluster, &[]);
    backed_up_then_restoring(&s, &controller);
    let helper = volume_restores(&s.cluster)[0]["spec"]["pod"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let restore = s.cluster.get("backup.cairn.io", "restores", NS, "r1").unwrap();
    assert_eq!(
        restore["metadata"]["finalizers"],
        json!(["backup.cairn.io/delete-helper-pods"]),
        "{restore}"
    );
    controller_support::delete(&s.cluster, "restores", "r1");
    controller_support::wait_gone(&s.cluster, &controller, "restores", "r1");
    assert!(
        s.cluster.get("", "pods", "web-copy", &helper).is_none(),
        "the helper pod outlived its Restore"
    );
    // The workloads were never created.
    assert!(s.cluster.get("apps", "statefulsets", "web-copy", "web").is_none());
}
