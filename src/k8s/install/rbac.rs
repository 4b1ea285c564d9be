//! Service accounts and least-privilege RBAC for the controller and the
//! agent.
//!
//! - `cairn-controller` (ClusterRole): what the controller touches across
//!   namespaces — cairn's resources (it watches them in every namespace),
//!   their status and finalizers; events on them; the Secrets that
//!   BackupRepositories name in their own namespaces (`get` only: never
//!   listed or watched); helper pods and claims of volume restores,
//!   persistent volumes and namespaces it reads; `pods/exec` (`get` and
//!   `create`: exec is a GET upgraded to a WebSocket, and newer API servers
//!   check `create`) for backup hooks.
//! - `cairn-manifests` (ClusterRole): what manifest backup and restore
//!   need — get and list everything, create and server-side apply on
//!   restore. Bound to the controller; unbind it to keep the controller
//!   away from objects it does not back up.
//! - `cairn-controller` (Role in the namespace): maintenance Jobs (they
//!   run only there), their pods' logs, and leases.
//! - `cairn-agent` (ClusterRole): pods get (it runs no hooks).
//! - `cairn-agent` (Role in the namespace): VolumeBackups and
//!   VolumeRestores (the agent selects its node's) and their status,
//!   BackupRepositories and their Secrets read.

use serde_json::{json, Value};

use super::{labels, Options, AGENT, CONTROLLER};
use crate::k8s::crd::GROUP;

const RBAC: &str = "rbac.authorization.k8s.io/v1";
const READ: [&str; 3] = ["get", "list", "watch"];
const ALL: [&str; 7] = ["get", "list", "watch", "create", "update", "patch", "delete"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn cluster_role(name: &str, component: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": RBAC, "kind": "ClusterRole",
           "metadata": {"name": name, "labels": labels(Some(component))}, "rules": rules})
}

fn role(ns: &str, name: &str, component: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": RBAC, "kind": "Role",
           "metadata": {"name": name, "namespace": ns, "labels": labels(Some(component))}, "rules": rules})
}

fn subject(ns: &str, account: &str) -> Value {
    json!([{"kind": "ServiceAccount", "name": account, "namespace": ns}])
}

fn cluster_binding(ns: &str, name: &str, role: &str, account: &str, component: &str) -> Value {
    json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding",
           "metadata": {"name": name, "labels": labels(Some(component))},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": subject(ns, account)})
}

fn binding(ns: &str, name: &str, account: &str, component: &str) -> Value {
    json!({"apiVersion": RBAC, "kind": "RoleBinding",
           "metadata": {"name": name, "namespace": ns, "labels": labels(Some(component))},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
           "subjects": subject(ns, account)})
}

fn service_account(ns: &str, name: &str, component: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ns, "labels": labels(Some(component))}})
}

/// The service accounts, roles and bindings, in the order they are applied.
pub fn objects(opts: &Options) -> Vec<Value> {
    let ns = opts.namespace.as_str();
    let cairn_kinds = [
        "backuprepositories",
        "backups",
        "restores",
        "schedules",
        "volumebackups",
        "volumerestores",
    ];
    let statuses: Vec<String> = cairn_kinds.iter().map(|k| format!("{k}/status")).collect();
    let statuses: Vec<&str> = statuses.iter().map(String::as_str).collect();
    let finalizers: Vec<String> = cairn_kinds.iter().map(|k| format!("{k}/finalizers")).collect();
    let finalizers: Vec<&str> = finalizers.iter().map(String::as_str).collect();

    let controller_cluster = cluster_role(
        CONTROLLER,
        "controller",
        vec![
            rule(&[GROUP], &cairn_kinds, &ALL),
            rule(&[GROUP], &statuses, &["get", "update", "patch"]),
            rule(&[GROUP], &finalizers, &["update"]),
            rule(&[""], &["secrets"], &["get"]),
            rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
            rule(&[""], &["pods", "persistentvolumeclaims"], &ALL),
            rule(&[""], &["pods/exec"], &["get", "create"]),
            rule(&[""], &["persistentvolumes", "namespaces", "nodes"], &READ),
        ],
    );
    let manifests = cluster_role(
        "cairn-manifests",
        "controller",
        vec![rule(&["*"], &["*"], &["get", "list", "create", "patch"])],
    );
    let controller_ns = role(
        ns,
        CONTROLLER,
        "controller",
        vec![
            rule(&["batch"], &["jobs"], &["get", "list", "watch", "create", "delete"]),
            rule(&[""], &["pods/log"], &["get"]),
            rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"]),
        ],
    );
    let agent_cluster = cluster_role(AGENT, "agent", vec![rule(&[""], &["pods"], &["get"])]);
    let agent_ns = role(
        ns,
        AGENT,
        "agent",
        vec![
            rule(
                &[GROUP],
                &["volumebackups", "volumerestores"],
                &["get", "list", "watch", "update", "patch"],
            ),
            rule(
                &[GROUP],
                &["volumebackups/status", "volumerestores/status"],
                &["get", "update", "patch"],
            ),
            rule(&[GROUP], &["backuprepositories"], &["get"]),
            rule(&[""], &["secrets"], &["get"]),
            rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
        ],
    );
    vec![
        service_account(ns, CONTROLLER, "controller"),
        service_account(ns, AGENT, "agent"),
        controller_cluster,
        manifests,
        agent_cluster,
        cluster_binding(ns, CONTROLLER, CONTROLLER, CONTROLLER, "controller"),
        cluster_binding(ns, "cairn-manifests", "cairn-manifests", CONTROLLER, "controller"),
        cluster_binding(ns, AGENT, AGENT, AGENT, "agent"),
        controller_ns,
        agent_ns,
        binding(ns, CONTROLLER, CONTROLLER, "controller"),
        binding(ns, AGENT, AGENT, "agent"),
    ]
}
