//! The BackupRepository reconciler of `cairn k8s controller`, as a process
//! against the fake API server: Ready and NotReady with a message naming
//! what is wrong, initialization, and the sync that gives a new cluster the
//! Backups recorded in a repository.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use cairn::id::SnapshotId;
use cairn::k8s::client::ClusterAccess;
use cairn::k8s::controller::record::{BackupRecord, LABEL_BACKUP_UID, LABEL_SCHEDULE, RECORD_VERSION};
use cairn::k8s::manifests::run::{backup_manifests, ManifestBackupOptions};
use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use controller_support::*;
use k8s_support::FakeCluster;
use serde_json::{json, Value};

/// Waits until the BackupRepository's phase is `want` and returns its message.
fn wait_message(cluster: &FakeCluster, controller: &Controller, name: &str, want: &str) -> String {
    let obj = wait_phase(cluster, controller, "backuprepositories", name, want);
    obj.pointer("/status/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Events about the object `name`: (reason, note, how often it was seen).
fn events(cluster: &FakeCluster, name: &str) -> Vec<(String, String, u64)> {
    cluster
        .objects()
        .iter()
        .filter(|((group, plural, _, _), e)| {
            group == "events.k8s.io" && plural == "events" && e.pointer("/regarding/name") == Some(&json!(name))
        })
        .map(|(_, e)| {
            let text = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
            let count = e.pointer("/series/count").and_then(Value::as_u64).unwrap_or(1);
            (text("/reason"), text("/note"), count)
        })
        .collect()
}

/// How many requests of `method` went to a path ending in `tail`.
fn requests(cluster: &FakeCluster, method: &str, tail: &str) -> usize {
    cluster
        .log()
        .iter()
        .filter(|l| l.method == method && l.path.ends_with(tail))
        .count()
}

/// Waits until `f` holds, polling; fails with `what` and the log otherwise.
fn wait_until(controller: &Controller, what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen; controller log:\n{}",
            controller.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_good_repository_is_ready_and_a_missing_secret_is_named_until_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);
    let cluster = cluster();
    repository(&cluster, "good", &path, json!({}));
    // The second one's Secret does not exist yet.
    create(
        &cluster,
        "backuprepositories",
        "BackupRepository",
        "late",
        json!({"url": path.to_str().unwrap(),
               "passwordSecretRef": {"name": "late-password", "key": "password"}}),
    );
    let controller = Controller::start(&cluster, &[]);
    let message = wait_message(&cluster, &controller, "good", "Ready");
    assert!(message.contains(path.to_str().unwrap()), "{message}");
    let message = wait_message(&cluster, &controller, "late", "NotReady");
    assert_eq!(message, "Secret cairn-system/late-password does not exist");
    // Several syncs find it missing: one event says so.
    wait_until(&controller, "three reads of the missing Secret", || {
        requests(&cluster, "GET", "/secrets/late-password") >= 3
    });
    let metrics = controller.http_get("/metrics");
    assert!(
        metrics.contains("cairn_repository_ready{namespace=\"cairn-system\",name=\"good\"} 1\n")
            && metrics.contains("cairn_repository_ready{namespace=\"cairn-system\",name=\"late\"} 0\n"),
        "{metrics}"
    );

    // The Secret appears: the next sync finds the repository.
    secret(&cluster, "late-password", &[("password", PASSWORD)]);
    wait_message(&cluster, &controller, "late", "Ready");
    wait_until(&controller, "the gauge of late turning 1", || {
        controller
            .http_get("/metrics")
            .contains("cairn_repository_ready{namespace=\"cairn-system\",name=\"late\"} 1\n")
    });
    // The event is published after the status is written: wait for it too.
    wait_event(&cluster, &controller, "late", "Ready");
    let late = events(&cluster, "late");
    let not_ready: Vec<_> = late.iter().filter(|e| e.0 == "NotReady").collect();
    assert_eq!(not_ready.len(), 1, "{late:?}");
    assert_eq!(not_ready[0].1, "Secret cairn-system/late-password does not exist");
    assert_eq!(not_ready[0].2, 1, "{late:?}");
    assert_eq!(late.iter().filter(|e| e.0 == "Ready").count(), 1, "{late:?}");
    // The status is written on changes only.
    let patches = requests(&cluster, "PATCH", "/backuprepositories/good/status");
    assert_eq!(patches, 1, "{:?}", cluster.log());
}

#[test]
fn a_wrong_password_a_missing_key_and_a_bad_option_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);
    let cluster = cluster();
    secret(&cluster, "bad-password", &[("password", "not the password")]);
    create(
        &cluster,
        "backuprepositories",
        "BackupRepository",
        "wrong",
        json!({"url": path.to_str().unwrap(),
               "passwordSecretRef": {"name": "bad-password", "key": "password"}}),
    );
    repository(
        &cluster,
        "nokey",
        &path,
        json!({"passwordSecretRef": {"name": "nokey-password", "key": "pw"}}),
    );
    repository(&cluster, "badopt", &path, json!({"options": {"s3.colour": "blue"}}));
    let controller = Controller::start(&cluster, &[]);
    let message = wait_message(&cluster, &controller, "badopt", "NotReady");
    assert!(
        message.contains("s3.colour=blue") && message.contains("do not apply to a local repository"),
        "{message}"
    );
    let message = wait_message(&cluster, &controller, "wrong", "NotReady");
    assert!(
        message.starts_with("wrong password") && message.contains("Secret cairn-system/bad-password, key password"),
        "{message}"
    );
    let message = wait_message(&cluster, &controller, "nokey", "NotReady");
    assert_eq!(message, "Secret cairn-system/nokey-password has no key pw");
}

