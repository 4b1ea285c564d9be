//! The Backup reconciler of `cairn k8s controller`, run as a process
//! against the fake API server: a Backup becomes a manifest snapshot with
//! its tags, host and record; expiry and deletion forget the snapshot; a
//! spec that cannot work ends `Failed` saying why; a controller killed
//! during a backup resumes with exactly one snapshot for the Backup.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::sync::Arc;
use std::time::Duration;

use cairn::repo::{LockKind, Repository};
use cairn::storage::local::LocalStorage;
use controller_support::{
    cluster, create, delete, events_of, init_repository, manifest_backup, repository, seed_objects, snapshot_file,
    snapshots, snapshots_tagged, uid, wait_event, wait_gone, wait_metric, wait_phase, Controller, NS, PASSWORD,
};
use serde_json::{json, Value};

/// A seeded cluster and a repository `default` at a fresh local path.
fn setup() -> (k8s_support::FakeCluster, tempfile::TempDir, std::path::PathBuf) {
    let cluster = cluster();
    seed_objects(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);
    repository(&cluster, "default", &path, json!({}));
    (cluster, dir, path)
}

fn status_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.pointer(&format!("/status/{field}"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no status.{field} in {obj}"))
}

fn time(text: &str) -> jiff::Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn a_backup_completes_into_a_tagged_snapshot_holding_its_record() {
    let (cluster, _dir, path) = setup();
    create(
        &cluster,
        "backups",
        "Backup",
        "web",
        json!({"includedNamespaces": ["web"], "ttl": "24h"}),
    );
    let controller = Controller::start(&cluster, &[]);
    let obj = wait_phase(&cluster, &controller, "backups", "web", "Completed");
    let uid = uid(&cluster, "backups", "web");

    let id = status_str(&obj, "manifestSnapshot");
    assert_eq!(id.len(), 64, "{obj}");
    let start = time(status_str(&obj, "startTimestamp"));
    let done = time(status_str(&obj, "completionTimestamp"));
    let expires = time(status_str(&obj, "expiration"));
    assert!(start <= done, "{obj}");
    assert_eq!(expires.duration_since(start).as_secs(), 24 * 3600, "{obj}");
    assert_eq!(
        obj["status"]["volumeBackups"],
        json!({"total": 0, "completed": 0, "failed": 0})
    );
    assert!(status_str(&obj, "message").contains("backed up"), "{obj}");
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["backup.cairn.io/forget-snapshots"]),
        "{obj}"
    );

    // One snapshot, tagged with the Backup's name and uid, host = cluster.
    let all = snapshots(&path);
    assert_eq!(all.len(), 1, "{all:?}");
    let snap = &all[0];
    assert_eq!(snap["id"], id);
    assert_eq!(snap["host"], "test");
    let tags: Vec<&str> = snap["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["k8s", "backup=web", &format!("backup-uid={uid}")] {
        assert!(tags.contains(&want), "{want} missing from {tags:?}");
    }

    // The record lies beside the manifests.
    let record: Value = serde_json::from_slice(&snapshot_file(&path, id, "cairn/backup.json")).unwrap();
    assert_eq!(record["name"], "web");
    assert_eq!(record["namespace"], NS);
    assert_eq!(record["uid"], uid.as_str());
    assert_eq!(record["cluster"], "test");
    assert_eq!(record["spec"]["includedNamespaces"], json!(["web"]));
    assert_eq!(record["spec"]["ttl"], "24h");
    assert_eq!(time(record["startTimestamp"].as_str().unwrap()), start);
    let deployment = snapshot_file(&path, id, "resources/apps/deployments/namespaces/web/frontend.json");
    assert!(!deployment.is_empty());

    wait_event(&cluster, &controller, "web", "Completed");
    let reasons: Vec<String> = events_of(&cluster, "web").into_iter().map(|e| e.1).collect();
    assert!(reasons.contains(&"Started".to_owned()), "{reasons:?}");
    wait_metric(&controller, "cairn_backups_total{phase=\"Completed\"} 1");
    wait_metric(&controller, "cairn_backup_duration_seconds_sum{phase=\"Completed\"}");
    wait_metric(&controller, "cairn_backup_bytes_added_total ");
}

#[test]
fn an_expired_backup_is_deleted_and_its_snapshot_forgotten() {
    let (cluster, _dir, path) = setup();
    create(
        &cluster,
        "backups",
        "Backup",
        "short",
        json!({"includedNamespaces": ["web"], "ttl": "3s"}),
    );
    let controller = Controller::start(&cluster, &[]);
    let obj = wait_phase(&cluster, &controller, "backups", "short", "Completed");
    let uid = uid(&cluster, "backups", "short");
    assert_eq!(snapshots_tagged(&path, &format!("backup-uid={uid}")).len(), 1, "{obj}");
    wait_gone(&cluster, &controller, "backups", "short");
    assert!(snapshots(&path).is_empty(), "{:?}", snapshots(&path));
    let log = controller.log();
    assert!(log.contains("expired at"), "{log}");
    assert!(log.contains("forgot 1 snapshot tagged"), "{log}");
}

