//! What the objects a backup takes need beside them, found in the objects
//! themselves: a pod's (or a pod template's) claims, service account and
//! priority class; a StatefulSet's claims from its claim templates; a claim's volume and storage class; a binding's role;
//! a custom resource's definition; the bindings that grant to a service
//! account. A label-selected backup takes these even when they are not
//! labelled, so that what it restores can run.

use std::collections::BTreeSet;

use serde_json::Value;

use super::discovery::qualified;

const RBAC: &str = "rbac.authorization.k8s.io";

/// Namespaced resources taken because selected objects need them, in the
/// order they are looked for: (group, plural).
pub const NAMESPACED_NEEDS: &[(&str, &str)] = &[
    ("", "persistentvolumeclaims"),
    ("", "serviceaccounts"),
    (RBAC, "rolebindings"),
    (RBAC, "roles"),
];

/// Where a resource's objects keep their pod spec, if they have one.
pub fn pod_spec_pointer(group: &str, plural: &str) -> Option<&'static str> {
    match (group, plural) {
        ("", "pods") => Some("/spec"),
        ("", "podtemplates") => Some("/template/spec"),
        ("", "replicationcontrollers")
        | ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => Some("/spec/template/spec"),
        ("batch", "cronjobs") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// The claims a StatefulSet's pods use from its claim templates:
/// `<template>-<set>-<ordinal>` for each ordinal below `replicas` (1 when
/// unset); they outlive the pods and hold the data.
pub fn stateful_set_claims(object: &Value) -> Vec<String> {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let replicas = object.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
    let templates = object
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str));
    let mut claims = Vec::new();
    for template in templates {
        // A scaled-up set of thousands is not a reason to list thousands
        // of names; its pods name their own claims.
        for ordinal in 0..replicas.min(1000) {
            claims.push(format!("{template}-{name}-{ordinal}"));
        }
    }
    claims
}

/// What a pod spec refers to by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodNeeds {
    pub claims: Vec<String>,
    /// The service account (`default` when the spec names none).
    pub service_account: String,
    pub priority_class: Option<String>,
}

/// The claims, service account and priority class of a pod spec.
pub fn pod_needs(spec: &Value) -> PodNeeds {
    let str_at = |p: &str| spec.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty());
    let claims = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str))
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let service_account = str_at("/serviceAccountName")
        .or_else(|| str_at("/serviceAccount"))
        .unwrap_or("default")
        .to_owned();
    PodNeeds {
        claims,
        service_account,
        priority_class: str_at("/priorityClassName").map(str::to_owned),
    }
}

/// Whether a (Cluster)RoleBinding grants to one of `accounts` ((namespace,
/// name)); a subject without a namespace is in the binding's.
pub fn grants_to(binding: &Value, accounts: &BTreeSet<(String, String)>) -> bool {
    let own = binding
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| {
            let namespace = s.get("namespace").and_then(Value::as_str).unwrap_or(own);
            s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                && s.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| accounts.contains(&(namespace.to_owned(), n.to_owned())))
        })
}

/// (group, plural, namespace, name); the namespace is "" for a
/// cluster-scoped object.
pub type ObjectKey = (String, String, String, String);

fn key(group: &str, plural: &str, namespace: &str, name: &str) -> ObjectKey {
    (group.into(), plural.into(), namespace.into(), name.into())
}

/// What the objects taken so far need, and which of the objects they may
/// need are taken already.
#[derive(Debug, Default)]
pub struct Needed {
    /// Objects needed (cluster-scoped ones with an empty namespace).
    pub objects: BTreeSet<ObjectKey>,
    /// Service accounts of the taken objects: (namespace, name).
    pub accounts: BTreeSet<(String, String)>,
    /// Taken objects of the resources in [`NAMESPACED_NEEDS`].
    pub taken: BTreeSet<ObjectKey>,
}

impl Needed {
    fn add(&mut self, group: &str, plural: &str, namespace: &str, name: &str) {
        if !name.is_empty() {
            self.objects.insert(key(group, plural, namespace, name));
        }
    }

    /// Whether this cluster-scoped object is needed by name.
    pub fn contains(&self, group: &str, plural: &str, name: &str) -> bool {
        self.objects.contains(&key(group, plural, "", name))
    }

