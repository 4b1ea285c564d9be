//! The controller Deployment and the agent DaemonSet.

use serde_json::{json, Value};

use super::{labels, Options, AGENT, CONTROLLER};

/// Where the agent sees the kubelet's pods directory.
pub const HOST_PODS: &str = "/host_pods";
/// The port of `/metrics`, `/healthz` and `/readyz`.
pub const HTTP_PORT: u16 = 8080;
/// Where the workloads keep cairn's cache (an emptyDir).
const CACHE_DIR: &str = "/var/cache/cairn";

fn selector(component: &str) -> Value {
    json!({"app.kubernetes.io/name": "cairn", "app.kubernetes.io/component": component})
}

fn cache() -> (Value, Value, Value) {
    (
        json!({"name": "CAIRN_CACHE_DIR", "value": CACHE_DIR}),
        json!({"name": "cache", "mountPath": CACHE_DIR}),
        json!({"name": "cache", "emptyDir": {}}),
    )
}

/// The controller: one replica, replaced (never two at once) on update.
pub fn controller(opts: &Options) -> Value {
    let mut args = vec!["k8s", "controller", "--namespace", opts.namespace.as_str()];
    if let Some(name) = &opts.cluster_name {
        args.extend(["--cluster-name", name.as_str()]);
    }
    // The controller plans claims on hostPath PVs as the agents read them.
    if let Some(dir) = &opts.host_path_root {
        args.extend(["--host-path-root", dir.as_str()]);
    }
    let probe = |path: &str| {
        json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": 10,
               "timeoutSeconds": 5, "failureThreshold": 3})
    };
    let (cache_env, cache_mount, cache_volume) = cache();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CONTROLLER, "namespace": opts.namespace, "labels": labels(Some("controller"))},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector("controller")},
            "template": {
                "metadata": {"labels": labels(Some("controller"))},
                "spec": {
                    "serviceAccountName": CONTROLLER,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                        "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "controller",
                        "image": opts.image,
                        "args": args,
                        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
                        "env": [
                            cache_env,
                            // The image of maintenance Jobs: the controller's own.
                            {"name": "CAIRN_IMAGE", "value": opts.image},
                            // Names the controller in the events it reports.
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        ],
                        "livenessProbe": probe("/healthz"),
                        "readinessProbe": probe("/readyz"),
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [cache_mount],
                    }],
                    "volumes": [cache_volume],
                }
            }
        }
    })
}

/// The agent: one per node, reading and writing pod volumes through the
/// kubelet's pods directory, as root.
pub fn agent(opts: &Options) -> Value {
    let (cache_env, cache_mount, cache_volume) = cache();
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": AGENT, "namespace": opts.namespace, "labels": labels(Some("agent"))},
        "spec": {
            "selector": {"matchLabels": selector("agent")},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels(Some("agent"))},
                "spec": {
                    "serviceAccountName": AGENT,
                    "securityContext": {"runAsUser": 0, "runAsGroup": 0,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "agent",
                        "image": opts.image,
                        "args": agent_args(opts),
                        "env": [
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            cache_env,
                        ],
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                      "limits": {"memory": "1Gi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true},
                        "volumeMounts": agent_mounts(opts, cache_mount),
                    }],
                    "volumes": agent_volumes(opts, cache_volume),
                }
            }
        }
    })
}

/// The agent's arguments: the controller's cluster name, so that volume
/// snapshots have the host of their manifests, the hostPath root and the
/// read-rate limit.
fn agent_args(opts: &Options) -> Vec<String> {
    let mut args: Vec<String> = ["k8s", "agent", "--namespace", opts.namespace.as_str()]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if let Some(name) = &opts.cluster_name {
        args.extend(["--cluster-name".to_owned(), name.clone()]);
    }
    if let Some(dir) = &opts.host_path_root {
        args.extend(["--host-path-root".to_owned(), dir.clone()]);
    }
    if let Some(rate) = opts.agent_read_rate_limit {
        args.extend(["--read-rate-limit".to_owned(), rate.to_string()]);
    }
    args
}

fn agent_mounts(opts: &Options, cache_mount: Value) -> Vec<Value> {
    let mut mounts = vec![
        json!({"name": "host-pods", "mountPath": HOST_PODS, "mountPropagation": "HostToContainer"}),
        cache_mount,
    ];
    if let Some(dir) = &opts.host_path_root {
        mounts.push(json!({"name": "host-path-root", "mountPath": dir, "mountPropagation": "HostToContainer"}));
    }
    mounts
}

fn agent_volumes(opts: &Options, cache_volume: Value) -> Vec<Value> {
    let mut volumes = vec![
        json!({"name": "host-pods", "hostPath": {"path": opts.host_pods_dir(), "type": "Directory"}}),
        cache_volume,
    ];
    if let Some(dir) = &opts.host_path_root {
        volumes.push(json!({"name": "host-path-root", "hostPath": {"path": dir, "type": "DirectoryOrCreate"}}));
    }
    volumes
}
