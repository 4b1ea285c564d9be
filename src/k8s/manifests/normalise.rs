//! Normalised objects and where they live in a snapshot.

use serde_json::{Map, Value};

use crate::k8s::ROOT;

/// Metadata fields the API server sets, dropped before storing.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Drops the metadata the server sets and sets `apiVersion` and `kind`,
/// which list responses may leave out.
///
/// `status` is stored whole. A restore decides from it (a Job whose
/// `Complete` or `Failed` condition is true and a Pod that `Succeeded` or
/// `Failed` are not run again; a volume's phase and binding tell how to
/// bring its claim back), and a rule added later can only use what an old
/// snapshot kept: a chosen subset would leave such snapshots without it.
/// The price is that an object whose status moves on its own (a node's
/// heartbeats, a pod's restart count) is stored anew by each snapshot, as a
/// small file. A restore never sends status (see
/// [`super::transform::transform`]): the cluster's controllers write it.
pub fn normalise(object: &mut Value, api_version: &str, kind: &str) {
    let Some(map) = object.as_object_mut() else { return };
    map.insert("apiVersion".into(), Value::String(api_version.into()));
    map.insert("kind".into(), Value::String(kind.into()));
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            meta.remove(*field);
        }
        for key in ["labels", "annotations"] {
            if meta
                .get(key)
                .is_some_and(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty))
            {
                meta.remove(key);
            }
        }
    }
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The stored bytes of an object: pretty JSON with sorted keys and a final
/// newline, so that an unchanged object gives the same bytes every time.
pub fn to_bytes(object: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(&sorted(object)).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The snapshot directory of an API group: `core` for the legacy group.
pub fn group_dir(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group
    }
}

/// Where an object is stored, below the snapshot root.
pub fn path_of(group: &str, plural: &str, namespace: Option<&str>, name: &str) -> String {
    let group = group_dir(group);
    match namespace {
        Some(ns) => format!("{ROOT}/{group}/{plural}/namespaces/{ns}/{name}.json"),
        None => format!("{ROOT}/{group}/{plural}/cluster/{name}.json"),
    }
}

/// The parts of a stored object's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath {
    pub group: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// Parses a path made by [`path_of`].
pub fn parse_path(path: &str) -> Option<ObjectPath> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, plural, namespace, file) = match parts.as_slice() {
        [root, group, plural, "namespaces", ns, file] if *root == ROOT => (group, plural, Some(ns.to_string()), file),
        [root, group, plural, "cluster", file] if *root == ROOT => (group, plural, None, file),
        _ => return None,
    };
    let name = file.strip_suffix(".json").filter(|n| !n.is_empty())?;
    Some(ObjectPath {
        group: if *group == "core" {
            String::new()
        } else {
            group.to_string()
        },
        plural: plural.to_string(),
        namespace,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_server_fields_and_keeps_status() {
        let mut obj = json!({
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "5",
                          "generation": 2, "creationTimestamp": "t", "managedFields": [], "selfLink": "s",
                          "labels": {"x": "y"}, "annotations": {}},
            "spec": {"replicas": 1},
            "status": {"ready": 1}
        });
        normalise(&mut obj, "apps/v1", "Deployment");
        assert_eq!(
            obj,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "a", "namespace": "n", "labels": {"x": "y"}},
                   "spec": {"replicas": 1}, "status": {"ready": 1}})
        );
    }

    #[test]
    fn bytes_are_canonical() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": null}});
        let b: Value = serde_json::from_str(r#"{"a": {"c": null, "d": [1, {"y": 2, "z": 1}]}, "b": 1}"#).unwrap();
        assert_eq!(to_bytes(&a), to_bytes(&b));
        let text = String::from_utf8(to_bytes(&a)).unwrap();
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn paths_round_trip() {
        let p = path_of("", "configmaps", Some("web"), "settings");
        assert_eq!(p, "resources/core/configmaps/namespaces/web/settings.json");
        let parsed = parse_path(&p).unwrap();
        assert_eq!(parsed.group, "");
        assert_eq!(parsed.namespace.as_deref(), Some("web"));
        assert_eq!(parsed.name, "settings");
        let c = path_of("rbac.authorization.k8s.io", "clusterroles", None, "system:x");
        assert_eq!(parse_path(&c).unwrap().name, "system:x");
        assert_eq!(parse_path(&c).unwrap().namespace, None);
        assert!(parse_path("resources/core/configmaps/web/x.json").is_none());
        assert!(parse_path("other/core/configmaps/cluster/x.json").is_none());
    }
}