    /// The names of the cluster-scoped objects of one resource that are
    /// needed.
    pub fn cluster_names(&self, group: &str, plural: &str) -> Vec<String> {
        self.objects
            .iter()
            .filter(|(g, p, ns, _)| g == group && p == plural && ns.is_empty())
            .map(|(_, _, _, n)| n.clone())
            .collect()
    }

    /// The namespaced objects of one resource needed and not taken yet:
    /// (namespace, name).
    pub fn missing(&self, group: &str, plural: &str) -> Vec<(String, String)> {
        self.objects
            .iter()
            .filter(|k| k.0 == group && k.1 == plural && !k.2.is_empty() && !self.taken.contains(*k))
            .map(|(_, _, ns, n)| (ns.clone(), n.clone()))
            .collect()
    }

    /// Whether an object of this resource was taken.
    pub fn is_taken(&self, group: &str, plural: &str, namespace: &str, name: &str) -> bool {
        self.taken.contains(&key(group, plural, namespace, name))
    }

    /// Notes a taken object and what it refers to.
    pub fn note(&mut self, group: &str, plural: &str, object: &Value) {
        let str_at = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
        let namespace = str_at("/metadata/namespace");
        let name = str_at("/metadata/name");
        if NAMESPACED_NEEDS.contains(&(group, plural)) {
            self.taken.insert(key(group, plural, namespace, name));
        }
        // The definition of a custom resource (none exists for built-in
        // groups, so asking costs nothing).
        if !group.is_empty() {
            self.add(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "",
                &qualified(group, plural),
            );
        }
        if let Some(spec) = pod_spec_pointer(group, plural).and_then(|p| object.pointer(p)) {
            let needs = pod_needs(spec);
            for claim in &needs.claims {
                self.add("", "persistentvolumeclaims", namespace, claim);
            }
            self.add("", "serviceaccounts", namespace, &needs.service_account);
            self.accounts.insert((namespace.to_owned(), needs.service_account));
            if let Some(class) = &needs.priority_class {
                self.add("scheduling.k8s.io", "priorityclasses", "", class);
            }
        }
        match (group, plural) {
            ("apps", "statefulsets") => {
                for claim in stateful_set_claims(object) {
                    self.add("", "persistentvolumeclaims", namespace, &claim);
                }
            }
            ("", "persistentvolumeclaims") => {
                self.add("", "persistentvolumes", "", str_at("/spec/volumeName"));
                self.add("storage.k8s.io", "storageclasses", "", str_at("/spec/storageClassName"));
            }
            ("", "persistentvolumes") => {
                self.add("storage.k8s.io", "storageclasses", "", str_at("/spec/storageClassName"));
            }
            ("", "serviceaccounts") => {
                self.accounts.insert((namespace.to_owned(), name.to_owned()));
            }
            (RBAC, "clusterrolebindings" | "rolebindings") => match str_at("/roleRef/kind") {
                "ClusterRole" => self.add(RBAC, "clusterroles", "", str_at("/roleRef/name")),
                "Role" if !namespace.is_empty() => self.add(RBAC, "roles", namespace, str_at("/roleRef/name")),
                _ => {}
            },
            _ => {}
        }
    }

    /// Whether a cluster-scoped object is needed by what was taken: by
    /// name, or (a ClusterRoleBinding) as a grant to a taken service
    /// account.
    pub fn wants(&self, group: &str, plural: &str, object: &Value) -> bool {
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        self.contains(group, plural, name)
            || ((group, plural) == (RBAC, "clusterrolebindings") && grants_to(object, &self.accounts))
    }

