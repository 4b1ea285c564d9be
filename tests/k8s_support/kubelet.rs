//! The fake cluster's scheduler, volume provisioner and kubelets, played
//! over the fake API server's store so that the node agent and the
//! controller's helper pods meet what they meet in a real cluster:
//!
//! - a pod without `spec.nodeName` gets one (its `kubernetes.io/hostname`
//!   node selector, the node of a bound local PV, else the nodes in turn);
//! - a Pending claim is bound at once to a new PV `pvc-<claim uid>` (CSI
//!   driver `fake.csi.cairn.io`, reclaim policy Delete, a `claimRef`; the
//!   claim gets `spec.volumeName`, the bind and provisioner annotations and
//!   `status.phase: Bound`), except with a StorageClass whose
//!   `volumeBindingMode` is `WaitForFirstConsumer`: such a claim is bound
//!   when a scheduled pod uses it, and its PV is pinned to that node; a
//!   claim that names a volume, or that a volume's `claimRef` names, is
//!   bound, left Pending or marked Lost as the PV controller does
//!   (`State::sync_claim` in controllers.rs); a PV whose claim is gone is
//!   Released;
//! - a scheduled pod whose claims are bound gets its volume directories
//!   below its node's pods directory (`<uid>/volumes/kubernetes.io~csi/
//!   <pv>/mount`, `kubernetes.io~empty-dir/<name>`, `kubernetes.io~
//!   configmap/<name>`, `kubernetes.io~secret/<name>`) and becomes Running
//!   with ready container statuses;
//! - a container whose `command[0]` is `cairn` really runs: the test build
//!   of cairn with the rest of the command and the args, each argument equal
//!   to a volume mount's path (or below it) rewritten to that volume's host
//!   directory, and the `env[].value`s; its exit makes the pod Succeeded (0)
//!   or Failed, with `state.terminated.exitCode` (restart policies are not
//!   played: a finished container stays finished). Other containers run
//!   until their pod is deleted.
//!
//! Simplified on purpose: there are no bind mounts, so each pod mounting a
//! PV gets its own directory (tests that share a PV between pods write the
//! same files into each of [`Kubelet::pv_dirs`]); when the last pod using a
//! PV goes, its data is parked and the next pod mounting the PV gets it
//! back. Deleting a pod kills its process and removes its directory. PVs
//! are not reclaimed when their claim goes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::controllers::ClaimSync;
use super::{lock, now, FakeCluster, Key, State};

/// The CSI driver of the PVs the fake provisioner makes.
pub const CSI_DRIVER: &str = "fake.csi.cairn.io";

/// A pod the kubelet has started.
struct Started {
    namespace: String,
    name: String,
    node: String,
    /// Pod volume name -> host directory.
    volumes: BTreeMap<String, PathBuf>,
    /// PV name -> its mount directory in this pod.
    pvs: BTreeMap<String, PathBuf>,
    /// Running `cairn` containers: (container name, process).
    children: Vec<(String, Child)>,
    /// Exit codes of finished containers.
    exits: BTreeMap<String, i32>,
}

#[derive(Default)]
struct Nodes {
    /// Pod uid -> what was started for it.
    started: BTreeMap<String, Started>,
    /// Round-robin cursor of the scheduler.
    next: usize,
}

