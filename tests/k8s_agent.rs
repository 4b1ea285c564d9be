//! `cairn k8s agent` as a process against the fake API server: it takes
//! the VolumeBackups of its own node only, reads the volume through the
//! pods directory it was given, stores it under the volume's logical path
//! with the tags, and fails with a reason what it cannot do.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use controller_support::{cluster, create, init_repository, repository, snapshots, wait_phase_logged, Agent, NS};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

/// Seeds namespace shop and pod shop/web-0 on node-1; returns the pod's
/// uid (the server gives it).
fn seed_pod(cluster: &FakeCluster) -> String {
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
    seed_named_pod(cluster, "web-0")
}

/// Seeds pod shop/NAME on node-1 with an emptyDir volume `data`.
fn seed_named_pod(cluster: &FakeCluster, name: &str) -> String {
    let mut state = cluster.state();
    state.seed(
        "",
        "pods",
        json!({"metadata": {"name": name, "namespace": "shop"},
               "spec": {"nodeName": "node-1",
                        "containers": [{"name": "app", "image": "x",
                                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "data", "emptyDir": {}}]}}),
    );
    drop(state);
    let pod = cluster.get("", "pods", "shop", name).expect("the pod");
    pod["metadata"]["uid"].as_str().expect("a uid").to_owned()
}

fn volume_backup(cluster: &FakeCluster, name: &str, node: &str, volume: &str, uid: &str) {
    create(
        cluster,
        "volumebackups",
        "VolumeBackup",
        name,
        json!({"node": node, "pod": {"namespace": "shop", "name": "web-0", "uid": uid},
               "volume": volume, "repository": "default", "backupName": "nightly"}),
    );
}

fn wait_phase(cluster: &FakeCluster, agent: &Agent, name: &str, want: &str) -> Value {
    wait_for(cluster, agent, "volumebackups", name, want)
}

fn wait_for(cluster: &FakeCluster, agent: &Agent, plural: &str, name: &str, want: &str) -> Value {
    wait_phase_logged(cluster, plural, name, want, || format!("agent log:\n{}", agent.log()))
}

/// A cluster with pod shop/web-0, a repository `default`, Backup `nightly`
/// with `backup_spec`, and the pod's `data` volume on disk below `pods`.
struct Setup {
    cluster: FakeCluster,
    uid: String,
    work: tempfile::TempDir,
    repo: std::path::PathBuf,
    pods: std::path::PathBuf,
    data: std::path::PathBuf,
}

fn setup(backup_spec: Value) -> Setup {
    let cluster = cluster();
    let uid = seed_pod(&cluster);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    create(&cluster, "backups", "Backup", "nightly", backup_spec);
    let pods = work.path().join("pods");
    let data = pods.join(&uid).join("volumes/kubernetes.io~empty-dir/data");
    fs::create_dir_all(&data).unwrap();
    Setup {
        cluster,
        uid,
        work,
        repo,
        pods,
        data,
    }
}

impl Setup {
    fn agent(&self) -> Agent {
        Agent::start(&self.cluster, "node-1", &self.pods, &self.work.path().join("agent.log"))
    }
}