#[test]
fn an_unreachable_bucket_is_named_and_stops_no_other_repository() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cluster = cluster();
    secret(
        &cluster,
        "s3-credentials",
        &[
            ("AWS_ACCESS_KEY_ID", "cairn"),
            ("AWS_SECRET_ACCESS_KEY", "cairn-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    repository(
        &cluster,
        "cloud",
        Path::new("s3://backups/cluster"),
        json!({"credentialsSecretRef": {"name": "s3-credentials"},
               "options": {"s3.endpoint": format!("http://127.0.0.1:{closed}"), "timeout": "5s"}}),
    );
    repository(&cluster, "local", &path, json!({}));
    let mut controller = Controller::start(&cluster, &[]);
    let message = wait_message(&cluster, &controller, "cloud", "NotReady");
    assert!(
        message.contains(&format!("cannot reach http://127.0.0.1:{closed}")),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    wait_message(&cluster, &controller, "local", "Ready");
    assert!(controller.is_running());
}

#[test]
fn if_missing_creates_a_repository_and_never_reports_it_missing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let never = dir.path().join("never");
    let cluster = cluster();
    repository(&cluster, "fresh", &empty, json!({"initialize": "IfMissing"}));
    repository(&cluster, "strict", &never, json!({"initialize": "Never"}));
    let controller = Controller::start(&cluster, &[]);
    let message = wait_message(&cluster, &controller, "strict", "NotReady");
    assert!(
        message.contains("is not a cairn repository") && message.contains("Never"),
        "{message}"
    );
    assert!(!never.join("config").exists());
    wait_message(&cluster, &controller, "fresh", "Ready");
    assert!(empty.join("config").is_file());
    // It opens with the password of the Secret.
    assert!(snapshots(&empty).is_empty());
    let fresh = events(&cluster, "fresh");
    assert!(fresh.iter().any(|e| e.0 == "Initialized"), "{fresh:?}");
}

/// A manifest snapshot of cluster `source` as the Backup reconciler writes
/// one: tagged with the Backup's name and uid, its record inside.
fn recorded_backup(repo: &Path, source: &FakeCluster, record: &BackupRecord) -> SnapshotId {
    let storage = Arc::new(LocalStorage::new(repo.to_path_buf()));
    let repository = Repository::open(storage, PASSWORD.as_bytes()).unwrap();
    let opts = ManifestBackupOptions {
        access: ClusterAccess {
            kubeconfig: Some(source.kubeconfig()),
            context: None,
        },
        tags: vec![format!("backup={}", record.name), format!("backup-uid={}", record.uid)],
        host: Some(record.cluster.clone()),
        connections: 2,
        extra_files: vec![record.to_file()],
        ..ManifestBackupOptions::default()
    };
    backup_manifests(repository, &opts).unwrap().snapshot_id.unwrap()
}

fn record(name: &str, expires_in_hours: i64) -> BackupRecord {
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let start = start.round(jiff::Unit::Second).unwrap();
    BackupRecord {
        version: RECORD_VERSION,
        name: name.into(),
        namespace: NS.into(),
        uid: format!("uid-{name}"),
        cluster: "a".into(),
        labels: BTreeMap::from([(LABEL_SCHEDULE.to_owned(), "nightly".to_owned())]),
        spec: serde_json::from_value(json!({
            "includedNamespaces": ["shop"], "ttl": "24h", "repository": "old-name",
        }))
        .unwrap(),
        start_timestamp: start,
        expiration: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(expires_in_hours)),
        volumes: vec![],
    }
}

