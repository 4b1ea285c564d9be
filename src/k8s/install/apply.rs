//! Creating or updating the installed objects with server-side apply
//! (field manager `cairn`), waiting for the definitions to be established
//! before anything else is applied.

use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::FIELD_MANAGER;
use crate::k8s::client::{describe, status_code, Cluster};
use crate::k8s::K8sError;

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Configured,
    Unchanged,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
        })
    }
}

/// One applied object, as `kubectl apply` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `deployment.apps/cairn-controller`.
    pub object: String,
    pub namespace: Option<String>,
    pub change: Change,
}

/// Where an object is served, from its `apiVersion` and `kind` (the
/// installed kinds all have the plain plural).
fn resource_of(obj: &Value) -> Result<(ApiResource, String, Option<String>), K8sError> {
    let text = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind), Some(name)) = (text("/apiVersion"), text("/kind"), text("/metadata/name"))
    else {
        return Err(K8sError::InvalidObject {
            path: "manifest".into(),
            reason: "an object without apiVersion, kind or metadata.name".into(),
        });
    };
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    let plural = format!("{}s", kind.to_ascii_lowercase());
    let ar = ApiResource {
        group,
        version,
        api_version,
        kind,
        plural,
    };
    Ok((ar, name, text("/metadata/namespace")))
}

/// Whether every field of `want` has the same value in `have` (the server
/// adds defaults and metadata of its own).
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        (Value::Array(h), Value::Array(w)) => h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains(hv, wv)),
        _ => have == want,
    }
}

fn established(obj: &DynamicObject) -> bool {
    obj.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
}

/// Applies `objects` in order. Objects that already hold every field
/// given are left alone (reported unchanged), so a second install sends
/// no writes. After the last CustomResourceDefinition, waits up to
/// `crd_timeout` for each to be established.
pub async fn apply(cluster: &Cluster, objects: &[Value], crd_timeout: Duration) -> Result<Vec<Applied>, K8sError> {
    let mut done = Vec::new();
    let mut definitions: Vec<(Api<DynamicObject>, String)> = Vec::new();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for obj in objects {
        let (ar, name, namespace) = resource_of(obj)?;
        let is_definition = ar.kind == "CustomResourceDefinition";
        if !is_definition && !definitions.is_empty() {
            wait_established(cluster, std::mem::take(&mut definitions), crd_timeout).await?;
        }
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(cluster.client.clone(), ns, &ar),
            None => Api::all_with(cluster.client.clone(), &ar),
        };
        let object = format!(
            "{}{}/{name}",
            ar.kind.to_ascii_lowercase(),
            if ar.group.is_empty() {
                String::new()
            } else {
                format!(".{}", ar.group)
            }
        );
        let fail = |what: &str, e: kube::Error| K8sError::Api {
            server: cluster.server.clone(),
            what: format!(
                "{what} {object}{}",
                namespace
                    .as_ref()
                    .map(|n| format!(" in namespace {n}"))
                    .unwrap_or_default()
            ),
            reason: describe(&e),
            source: Box::new(e),
        };
        let existing = api.get_opt(&name).await.map_err(|e| fail("reading", e))?;
        let change = match existing {
            Some(have) if contains(&serde_json::to_value(&have).unwrap_or_default(), obj) => Change::Unchanged,
            Some(_) => {
                api.patch(&name, &params, &Patch::Apply(obj))
                    .await
                    .map_err(|e| fail("applying", e))?;
                Change::Configured
            }
            None => {
                api.patch(&name, &params, &Patch::Apply(obj))
                    .await
                    .map_err(|e| fail("creating", e))?;
                Change::Created
            }
        };
        if is_definition {
            definitions.push((api, name));
        }
        done.push(Applied {
            object,
            namespace,
            change,
        });
    }
    wait_established(cluster, definitions, crd_timeout).await?;
    Ok(done)
}

/// Polls each definition until it is established, or fails naming it.
async fn wait_established(
    cluster: &Cluster,
    definitions: Vec<(Api<DynamicObject>, String)>,
    timeout: Duration,
) -> Result<(), K8sError> {
    let deadline = Instant::now() + timeout;
    for (api, name) in definitions {
        loop {
            match api.get_opt(&name).await {
                Ok(Some(obj)) if established(&obj) => break,
                Ok(_) => {}
                Err(e) if status_code(&e).is_some_and(|c| c >= 500) => {}
                Err(e) => {
                    return Err(K8sError::Api {
                        server: cluster.server.clone(),
                        what: format!("reading customresourcedefinition {name}"),
                        reason: describe(&e),
                        source: Box::new(e),
                    })
                }
            }
            if Instant::now() >= deadline {
                return Err(K8sError::Timeout {
                    server: cluster.server.clone(),
                    what: format!("customresourcedefinition {name}"),
                    reason: format!("not established within {}s", timeout.as_secs()),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_comparison() {
        let have = json!({"a": 1, "b": {"c": [1, {"d": 2, "e": 3}], "x": true}, "status": {}});
        assert!(contains(&have, &json!({"b": {"c": [1, {"d": 2}]}})));
        assert!(!contains(&have, &json!({"b": {"c": [1]}})));
        assert!(!contains(&have, &json!({"a": 2})));
        assert!(!contains(&have, &json!({"z": 1})));
    }

    #[test]
    fn resources_of_installed_kinds() {
        let (ar, name, ns) = resource_of(&json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "cairn-agent", "namespace": "cairn-system"}}))
        .unwrap();
        assert_eq!((ar.group.as_str(), ar.plural.as_str()), ("apps", "daemonsets"));
        assert_eq!((name.as_str(), ns.as_deref()), ("cairn-agent", Some("cairn-system")));
        let (ar, _, ns) =
            resource_of(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})).unwrap();
        assert_eq!((ar.group.as_str(), ar.plural.as_str(), ns), ("", "namespaces", None));
        assert!(resource_of(&json!({"kind": "X"})).is_err());
    }
}