#[test]
fn the_agent_backs_up_its_nodes_volumes_under_their_logical_paths() {
    let Setup {
        cluster,
        uid,
        work,
        repo,
        pods,
        data,
    } = setup(json!({"volumes": {"excludePaths": ["cache"]}}));
    fs::create_dir_all(data.join("cache")).unwrap();
    fs::write(data.join("orders.db"), b"orders").unwrap();
    fs::write(data.join("cache/tmp"), b"skip me").unwrap();
    volume_backup(&cluster, "web-0-data", "node-1", "data", &uid);
    volume_backup(&cluster, "other-node", "node-2", "data", &uid);
    volume_backup(&cluster, "web-0-nothing", "node-1", "nothing", &uid);

    let agent = Agent::start(&cluster, "node-1", &pods, &work.path().join("agent.log"));
    let done = wait_phase(&cluster, &agent, "web-0-data", "Completed");
    let id = done["status"]["snapshotID"].as_str().expect("a snapshot id").to_owned();
    assert_eq!(done["status"]["progress"]["bytesDone"], 6, "{done}");
    let failed = wait_phase(&cluster, &agent, "web-0-nothing", "Failed");
    assert_eq!(
        failed["status"]["message"], "pod shop/web-0 has no volume nothing",
        "{failed}"
    );

    let listed = snapshots(&repo);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let snap = &listed[0];
    assert_eq!(snap["id"], id);
    assert_eq!(snap["paths"], json!(["/volumes/shop/web-0/data"]));
    assert_eq!(snap["host"], "test");
    for tag in ["backup=nightly", "namespace=shop", "pod=web-0", "volume=data"] {
        assert!(
            snap["tags"].as_array().unwrap().iter().any(|t| t == tag),
            "{tag} missing: {snap}"
        );
    }
    let ls = Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .env("CAIRN_PASSWORD", controller_support::PASSWORD)
        .arg("-r")
        .arg(&repo)
        .args(["ls", &id])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(listing.contains("/volumes/shop/web-0/data/orders.db"), "{listing}");
    assert!(!listing.contains("cache"), "excluded path stored: {listing}");

    // The other node's VolumeBackup was never touched by this agent, which
    // asked the server for its own node's only.
    let other = cluster
        .get("backup.cairn.io", "volumebackups", NS, "other-node")
        .unwrap();
    assert!(other.get("status").is_none(), "{other}");
    let reads: Vec<_> = cluster
        .log()
        .into_iter()
        .filter(|l| l.method == "GET" && l.path.ends_with("/volumebackups"))
        .collect();
    assert!(!reads.is_empty());
    for read in reads {
        assert!(read.query.contains("fieldSelector=spec.node%3Dnode-1"), "{read:?}");
    }
}