/// The scheduler, provisioner and kubelets of a fake cluster; stops when
/// dropped.
pub struct Kubelet {
    root: PathBuf,
    nodes: Arc<Mutex<Nodes>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeCluster {
    /// Seeds Node objects for `nodes` and starts playing the scheduler, the
    /// volume provisioner and the kubelets of those nodes.
    pub fn start_kubelet(&self, nodes: &[&str]) -> Kubelet {
        let root = self.dir().join("kubelet");
        fs::create_dir_all(root.join("parked")).unwrap();
        {
            let mut s = self.state();
            for node in nodes {
                fs::create_dir_all(root.join("nodes").join(node).join("pods")).unwrap();
                let key = (String::new(), "nodes".to_owned(), String::new(), (*node).to_owned());
                if !s.objects.contains_key(&key) {
                    s.seed(
                        "",
                        "nodes",
                        json!({"metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                               "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                    );
                }
            }
        }
        let shared = Arc::new(Mutex::new(Nodes::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let names: Vec<String> = nodes.iter().map(|n| (*n).to_owned()).collect();
        let thread = {
            let state = self.state.clone();
            let shared = shared.clone();
            let stop = stop.clone();
            let root = root.clone();
            std::thread::spawn(move || {
                let mut seen = u64::MAX;
                while !stop.load(Ordering::Relaxed) {
                    let rv = lock(&state).resource_version();
                    let busy = !lock_nodes(&shared).started.values().all(|p| p.children.is_empty());
                    if rv != seen || busy {
                        seen = rv;
                        let mut s = lock(&state);
                        let mut n = lock_nodes(&shared);
                        tick(&mut s, &mut n, &names, &root);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let mut n = lock_nodes(&shared);
                for pod in n.started.values_mut() {
                    for (_, child) in &mut pod.children {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
            })
        };
        Kubelet {
            root,
            nodes: shared,
            stop,
            thread: Some(thread),
        }
    }
}

fn lock_nodes(m: &Mutex<Nodes>) -> MutexGuard<'_, Nodes> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Kubelet {
    /// The kubelet pods directory of `node`: the agent's `--host-pods`.
    pub fn pods_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node).join("pods")
    }

    /// Where the data of PV `pv` is now: the mount directory in each pod
    /// that mounts it, or its parked directory when no pod does.
    pub fn pv_dirs(&self, pv: &str) -> Vec<PathBuf> {
        let n = lock_nodes(&self.nodes);
        let mut dirs: Vec<PathBuf> = n.started.values().filter_map(|p| p.pvs.get(pv).cloned()).collect();
        let parked = self.root.join("parked").join(pv);
        if dirs.is_empty() && parked.exists() {
            dirs.push(parked);
        }
        dirs
    }

    /// The host directory of volume `volume` of pod `namespace/pod` once the
    /// pod runs (waits up to 30 s).
    pub fn pod_volume_dir(&self, namespace: &str, pod: &str, volume: &str) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let n = lock_nodes(&self.nodes);
                let found = n
                    .started
                    .values()
                    .find(|p| p.namespace == namespace && p.name == pod)
                    .and_then(|p| p.volumes.get(volume).cloned());
                if let Some(dir) = found {
                    return dir;
                }
            }
            assert!(
                Instant::now() < deadline,
                "pod {namespace}/{pod} did not start with a volume {volume}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node a started pod runs on.
    pub fn node_of(&self, namespace: &str, pod: &str) -> Option<String> {
        let n = lock_nodes(&self.nodes);
        n.started
            .values()
            .find(|p| p.namespace == namespace && p.name == pod)
            .map(|p| p.node.clone())
    }

    /// What a pod's `cairn` container wrote on stdout and stderr.
    pub fn container_log(&self, namespace: &str, pod: &str, container: &str) -> String {
        fs::read_to_string(
            self.root
                .join("logs")
                .join(format!("{namespace}_{pod}_{container}.log")),
        )
        .unwrap_or_default()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn key(plural: &str, namespace: &str, name: &str) -> Key {
    (String::new(), plural.to_owned(), namespace.to_owned(), name.to_owned())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Writes `obj` back as `manager` would (the store moves the version and
/// tells the watches).
fn put(s: &mut State, plural: &str, obj: Value, manager: &str) {
    let d = s.def_of("", plural).expect("a core resource");
    let k = key(
        plural,
        str_at(&obj, "/metadata/namespace"),
        str_at(&obj, "/metadata/name"),
    );
    let _ = s.replace(&d, &k, obj, Some(manager));
}

fn tick(s: &mut State, n: &mut Nodes, nodes: &[String], root: &Path) {
    reap(s, n, root);
    schedule(s, n, nodes);
    provision(s);
    start(s, n, nodes, root);
    finish(s, n);
}

fn pods(s: &State) -> Vec<Value> {
    s.of_resource("", "pods").map(|(_, v)| v.clone()).collect()
}

fn being_deleted(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// Claim names a pod mounts.
fn claims_of(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn schedule(s: &mut State, n: &mut Nodes, nodes: &[String]) {
    for mut pod in pods(s) {
        if !str_at(&pod, "/spec/nodeName").is_empty() || being_deleted(&pod) || nodes.is_empty() {
            continue;
        }
        let ns = str_at(&pod, "/metadata/namespace").to_owned();
        let wanted = str_at(&pod, "/spec/nodeSelector/kubernetes.io~1hostname").to_owned();
        let pinned = claims_of(&pod).iter().find_map(|c| {
            let claim = s.objects.get(&key("persistentvolumeclaims", &ns, c))?;
            let pv = s
                .objects
                .get(&key("persistentvolumes", "", str_at(claim, "/spec/volumeName")))?;
            pinned_node(pv)
        });
        let node = if !wanted.is_empty() {
            wanted
        } else if let Some(node) = pinned {
            node
        } else {
            n.next += 1;
            nodes[(n.next - 1) % nodes.len()].clone()
        };
        pod["spec"]["nodeName"] = json!(node);
        pod["status"] = json!({"phase": "Pending",
                               "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}]});
        put(s, "pods", pod, "kube-scheduler");
    }
}

/// The node a PV's node affinity names.
fn pinned_node(pv: &Value) -> Option<String> {
    let terms = pv
        .pointer("/spec/nodeAffinity/required/nodeSelectorTerms")?
        .as_array()?;
    terms.iter().find_map(|t| {
        t["matchExpressions"].as_array()?.iter().find_map(|e| {
            (e["key"] == "kubernetes.io/hostname")
                .then(|| e["values"][0].as_str().map(str::to_owned))
                .flatten()
        })
    })
}

fn waits_for_consumer(s: &State, claim: &Value) -> bool {
    let class = str_at(claim, "/spec/storageClassName");
    let class = if class.is_empty() {
        s.of_resource("storage.k8s.io", "storageclasses")
            .find(|(_, c)| str_at(c, "/metadata/annotations/storageclass.kubernetes.io~1is-default-class") == "true")
            .map(|(_, c)| c.clone())
    } else {
        s.objects
            .get(&(
                "storage.k8s.io".to_owned(),
                "storageclasses".to_owned(),
                String::new(),
                class.to_owned(),
            ))
            .cloned()
    };
    class.is_some_and(|c| str_at(&c, "/volumeBindingMode") == "WaitForFirstConsumer")
}

fn provision(s: &mut State) {
    s.release_volumes();
    let claims: Vec<Value> = s
        .of_resource("", "persistentvolumeclaims")
        .map(|(_, v)| v.clone())
        .filter(|c| !matches!(str_at(c, "/status/phase"), "Bound" | "Lost") && !being_deleted(c))
        .collect();
    let all_pods = pods(s);
    for claim in claims {
        let ns = str_at(&claim, "/metadata/namespace").to_owned();
        let name = str_at(&claim, "/metadata/name").to_owned();
        let consumer_node = all_pods
            .iter()
            .filter(|p| str_at(p, "/metadata/namespace") == ns && claims_of(p).contains(&name))
            .map(|p| str_at(p, "/spec/nodeName").to_owned())
            .find(|n| !n.is_empty());
        // The PV controller (tests/k8s_support/controllers.rs).
        match s.sync_claim(&claim) {
            ClaimSync::Provision => {}
            ClaimSync::Wait => continue,
            ClaimSync::Lost => {
                let mut lost = claim.clone();
                lost["status"] = json!({"phase": "Lost"});
                put(s, "persistentvolumeclaims", lost, "kube-controller-manager");
                continue;
            }
            ClaimSync::Bind(mut pv) => {
                pv["spec"]["claimRef"] = claim_ref(&claim);
                pv["status"] = json!({"phase": "Bound"});
                put(s, "persistentvolumes", pv.clone(), "kube-controller-manager");
                bind_claim(s, claim, &pv, None);
                continue;
            }
        }
        let node = if waits_for_consumer(s, &claim) {
            match consumer_node {
                Some(node) => Some(node),
                None => continue,
            }
        } else {
            None
        };
        let uid = str_at(&claim, "/metadata/uid").to_owned();
        let pv_name = format!("pvc-{uid}");
        let storage = claim
            .pointer("/spec/resources/requests/storage")
            .cloned()
            .unwrap_or(json!("1Gi"));
        let mut pv = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": CSI_DRIVER}},
            "spec": {"capacity": {"storage": storage},
                     "accessModes": claim.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                     "persistentVolumeReclaimPolicy": "Delete",
                     "storageClassName": str_at(&claim, "/spec/storageClassName"),
                     "volumeMode": "Filesystem",
                     "csi": {"driver": CSI_DRIVER, "volumeHandle": pv_name},
                     "claimRef": claim_ref(&claim)},
            "status": {"phase": "Bound"}});
        if let Some(node) = &node {
            pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}});
        }
        let d = s.def_of("", "persistentvolumes").expect("persistentvolumes");
        if s.insert(&d, pv.clone()).is_err() {
            continue;
        }
        bind_claim(s, claim, &pv, node.as_deref());
    }
}

fn claim_ref(claim: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "namespace": str_at(claim, "/metadata/namespace"), "name": str_at(claim, "/metadata/name"),
           "uid": str_at(claim, "/metadata/uid")})
}

fn bind_claim(s: &mut State, mut claim: Value, pv: &Value, node: Option<&str>) {
    claim["spec"]["volumeName"] = pv["metadata"]["name"].clone();
    if !claim["metadata"]["annotations"].is_object() {
        claim["metadata"]["annotations"] = json!({});
    }
    let a = &mut claim["metadata"]["annotations"];
    a["pv.kubernetes.io/bind-completed"] = json!("yes");
    if str_at(pv, "/metadata/annotations/pv.kubernetes.io~1provisioned-by") == CSI_DRIVER {
        a["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        a["volume.kubernetes.io/storage-provisioner"] = json!(CSI_DRIVER);
        a["volume.beta.kubernetes.io/storage-provisioner"] = json!(CSI_DRIVER);
    }
    if let Some(node) = node {
        a["volume.kubernetes.io/selected-node"] = json!(node);
    }
    claim["status"] = json!({"phase": "Bound",
                             "accessModes": pv.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
                             "capacity": pv.pointer("/spec/capacity").cloned().unwrap_or(json!({}))});
    put(s, "persistentvolumeclaims", claim, "kube-controller-manager");
}

/// The host directories of a pod's volumes, or None while a claim is not
/// bound. PVs on a host path have no directory below the pod.
fn volume_dirs(
    s: &State,
    pod: &Value,
    pod_dir: &Path,
) -> Option<(BTreeMap<String, PathBuf>, BTreeMap<String, PathBuf>)> {
    let ns = str_at(pod, "/metadata/namespace");
    let mut dirs = BTreeMap::new();
    let mut pvs = BTreeMap::new();
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in &volumes {
        let name = str_at(v, "/name").to_owned();
        let plugin_dir = |plugin: &str| pod_dir.join("volumes").join(plugin).join(&name);
        if let Some(claim) = v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str) {
            let claim = s.objects.get(&key("persistentvolumeclaims", ns, claim))?;
            if str_at(claim, "/status/phase") != "Bound" {
                return None;
            }
            let pv_name = str_at(claim, "/spec/volumeName");
            let pv = s.objects.get(&key("persistentvolumes", "", pv_name))?;
            if let Some(path) = pv.pointer("/spec/hostPath/path").and_then(Value::as_str) {
                dirs.insert(name, PathBuf::from(path));
            } else {
                let dir = pod_dir
                    .join("volumes")
                    .join("kubernetes.io~csi")
                    .join(pv_name)
                    .join("mount");
                pvs.insert(pv_name.to_owned(), dir.clone());
                dirs.insert(name, dir);
            }
        } else if v.get("emptyDir").is_some() {
            dirs.insert(name.clone(), plugin_dir("kubernetes.io~empty-dir"));
        } else if v.get("configMap").is_some() {
            dirs.insert(name.clone(), plugin_dir("kubernetes.io~configmap"));
        } else if v.get("secret").is_some() {
            dirs.insert(name.clone(), plugin_dir("kubernetes.io~secret"));
        }
    }
    Some((dirs, pvs))
}

fn start(s: &mut State, n: &mut Nodes, nodes: &[String], root: &Path) {
    for mut pod in pods(s) {
        let uid = str_at(&pod, "/metadata/uid").to_owned();
        let node = str_at(&pod, "/spec/nodeName").to_owned();
        if n.started.contains_key(&uid) || !nodes.contains(&node) || being_deleted(&pod) {
            continue;
        }
        if matches!(str_at(&pod, "/status/phase"), "Running" | "Succeeded" | "Failed") {
            continue;
        }
        let pod_dir = root.join("nodes").join(&node).join("pods").join(&uid);
        let Some((volumes, pvs)) = volume_dirs(s, &pod, &pod_dir) else {
            continue;
        };
        for (pv, dir) in &pvs {
            fs::create_dir_all(dir.parent().expect("a mount dir has a parent")).unwrap();
            let parked = root.join("parked").join(pv);
            if parked.exists() {
                fs::rename(&parked, dir).unwrap();
            } else {
                fs::create_dir_all(dir).unwrap();
            }
        }
        for dir in volumes.values() {
            if dir.starts_with(&pod_dir) {
                fs::create_dir_all(dir).unwrap();
            }
        }
        let ns = str_at(&pod, "/metadata/namespace").to_owned();
        let name = str_at(&pod, "/metadata/name").to_owned();
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut children = Vec::new();
        for c in &containers {
            if c.pointer("/command/0").and_then(Value::as_str) == Some("cairn") {
                let log = root.join("logs");
                fs::create_dir_all(&log).unwrap();
                let cname = str_at(c, "/name").to_owned();
                let log = fs::File::create(log.join(format!("{ns}_{name}_{cname}.log"))).unwrap();
                children.push((cname, run_container(c, &volumes, log)));
            }
        }
        let t = now();
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                json!({"name": c["name"], "image": c["image"], "ready": true, "started": true,
                            "restartCount": 0, "state": {"running": {"startedAt": t}}})
            })
            .collect();
        pod["status"] = json!({"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.244.0.10", "startTime": t,
                               "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                                              {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                                              {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
                                              {"type": "Ready", "status": "True", "lastTransitionTime": t}],
                               "containerStatuses": statuses});
        put(s, "pods", pod, "kubelet");
        n.started.insert(
            uid,
            Started {
                namespace: ns,
                name,
                node,
                volumes,
                pvs,
                children,
                exits: BTreeMap::new(),
            },
        );
    }
}

/// Runs a `cairn` container as a process of the test build.
fn run_container(c: &Value, volumes: &BTreeMap<String, PathBuf>, log: fs::File) -> Child {
    let mounts: Vec<(String, PathBuf)> = c
        .pointer("/volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let dir = volumes.get(str_at(m, "/name"))?;
            Some((str_at(m, "/mountPath").to_owned(), dir.clone()))
        })
        .collect();
    let rewrite = |arg: &str| -> String {
        let (prefix, value) = match arg.split_once('=') {
            Some((p, v)) if v.starts_with('/') => (format!("{p}="), v),
            _ => (String::new(), arg),
        };
        for (path, dir) in &mounts {
            if value == path {
                return format!("{prefix}{}", dir.display());
            }
            if let Some(rest) = value.strip_prefix(&format!("{path}/")) {
                return format!("{prefix}{}", dir.join(rest).display());
            }
        }
        arg.to_owned()
    };
    let words: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(c["args"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .skip(1)
        .map(rewrite)
        .collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(&words)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    for e in c["env"].as_array().into_iter().flatten() {
        if let Some(value) = e["value"].as_str() {
            cmd.env(str_at(e, "/name"), value);
        }
    }
    cmd.spawn().unwrap()
}

/// Marks pods whose `cairn` containers all ended.
fn finish(s: &mut State, n: &mut Nodes) {
    for (uid, p) in n.started.iter_mut() {
        let mut ended = Vec::new();
        p.children.retain_mut(|(name, child)| match child.try_wait() {
            Ok(Some(status)) => {
                ended.push((name.clone(), status.code().unwrap_or(137)));
                false
            }
            _ => true,
        });
        if ended.is_empty() {
            continue;
        }
        p.exits.extend(ended);
        if !p.children.is_empty() {
            continue;
        }
        let Some(mut pod) = s.objects.get(&key("pods", &p.namespace, &p.name)).cloned() else {
            continue;
        };
        if str_at(&pod, "/metadata/uid") != uid {
            continue;
        }
        let t = now();
        let failed = p.exits.values().any(|c| *c != 0);
        if let Some(statuses) = pod
            .pointer_mut("/status/containerStatuses")
            .and_then(Value::as_array_mut)
        {
            for st in statuses {
                if let Some(code) = st["name"].as_str().and_then(|c| p.exits.get(c)) {
                    st["ready"] = json!(false);
                    st["started"] = json!(false);
                    st["state"] = json!({"terminated": {"exitCode": code, "reason": if *code == 0 { "Completed" } else { "Error" },
                                                        "startedAt": st.pointer("/state/running/startedAt").cloned().unwrap_or(json!(t)),
                                                        "finishedAt": t}});
                }
            }
        }
        pod["status"]["phase"] = json!(if failed { "Failed" } else { "Succeeded" });
        put(s, "pods", pod, "kubelet");
    }
}

/// Tears down pods that are gone: kills their processes, parks the data of
/// PVs no other pod mounts, and removes their directories.
fn reap(s: &State, n: &mut Nodes, root: &Path) {
    let live: BTreeSet<String> = s
        .of_resource("", "pods")
        .map(|(_, p)| str_at(p, "/metadata/uid").to_owned())
        .collect();
    let gone: Vec<String> = n.started.keys().filter(|uid| !live.contains(*uid)).cloned().collect();
    for uid in gone {
        let Some(mut p) = n.started.remove(&uid) else {
            continue;
        };
        for (_, child) in &mut p.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for (pv, dir) in &p.pvs {
            let still_mounted = n.started.values().any(|q| q.pvs.contains_key(pv));
            if !still_mounted && dir.exists() {
                fs::rename(dir, root.join("parked").join(pv)).unwrap();
            }
        }
        let _ = fs::remove_dir_all(root.join("nodes").join(&p.node).join("pods").join(&uid));
    }
}
