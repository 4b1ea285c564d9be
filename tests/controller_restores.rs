//! The Restore reconciler of `cairn k8s controller`, run as a process
//! against the fake API server: a Completed Backup of one cluster restores
//! into another with a namespace mapping; a Restore naming a missing or
//! unfinished Backup fails naming it; a Restore the controller left
//! `InProgress` (killed) runs again and completes.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use controller_support::{
    cluster, create, init_repository, manifest_backup, repository, seed_objects, uid, wait_event, wait_metric,
    wait_phase, Controller, NS,
};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

/// A Backup object as a sync from the repository makes it: Completed,
/// naming the snapshot, labelled with the uid of the Backup that wrote it.
fn completed_backup(cluster: &FakeCluster, name: &str, snapshot: &str, original_uid: &str) {
    cluster.state().seed(
        "backup.cairn.io",
        "backups",
        json!({
            "apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup",
            "metadata": {"name": name, "namespace": NS,
                         "labels": {"backup.cairn.io/backup-uid": original_uid}},
            "spec": {"includedNamespaces": ["web"]},
            "status": {"phase": "Completed", "manifestSnapshot": snapshot,
                       "startTimestamp": "2026-12-01T00:00:00Z",
                       "completionTimestamp": "2026-12-01T00:00:05Z",
                       "expiration": "2099-01-01T00:00:00Z"},
        }),
    );
}

fn objects(obj: &Value) -> (u64, u64, u64, u64) {
    let n = |f: &str| {
        obj.pointer(&format!("/status/objects/{f}"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no status.objects.{f} in {obj}"))
    };
    (n("created"), n("updated"), n("skipped"), n("failed"))
}

#[test]
fn a_backup_of_one_cluster_restores_into_another_under_a_new_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);

    let source = cluster();
    seed_objects(&source);
    // A node port the cluster allocated: kept only with preserveNodePorts.
    source.state().seed(
        "",
        "services",
        json!({"metadata": {"name": "edge", "namespace": "web"},
               "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31999}]}}),
    );
    repository(&source, "default", &path, json!({}));
    create(
        &source,
        "backups",
        "Backup",
        "web",
        json!({"includedNamespaces": ["web"]}),
    );
    let (snapshot, original_uid) = {
        let controller = Controller::start(&source, &[]);
        let obj = wait_phase(&source, &controller, "backups", "web", "Completed");
        let id = obj["status"]["manifestSnapshot"].as_str().unwrap().to_owned();
        (id, uid(&source, "backups", "web"))
    };

    // A new cluster that has only the bucket: its controller finds the
    // Backup in the repository (the sync), then restores it.
    let target = cluster();
    repository(&target, "default", &path, json!({}));
    let controller = Controller::start(&target, &[]);
    let synced = wait_phase(&target, &controller, "backups", "web", "Completed");
    assert_eq!(synced["status"]["manifestSnapshot"], snapshot.as_str(), "{synced}");
    assert_eq!(
        synced["metadata"]["labels"]["backup.cairn.io/backup-uid"],
        original_uid.as_str(),
        "{synced}"
    );
    create(
        &target,
        "restores",
        "Restore",
        "to-web2",
        json!({"backupName": "web", "namespaceMapping": {"web": "web2"}, "preserveNodePorts": true}),
    );
    let obj = wait_phase(&target, &controller, "restores", "to-web2", "Completed");
    let (created, _updated, _skipped, failed) = objects(&obj);
    assert!(created >= 5, "{obj}");
    assert_eq!(failed, 0, "{obj}");
    assert_eq!(obj["status"]["manifestSnapshot"], snapshot.as_str());
    assert!(obj["status"]["startTimestamp"].is_string(), "{obj}");
    assert!(obj["status"]["completionTimestamp"].is_string(), "{obj}");
    assert!(obj["status"]["message"].as_str().unwrap().contains("created"), "{obj}");
    // The cluster made `default` in the new namespace: the backed-up one is
    // merged into it.
    assert_eq!(obj["status"]["objects"]["merged"], 1, "{obj}");
    assert!(obj["status"]["message"].as_str().unwrap().contains("1 merged"), "{obj}");

    // The objects are there, in the mapped namespace, labelled with the
    // restore's name.
    assert!(target.get("", "namespaces", "", "web2").is_some());
    assert!(target.get("", "namespaces", "", "web").is_none());
    let deployment = target
        .get("apps", "deployments", "web2", "frontend")
        .expect("the Deployment was restored");
    assert_eq!(deployment["metadata"]["labels"]["backup.cairn.io/restore"], "to-web2");
    let cm = target
        .get("", "configmaps", "web2", "frontend-config")
        .expect("the ConfigMap was restored");
    assert_eq!(cm["metadata"]["namespace"], "web2");
    let edge = target
        .get("", "services", "web2", "edge")
        .expect("the Service was restored");
    assert_eq!(edge["spec"]["ports"][0]["nodePort"], 31999, "{edge}");

    wait_event(&target, &controller, "to-web2", "Completed");
    wait_metric(&controller, "cairn_restores_total{phase=\"Completed\"} 1");

    // A namespace timeout that is no duration fails the Restore naming it.
    create(
        &target,
        "restores",
        "Restore",
        "impatient",
        json!({"backupName": "web", "namespaceMapping": {"web": "web3"}, "namespaceTimeout": "soon"}),
    );
    let obj = wait_phase(&target, &controller, "restores", "impatient", "Failed");
    let message = obj["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.namespaceTimeout") && message.contains("soon"),
        "{obj}"
    );
    assert!(target.get("", "namespaces", "", "web3").is_none());
}

#[test]
fn a_restore_of_a_missing_or_unfinished_backup_fails_naming_it() {
    let target = cluster();
    create(
        &target,
        "restores",
        "Restore",
        "of-nothing",
        json!({"backupName": "nope"}),
    );
    target.state().seed(
        "backup.cairn.io",
        "backups",
        json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup",
               "metadata": {"name": "broken", "namespace": NS},
               "spec": {"repository": "none"},
               "status": {"phase": "Failed", "message": "BackupRepository cairn-system/none does not exist"}}),
    );
    create(
        &target,
        "restores",
        "Restore",
        "of-broken",
        json!({"backupName": "broken"}),
    );
    let controller = Controller::start(&target, &[]);

    let obj = wait_phase(&target, &controller, "restores", "of-nothing", "Failed");
    assert_eq!(
        obj["status"]["message"], "Backup cairn-system/nope does not exist",
        "{obj}"
    );
    assert!(obj["status"]["startTimestamp"].is_string(), "{obj}");
    let obj = wait_phase(&target, &controller, "restores", "of-broken", "Failed");
    let message = obj["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("Backup cairn-system/broken is Failed"), "{obj}");
    wait_event(&target, &controller, "of-nothing", "Failed");
    wait_metric(&controller, "cairn_restores_total{phase=\"Failed\"} 2");
}

