//! What a restore does with an object that exists already.
//!
//! - A ServiceAccount is merged into the one in the cluster, whatever the
//!   policy: the cluster makes `default` in every new namespace (and
//!   operators make others) before the restore gets to it, so "already
//!   exists" would lose the backed-up image pull secrets and the
//!   annotations that carry cloud IAM roles. What the live one lacks is
//!   added; its own values are kept.
//! - With the `update` policy any other object is put back as it was
//!   backed up: the live object is replaced (PUT with its
//!   resourceVersion) by the backed-up one, so fields added since, by any
//!   manager, are gone. What the server or the cluster's controllers own
//!   is taken from the live object ([`replacement`]).

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Map, Value};

use super::restore::Outcome;
use super::transform::UNBOUND_CLAIM_ANNOTATIONS;
use crate::k8s::client::status_code;
use crate::k8s::{RESTORE_LABEL, SNAPSHOT_LABEL};

/// How often a write that lost a race with another writer (409) is made.
const ATTEMPTS: usize = 3;

/// Whether objects of `group`/`plural` are merged into what exists.
pub fn is_merged(group: &str, plural: &str) -> bool {
    group.is_empty() && plural == "serviceaccounts"
}

fn string_map<'a>(obj: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    obj.pointer(pointer).and_then(Value::as_object)
}

/// The JSON merge patch that adds to a live service account what its
/// backed-up version has and it lacks: annotations, labels and image pull
/// secrets; and that sets the snapshot and restore labels, so the account
/// is found among what the restore touched. None when it lacks nothing.
/// The second value names what is added (the restore's labels aside).
pub fn service_account_patch(live: &Value, backup: &Value) -> (Option<Value>, Vec<String>) {
    let mut patch = json!({});
    let mut added = Vec::new();
    for (field, what) in [("annotations", "annotation"), ("labels", "label")] {
        let have = string_map(live, &format!("/metadata/{field}"));
        let Some(want) = string_map(backup, &format!("/metadata/{field}")) else {
            continue;
        };
        let mut missing = Map::new();
        for (k, v) in want {
            if field == "labels" && (k == SNAPSHOT_LABEL || k == RESTORE_LABEL) {
                if have.is_none_or(|h| h.get(k) != Some(v)) {
                    missing.insert(k.clone(), v.clone());
                }
                continue;
            }
            if have.is_none_or(|h| !h.contains_key(k)) {
                missing.insert(k.clone(), v.clone());
                added.push(format!("{what} {k}"));
            }
        }
        if !missing.is_empty() {
            patch["metadata"][field] = Value::Object(missing);
        }
    }
    let name_of = |s: &Value| s.get("name").and_then(Value::as_str).map(str::to_owned);
    let have: Vec<Value> = live
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let have_names: Vec<String> = have.iter().filter_map(name_of).collect();
    let mut merged = have.clone();
    for s in backup
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = name_of(s) {
            if !have_names.contains(&name) && !merged.iter().any(|m| name_of(m).as_deref() == Some(&name)) {
                merged.push(s.clone());
                added.push(format!("image pull secret {name}"));
            }
        }
    }
    if merged.len() > have.len() {
        patch["imagePullSecrets"] = Value::Array(merged);
    }
    if patch == json!({}) {
        (None, added)
    } else {
        (Some(patch), added)
    }
}

fn resource_version(obj: &Value) -> Value {
    obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)
}

