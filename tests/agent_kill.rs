//! A node agent killed in the middle of a volume backup: the agent that
//! takes its place finds the VolumeBackup left InProgress and does it
//! again, the Backup completes, the repository checks clean with all its
//! data read, and the next Backup succeeds on top of it.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::fs;
use std::io::Write;

use controller_support::{
    cairn_ok, cluster, create, init_repository, repository, snapshots_tagged, uid, wait_phase, Agent, Controller, WAIT,
};
use serde_json::{json, Value};

/// Writes `count` files of `size` bytes of incompressible data below `dir`.
fn fill(dir: &std::path::Path, count: usize, size: usize) {
    for i in 0..count {
        let mut out = fs::File::create(dir.join(format!("part-{i:03}.bin"))).unwrap();
        let mut stream = blake3::Hasher::new_keyed(&[i as u8; 32]).finalize_xof();
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..size / buf.len() {
            stream.fill(&mut buf);
            out.write_all(&buf).unwrap();
        }
    }
}

#[test]
fn an_agent_killed_mid_backup_leaves_a_repository_that_checks_clean() {
    let cluster = cluster();
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
    let kubelet = cluster.start_kubelet(&["node-1"]);
    cluster.state().seed(
        "",
        "pods",
        json!({"metadata": {"name": "db", "namespace": "shop",
                            "annotations": {"backup.cairn.io/volumes": "data"}},
               "spec": {"containers": [{"name": "db", "image": "x",
                                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "data", "emptyDir": {}}]}}),
    );
    let data = kubelet.pod_volume_dir("shop", "db", "data");
    // Large enough that the backup is still reading when the kill comes.
    fill(&data, 24, 16 << 20);

    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    let controller = Controller::start(&cluster, &[]);
    let first = Agent::start(
        &cluster,
        "node-1",
        &kubelet.pods_dir("node-1"),
        &work.path().join("agent-1.log"),
    );
    create(
        &cluster,
        "backups",
        "Backup",
        "first",
        json!({"includedNamespaces": ["shop"]}),
    );
    let in_progress = cluster.wait_for(
        |o| {
            o.iter().any(|(k, v)| {
                k.1 == "volumebackups" && v.pointer("/status/phase").and_then(Value::as_str) == Some("InProgress")
            })
        },
        WAIT,
    );
    assert!(in_progress, "the volume backup never started:\n{}", first.log());
    let first_log = first.log();
    drop(first); // SIGKILL, mid-read

    let second = Agent::start(
        &cluster,
        "node-1",
        &kubelet.pods_dir("node-1"),
        &work.path().join("agent-2.log"),
    );
    let done = wait_phase(&cluster, &controller, "backups", "first", "Completed");
    assert_eq!(
        done["status"]["volumeBackups"],
        json!({"total": 1, "completed": 1, "failed": 0}),
        "{done}\nfirst agent:\n{first_log}\nsecond agent:\n{}",
        second.log()
    );
    assert!(
        second.log().contains("left InProgress by an earlier run"),
        "the second agent did not take over the killed one's work:\n{}",
        second.log()
    );
    let tagged = snapshots_tagged(&repo, &format!("backup-uid={}", uid(&cluster, "backups", "first")));
    assert_eq!(tagged.len(), 2, "one manifest and one volume snapshot: {tagged:?}");

    // Whatever the killed agent left half-written, the repository is
    // whole: every pack read and verified.
    let os = std::ffi::OsStr::new;
    cairn_ok(&repo, &[os("check"), os("--read-data")]);

    // And the next Backup goes on from it, reading nothing unchanged.
    fs::write(data.join("new.txt"), b"after the kill").unwrap();
    create(
        &cluster,
        "backups",
        "Backup",
        "second",
        json!({"includedNamespaces": ["shop"]}),
    );
    let next = wait_phase(&cluster, &controller, "backups", "second", "Completed");
    assert_eq!(next["status"]["volumeBackups"]["completed"], 1, "{next}");
    let tagged = snapshots_tagged(&repo, &format!("backup-uid={}", uid(&cluster, "backups", "second")));
    let volume = tagged
        .iter()
        .find(|s| s["paths"] == json!(["/volumes/shop/db/data"]))
        .unwrap_or_else(|| panic!("no volume snapshot: {tagged:?}"));
    assert_eq!(volume["summary"]["files_new"], 1, "{volume}");
    assert_eq!(volume["summary"]["files_unchanged"], 24, "{volume}");
    cairn_ok(&repo, &[os("check")]);
}
