//! A Backup with pod volumes, end to end: the controller stores the
//! manifests, creates one VolumeBackup per selected volume on the pod's
//! node, waits for them, and counts them; the node's agent backs each up
//! into the Backup's repository under the volume's logical path.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::fs;

use controller_support::{
    cluster, create, init_repository, key, repository, set_status, snapshot_file, snapshots_tagged, uid, wait_phase,
    Agent, Controller, NS, WAIT,
};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

/// A Running pod shop/NAME on node-1 with emptyDir volumes `data` and
/// `cache` (and the opt-in annotation naming `data`); returns its uid.
fn running_pod(cluster: &FakeCluster, name: &str) -> String {
    cluster.state().seed(
        "",
        "pods",
        json!({"metadata": {"name": name, "namespace": "shop",
                            "annotations": {"backup.cairn.io/volumes": "data"}},
               "spec": {"nodeName": "node-1",
                        "containers": [{"name": "app", "image": "x",
                                        "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                                         {"name": "cache", "mountPath": "/cache"}]}],
                        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]},
               "status": {"phase": "Running"}}),
    );
    cluster.get("", "pods", "shop", name).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn volume_backups(cluster: &FakeCluster) -> Vec<Value> {
    controller_support::objects_of(cluster, "volumebackups")
}

#[test]
fn a_backup_waits_for_its_volumes_and_the_agent_stores_them() {
    let cluster = cluster();
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
    let pod_uid = running_pod(&cluster, "web-0");
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    let pods = work.path().join("pods");
    let data = pods.join(&pod_uid).join("volumes/kubernetes.io~empty-dir/data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("orders.db"), b"orders").unwrap();

    create(
        &cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["shop"]}),
    );
    let controller = Controller::start(&cluster, &[]);
    // Without an agent the Backup waits, its manifests stored.
    let reached = cluster.wait_for(
        |o| {
            o.get(&key("backups", "nightly"))
                .and_then(|b| b.pointer("/status/volumeBackups/total"))
                .is_some_and(|t| t == 1)
        },
        WAIT,
    );
    assert!(reached, "no volume backups counted:\n{}", controller.log());
    let backup = cluster.get("backup.cairn.io", "backups", NS, "nightly").unwrap();
    assert_eq!(backup["status"]["phase"], "InProgress", "{backup}");
    assert!(backup["status"]["manifestSnapshot"].is_string(), "{backup}");
    let vbs = volume_backups(&cluster);
    assert_eq!(vbs.len(), 1, "only the opted-in volume: {vbs:?}");
    let vb = &vbs[0];
    assert_eq!(vb["spec"]["node"], "node-1");
    assert_eq!(vb["spec"]["volume"], "data");
    assert_eq!(vb["spec"]["pod"]["uid"], pod_uid.as_str());
    assert_eq!(vb["spec"]["backupName"], "nightly");
    assert_eq!(vb["metadata"]["ownerReferences"][0]["kind"], "Backup");

    let agent = Agent::start(&cluster, "node-1", &pods, &work.path().join("agent.log"));
    let done = wait_phase(&cluster, &controller, "backups", "nightly", "Completed");
    assert_eq!(
        done["status"]["volumeBackups"],
        json!({"total": 1, "completed": 1, "failed": 0}),
        "{done}\n{}",
        agent.log()
    );
    let tagged = snapshots_tagged(&repo, &format!("backup-uid={}", uid(&cluster, "backups", "nightly")));
    assert_eq!(tagged.len(), 2, "the manifests and the volume: {tagged:?}");
    assert!(
        tagged.iter().any(|s| s["paths"] == json!(["/volumes/shop/web-0/data"])),
        "{tagged:?}"
    );
    // The backup record lists the volume with its pod.
    let manifests = done["status"]["manifestSnapshot"].as_str().unwrap();
    let record: Value = serde_json::from_slice(&snapshot_file(&repo, manifests, "cairn/backup.json")).unwrap();
    assert_eq!(
        record["volumes"],
        json!([{"namespace": "shop", "pod": "web-0", "volume": "data"}]),
        "{record}"
    );
}

#[test]
fn a_failed_volume_makes_the_backup_partially_failed_and_says_where_to_look() {
    let cluster = cluster();
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
    running_pod(&cluster, "web-0");
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    create(
        &cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["shop"]}),
    );
    let controller = Controller::start(&cluster, &[]);
    let reached = cluster.wait_for(|o| o.iter().any(|(k, _)| k.1 == "volumebackups"), WAIT);
    assert!(reached, "no VolumeBackup:\n{}", controller.log());
    let vb = volume_backups(&cluster).remove(0);
    let vb_name = vb["metadata"]["name"].as_str().unwrap().to_owned();
    // What an agent that could not read the volume writes.
    set_status(
        &cluster,
        "backup.cairn.io",
        "volumebackups",
        NS,
        &vb_name,
        json!({"phase": "Failed", "message": "u/volumes/*/data below /host_pods: no plugin directory holds it"}),
    );
    let done = wait_phase(&cluster, &controller, "backups", "nightly", "PartiallyFailed");
    assert_eq!(
        done["status"]["volumeBackups"],
        json!({"total": 1, "completed": 0, "failed": 1}),
        "{done}"
    );
    let errors = done["status"]["errors"].to_string();
    assert!(
        errors.contains("1 volume backup(s) failed: kubectl get vbk -l backup.cairn.io/backup-name=nightly"),
        "{done}"
    );
    // The skipped, not opted-in volume is not a warning: only opt-in asks say why not.
    assert_eq!(done["status"]["warnings"], json!([]), "{done}");
}