/// Merges a backed-up service account into the live one named `name` (a
/// path segment): [`service_account_patch`] with the live
/// resourceVersion as precondition, read and made again when another
/// writer came first.
pub async fn merge_service_account(
    api: &Api<DynamicObject>,
    name: &str,
    backup: &Value,
    dry_run: bool,
) -> Result<Outcome, kube::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(live) = api.get_opt(name).await? else {
            return Ok(Outcome::Failed("it went away while it was being merged".into()));
        };
        let live = serde_json::to_value(&live).map_err(kube::Error::SerdeError)?;
        let (patch, added) = service_account_patch(&live, backup);
        let Some(mut patch) = patch else {
            return Ok(Outcome::Merged("it has everything backed up already".into()));
        };
        if dry_run {
            return Ok(Outcome::WouldMerge);
        }
        patch["metadata"]["resourceVersion"] = resource_version(&live);
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) if added.is_empty() => return Ok(Outcome::Merged("it has everything backed up already".into())),
            Ok(_) => return Ok(Outcome::Merged(format!("added {}", added.join(", ")))),
            Err(e) if status_code(&e) == Some(409) && attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Takes `pointer` of `live` into `out` (removing it from `out` when the
/// live object has none).
fn keep(out: &mut Value, live: &Value, pointer: &str) {
    let Some((parent, field)) = pointer.rsplit_once('/') else {
        return;
    };
    let field = field.replace("~1", "/").replace("~0", "~");
    match live.pointer(pointer) {
        Some(v) => {
            if out.pointer(parent).is_none_or(|p| !p.is_object()) {
                let mut node = &mut *out;
                for seg in parent.trim_start_matches('/').split('/').filter(|s| !s.is_empty()) {
                    if !node.get(seg).is_some_and(Value::is_object) {
                        node[seg] = json!({});
                    }
                    node = &mut node[seg];
                }
            }
            if let Some(p) = out.pointer_mut(parent).and_then(Value::as_object_mut) {
                p.insert(field, v.clone());
            }
        }
        None => {
            if let Some(p) = out.pointer_mut(parent).and_then(Value::as_object_mut) {
                p.remove(&field);
            }
        }
    }
}

/// Takes `pointer` of `live` into `out` only where `out` has none.
fn keep_unset(out: &mut Value, live: &Value, pointer: &str) {
    if out.pointer(pointer).is_none_or(Value::is_null) {
        keep(out, live, pointer);
    }
}

/// The object that replaces `live` to bring it back to `desired` (the
/// backed-up object as the restore would create it): `desired`, with what
/// the server and the cluster's controllers own taken from `live` — the
/// identity and version, finalizers and owner references, status; a
/// Service's allocated IPs and node ports; a claim's or volume's binding;
/// the immutable spec of a claim, a pod's node, a Job's selector and
/// template. Field ownership is left to the server (`managedFields` is not
/// sent).
pub fn replacement(group: &str, plural: &str, live: &Value, desired: &Value) -> Value {
    let mut out = desired.clone();
    for f in ["resourceVersion", "uid", "creationTimestamp", "finalizers"] {
        keep(&mut out, live, &format!("/metadata/{f}"));
    }
    keep_unset(&mut out, live, "/metadata/ownerReferences");
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("generation");
    }
    keep(&mut out, live, "/status");
    match (group, plural) {
        ("", "services") => {
            for f in [
                "clusterIP",
                "clusterIPs",
                "ipFamilies",
                "ipFamilyPolicy",
                "healthCheckNodePort",
            ] {
                keep_unset(&mut out, live, &format!("/spec/{f}"));
            }
            let live_ports = live.pointer("/spec/ports").and_then(Value::as_array).cloned();
            if let (Some(ports), Some(live_ports)) =
                (out.pointer_mut("/spec/ports").and_then(Value::as_array_mut), live_ports)
            {
                for port in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                    let same = live_ports.iter().find(|l| {
                        l.get("port") == port.get("port")
                            && l.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                                == port.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                    });
                    if let Some(node_port) = same.and_then(|l| l.get("nodePort")) {
                        port["nodePort"] = node_port.clone();
                    }
                }
            }
        }
        ("", "persistentvolumeclaims") => {
            keep(&mut out, live, "/spec");
            for a in UNBOUND_CLAIM_ANNOTATIONS {
                keep_unset(
                    &mut out,
                    live,
                    &format!("/metadata/annotations/{}", a.replace('/', "~1")),
                );
            }
        }
        ("", "persistentvolumes") => keep(&mut out, live, "/spec/claimRef"),
        ("", "pods") => keep(&mut out, live, "/spec/nodeName"),
        ("batch", "jobs") => {
            keep(&mut out, live, "/spec/selector");
            keep(&mut out, live, "/spec/template");
        }
        _ => {}
    }
    out
}