/// A Restore found `InProgress` at start (the controller was killed during
/// it, after some objects were created) runs again: what exists is
/// skipped, the rest created, and it completes.
#[test]
fn a_restore_left_in_progress_by_a_killed_controller_runs_again_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);
    let source = cluster();
    seed_objects(&source);
    let snapshot = manifest_backup(&path, &source, &["--include-namespaces", "web"]);

    let target = cluster();
    repository(&target, "default", &path, json!({}));
    completed_backup(&target, "web", &snapshot, "0b6f8a52-9d6e-4a55-a0a4-0b7fe44c51c3");
    // What the killed run had done: the namespace and one ConfigMap.
    {
        let mut s = target.state();
        s.seed("", "namespaces", json!({"metadata": {"name": "web"}}));
        s.seed(
            "",
            "configmaps",
            json!({"metadata": {"name": "frontend-config", "namespace": "web"}, "data": {"from": "the first run"}}),
        );
        s.seed(
            "backup.cairn.io",
            "restores",
            json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "Restore",
                   "metadata": {"name": "again", "namespace": NS},
                   "spec": {"backupName": "web"},
                   "status": {"phase": "InProgress", "startTimestamp": "2026-12-06T01:00:00Z"}}),
        );
    }
    let controller = Controller::start(&target, &[]);
    let obj = wait_phase(&target, &controller, "restores", "again", "Completed");
    let (created, _updated, skipped, failed) = objects(&obj);
    assert!(created >= 5, "{obj}");
    assert!(skipped >= 2, "{obj}");
    assert_eq!(failed, 0, "{obj}");
    assert_eq!(obj["status"]["startTimestamp"], "2026-12-06T01:00:00Z");
    assert!(target.get("apps", "deployments", "web", "frontend").is_some());
    // The existing object was left as it was (policy none).
    let cm = target.get("", "configmaps", "web", "frontend-config").unwrap();
    assert_eq!(cm["data"]["from"], "the first run");

    // With the policy `update`, existing objects get the backed-up fields
    // (server-side apply: fields another manager set stay).
    create(
        &target,
        "restores",
        "Restore",
        "update",
        json!({"backupName": "web", "existingResourcePolicy": "update", "includedResources": ["configmaps"]}),
    );
    let obj = wait_phase(&target, &controller, "restores", "update", "Completed");
    let (_created, updated, _skipped, failed) = objects(&obj);
    assert!(updated >= 1, "{obj}");
    assert_eq!(failed, 0, "{obj}");
    let cm = target.get("", "configmaps", "web", "frontend-config").unwrap();
    assert_eq!(cm["data"]["nginx.conf"], "server { listen 80; }", "{cm}");
    assert_eq!(cm["metadata"]["labels"]["backup.cairn.io/restore"], "update", "{cm}");
}
