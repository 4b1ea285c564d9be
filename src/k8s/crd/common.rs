//! Types shared by several kinds: the object filters, secret references,
//! progress, counters and timestamps.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::k8s::manifests::filter::{ClusterResources, Filters};
use crate::k8s::K8sError;

/// Which objects a Backup or Restore takes: the filters of `cairn k8s
/// backup`. Empty lists mean "everything" for the includes and "nothing"
/// for the excludes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFilters {
    /// Namespaces to take (globs; empty or `*` for all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_namespaces: Vec<String>,
    /// Namespaces to leave out (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_namespaces: Vec<String>,
    /// Resources to take (`deployments.apps`, `configmaps`, kinds, short
    /// names, `*`; empty for all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_resources: Vec<String>,
    /// Resources to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_resources: Vec<String>,
    /// Only objects whose labels match this selector (`app=web,tier in (front,back)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Cluster-scoped objects: unset for automatic (all when every namespace
    /// is taken without a selector, else those the taken objects need),
    /// true or false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_cluster_resources: Option<bool>,
}

impl ObjectFilters {
    /// The filters a manifest backup or restore takes, or an error naming
    /// the field at fault (`spec.labelSelector "a in b": ...`).
    pub fn to_filters(&self) -> Result<Filters, K8sError> {
        let cluster = match self.include_cluster_resources {
            None => ClusterResources::Auto,
            Some(true) => ClusterResources::True,
            Some(false) => ClusterResources::False,
        };
        Filters::new(
            &self.included_namespaces,
            &self.excluded_namespaces,
            &self.included_resources,
            &self.excluded_resources,
            self.label_selector.as_deref(),
            cluster,
        )
        .map_err(|e| match e {
            // The parser names the command line's options; a resource
            // names its fields.
            K8sError::InvalidOption(text) => {
                let renamed = [
                    ("--include-namespaces", "spec.includedNamespaces"),
                    ("--exclude-namespaces", "spec.excludedNamespaces"),
                    ("--include-resources", "spec.includedResources"),
                    ("--exclude-resources", "spec.excludedResources"),
                    ("--selector", "spec.labelSelector"),
                ]
                .iter()
                .find_map(|(option, field)| text.strip_prefix(option).map(|rest| format!("{field}{rest}")));
                K8sError::InvalidOption(renamed.unwrap_or(text))
            }
            other => other,
        })
    }
}

/// A key of a Secret in the BackupRepository's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key whose value is used.
    pub key: String,
}

/// A Secret in the BackupRepository's namespace, used whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
}

/// Bytes moved so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    #[serde(default)]
    pub bytes_done: u64,
    #[serde(default)]
    pub total_bytes: u64,
}

/// How many of a Backup's or Restore's volume operations ended how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeCounts {
    #[serde(default)]
    pub total: u32,
    #[serde(default)]
    pub completed: u32,
    #[serde(default)]
    pub failed: u32,
}

/// A pod or claim a volume operation is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// CPU and memory for a container (`cpu: "500m"`, `memory: 256Mi`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity::deserialize"
    )]
    #[schemars(schema_with = "quantities")]
    pub requests: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity::deserialize"
    )]
    #[schemars(schema_with = "quantities")]
    pub limits: BTreeMap<String, String>,
}

/// Resource quantities as Kubernetes takes them: numbers or strings.
fn quantities(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {"x-kubernetes-int-or-string": true},
    })
}

/// An RFC 3339 time (`2026-01-31T03:00:00Z`), as Kubernetes writes them.
pub type Time = jiff::Timestamp;

/// The schema of an optional [`Time`] field.
pub(crate) fn time(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "format": "date-time"})
}

/// Serde for quantities written as numbers: kept as their text.
pub(crate) mod quantity {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(i64),
        Float(f64),
        String(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        let raw = BTreeMap::<String, IntOrString>::deserialize(d)?;
        Ok(raw
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    IntOrString::Int(i) => i.to_string(),
                    IntOrString::Float(f) => f.to_string(),
                    IntOrString::String(s) => s,
                };
                (k, v)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_errors_name_the_field() {
        let ok = ObjectFilters {
            included_namespaces: vec!["web,data".into()],
            label_selector: Some("app=web".into()),
            include_cluster_resources: Some(false),
            ..ObjectFilters::default()
        };
        let f = ok.to_filters().unwrap();
        assert!(f.namespace_selected("web") && f.namespace_selected("data") && !f.namespace_selected("kube-system"));
        assert_eq!(f.cluster_resources, ClusterResources::False);
        let bad = ObjectFilters {
            label_selector: Some("app in web".into()),
            ..ObjectFilters::default()
        };
        let err = bad.to_filters().unwrap_err().to_string();
        assert!(err.contains("spec.labelSelector \"app in web\""), "{err}");
        let bad = ObjectFilters {
            excluded_namespaces: vec!["[".into()],
            ..ObjectFilters::default()
        };
        let err = bad.to_filters().unwrap_err().to_string();
        assert!(err.contains("spec.excludedNamespaces \"[\""), "{err}");
    }
}