/// Replaces the live object `name` (a path segment) by
/// [`replacement`]; read and made again when another writer came first.
pub async fn replace(
    api: &Api<DynamicObject>,
    name: &str,
    group: &str,
    plural: &str,
    desired: &Value,
) -> Result<Outcome, kube::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(live) = api.get_opt(name).await? else {
            return Ok(Outcome::Failed("it went away while it was being updated".into()));
        };
        let live = serde_json::to_value(&live).map_err(kube::Error::SerdeError)?;
        let body = replacement(group, plural, &live, desired);
        let body: DynamicObject = serde_json::from_value(body).map_err(kube::Error::SerdeError)?;
        match api.replace(name, &PostParams::default(), &body).await {
            Ok(_) => return Ok(Outcome::Updated),
            Err(e) if status_code(&e) == Some(409) && attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_gets_what_it_lacks_and_keeps_its_own_values() {
        let live = json!({"metadata": {"name": "default", "annotations": {"team": "live"}},
                          "imagePullSecrets": [{"name": "live-pull"}],
                          "secrets": [{"name": "default-token-abc"}]});
        let backup = json!({"metadata": {"name": "default",
                                "annotations": {"team": "old", "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/app"},
                                "labels": {"app": "shop", SNAPSHOT_LABEL: "1a2b3c4d"}},
                            "imagePullSecrets": [{"name": "registry"}, {"name": "live-pull"}]});
        let (patch, added) = service_account_patch(&live, &backup);
        let patch = patch.unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/app"},
                                "labels": {"app": "shop", SNAPSHOT_LABEL: "1a2b3c4d"}},
                   "imagePullSecrets": [{"name": "live-pull"}, {"name": "registry"}]})
        );
        assert_eq!(added.len(), 3, "{added:?}");
        // Merged once, there is nothing left to add.
        let mut merged = live.clone();
        merge(&mut merged, &patch);
        assert_eq!(service_account_patch(&merged, &backup).0, None);
    }

    pub(super) fn merge(target: &mut Value, patch: &Value) {
        match (target.as_object_mut(), patch.as_object()) {
            (Some(t), Some(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            _ => *target = patch.clone(),
        }
    }

    #[test]
    fn a_replacement_is_the_backup_with_what_the_server_owns() {
        let live = json!({"metadata": {"name": "s", "namespace": "a", "uid": "u", "resourceVersion": "9",
                                       "finalizers": ["x"], "labels": {"added": "later"},
                                       "managedFields": [{"manager": "kubectl"}]},
                          "spec": {"clusterIP": "10.96.1.4", "clusterIPs": ["10.96.1.4"], "type": "NodePort",
                                   "ports": [{"port": 80, "nodePort": 30080}], "sessionAffinity": "ClientIP"},
                          "status": {"loadBalancer": {}}});
        let desired = json!({"metadata": {"name": "s", "namespace": "a", "labels": {"app": "web"}},
                             "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let out = replacement("", "services", &live, &desired);
        assert_eq!(
            out,
            json!({"metadata": {"name": "s", "namespace": "a", "uid": "u", "resourceVersion": "9",
                                "finalizers": ["x"], "labels": {"app": "web"}},
                   "spec": {"clusterIP": "10.96.1.4", "clusterIPs": ["10.96.1.4"], "type": "NodePort",
                            "ports": [{"port": 80, "nodePort": 30080}]},
                   "status": {"loadBalancer": {}}})
        );
        let claim_live = json!({"metadata": {"name": "c", "resourceVersion": "3",
                                             "annotations": {"pv.kubernetes.io/bind-completed": "yes", "extra": "x"}},
                                "spec": {"volumeName": "pv-1", "resources": {"requests": {"storage": "1Gi"}}}});
        let claim = json!({"metadata": {"name": "c", "annotations": {"team": "t"}},
                           "spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        let out = replacement("", "persistentvolumeclaims", &claim_live, &claim);
        assert_eq!(out["spec"]["volumeName"], "pv-1");
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"team": "t", "pv.kubernetes.io/bind-completed": "yes"})
        );
    }
}