#[test]
fn deleting_a_completed_backup_forgets_its_snapshot_before_it_goes() {
    let (cluster, _dir, path) = setup();
    create(
        &cluster,
        "backups",
        "Backup",
        "keep",
        json!({"includedNamespaces": ["web"]}),
    );
    create(
        &cluster,
        "backups",
        "Backup",
        "gone",
        json!({"includedNamespaces": ["web"]}),
    );
    let controller = Controller::start(&cluster, &[]);
    wait_phase(&cluster, &controller, "backups", "keep", "Completed");
    wait_phase(&cluster, &controller, "backups", "gone", "Completed");
    let gone_uid = uid(&cluster, "backups", "gone");
    let keep_uid = uid(&cluster, "backups", "keep");
    assert_eq!(snapshots(&path).len(), 2);

    delete(&cluster, "backups", "gone");
    wait_gone(&cluster, &controller, "backups", "gone");
    assert!(snapshots_tagged(&path, &format!("backup-uid={gone_uid}")).is_empty());
    assert_eq!(snapshots_tagged(&path, &format!("backup-uid={keep_uid}")).len(), 1);
    assert_eq!(snapshots(&path).len(), 1);
    assert!(cluster.get("backup.cairn.io", "backups", NS, "keep").is_some());
}

#[test]
fn a_backup_whose_repository_is_gone_is_deleted_with_a_warning() {
    let (cluster, _dir, _path) = setup();
    create(
        &cluster,
        "backups",
        "Backup",
        "b",
        json!({"includedNamespaces": ["web"]}),
    );
    let controller = Controller::start(&cluster, &[]);
    wait_phase(&cluster, &controller, "backups", "b", "Completed");
    {
        let mut state = cluster.state();
        let def = state.def_of("backup.cairn.io", "backuprepositories").unwrap();
        state
            .delete(&def, &controller_support::key("backuprepositories", "default"), false)
            .unwrap();
    }
    delete(&cluster, "backups", "b");
    wait_gone(&cluster, &controller, "backups", "b");
    let log = controller.log();
    assert!(
        log.contains("were not forgotten: BackupRepository cairn-system/default does not exist"),
        "{log}"
    );
}

#[test]
fn a_spec_that_cannot_work_fails_naming_what_to_fix() {
    let (cluster, _dir, path) = setup();
    create(&cluster, "backups", "Backup", "nowhere", json!({"repository": "nope"}));
    create(&cluster, "backups", "Backup", "bad-ttl", json!({"ttl": "3d"}));
    create(
        &cluster,
        "backups",
        "Backup",
        "bad-selector",
        json!({"labelSelector": "app in web"}),
    );
    controller_support::secret(&cluster, "wrong-password", &[("password", "not it")]);
    create(
        &cluster,
        "backuprepositories",
        "BackupRepository",
        "wrong",
        json!({"url": path.to_str().unwrap(), "passwordSecretRef": {"name": "wrong-password", "key": "password"}}),
    );
    create(
        &cluster,
        "backups",
        "Backup",
        "wrong-password",
        json!({"repository": "wrong", "includedNamespaces": ["web"]}),
    );
    create(
        &cluster,
        "backups",
        "Backup",
        "no-secret",
        json!({"repository": "secretless", "includedNamespaces": ["web"]}),
    );
    create(
        &cluster,
        "backuprepositories",
        "BackupRepository",
        "secretless",
        json!({"url": path.to_str().unwrap(), "passwordSecretRef": {"name": "missing", "key": "password"}}),
    );
    let controller = Controller::start(&cluster, &[]);
    let obj = wait_phase(&cluster, &controller, "backups", "wrong-password", "Failed");
    let message = status_str(&obj, "message");
    assert!(
        message.starts_with("BackupRepository cairn-system/wrong: wrong password"),
        "{obj}"
    );
    let obj = wait_phase(&cluster, &controller, "backups", "no-secret", "Failed");
    assert_eq!(
        status_str(&obj, "message"),
        "Secret cairn-system/missing does not exist",
        "{obj}"
    );
    let obj = wait_phase(&cluster, &controller, "backups", "nowhere", "Failed");
    assert_eq!(
        status_str(&obj, "message"),
        "BackupRepository cairn-system/nope does not exist",
        "{obj}"
    );
    let obj = wait_phase(&cluster, &controller, "backups", "bad-ttl", "Failed");
    let message = status_str(&obj, "message");
    assert!(message.starts_with("spec.ttl: invalid duration \"3d\""), "{obj}");
    let obj = wait_phase(&cluster, &controller, "backups", "bad-selector", "Failed");
    let message = status_str(&obj, "message");
    assert!(message.starts_with("spec.labelSelector \"app in web\""), "{obj}");
    wait_event(&cluster, &controller, "nowhere", "Failed");
    let events = events_of(&cluster, "nowhere");
    assert!(
        events
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "Failed" && n.contains("nope")),
        "{events:?}"
    );
    assert!(snapshots(&path).is_empty());
    wait_metric(&controller, "cairn_backups_total{phase=\"Failed\"} 5");
}

