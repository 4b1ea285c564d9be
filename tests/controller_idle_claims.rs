//! Claims that no running pod mounts are still backed up: the controller
//! starts a read-only helper pod that mounts the claim (run for real by the
//! fake kubelet, as `cairn k8s hold`), the agent of the helper's node
//! reads it, and the helper is deleted afterwards. The exclude label on a
//! claim still wins, and a claim a running pod mounts is left to that pod.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use std::fs;

use controller_support::{
    cluster, create, init_repository, repository, snapshot_file, snapshots_tagged, uid, wait_phase, Agent, Controller,
    WAIT,
};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

fn claim(cluster: &FakeCluster, name: &str, labels: Value) {
    cluster.state().seed(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": name, "namespace": "shop", "labels": labels},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
}

/// The PV a claim was bound to, once it is.
fn bound_pv(cluster: &FakeCluster, name: &str) -> String {
    let bound = cluster.wait_for(
        |o| {
            o.get(&(
                String::new(),
                "persistentvolumeclaims".into(),
                "shop".into(),
                name.into(),
            ))
            .and_then(|c| c.pointer("/status/phase"))
            .is_some_and(|p| p == "Bound")
        },
        WAIT,
    );
    assert!(bound, "claim {name} was never bound");
    cluster.get("", "persistentvolumeclaims", "shop", name).unwrap()["spec"]["volumeName"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn pods(cluster: &FakeCluster) -> Vec<Value> {
    controller_support::objects_of(cluster, "pods")
}

#[test]
fn a_claim_no_pod_mounts_is_read_through_a_helper_pod_that_goes_afterwards() {
    let cluster = cluster();
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
    let kubelet = cluster.start_kubelet(&["node-1", "node-2"]);
    claim(&cluster, "archive", json!({}));
    claim(&cluster, "scratch", json!({"backup.cairn.io/exclude": "true"}));
    claim(&cluster, "live", json!({}));
    let archive_pv = bound_pv(&cluster, "archive");
    bound_pv(&cluster, "scratch");
    bound_pv(&cluster, "live");
    // The archive's data, as its last pod left it.
    let parked = cluster.dir().join("kubelet/parked").join(&archive_pv);
    fs::create_dir_all(parked.join("2026")).unwrap();
    fs::write(parked.join("2026/ledger.csv"), b"id,amount\n1,10\n").unwrap();
    // A running pod mounts `live` without opting it in: not backed up,
    // and no helper for it.
    cluster.state().seed(
        "",
        "pods",
        json!({"metadata": {"name": "web", "namespace": "shop"},
               "spec": {"containers": [{"name": "app", "image": "x",
                                        "volumeMounts": [{"name": "live", "mountPath": "/live"}]}],
                        "volumes": [{"name": "live", "persistentVolumeClaim": {"claimName": "live"}}]}}),
    );
    let running = cluster.wait_for(
        |o| {
            o.get(&(String::new(), "pods".into(), "shop".into(), "web".into()))
                .and_then(|p| p.pointer("/status/phase"))
                .is_some_and(|p| p == "Running")
        },
        WAIT,
    );
    assert!(running, "the pod never ran");

    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init_repository(&repo);
    repository(&cluster, "default", &repo, json!({}));
    let _agents: Vec<Agent> = ["node-1", "node-2"]
        .iter()
        .map(|node| {
            Agent::start(
                &cluster,
                node,
                &kubelet.pods_dir(node),
                &work.path().join(format!("agent-{node}.log")),
            )
        })
        .collect();
    let controller = Controller::start(&cluster, &[]);
    create(
        &cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["shop"]}),
    );
    // The helper pod appears, mounting the claim read-only, excluded from
    // manifest backups.
    let helper_seen = cluster.wait_for(
        |o| {
            o.iter()
                .any(|(k, p)| k.1 == "pods" && p.pointer("/metadata/labels/backup.cairn.io~1helper").is_some())
        },
        WAIT,
    );
    assert!(helper_seen, "no helper pod:\n{}", controller.log());
    let helper = pods(&cluster)
        .into_iter()
        .find(|p| p.pointer("/metadata/labels/backup.cairn.io~1helper").is_some())
        .unwrap();
    let helper_name = helper["metadata"]["name"].as_str().unwrap().to_owned();
    assert_eq!(helper["metadata"]["namespace"], "shop");
    assert_eq!(helper["metadata"]["labels"]["backup.cairn.io/exclude"], "true");
    assert_eq!(
        helper["spec"]["volumes"],
        json!([{"name": "data", "persistentVolumeClaim": {"claimName": "archive", "readOnly": true}}])
    );
    assert_eq!(helper["spec"]["containers"][0]["volumeMounts"][0]["readOnly"], true);
    assert_eq!(helper["spec"]["automountServiceAccountToken"], false);

    let done = wait_phase(&cluster, &controller, "backups", "nightly", "Completed");
    assert_eq!(
        done["status"]["volumeBackups"],
        json!({"total": 1, "completed": 1, "failed": 0}),
        "{done}\ncontroller:\n{}",
        controller.log()
    );
    // The helper is gone once its volume is done.
    let gone = cluster.wait_for(
        |o| !o.contains_key(&(String::new(), "pods".into(), "shop".into(), helper_name.clone())),
        WAIT,
    );
    assert!(gone, "the helper pod {helper_name} stayed:\n{}", controller.log());
    let tagged = snapshots_tagged(&repo, &format!("backup-uid={}", uid(&cluster, "backups", "nightly")));
    assert_eq!(tagged.len(), 2, "the manifests and the archive claim: {tagged:?}");
    let volume = tagged
        .iter()
        .find(|s| s["paths"] == json!(["/volumes/shop/archive"]))
        .unwrap_or_else(|| panic!("no snapshot of the archive claim: {tagged:?}"));
    assert!(
        volume["tags"].as_array().unwrap().contains(&json!("pvc=archive")),
        "{volume}"
    );
    let id = volume["id"].as_str().unwrap();
    assert_eq!(
        snapshot_file(&repo, id, "volumes/shop/archive/2026/ledger.csv"),
        b"id,amount\n1,10\n"
    );
    // The manifests hold the claims but never the helper pod.
    let manifests = done["status"]["manifestSnapshot"].as_str().unwrap();
    let listing = controller_support::cairn_ok(&repo, &[std::ffi::OsStr::new("ls"), std::ffi::OsStr::new(manifests)]);
    assert!(
        listing.contains("persistentvolumeclaims/namespaces/shop/archive.json"),
        "{listing}"
    );
    assert!(listing.contains("pods/namespaces/shop/web.json"), "{listing}");
    assert!(
        !listing.contains(&helper_name),
        "the helper pod was backed up: {listing}"
    );
}

/// A cluster with a Running pod shop/db on node-1 whose claim `db` is on a
/// hostPath PV below /opt/local-path-provisioner, opted in.
fn host_path_cluster() -> FakeCluster {
    let cluster = cluster();
    let mut s = cluster.state();
    s.seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
    s.seed(
        "",
        "persistentvolumes",
        json!({"metadata": {"name": "pvc-local-1"},
               "spec": {"hostPath": {"path": "/opt/local-path-provisioner/pvc-local-1_shop_db"},
                        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "claimRef": {"namespace": "shop", "name": "db"}},
               "status": {"phase": "Bound"}}),
    );
    s.seed(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "db", "namespace": "shop"},
               "spec": {"volumeName": "pvc-local-1", "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}},
               "status": {"phase": "Bound"}}),
    );
    s.seed(
        "",
        "pods",
        json!({"metadata": {"name": "db", "namespace": "shop", "annotations": {"backup.cairn.io/volumes": "db"}},
               "spec": {"nodeName": "node-1",
                        "containers": [{"name": "db", "image": "x",
                                        "volumeMounts": [{"name": "db", "mountPath": "/db"}]}],
                        "volumes": [{"name": "db", "persistentVolumeClaim": {"claimName": "db"}}]},
               "status": {"phase": "Running"}}),
    );
    drop(s);
    cluster
}