#[test]
fn the_agent_restores_a_volume_snapshot_into_another_pods_volume() {
    let Setup {
        cluster,
        uid,
        work,
        pods,
        data,
        repo,
    } = setup(json!({}));
    fs::create_dir_all(data.join("sub/deeper")).unwrap();
    fs::write(data.join("sub/orders.db"), b"orders").unwrap();
    fs::write(data.join("sub/deeper/.cairn-nested"), b"data, not a marker").unwrap();
    fs::write(data.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(data.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(data.join("sub/orders.db"), fs::Permissions::from_mode(0o600)).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(data.join("sub/orders.db"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    // A leftover marker at the volume's root is not backed up.
    fs::write(data.join(".cairn-restore-old"), b"").unwrap();
    volume_backup(&cluster, "web-0-data", "node-1", "data", &uid);
    let agent = Agent::start(&cluster, "node-1", &pods, &work.path().join("agent.log"));
    let done = wait_phase(&cluster, &agent, "web-0-data", "Completed");
    let id = done["status"]["snapshotID"].as_str().unwrap().to_owned();
    let listing = controller_support::cairn_ok(&repo, &["ls".as_ref(), id.as_ref()]);
    assert!(
        listing.contains("/volumes/shop/web-0/data/sub/deeper/.cairn-nested"),
        "{listing}"
    );
    assert!(!listing.contains(".cairn-restore-old"), "{listing}");
    // A snapshot that does hold a top-level `.cairn*` entry (made by hand).
    let by_hand = work.path().join("by-hand");
    fs::create_dir_all(&by_hand).unwrap();
    fs::write(by_hand.join(".cairn-restore-stale"), b"").unwrap();
    fs::write(by_hand.join("kept"), b"kept").unwrap();
    let out = controller_support::cairn_ok(&repo, &["--json".as_ref(), "backup".as_ref(), by_hand.as_os_str()]);
    let summary: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let by_hand_id = summary["snapshot_id"].as_str().unwrap().to_owned();

    // A new pod (as after a restore) with an empty volume on this node.
    let new_uid = seed_named_pod(&cluster, "web-1");
    let target = pods.join(&new_uid).join("volumes/kubernetes.io~empty-dir/data");
    fs::create_dir_all(&target).unwrap();
    let spec = |snapshot: &str, marker: &str| {
        json!({"node": "node-1", "pod": {"namespace": "shop", "name": "web-1", "uid": new_uid},
               "volume": "data", "repository": "default", "restoreName": "r1", "snapshotID": snapshot,
               "marker": marker})
    };
    create(
        &cluster,
        "volumerestores",
        "VolumeRestore",
        "web-1-data",
        spec(&id, ".cairn-restore-r1"),
    );
    create(
        &cluster,
        "volumerestores",
        "VolumeRestore",
        "bad-snapshot",
        spec("deadbeef", ".cairn-restore-r1"),
    );
    let restored = wait_for(&cluster, &agent, "volumerestores", "web-1-data", "Completed");
    assert_eq!(restored["status"]["snapshotID"], id.as_str(), "{restored}");
    assert_eq!(fs::read(target.join("sub/orders.db")).unwrap(), b"orders");
    assert_eq!(
        fs::read(target.join("sub/deeper/.cairn-nested")).unwrap(),
        b"data, not a marker"
    );
    let meta = |p: &str| fs::symlink_metadata(target.join(p)).unwrap();
    assert_eq!(meta("run.sh").permissions().mode() & 0o7777, 0o750);
    assert_eq!(meta("sub/orders.db").permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta("sub/orders.db").modified().unwrap(), old);
    // The marker is written last, as an empty regular file.
    assert!(meta(".cairn-restore-r1").is_file());
    assert!(!target.join(".cairn-restore-old").exists());
    let failed = wait_for(&cluster, &agent, "volumerestores", "bad-snapshot", "Failed");
    let message = failed["status"]["message"].as_str().unwrap();
    assert!(message.contains("deadbeef"), "{message}");

    // A restore writes no top-level `.cairn*` entry of the snapshot.
    let other_uid = seed_named_pod(&cluster, "web-2");
    let other = pods.join(&other_uid).join("volumes/kubernetes.io~empty-dir/data");
    fs::create_dir_all(&other).unwrap();
    let mut by_hand_spec = spec(&by_hand_id, ".cairn-restore-r2");
    by_hand_spec["pod"] = json!({"namespace": "shop", "name": "web-2", "uid": other_uid});
    create(&cluster, "volumerestores", "VolumeRestore", "by-hand", by_hand_spec);
    wait_for(&cluster, &agent, "volumerestores", "by-hand", "Completed");
    assert_eq!(fs::read(other.join("kept")).unwrap(), b"kept");
    assert!(!other.join(".cairn-restore-stale").exists());
    assert!(other.join(".cairn-restore-r2").is_file());
}

#[test]
fn a_canceled_or_stale_volume_backup_ends_with_the_reason_and_nothing_stored() {
    let s = setup(json!({}));
    fs::write(s.data.join("orders.db"), b"orders").unwrap();
    let spec = |uid: &str, backup: &str, cancel: bool| {
        json!({"node": "node-1", "pod": {"namespace": "shop", "name": "web-0", "uid": uid},
               "volume": "data", "repository": "default", "backupName": backup, "cancel": cancel})
    };
    create(
        &s.cluster,
        "volumebackups",
        "VolumeBackup",
        "canceled",
        spec(&s.uid, "nightly", true),
    );
    create(
        &s.cluster,
        "volumebackups",
        "VolumeBackup",
        "old-pod",
        spec("an-older-uid", "nightly", false),
    );
    create(
        &s.cluster,
        "volumebackups",
        "VolumeBackup",
        "no-backup",
        spec(&s.uid, "gone", false),
    );
    let agent = s.agent();
    let canceled = wait_phase(&s.cluster, &agent, "canceled", "Canceled");
    assert_eq!(canceled["status"]["message"], "canceled before it ran", "{canceled}");
    let stale = wait_phase(&s.cluster, &agent, "old-pod", "Failed");
    let message = stale["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("pod shop/web-0 was recreated meanwhile (uid an-older-uid is now"),
        "{message}"
    );
    let orphan = wait_phase(&s.cluster, &agent, "no-backup", "Failed");
    assert_eq!(
        orphan["status"]["message"], "Backup cairn-system/gone does not exist",
        "{orphan}"
    );
    assert!(snapshots(&s.repo).is_empty());
}

/// Runs the cairn binary on `repo` with `password`; returns stdout.
fn cairn_on(repo: &std::path::Path, password: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .env("CAIRN_PASSWORD", password)
        .env_remove("CAIRN_REPOSITORY")
        .envs(env.iter().copied())
        .arg("-r")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cairn {args:?}: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn log_lines(agent: &Agent, needle: &str) -> usize {
    agent.log().lines().filter(|l| l.contains(needle)).count()
}

/// The agent opens a repository once for volume after volume; a prune
/// between two of them (which rewrites the index and deletes packs) makes
/// it read the index again, and the next backup stores what it needs; a
/// new password in the Secret opens the repository again.
#[test]
fn the_agent_keeps_its_repository_open_between_volumes() {
    let s = setup(json!({}));
    fs::write(s.data.join("orders.db"), b"first orders, soon forgotten").unwrap();
    volume_backup(&s.cluster, "vb-1", "node-1", "data", &s.uid);
    let agent = s.agent();
    let first = wait_phase(&s.cluster, &agent, "vb-1", "Completed");
    let first = first["status"]["snapshotID"].as_str().unwrap().to_owned();
    fs::write(s.data.join("orders.db"), b"second orders").unwrap();
    fs::write(s.data.join("stock.db"), b"stock").unwrap();
    volume_backup(&s.cluster, "vb-2", "node-1", "data", &s.uid);
    wait_phase(&s.cluster, &agent, "vb-2", "Completed");
    assert_eq!(
        log_lines(&agent, "repository cairn-system/default opened"),
        1,
        "{}",
        agent.log()
    );

    // A prune that deletes at once: index files replaced, packs gone.
    let pw = controller_support::PASSWORD;
    cairn_on(&s.repo, pw, &["forget", &first], &[]);
    cairn_on(&s.repo, pw, &["prune", "--max-unused", "0%", "--instant-delete"], &[]);
    fs::write(s.data.join("orders.db"), b"third orders").unwrap();
    volume_backup(&s.cluster, "vb-3", "node-1", "data", &s.uid);
    wait_phase(&s.cluster, &agent, "vb-3", "Completed");
    assert_eq!(log_lines(&agent, "index read again"), 1, "{}", agent.log());
    assert_eq!(log_lines(&agent, " opened"), 1, "{}", agent.log());
    cairn_on(&s.repo, pw, &["check", "--read-data"], &[]);

    // A new key, and the Secret changed to its password.
    cairn_on(
        &s.repo,
        pw,
        &["key", "add"],
        &[("CAIRN_NEW_PASSWORD", "a new password")],
    );
    {
        let mut state = s.cluster.state();
        let d = state.def_of("", "secrets").unwrap();
        let key = (
            "".to_owned(),
            "secrets".to_owned(),
            NS.to_owned(),
            "default-password".to_owned(),
        );
        state.delete(&d, &key, false).unwrap();
    }
    controller_support::secret(&s.cluster, "default-password", &[("password", "a new password")]);
    volume_backup(&s.cluster, "vb-4", "node-1", "data", &s.uid);
    wait_phase(&s.cluster, &agent, "vb-4", "Completed");
    assert_eq!(
        log_lines(
            &agent,
            "repository cairn-system/default opened again: its access changed"
        ),
        1,
        "{}",
        agent.log()
    );
    cairn_on(&s.repo, "a new password", &["check"], &[]);
    assert_eq!(snapshots(&s.repo).len(), 3);
}
