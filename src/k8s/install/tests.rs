//! The installed objects: names, the contract of the workloads, RBAC.

use serde_json::{json, Value};

use super::*;

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn rules_allow(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    role["rules"].as_array().unwrap().iter().any(|r| {
        let has = |field: &str, want: &str| r[field].as_array().unwrap().iter().any(|v| v == want || v == "*");
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

#[test]
fn every_object_in_order() {
    let objs = manifests(&Options::default()).unwrap();
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "CustomResourceDefinition").count(), 6);
    assert!(kinds[..6].iter().all(|k| *k == "CustomResourceDefinition"), "{kinds:?}");
    assert_eq!(kinds[6], "Namespace");
    assert_eq!(kinds.last(), Some(&"DaemonSet"));
    find(&objs, "Namespace", "cairn-system");
    for sa in ["cairn-controller", "cairn-agent"] {
        assert_eq!(
            find(&objs, "ServiceAccount", sa)["metadata"]["namespace"],
            "cairn-system"
        );
    }
    for o in &objs {
        let ns = o["metadata"]["namespace"].as_str();
        assert!(ns.is_none() || ns == Some("cairn-system"), "{o}");
    }
}

#[test]
fn controller_deployment() {
    let opts = Options {
        namespace: "backup".into(),
        image: "registry.example/cairn:1".into(),
        cluster_name: Some("prod-eu".into()),
        ..Options::default()
    };
    let objs = manifests(&opts).unwrap();
    let d = find(&objs, "Deployment", "cairn-controller");
    assert_eq!(d["metadata"]["namespace"], "backup");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "cairn-controller");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/cairn:1");
    assert_eq!(
        c["args"],
        json!([
            "k8s",
            "controller",
            "--namespace",
            "backup",
            "--cluster-name",
            "prod-eu"
        ])
    );
    assert_eq!(
        c["ports"][0],
        json!({"name": "http", "containerPort": 8080, "protocol": "TCP"})
    );
    let env = c["env"].as_array().unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).cloned();
    assert_eq!(var("CAIRN_IMAGE").unwrap()["value"], "registry.example/cairn:1");
    assert_eq!(
        var("POD_NAME").unwrap()["valueFrom"],
        json!({"fieldRef": {"fieldPath": "metadata.name"}})
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in d["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the selector matches the pods");
    }
    // Without a cluster name the controller picks its own.
    let objs = manifests(&Options::default()).unwrap();
    let args = &find(&objs, "Deployment", "cairn-controller")["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args, &json!(["k8s", "controller", "--namespace", "cairn-system"]));
}

#[test]
fn agent_daemonset() {
    let opts = Options {
        kubelet_root_dir: "/var/lib/k0s/kubelet/".into(),
        ..Options::default()
    };
    let objs = manifests(&opts).unwrap();
    let ds = find(&objs, "DaemonSet", "cairn-agent");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "cairn-agent");
    assert_eq!(pod["securityContext"]["runAsUser"], 0);
    let c = &pod["containers"][0];
    assert_eq!(c["args"], json!(["k8s", "agent", "--namespace", "cairn-system"]));
    assert_eq!(
        c["env"][0],
        json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    );
    assert_eq!(
        c["volumeMounts"][0],
        json!({"name": "host-pods", "mountPath": "/host_pods", "mountPropagation": "HostToContainer"})
    );
    assert_eq!(pod["volumes"][0]["hostPath"]["path"], "/var/lib/k0s/kubelet/pods");
    let objs = manifests(&Options::default()).unwrap();
    let ds = find(&objs, "DaemonSet", "cairn-agent");
    assert_eq!(
        ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
        "/var/lib/kubelet/pods"
    );
}

#[test]
fn the_agent_gets_the_cluster_name_the_host_path_root_and_the_read_rate_limit() {
    let opts = Options {
        cluster_name: Some("prod-eu".into()),
        host_path_root: Some("/opt/local-path-provisioner".into()),
        agent_read_rate_limit: Some(50 << 20),
        ..Options::default()
    };
    let objs = manifests(&opts).unwrap();
    let pod = &find(&objs, "DaemonSet", "cairn-agent")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        c["args"],
        json!([
            "k8s",
            "agent",
            "--namespace",
            "cairn-system",
            "--cluster-name",
            "prod-eu",
            "--host-path-root",
            "/opt/local-path-provisioner",
            "--read-rate-limit",
            "52428800"
        ])
    );
    assert_eq!(
        c["volumeMounts"][2],
        json!({"name": "host-path-root", "mountPath": "/opt/local-path-provisioner",
               "mountPropagation": "HostToContainer"})
    );
    assert_eq!(
        pod["volumes"][2],
        json!({"name": "host-path-root",
               "hostPath": {"path": "/opt/local-path-provisioner", "type": "DirectoryOrCreate"}})
    );
    // The controller records the same host name.
    let deployment = find(&objs, "Deployment", "cairn-controller");
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(args.as_array().unwrap().iter().any(|a| a == "prod-eu"), "{args}");
    // And plans claims on hostPath PVs below the same root.
    let text: Vec<&str> = args.as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert!(
        text.windows(2)
            .any(|w| w == ["--host-path-root", "/opt/local-path-provisioner"]),
        "{args}"
    );
}