#[test]
fn a_claim_on_a_host_path_pv_is_planned_only_below_the_host_path_root() {
    // With the root the agents read, the claim gets its VolumeBackup.
    let cluster = host_path_cluster();
    let work = tempfile::tempdir().unwrap();
    init_repository(&work.path().join("repo"));
    repository(&cluster, "default", &work.path().join("repo"), json!({}));
    let controller = Controller::start(&cluster, &["--host-path-root", "/opt/local-path-provisioner/"]);
    create(
        &cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["shop"]}),
    );
    let planned = cluster.wait_for(|o| o.iter().any(|(k, _)| k.1 == "volumebackups"), WAIT);
    assert!(planned, "no VolumeBackup for the hostPath claim:\n{}", controller.log());
    let vb = cluster
        .objects()
        .into_iter()
        .find(|(k, _)| k.1 == "volumebackups")
        .unwrap()
        .1;
    assert_eq!(vb["spec"]["pvc"]["name"], "db", "{vb}");
    assert_eq!(vb["spec"]["node"], "node-1", "{vb}");
    drop(controller);

    // Without it, the claim is skipped with the reason.
    let cluster = host_path_cluster();
    init_repository(&work.path().join("repo2"));
    repository(&cluster, "default", &work.path().join("repo2"), json!({}));
    let controller = Controller::start(&cluster, &[]);
    create(
        &cluster,
        "backups",
        "Backup",
        "nightly",
        json!({"includedNamespaces": ["shop"]}),
    );
    let done = wait_phase(&cluster, &controller, "backups", "nightly", "Completed");
    assert_eq!(done["status"]["volumeBackups"]["total"], 0, "{done}");
    let warnings = done["status"]["warnings"].to_string();
    assert!(
        warnings.contains("pod shop/db volume db") && warnings.contains("--host-path-root"),
        "{done}"
    );
}
