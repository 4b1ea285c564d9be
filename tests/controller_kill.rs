//! The controller killed (SIGKILL) again and again while a Backup and then
//! a Restore run: each resumes and finishes, with one manifest snapshot
//! for the Backup and every object restored once. The kill points are
//! spread over the run by growing delays; what is asserted does not depend
//! on where they fell.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::time::Duration;

use controller_support::{
    cluster, create, init_repository, repository, seed_objects, snapshots, snapshots_tagged, uid, wait_phase,
    Controller,
};
use serde_json::json;

/// Delays after a (re)start before the next kill, in milliseconds.
const KILL_AFTER: [u64; 6] = [0, 20, 60, 120, 250, 500];

#[test]
fn a_backup_and_a_restore_survive_kills_at_any_point() {
    let cluster = cluster();
    seed_objects(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);
    repository(&cluster, "default", &path, json!({}));
    create(
        &cluster,
        "backups",
        "Backup",
        "web",
        json!({"includedNamespaces": ["web"]}),
    );

    let mut controller = Controller::start(&cluster, &[]);
    for ms in KILL_AFTER {
        std::thread::sleep(Duration::from_millis(ms));
        controller.restart();
    }
    let done = wait_phase(&cluster, &controller, "backups", "web", "Completed");
    let snapshot = done["status"]["manifestSnapshot"].as_str().unwrap().to_owned();
    let tagged = snapshots_tagged(&path, &format!("backup-uid={}", uid(&cluster, "backups", "web")));
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    assert_eq!(tagged[0]["id"], snapshot.as_str());
    assert_eq!(snapshots(&path).len(), 1);

    create(
        &cluster,
        "restores",
        "Restore",
        "web-copy",
        json!({"backupName": "web", "namespaceMapping": {"web": "web-copy"}}),
    );
    for ms in KILL_AFTER {
        std::thread::sleep(Duration::from_millis(ms));
        controller.restart();
    }
    let restored = wait_phase(&cluster, &controller, "restores", "web-copy", "Completed");
    let objects = &restored["status"]["objects"];
    assert_eq!(objects["failed"].as_u64().unwrap_or(0), 0, "{restored}");
    assert!(
        cluster.get("apps", "deployments", "web-copy", "frontend").is_some(),
        "{restored}"
    );
    assert!(cluster.get("", "configmaps", "web-copy", "frontend-config").is_some());
    // Every object of the source namespace is there once under the new one
    // (but `scratch`, which carries the exclude label).
    let names = |ns: &str| -> Vec<String> {
        let mut v: Vec<String> = cluster
            .objects()
            .iter()
            .filter(|(k, _)| k.1 == "configmaps" && k.2 == ns && k.3 != "scratch")
            .map(|(k, _)| k.3.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("web-copy"), names("web"));
}
