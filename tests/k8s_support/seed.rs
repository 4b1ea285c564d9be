//! A realistic cluster: namespaces, a Deployment with its ReplicaSet and
//! Pods, a StatefulSet with its PVC and PV, a CronJob with its Job, Services,
//! Secrets, ConfigMaps, RBAC, a CRD with custom resources, and noise.

use serde_json::{json, Value};

use super::State;

fn owner(kind: &str, name: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true}])
}

fn ns(state: &mut State, name: &str) {
    state.seed("", "namespaces", json!({"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
}

/// Seeds the store.
pub fn realistic(s: &mut State) {
    for name in ["default", "kube-system", "web", "data", "team-a"] {
        ns(s, name);
    }
    // Cluster-scoped.
    s.seed(
        "storage.k8s.io",
        "storageclasses",
        json!({"metadata": {"name": "standard"}, "provisioner": "example.com/disk", "reclaimPolicy": "Retain"}),
    );
    s.seed(
        "",
        "nodes",
        json!({"metadata": {"name": "node-1"}, "spec": {}, "status": {"capacity": {"cpu": "4"}}}),
    );
    s.seed(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        json!({"metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
    );
    s.seed(
        "rbac.authorization.k8s.io",
        "clusterroles",
        json!({"metadata": {"name": "widget-editor"},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["*"]}]}),
    );
    s.seed(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        json!({"metadata": {"name": "widget-editors"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "widget-editor"},
        "subjects": [{"kind": "ServiceAccount", "name": "frontend", "namespace": "web"}]}),
    );
    s.seed(
        "rbac.authorization.k8s.io",
        "clusterroles",
        json!({"metadata": {"name": "system:unrelated"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
    );
    s.seed("", "persistentvolumes", json!({"metadata": {"name": "pv-data-db-0", "annotations": {"pv.kubernetes.io/provisioned-by": "example.com/disk"}},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                 "persistentVolumeReclaimPolicy": "Retain", "csi": {"driver": "example.com/disk", "volumeHandle": "vol-123"},
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "data", "name": "data-db-0", "uid": "uid-claim", "resourceVersion": "7"}},
        "status": {"phase": "Bound"}}));

    // web: a Deployment, its ReplicaSet and Pods, a Service, config, RBAC.
    let app = json!({"app": "frontend"});
    s.seed(
        "apps",
        "deployments",
        json!({"metadata": {"name": "frontend", "namespace": "web", "labels": app, "generation": 3},
        "spec": {"replicas": 2, "selector": {"matchLabels": app},
                 "template": {"metadata": {"labels": app}, "spec": {"serviceAccountName": "frontend",
                     "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}},
        "status": {"readyReplicas": 2}}),
    );
    s.seed("apps", "replicasets", json!({"metadata": {"name": "frontend-5d9c7", "namespace": "web", "labels": app,
        "ownerReferences": owner("Deployment", "frontend")},
        "spec": {"replicas": 2, "selector": {"matchLabels": app}, "template": {"metadata": {"labels": app}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}));
    for pod in ["frontend-5d9c7-abcde", "frontend-5d9c7-fghij"] {
        s.seed(
            "",
            "pods",
            json!({"metadata": {"name": pod, "namespace": "web", "labels": app,
            "ownerReferences": owner("ReplicaSet", "frontend-5d9c7")},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}], "nodeName": "node-1"},
            "status": {"phase": "Running"}}),
        );
    }
    s.seed("", "services", json!({"metadata": {"name": "frontend", "namespace": "web", "labels": app},
        "spec": {"selector": app, "ports": [{"port": 80, "targetPort": 80}], "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}}));
    s.seed("discovery.k8s.io", "endpointslices", json!({"metadata": {"name": "frontend-x7k2p", "namespace": "web",
        "labels": {"kubernetes.io/service-name": "frontend"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "frontend", "uid": "uid-svc", "controller": true}]},
        "addressType": "IPv4", "endpoints": []}));
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "frontend-config", "namespace": "web", "labels": app},
        "data": {"nginx.conf": "server { listen 80; }"}}),
    );
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "scratch", "namespace": "web",
        "labels": {"backup.cairn.io/exclude": "true"}}, "data": {"tmp": "1"}}),
    );
    s.seed(
        "",
        "secrets",
        json!({"metadata": {"name": "frontend-tls", "namespace": "web", "labels": app},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}),
    );
    s.seed(
        "",
        "serviceaccounts",
        json!({"metadata": {"name": "frontend", "namespace": "web", "labels": app}}),
    );
    s.seed(
        "rbac.authorization.k8s.io",
        "roles",
        json!({"metadata": {"name": "config-reader", "namespace": "web"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
    );
    s.seed(
        "rbac.authorization.k8s.io",
        "rolebindings",
        json!({"metadata": {"name": "frontend-reads-config", "namespace": "web"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "config-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "frontend", "namespace": "web"}]}),
    );
    s.seed(
        "",
        "events",
        json!({"metadata": {"name": "frontend.17a", "namespace": "web"},
        "involvedObject": {"kind": "Pod", "name": "frontend-5d9c7-abcde"}, "reason": "Pulled", "message": "pulled"}),
    );
    s.seed(
        "",
        "limitranges",
        json!({"metadata": {"name": "defaults", "namespace": "web"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}}]}}),
    );

    // data: a StatefulSet with its Pod, PVC and headless Service; a CronJob
    // with its Job; credentials.
    let db = json!({"app": "db"});
    s.seed("apps", "statefulsets", json!({"metadata": {"name": "db", "namespace": "data", "labels": db},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": db},
                 "template": {"metadata": {"labels": db}, "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "10Gi"}}}}]}}));
    s.seed(
        "",
        "pods",
        json!({"metadata": {"name": "db-0", "namespace": "data", "labels": db,
        "ownerReferences": owner("StatefulSet", "db")},
        "spec": {"containers": [{"name": "pg", "image": "postgres:16",
                                 "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}],
                 "nodeName": "node-1"},
        "status": {"phase": "Running"}}),
    );
    s.seed(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "data-db-0", "namespace": "data", "labels": db,
        "annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
                 "storageClassName": "standard", "volumeName": "pv-data-db-0"},
        "status": {"phase": "Bound"}}),
    );
    s.seed(
        "",
        "services",
        json!({"metadata": {"name": "db", "namespace": "data", "labels": db},
        "spec": {"clusterIP": "None", "selector": db, "ports": [{"port": 5432}]}}),
    );
    s.seed(
        "",
        "secrets",
        json!({"metadata": {"name": "db-credentials", "namespace": "data", "labels": db},
        "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
    );
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "db-config", "namespace": "data", "labels": db},
        "data": {"max_connections": "100"}}),
    );
    s.seed(
        "batch",
        "cronjobs",
        json!({"metadata": {"name": "nightly", "namespace": "data"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "dump", "image": "postgres:16"}]}}}}}}),
    );
    s.seed("batch", "jobs", json!({"metadata": {"name": "nightly-28000000", "namespace": "data",
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "uid-cj", "controller": true}]},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "dump", "image": "postgres:16"}]}}}}));

    // team-a: custom resources and labelled config.
    for (name, size) in [("gizmo", 3), ("doohickey", 5)] {
        s.seed(
            "example.com",
            "widgets",
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "team-a", "labels": {"tier": "back"}}, "spec": {"size": size}}),
        );
    }
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "team-settings", "namespace": "team-a", "labels": {"tier": "back"}},
        "data": {"owner": "team-a"}}),
    );
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "team-notes", "namespace": "team-a", "labels": {"tier": "front"}},
        "data": {"note": "hello"}}),
    );

    // kube-system.
    s.seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "coredns", "namespace": "kube-system"},
        "data": {"Corefile": ".:53 { forward . /etc/resolv.conf }"}}),
    );
}

/// The namespaces `default` and `cairn-system`, and a namespaced definition
/// `volumebackups.backup.cairn.io` (v1alpha1) with a status subresource and
/// `spec.node` as a selectable field.
pub fn volume_backups(s: &mut State) {
    for name in ["default", "cairn-system"] {
        s.seed(
            "",
            "namespaces",
            json!({"metadata": {"name": name}, "status": {"phase": "Active"}}),
        );
    }
    s.seed(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        json!({"metadata": {"name": "volumebackups.backup.cairn.io"},
               "spec": {"group": "backup.cairn.io", "scope": "Namespaced",
                        "names": {"plural": "volumebackups", "singular": "volumebackup", "kind": "VolumeBackup"},
                        "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                                      "subresources": {"status": {}},
                                      "selectableFields": [{"jsonPath": ".spec.node"}],
                                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
    );
}

/// Namespace `namespace` and cairn's own definitions, Established, as
/// `cairn k8s install` leaves a cluster.
pub fn cairn_installed(s: &mut State, namespace: &str) {
    s.seed("", "namespaces", json!({"metadata": {"name": namespace}}));
    for def in cairn::k8s::crd::all() {
        s.seed(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            serde_json::to_value(def).expect("definitions serialise"),
        );
    }
}
