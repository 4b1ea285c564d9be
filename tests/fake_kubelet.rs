//! The fake cluster's scheduler, provisioner and kubelet: claims are bound
//! (at once, or on first use with WaitForFirstConsumer), pods are scheduled
//! and started with their volume directories, `cairn` containers really run,
//! and a PV's data outlives the pods that mount it.
#![cfg(feature = "k8s")]

mod k8s_support;

use std::fs;
use std::time::Duration;

use k8s_support::FakeCluster;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn wait_value(cluster: &FakeCluster, plural: &str, ns: &str, name: &str, pointer: &str, want: &str) -> Value {
    let ok = cluster.wait_for(
        |objects| {
            objects
                .get(&(String::new(), plural.to_owned(), ns.to_owned(), name.to_owned()))
                .and_then(|o| o.pointer(pointer))
                .and_then(Value::as_str)
                == Some(want)
        },
        WAIT,
    );
    let obj = cluster.get("", plural, ns, name);
    assert!(ok, "{plural} {ns}/{name}: {pointer} never became {want}: {obj:?}");
    obj.unwrap_or_default()
}

fn seed_base(cluster: &FakeCluster) {
    let mut s = cluster.state();
    s.seed("", "namespaces", json!({"metadata": {"name": "app"}}));
    s.seed(
        "storage.k8s.io",
        "storageclasses",
        json!({"metadata": {"name": "late"}, "provisioner": "fake.csi.cairn.io",
               "volumeBindingMode": "WaitForFirstConsumer"}),
    );
    s.seed(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "data", "namespace": "app"},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    s.seed(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "late", "namespace": "app"},
               "spec": {"storageClassName": "late", "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "2Gi"}}}}),
    );
}

fn pod(name: &str, node: Option<&str>, command: Value) -> Value {
    let mut pod = json!({"metadata": {"name": name, "namespace": "app"},
        "spec": {"containers": [{"name": "main", "image": "cairn", "command": command,
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                                  {"name": "late", "mountPath": "/late"},
                                                  {"name": "scratch", "mountPath": "/scratch"}]}],
                 "restartPolicy": "Never",
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                             {"name": "late", "persistentVolumeClaim": {"claimName": "late"}},
                             {"name": "scratch", "emptyDir": {}}]}});
    if let Some(node) = node {
        pod["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": node});
    }
    pod
}

#[test]
fn claims_are_bound_pods_run_with_their_volume_directories() {
    let cluster = FakeCluster::empty();
    seed_base(&cluster);
    let kubelet = cluster.start_kubelet(&["node-1", "node-2"]);
    let claim = wait_value(
        &cluster,
        "persistentvolumeclaims",
        "app",
        "data",
        "/status/phase",
        "Bound",
    );
    let pv = claim["spec"]["volumeName"].as_str().unwrap().to_owned();
    assert_eq!(pv, format!("pvc-{}", claim["metadata"]["uid"].as_str().unwrap()));
    assert_eq!(
        claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    let volume = cluster.get("", "persistentvolumes", "", &pv).unwrap();
    assert_eq!(volume["spec"]["claimRef"]["name"], "data");
    assert_eq!(volume["spec"]["csi"]["driver"], "fake.csi.cairn.io");
    // WaitForFirstConsumer: still pending without a pod.
    assert!(cluster
        .get("", "persistentvolumeclaims", "app", "late")
        .unwrap()
        .pointer("/status/phase")
        .is_none());

    cluster
        .state()
        .seed("", "pods", pod("web", Some("node-2"), json!(["sleep", "infinity"])));
    let running = wait_value(&cluster, "pods", "app", "web", "/status/phase", "Running");
    assert_eq!(running["spec"]["nodeName"], "node-2");
    assert_eq!(running["status"]["containerStatuses"][0]["ready"], true);
    let late = wait_value(
        &cluster,
        "persistentvolumeclaims",
        "app",
        "late",
        "/status/phase",
        "Bound",
    );
    assert_eq!(
        late["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        "node-2"
    );
    let late_pv = late["spec"]["volumeName"].as_str().unwrap().to_owned();
    let uid = running["metadata"]["uid"].as_str().unwrap();
    let pods = kubelet.pods_dir("node-2");
    let data_dir = pods.join(uid).join("volumes/kubernetes.io~csi").join(&pv).join("mount");
    assert!(data_dir.is_dir());
    assert!(pods
        .join(uid)
        .join("volumes/kubernetes.io~csi")
        .join(&late_pv)
        .join("mount")
        .is_dir());
    assert!(pods.join(uid).join("volumes/kubernetes.io~empty-dir/scratch").is_dir());
    assert_eq!(kubelet.pod_volume_dir("app", "web", "data"), data_dir);
    assert_eq!(kubelet.pv_dirs(&pv), vec![data_dir.clone()]);

    // The PV's data outlives the pod and follows the claim to the next one.
    fs::write(data_dir.join("kept"), b"hello").unwrap();
    cluster.state().objects.retain(|k, _| !(k.1 == "pods" && k.3 == "web"));
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "poke"}}));
    let parked = cluster.dir().join("kubelet/parked").join(&pv);
    assert!(
        cluster.wait_for(|_| parked.join("kept").exists(), WAIT),
        "the data was not parked"
    );
    assert!(!pods.join(uid).exists(), "the pod directory stayed");
    cluster
        .state()
        .seed("", "pods", pod("web2", Some("node-1"), json!(["sleep", "infinity"])));
    let dir = kubelet.pod_volume_dir("app", "web2", "data");
    assert!(dir.starts_with(kubelet.pods_dir("node-1")));
    assert_eq!(fs::read(dir.join("kept")).unwrap(), b"hello");
}

#[test]
fn cairn_containers_run_with_their_mounts_rewritten() {
    let cluster = FakeCluster::empty();
    seed_base(&cluster);
    let kubelet = cluster.start_kubelet(&["node-1"]);
    // `cairn init` writes below the mount path: the argument must reach the
    // host directory.
    let mut ok = pod(
        "init",
        None,
        json!(["cairn", "-r", "/scratch/repo", "init", "--kdf-memory", "8192"]),
    );
    ok["spec"]["containers"][0]["env"] = json!([{"name": "CAIRN_PASSWORD", "value": "pw"}]);
    cluster.state().seed("", "pods", ok);
    let done = wait_value(&cluster, "pods", "app", "init", "/status/phase", "Succeeded");
    assert_eq!(
        done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0,
        "log: {}",
        kubelet.container_log("app", "init", "main")
    );
    assert!(kubelet
        .pod_volume_dir("app", "init", "scratch")
        .join("repo/config")
        .exists());

    cluster
        .state()
        .seed("", "pods", pod("bad", None, json!(["cairn", "no-such-command"])));
    let failed = wait_value(&cluster, "pods", "app", "bad", "/status/phase", "Failed");
    assert_ne!(
        failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
}