    /// Whether anything of this cluster-scoped resource can be needed now,
    /// so that it is worth listing.
    pub fn wants_any(&self, group: &str, plural: &str) -> bool {
        if (group, plural) == (RBAC, "clusterrolebindings") {
            return !self.accounts.is_empty();
        }
        self.objects
            .iter()
            .any(|(g, p, ns, _)| g == group && p == plural && ns.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pod_specs_name_claims_accounts_and_priority_classes() {
        let spec = json!({"serviceAccountName": "web", "priorityClassName": "high",
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                        {"name": "tmp", "emptyDir": {}}]});
        assert_eq!(
            pod_needs(&spec),
            PodNeeds {
                claims: vec!["data-0".into()],
                service_account: "web".into(),
                priority_class: Some("high".into())
            }
        );
        let bare = pod_needs(&json!({"containers": []}));
        assert_eq!(bare.service_account, "default");
        assert!(bare.claims.is_empty() && bare.priority_class.is_none());
        assert_eq!(pod_needs(&json!({"serviceAccount": "old"})).service_account, "old");
    }

    #[test]
    fn workloads_and_cron_jobs_are_read_through_their_templates() {
        let mut needed = Needed::default();
        let cron = json!({"metadata": {"name": "nightly", "namespace": "shop"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"serviceAccountName": "batch",
                "volumes": [{"persistentVolumeClaim": {"claimName": "reports"}}]}}}}}});
        needed.note("batch", "cronjobs", &cron);
        assert_eq!(
            needed.missing("", "persistentvolumeclaims"),
            [("shop".into(), "reports".into())]
        );
        assert_eq!(needed.missing("", "serviceaccounts"), [("shop".into(), "batch".into())]);
        let deploy = json!({"metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {"priorityClassName": "high"}}}});
        needed.note("apps", "deployments", &deploy);
        assert!(needed.contains("scheduling.k8s.io", "priorityclasses", "high"));
        assert!(needed.accounts.contains(&("shop".into(), "default".into())));
        // A ConfigMap needs nothing.
        let before = needed.objects.len();
        needed.note(
            "",
            "configmaps",
            &json!({"metadata": {"name": "c", "namespace": "shop"}}),
        );
        assert_eq!(needed.objects.len(), before);
    }

    #[test]
    fn stateful_sets_need_the_claims_of_their_templates() {
        let set = json!({"metadata": {"name": "db", "namespace": "shop"},
            "spec": {"replicas": 2, "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                     "template": {"spec": {}}}});
        assert_eq!(stateful_set_claims(&set), ["data-db-0", "data-db-1"]);
        let mut needed = Needed::default();
        needed.note("apps", "statefulsets", &set);
        assert_eq!(needed.missing("", "persistentvolumeclaims").len(), 2);
        let single =
            json!({"metadata": {"name": "q"}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "w"}}]}});
        assert_eq!(stateful_set_claims(&single), ["w-q-0"]);
    }

    #[test]
    fn taken_objects_are_not_missing() {
        let mut needed = Needed::default();
        needed.note(
            "",
            "pods",
            &json!({"metadata": {"name": "p", "namespace": "a"},
            "spec": {"volumes": [{"persistentVolumeClaim": {"claimName": "c"}}]}}),
        );
        assert_eq!(needed.missing("", "persistentvolumeclaims").len(), 1);
        needed.note(
            "",
            "persistentvolumeclaims",
            &json!({"metadata": {"name": "c", "namespace": "a"},
            "spec": {"volumeName": "pv-1", "storageClassName": "fast"}}),
        );
        assert!(needed.missing("", "persistentvolumeclaims").is_empty());
        assert!(needed.contains("", "persistentvolumes", "pv-1"));
        assert!(needed.contains("storage.k8s.io", "storageclasses", "fast"));
        assert!(needed.is_taken("", "persistentvolumeclaims", "a", "c"));
    }

    #[test]
    fn bindings_grant_to_accounts_in_their_own_namespace_by_default() {
        let accounts: BTreeSet<(String, String)> = [("shop".to_owned(), "web".to_owned())].into();
        let local = json!({"metadata": {"name": "b", "namespace": "shop"},
            "subjects": [{"kind": "ServiceAccount", "name": "web"}]});
        assert!(grants_to(&local, &accounts));
        let elsewhere = json!({"metadata": {"name": "b", "namespace": "other"},
            "subjects": [{"kind": "ServiceAccount", "name": "web"}]});
        assert!(!grants_to(&elsewhere, &accounts));
        let cluster = json!({"metadata": {"name": "crb"},
            "subjects": [{"kind": "User", "name": "web"}, {"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]});
        assert!(grants_to(&cluster, &accounts));
        let mut needed = Needed {
            accounts,
            ..Needed::default()
        };
        assert!(needed.wants(RBAC, "clusterrolebindings", &cluster));
        assert!(needed.wants_any(RBAC, "clusterrolebindings"));
        needed.note(
            RBAC,
            "rolebindings",
            &json!({"metadata": {"name": "b", "namespace": "shop"},
            "roleRef": {"kind": "Role", "name": "reader"}}),
        );
        assert_eq!(needed.missing(RBAC, "roles"), [("shop".into(), "reader".into())]);
        assert!(!needed.wants_any("storage.k8s.io", "storageclasses"));
    }
}