#[test]
fn a_new_cluster_gets_the_backups_recorded_in_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);
    let a = cluster();
    let kept = record("kept", 24);
    let kept_id = recorded_backup(&path, &a, &kept);
    recorded_backup(&path, &a, &record("expired", -1));
    recorded_backup(&path, &a, &record("exists", 24));
    recorded_backup(&path, &a, &record("elsewhere", 24));
    let gone = recorded_backup(&path, &a, &record("gone", 24));
    std::fs::remove_file(path.join("snapshots").join(gone.to_hex())).unwrap();
    // A snapshot tagged as a Backup's but without a record.
    let broken = {
        let storage = Arc::new(LocalStorage::new(path.clone()));
        let repository = Repository::open(storage, PASSWORD.as_bytes()).unwrap();
        let opts = ManifestBackupOptions {
            access: ClusterAccess {
                kubeconfig: Some(a.kubeconfig()),
                context: None,
            },
            tags: vec!["backup=broken".into(), "backup-uid=uid-broken".into()],
            ..ManifestBackupOptions::default()
        };
        backup_manifests(repository, &opts).unwrap().snapshot_id.unwrap()
    };

    // Cluster B knows nothing but the repository, and has a Backup of its
    // own named like one of the records.
    let b = cluster();
    repository(&b, "store", &path, json!({}));
    b.state().seed(
        "backup.cairn.io",
        "backups",
        json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup",
               "metadata": {"name": "exists", "namespace": NS},
               "spec": {"includedNamespaces": ["mine"]},
               "status": {"phase": "Completed", "manifestSnapshot": "mine"}}),
    );
    // And one in another namespace that carries a record's uid: that
    // backup is in the cluster already.
    b.state().seed("", "namespaces", json!({"metadata": {"name": "other"}}));
    b.state().seed(
        "backup.cairn.io",
        "backups",
        json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup",
               "metadata": {"name": "elsewhere", "namespace": "other",
                            "labels": {LABEL_BACKUP_UID: "uid-elsewhere"}},
               "spec": {},
               "status": {"phase": "Completed"}}),
    );
    let controller = Controller::start(&b, &[]);
    let backup = wait_phase(&b, &controller, "backups", "kept", "Completed");
    assert_eq!(backup["status"]["manifestSnapshot"], kept_id.to_hex());
    assert_eq!(backup["spec"]["includedNamespaces"], json!(["shop"]));
    assert_eq!(backup["spec"]["ttl"], "24h");
    assert_eq!(backup["spec"]["repository"], "store");
    assert_eq!(backup["metadata"]["labels"][LABEL_SCHEDULE], "nightly");
    assert_eq!(backup["metadata"]["labels"][LABEL_BACKUP_UID], "uid-kept");
    let start: jiff::Timestamp = backup["status"]["startTimestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(start, kept.start_timestamp);
    let expiration: jiff::Timestamp = backup["status"]["expiration"].as_str().unwrap().parse().unwrap();
    assert_eq!(Some(expiration), kept.expiration);
    assert!(backup["status"]["completionTimestamp"].is_string(), "{backup}");

    // Two more syncs change nothing: the expired record, the Backup that
    // exists and the forgotten snapshot get no object; the record-less
    // snapshot is warned about once, naming it.
    // (Each sync reads the password Secret first.)
    let syncs = requests(&b, "GET", "/secrets/store-password");
    wait_until(&controller, "two more syncs", || {
        requests(&b, "GET", "/secrets/store-password") >= syncs + 2
    });
    let names: Vec<String> = b
        .objects()
        .keys()
        .filter(|(g, p, ns, _)| g == "backup.cairn.io" && p == "backups" && ns == NS)
        .map(|(_, _, _, n)| n.clone())
        .collect();
    assert_eq!(names, ["exists", "kept"]);
    let exists = b.get("backup.cairn.io", "backups", NS, "exists").unwrap();
    assert_eq!(exists["spec"]["includedNamespaces"], json!(["mine"]));
    assert_eq!(exists["status"]["manifestSnapshot"], "mine");
    assert!(exists["metadata"]["labels"][LABEL_BACKUP_UID].is_null(), "{exists}");
    assert_eq!(
        wait_message(&b, &controller, "store", "Ready"),
        format!("repository {} at {}", config_id(&path), path.to_str().unwrap())
    );
    let store = events(&b, "store");
    let warnings: Vec<_> = store.iter().filter(|e| e.0 == "BrokenRecord").collect();
    assert_eq!(warnings.len(), 1, "{store:?}");
    assert!(warnings[0].1.contains(&broken.short()), "{store:?}");
    assert_eq!(warnings[0].2, 1, "{store:?}");
    let synced: Vec<_> = store.iter().filter(|e| e.0 == "BackupSynced").collect();
    assert_eq!(synced.len(), 1, "{store:?}");
    assert!(
        synced[0].1.contains("Backup kept") && synced[0].1.contains("cluster a"),
        "{store:?}"
    );

    // What was read is remembered: with the packs and index files gone,
    // later syncs read the snapshot list and nothing else.
    std::fs::rename(path.join("data"), dir.path().join("data")).unwrap();
    std::fs::rename(path.join("index"), dir.path().join("index")).unwrap();
    let syncs = requests(&b, "GET", "/secrets/store-password");
    wait_until(&controller, "two syncs without packs", || {
        requests(&b, "GET", "/secrets/store-password") >= syncs + 2
    });
    assert_eq!(phase(&b, "backuprepositories", "store").as_deref(), Some("Ready"));
    assert_eq!(events(&b, "store"), store);
}

/// The short id of the repository at `path`.
fn config_id(path: &Path) -> String {
    let storage = Arc::new(LocalStorage::new(path.to_path_buf()));
    Repository::open(storage, PASSWORD.as_bytes())
        .unwrap()
        .config()
        .id
        .short()
}
