//! What a restore changes in an object before creating it, and which
//! objects it leaves to the cluster's controllers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::normalise::ObjectPath;
use crate::k8s::{K8sError, RESTORE_LABEL, SNAPSHOT_LABEL};

/// The annotations of a bound claim that a claim provisioned anew must
/// not carry: the binding, and the node and provisioner picked for the
/// old volume.
pub const UNBOUND_CLAIM_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
];

/// The workload resources (group, plural): the objects that start pods.
pub const WORKLOADS: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("apps", "replicasets"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
];

/// Whether objects of `group`/`plural` start pods.
pub fn is_workload(group: &str, plural: &str) -> bool {
    WORKLOADS.iter().any(|(g, p)| *g == group && *p == plural)
}

/// Parses `old:new,old2:new2` (repeatable) into a namespace mapping.
pub fn parse_mapping(values: &[String]) -> Result<BTreeMap<String, String>, K8sError> {
    let mut map = BTreeMap::new();
    for pair in super::filter::split_list(values) {
        let (old, new) = pair
            .split_once(':')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| K8sError::InvalidOption(format!("--namespace-mapping {pair:?}: expected OLD:NEW")))?;
        let valid = new.len() <= 63
            && new
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !new.starts_with('-')
            && !new.ends_with('-');
        if !valid {
            return Err(K8sError::InvalidOption(format!(
                "--namespace-mapping {pair:?}: {new:?} is not a valid namespace name"
            )));
        }
        if map.insert(old.to_owned(), new.to_owned()).is_some() {
            return Err(K8sError::InvalidOption(format!(
                "--namespace-mapping: namespace {old:?} is mapped twice"
            )));
        }
    }
    Ok(map)
}

/// Why an object is left out of a restore whatever else is restored, if it
/// is (see [`super::objects::skip_reason`]; what an owner recreates is
/// decided with the whole selection, in [`super::owners`]).
pub fn skip_reason(at: &ObjectPath, object: &Value) -> Option<String> {
    super::objects::skip_reason(at, object).or_else(|| super::claims::skip_reason(at, object))
}

/// The inputs of [`transform`] that are the same for every object.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// Old namespace to new.
    pub mapping: BTreeMap<String, String>,
    /// The PersistentVolumes this restore creates.
    pub restored_volumes: BTreeSet<String>,
    /// Claims (namespace before mapping, name) whose volume data is
    /// restored by the node agent: created anew, bound to a fresh volume.
    pub fresh_claims: BTreeSet<(String, String)>,
    /// Keep every node port of a Service, not only the explicit ones.
    pub preserve_node_ports: bool,
    /// Values of the snapshot and restore labels.
    pub snapshot: String,
    pub restore: String,
}

impl Rewrite {
    /// Whether the claim at `at` gets its data from the node agent (and
    /// so is provisioned anew).
    pub fn is_fresh_claim(&self, at: &ObjectPath) -> bool {
        at.namespace
            .as_ref()
            .is_some_and(|ns| self.fresh_claims.contains(&(ns.clone(), at.name.clone())))
    }

    /// The namespace an object of `ns` lands in.
    pub fn namespace<'a>(&'a self, ns: &'a str) -> &'a str {
        self.mapping.get(ns).map_or(ns, String::as_str)
    }
}

fn map_field(value: Option<&mut Value>, rewrite: &Rewrite) {
    if let Some(v) = value {
        if let Some(new) = v.as_str().and_then(|ns| rewrite.mapping.get(ns)) {
            *v = Value::String(new.clone());
        }
    }
}

fn remove_keys(object: &mut Value, pointer: &str, keys: &[&str]) {
    if let Some(map) = object.pointer_mut(pointer).and_then(Value::as_object_mut) {
        for key in keys {
            map.remove(*key);
        }
    }
}