/// The controller is killed once `InProgress` is written (a prune's lock
/// holds the backup back until then); meanwhile two snapshots with the
/// Backup's uid appear, as a killed run could leave. After the restart the
/// Backup adopts the newest, forgets the other, and completes.
#[test]
fn a_controller_killed_during_a_backup_resumes_with_exactly_one_snapshot() {
    let (cluster, _dir, path) = setup();
    let repo = Repository::open(Arc::new(LocalStorage::new(path.clone())), PASSWORD.as_bytes()).unwrap();
    let lock = repo.lock(LockKind::Exclusive, Duration::ZERO).unwrap();

    create(
        &cluster,
        "backups",
        "Backup",
        "killed",
        json!({"includedNamespaces": ["web"]}),
    );
    let mut controller = Controller::start(&cluster, &[]);
    wait_phase(&cluster, &controller, "backups", "killed", "InProgress");
    controller.kill();
    drop(lock);
    drop(repo);
    assert!(snapshots(&path).is_empty());

    let uid = uid(&cluster, "backups", "killed");
    let tags = format!("backup=killed,backup-uid={uid}");
    let older = manifest_backup(&path, &cluster, &["--include-namespaces", "web", "--tag", &tags]);
    let newer = manifest_backup(&path, &cluster, &["--include-namespaces", "web", "--tag", &tags]);
    assert_ne!(older, newer);

    controller.restart();
    let obj = wait_phase(&cluster, &controller, "backups", "killed", "Completed");
    assert_eq!(status_str(&obj, "manifestSnapshot"), newer, "{obj}");
    let left = snapshots_tagged(&path, &format!("backup-uid={uid}"));
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"], newer.as_str());
    assert_eq!(snapshots(&path).len(), 1);
    assert!(status_str(&obj, "message").contains("adopted"), "{obj}");
}

#[test]
fn a_resource_list_that_cannot_be_read_makes_the_backup_partially_failed() {
    let (cluster, _dir, path) = setup();
    cluster.forbid("", "configmaps");
    create(
        &cluster,
        "backups",
        "Backup",
        "partial",
        json!({"includedNamespaces": ["web"]}),
    );
    let controller = Controller::start(&cluster, &[]);
    let obj = wait_phase(&cluster, &controller, "backups", "partial", "PartiallyFailed");
    let errors = obj["status"]["errors"].as_array().expect("status.errors");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("configmaps"))),
        "{obj}"
    );
    assert_eq!(snapshots(&path).len(), 1);
    assert_eq!(snapshots(&path)[0]["id"], status_str(&obj, "manifestSnapshot"));
    wait_event(&cluster, &controller, "partial", "PartiallyFailed");
    assert!(events_of(&cluster, "partial")
        .iter()
        .any(|(t, r, _)| t == "Warning" && r == "PartiallyFailed"));
    wait_metric(&controller, "cairn_backups_total{phase=\"PartiallyFailed\"} 1");
}

/// A Backup deleted while it waits for the repository (held by a prune's
/// lock) goes once the lock is released, and leaves no snapshot.
#[test]
fn a_backup_deleted_while_in_progress_goes_without_a_snapshot() {
    let (cluster, _dir, path) = setup();
    let repo = Repository::open(Arc::new(LocalStorage::new(path.clone())), PASSWORD.as_bytes()).unwrap();
    let lock = repo.lock(LockKind::Exclusive, Duration::ZERO).unwrap();
    create(
        &cluster,
        "backups",
        "Backup",
        "dropped",
        json!({"includedNamespaces": ["web"]}),
    );
    let controller = Controller::start(&cluster, &[]);
    wait_phase(&cluster, &controller, "backups", "dropped", "InProgress");
    delete(&cluster, "backups", "dropped");
    drop(lock);
    drop(repo);
    wait_gone(&cluster, &controller, "backups", "dropped");
    assert!(snapshots(&path).is_empty(), "{:?}", snapshots(&path));
}