#[test]
fn least_privilege_rbac() {
    let objs = manifests(&Options::default()).unwrap();
    let agent = find(&objs, "Role", "cairn-agent");
    assert!(rules_allow(agent, "backup.cairn.io", "volumebackups", "watch"));
    assert!(rules_allow(agent, "backup.cairn.io", "volumerestores/status", "patch"));
    assert!(rules_allow(agent, "backup.cairn.io", "backuprepositories", "get"));
    assert!(rules_allow(agent, "", "secrets", "get"));
    assert!(!rules_allow(agent, "", "secrets", "list"));
    assert!(!rules_allow(agent, "backup.cairn.io", "backups", "get"));
    let agent_cluster = find(&objs, "ClusterRole", "cairn-agent");
    assert!(rules_allow(agent_cluster, "", "pods", "get"));
    assert!(
        !rules_allow(agent_cluster, "", "pods/exec", "create"),
        "hooks run in the controller"
    );
    assert!(!rules_allow(agent_cluster, "", "secrets", "get"));
    assert!(!rules_allow(agent_cluster, "", "pods", "delete"));

    // cairn's resources are watched in every namespace, so their rights
    // are cluster-wide; Jobs only in the controller's namespace.
    let cluster = find(&objs, "ClusterRole", "cairn-controller");
    // Backup hooks: exec is a GET upgraded to a WebSocket; newer API
    // servers also check `create`.
    assert!(rules_allow(cluster, "", "pods/exec", "get"));
    assert!(rules_allow(cluster, "", "pods/exec", "create"));
    assert!(!rules_allow(cluster, "", "pods/attach", "create"));
    for kind in [
        "backups",
        "restores",
        "schedules",
        "backuprepositories",
        "volumebackups",
        "volumerestores",
    ] {
        for verb in ["get", "list", "watch", "create", "patch", "delete"] {
            assert!(rules_allow(cluster, "backup.cairn.io", kind, verb), "{kind} {verb}");
        }
        assert!(rules_allow(
            cluster,
            "backup.cairn.io",
            &format!("{kind}/status"),
            "patch"
        ));
        assert!(rules_allow(
            cluster,
            "backup.cairn.io",
            &format!("{kind}/finalizers"),
            "update"
        ));
    }
    assert!(rules_allow(cluster, "events.k8s.io", "events", "create"));
    assert!(rules_allow(cluster, "events.k8s.io", "events", "patch"));
    // Secrets: read one by name, never list or watch them.
    assert!(rules_allow(cluster, "", "secrets", "get"));
    assert!(!rules_allow(cluster, "", "secrets", "list"));
    assert!(!rules_allow(cluster, "", "secrets", "watch"));
    assert!(rules_allow(cluster, "", "pods", "create"));
    assert!(rules_allow(cluster, "", "persistentvolumeclaims", "create"));
    assert!(!rules_allow(cluster, "batch", "jobs", "create"));
    let controller = find(&objs, "Role", "cairn-controller");
    for verb in ["create", "get", "list", "watch", "delete"] {
        assert!(rules_allow(controller, "batch", "jobs", verb), "jobs {verb}");
    }
    assert!(!rules_allow(controller, "batch", "jobs", "update"));
    assert!(rules_allow(controller, "coordination.k8s.io", "leases", "update"));
    let manifests_role = find(&objs, "ClusterRole", "cairn-manifests");
    assert!(rules_allow(manifests_role, "apps", "deployments", "list"));
    assert!(rules_allow(manifests_role, "apps", "deployments", "create"));
    assert!(!rules_allow(manifests_role, "apps", "deployments", "delete"));

    for (kind, name, account) in [
        ("ClusterRoleBinding", "cairn-controller", "cairn-controller"),
        ("ClusterRoleBinding", "cairn-manifests", "cairn-controller"),
        ("ClusterRoleBinding", "cairn-agent", "cairn-agent"),
        ("RoleBinding", "cairn-controller", "cairn-controller"),
        ("RoleBinding", "cairn-agent", "cairn-agent"),
    ] {
        let b = find(&objs, kind, name);
        assert_eq!(b["roleRef"]["name"], name);
        assert_eq!(b["subjects"][0]["name"], account);
        assert_eq!(b["subjects"][0]["namespace"], "cairn-system");
    }
}

#[test]
fn bad_options_are_named() {
    for (opts, option) in [
        (
            Options {
                namespace: "Cairn".into(),
                ..Options::default()
            },
            "--namespace",
        ),
        (
            Options {
                namespace: String::new(),
                ..Options::default()
            },
            "--namespace",
        ),
        (
            Options {
                image: "a b".into(),
                ..Options::default()
            },
            "--image",
        ),
        (
            Options {
                kubelet_root_dir: "var/lib/kubelet".into(),
                ..Options::default()
            },
            "--kubelet-root-dir",
        ),
        (
            Options {
                kubelet_root_dir: "/a/../b".into(),
                ..Options::default()
            },
            "--kubelet-root-dir",
        ),
        (
            Options {
                host_path_root: Some("/".into()),
                ..Options::default()
            },
            "--host-path-root",
        ),
        (
            Options {
                host_path_root: Some("opt/local-path-provisioner".into()),
                ..Options::default()
            },
            "--host-path-root",
        ),
        (
            Options {
                cluster_name: Some("a/b".into()),
                ..Options::default()
            },
            "--cluster-name",
        ),
    ] {
        let err = manifests(&opts).unwrap_err();
        assert!(err.is_usage(), "{err}");
        let text = err.to_string();
        assert!(text.contains(option) && !text.contains('\n'), "{text}");
    }
}
