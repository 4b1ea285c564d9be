//! Objects stored at a version the cluster no longer serves.
//!
//! A custom resource backed up at `example.com/v1alpha1` meets a cluster
//! whose definition now serves only `v1`. When the cluster serves another
//! version of the resource whose schema (`schema.openAPIV3Schema`) is the
//! stored version's, the object is valid there as it is: it is created at
//! that version (only `apiVersion` changes, as the API server's own `None`
//! conversion does). The stored version's schema is the one the cluster's
//! definition still lists for it, else the one of the definition in the
//! backup. Otherwise the object fails, the reason naming the stored and
//! the served versions. Built-in resources are never converted: their
//! versions differ in meaning, not only in name.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::Value;

use super::discovery::{qualified, Discovered};
use super::stored::StoredObject;
use crate::k8s::client::Cluster;

/// The schema a definition gives one of its versions.
fn schema_of<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// What to do with an object of `group`/`plural` stored at `stored`, the
/// cluster serving `served`: `Ok(None)` to create it as stored,
/// `Ok(Some(v))` to create it at version `v`, `Err(why)` to fail it.
pub fn decide(
    group: &str,
    stored: &str,
    served: &[String],
    target: Option<&Value>,
    backed_up: Option<&Value>,
) -> Result<Option<String>, String> {
    if stored.is_empty() || served.is_empty() || served.iter().any(|v| v == stored) {
        return Ok(None);
    }
    let serving = served
        .iter()
        .map(|v| group_version(group, v))
        .collect::<Vec<_>>()
        .join(", ");
    let head = format!(
        "stored at {}, which the cluster no longer serves (it serves {serving})",
        group_version(group, stored)
    );
    if target.is_none() && backed_up.is_none() {
        return Err(format!(
            "{head}; only custom resources whose versions share a schema are converted"
        ));
    }
    let Some(schema) = target
        .and_then(|crd| schema_of(crd, stored))
        .or_else(|| backed_up.and_then(|crd| schema_of(crd, stored)))
    else {
        return Err(format!(
            "{head}; neither the cluster's nor the backed-up definition gives {stored} a schema to compare"
        ));
    };
    match served
        .iter()
        .find(|v| target.and_then(|crd| schema_of(crd, v)) == Some(schema))
    {
        Some(v) => Ok(Some(v.clone())),
        None => Err(format!("{head}, whose schema differs from {stored}'s")),
    }
}

/// The decisions of one restore, made once per resource and version.
#[derive(Debug, Default)]
pub struct Versions {
    /// The CustomResourceDefinitions of the snapshot, by name.
    backed_up: BTreeMap<String, Value>,
    decided: BTreeMap<(String, String, String), Result<Option<String>, String>>,
}

impl Versions {
    /// Keeps the definitions among the snapshot's objects.
    pub fn new(objects: &[StoredObject]) -> Self {
        let backed_up = objects
            .iter()
            .filter(|o| o.at.group == "apiextensions.k8s.io" && o.at.plural == "customresourcedefinitions")
            .map(|o| (o.at.name.clone(), o.object.clone()))
            .collect();
        Self {
            backed_up,
            decided: BTreeMap::new(),
        }
    }

    /// [`decide`] for an object of `group`/`plural` stored at `stored`,
    /// reading the cluster's definition when the version is not served.
    /// The second value is true the first time a conversion is decided
    /// (for one report line per resource). A definition that cannot be
    /// read is an error, decided again for the next object.
    pub async fn resolve(
        &mut self,
        cluster: &Cluster,
        discovered: &Discovered,
        group: &str,
        plural: &str,
        stored: &str,
    ) -> Result<(Result<Option<String>, String>, bool), kube::Error> {
        let served = discovered.versions_of(group, plural);
        if served.iter().any(|v| v == stored) || served.is_empty() {
            return Ok((Ok(None), false));
        }
        let key = (group.to_owned(), plural.to_owned(), stored.to_owned());
        if let Some(d) = self.decided.get(&key) {
            return Ok((d.clone(), false));
        }
        let name = qualified(group, plural);
        let ar = ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        };
        let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &ar);
        // A read: the client retries it.
        let target = api.get_opt(&name).await?.map(|crd| crd.data);
        let d = decide(group, stored, served, target.as_ref(), self.backed_up.get(&name));
        self.decided.insert(key, d.clone());
        Ok((d, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(versions: &[(&str, Value)]) -> Value {
        let versions: Vec<Value> = versions
            .iter()
            .map(|(name, schema)| json!({"name": name, "served": true, "schema": {"openAPIV3Schema": schema}}))
            .collect();
        json!({"spec": {"versions": versions}})
    }

    #[test]
    fn a_version_no_longer_served_is_converted_only_to_one_with_the_same_schema() {
        let same = json!({"type": "object", "properties": {"size": {"type": "integer"}}});
        let other = json!({"type": "object", "properties": {"size": {"type": "string"}}});
        let served = ["v1".to_owned(), "v1beta1".to_owned()];
        // Served as stored: nothing to do.
        assert_eq!(decide("example.com", "v1", &served, None, None), Ok(None));
        // The cluster's definition lists the old version (not served) with
        // the schema of v1beta1.
        let target = crd(&[
            ("v1", other.clone()),
            ("v1beta1", same.clone()),
            ("v1alpha1", same.clone()),
        ]);
        assert_eq!(
            decide("example.com", "v1alpha1", &served, Some(&target), None),
            Ok(Some("v1beta1".to_owned()))
        );
        // The cluster's definition dropped it: the backed-up one tells.
        let target = crd(&[("v1", same.clone()), ("v1beta1", other.clone())]);
        let backed_up = crd(&[("v1alpha1", same.clone())]);
        assert_eq!(
            decide("example.com", "v1alpha1", &served, Some(&target), Some(&backed_up)),
            Ok(Some("v1".to_owned()))
        );
        // Different schemas: fails naming the versions.
        let backed_up = crd(&[("v1alpha1", json!({"type": "object"}))]);
        let why = decide("example.com", "v1alpha1", &served, Some(&target), Some(&backed_up)).unwrap_err();
        assert!(
            why.contains("stored at example.com/v1alpha1")
                && why.contains("example.com/v1, example.com/v1beta1")
                && why.contains("schema differs"),
            "{why}"
        );
        // No schema known for the stored version.
        let why = decide("example.com", "v1alpha1", &served, Some(&target), None).unwrap_err();
        assert!(why.contains("schema to compare"), "{why}");
        // Built-in resources are not converted.
        let why = decide("apps", "v1beta2", &["v1".to_owned()], None, None).unwrap_err();
        assert!(
            why.contains("stored at apps/v1beta2") && why.contains("apps/v1"),
            "{why}"
        );
    }
}