/// Rewrites an object for creation: namespace mapping (also where other
/// objects name the namespace), no cluster IPs, only explicit node ports,
/// no binding to a volume that is not restored, the rules of
/// [`super::objects::prepare`] (Jobs, Pods), no owner references (their
/// uids are gone), no status, and the labels naming the snapshot and the
/// restore.
pub fn transform(at: &ObjectPath, object: &mut Value, rewrite: &Rewrite) {
    if at.namespace.is_some() {
        map_field(object.pointer_mut("/metadata/namespace"), rewrite);
    }
    match (at.group.as_str(), at.plural.as_str()) {
        ("", "namespaces") => map_field(object.pointer_mut("/metadata/name"), rewrite),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    map_field(s.get_mut("namespace"), rewrite);
                }
            }
        }
        ("", "persistentvolumes") => {
            map_field(object.pointer_mut("/spec/claimRef/namespace"), rewrite);
            remove_keys(object, "/spec/claimRef", &["uid", "resourceVersion"]);
        }
        ("", "services") => {
            let headless = object.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            if !headless {
                remove_keys(object, "/spec", &["clusterIP", "clusterIPs"]);
            }
        }
        ("", "persistentvolumeclaims") => {
            let volume = object.pointer("/spec/volumeName").and_then(Value::as_str).unwrap_or("");
            if rewrite.is_fresh_claim(at) || !volume.is_empty() && !rewrite.restored_volumes.contains(volume) {
                super::claims::unbind(object);
            }
            super::claims::unmark_bound(at, object);
        }
        _ => {}
    }
    super::objects::prepare(at, object, rewrite.preserve_node_ports);
    // Owner references are set again by the restore, re-pointed at the
    // owners' new uids (see super::owners).
    remove_keys(object, "/metadata", &["ownerReferences"]);
    // The cluster's controllers write status; a snapshot's is history.
    remove_keys(object, "", &["status"]);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if !labels.is_object() {
            *labels = Value::Object(Map::new());
        }
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(SNAPSHOT_LABEL.into(), Value::String(rewrite.snapshot.clone()));
            labels.insert(RESTORE_LABEL.into(), Value::String(rewrite.restore.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(group: &str, plural: &str, ns: Option<&str>, name: &str) -> ObjectPath {
        ObjectPath {
            group: group.into(),
            plural: plural.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        }
    }

    fn rewrite() -> Rewrite {
        Rewrite {
            mapping: parse_mapping(&["web:web-copy".into()]).unwrap(),
            restored_volumes: ["pv-kept".to_owned()].into(),
            fresh_claims: [("web".to_owned(), "data-web-0".to_owned())].into(),
            snapshot: "1a2b3c4d".into(),
            restore: "restore-1".into(),
            preserve_node_ports: false,
        }
    }

    #[test]
    fn mapping_rewrites_namespace_and_binding_subjects() {
        let mut rb = json!({"metadata": {"name": "r", "namespace": "web"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "web"},
                         {"kind": "ServiceAccount", "name": "x", "namespace": "other"}]});
        transform(
            &at("rbac.authorization.k8s.io", "rolebindings", Some("web"), "r"),
            &mut rb,
            &rewrite(),
        );
        assert_eq!(rb["metadata"]["namespace"], "web-copy");
        assert_eq!(rb["subjects"][0]["namespace"], "web-copy");
        assert_eq!(rb["subjects"][1]["namespace"], "other");
        assert_eq!(rb["metadata"]["labels"][SNAPSHOT_LABEL], "1a2b3c4d");
        assert_eq!(rb["metadata"]["labels"][RESTORE_LABEL], "restore-1");
        let mut ns = json!({"metadata": {"name": "web"}});
        transform(&at("", "namespaces", None, "web"), &mut ns, &rewrite());
        assert_eq!(ns["metadata"]["name"], "web-copy");
    }

    #[test]
    fn services_lose_cluster_ips_unless_headless() {
        let mut svc = json!({"metadata": {"name": "s", "namespace": "a"},
            "spec": {"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"], "type": "NodePort",
                     "ports": [{"port": 80, "nodePort": 30080}]}});
        transform(&at("", "services", Some("a"), "s"), &mut svc, &rewrite());
        assert_eq!(svc["spec"], json!({"type": "NodePort", "ports": [{"port": 80}]}));
        let mut headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        transform(&at("", "services", Some("a"), "h"), &mut headless, &rewrite());
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn claims_keep_their_volume_only_when_it_is_restored() {
        let claim = |pv: &str| {
            json!({"metadata": {"name": "c", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
                   "spec": {"volumeName": pv}})
        };
        let (mut kept, mut dropped) = (claim("pv-kept"), claim("pv-gone"));
        transform(&at("", "persistentvolumeclaims", Some("a"), "c"), &mut kept, &rewrite());
        transform(
            &at("", "persistentvolumeclaims", Some("a"), "c"),
            &mut dropped,
            &rewrite(),
        );
        assert_eq!(kept["spec"]["volumeName"], "pv-kept");
        assert!(dropped["spec"].get("volumeName").is_none());
        assert!(dropped["metadata"]["annotations"]
            .get("pv.kubernetes.io/bind-completed")
            .is_none());
    }

    #[test]
    fn a_claim_with_volume_data_is_stripped_of_its_binding_even_when_its_volume_is_restored() {
        let mut claim = json!({"metadata": {"name": "data-web-0", "namespace": "web", "annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.kubernetes.io/selected-node": "node-3",
                "volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                "team": "shop"}},
            "spec": {"volumeName": "pv-kept", "storageClassName": "gp3", "accessModes": ["ReadWriteOnce"]}});
        let at = at("", "persistentvolumeclaims", Some("web"), "data-web-0");
        transform(&at, &mut claim, &rewrite());
        assert_eq!(claim["metadata"]["namespace"], "web-copy");
        assert_eq!(
            claim["spec"],
            json!({"storageClassName": "gp3", "accessModes": ["ReadWriteOnce"]})
        );
        let annotations = claim["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["team"]);
        // Another claim bound to a restored volume keeps it.
        let mut other = json!({"metadata": {"name": "logs", "annotations": {"volume.kubernetes.io/selected-node": "n"}},
                               "spec": {"volumeName": "pv-kept"}});
        transform(
            &super::ObjectPath {
                name: "logs".into(),
                ..at.clone()
            },
            &mut other,
            &rewrite(),
        );
        assert_eq!(other["spec"]["volumeName"], "pv-kept");
        assert_eq!(
            other["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
            "n"
        );
    }

    #[test]
    fn workloads_are_the_kinds_that_start_pods() {
        for (g, p) in [("apps", "statefulsets"), ("", "pods"), ("batch", "cronjobs")] {
            assert!(is_workload(g, p), "{g}/{p}");
        }
        for (g, p) in [
            ("", "persistentvolumeclaims"),
            ("", "services"),
            ("example.com", "pods"),
        ] {
            assert!(!is_workload(g, p), "{g}/{p}");
        }
    }

    #[test]
    fn noise_is_skipped_and_status_never_sent() {
        let free = json!({"metadata": {"name": "p", "ownerReferences": [{"kind": "X", "name": "y"}]}});
        assert_eq!(skip_reason(&at("", "pods", Some("a"), "p"), &free), None);
        assert!(skip_reason(&at("", "events", Some("a"), "e"), &free).is_some());
        let mut cm = json!({"metadata": {"name": "c", "ownerReferences": [{"kind": "X", "name": "y"}]},
                            "data": {}, "status": {"x": 1}});
        transform(&at("", "configmaps", Some("a"), "c"), &mut cm, &rewrite());
        assert!(cm.get("status").is_none());
        assert!(cm["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn bad_mappings_are_refused() {
        assert!(parse_mapping(&["a".into()]).is_err());
        assert!(parse_mapping(&["a:B".into()]).is_err());
        assert!(parse_mapping(&["a:b,a:c".into()]).is_err());
        assert_eq!(parse_mapping(&["a:b, c:d".into()]).unwrap().len(), 2);
    }
}
