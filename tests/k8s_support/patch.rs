//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic
//! merge patch (built-in kinds only; custom resources get 415 as from the
//! real server) and server-side apply with field managers and `force`.
//!
//! Simplified on purpose:
//! - strategic merge: lists of objects are merged by `name` (by `uid` for
//!   `ownerReferences`), `finalizers` is a set, `$patch: delete` removes a
//!   list element, other `$` directives are dropped; every other list is
//!   replaced. The real server reads the merge keys from each type's schema.
//! - apply: ownership is tracked per leaf field, lists are atomic (owned and
//!   replaced whole), and conflicts are reported as the real server words
//!   them. A field the manager applied before and omits now is removed
//!   unless another manager also owns it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::store::leaves;
use super::{status, Key, ResDef, State};

pub const MERGE: &str = "application/merge-patch+json";
pub const JSON: &str = "application/json-patch+json";
pub const STRATEGIC: &str = "application/strategic-merge-patch+json";
pub const APPLY: &str = "application/apply-patch+yaml";

/// The 415 for a patch type the resource does not take.
pub fn unsupported(d: &ResDef) -> (u16, Value) {
    let builtin = super::builtin()
        .iter()
        .any(|b| b.group == d.group && b.plural == d.plural);
    let accepted = if builtin {
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    };
    status(
        415,
        "UnsupportedMediaType",
        &format!("the body of the request was in an unknown format - accepted media types include: {accepted}"),
    )
}

/// RFC 7386.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902; a failing operation (a `test` that does not hold, a missing
/// path) is the real server's 422 and changes nothing. As in the server's
/// JSON patch library, `test` of a missing field against `null` holds
/// (kube-runtime's finalizer helper relies on it).
pub fn json_patch(target: &mut Value, body: &[u8]) -> Result<(), (u16, Value)> {
    let ops: json_patch::Patch = serde_json::from_slice(body).map_err(|e| status(400, "BadRequest", &e.to_string()))?;
    let original = target.clone();
    for op in ops.0 {
        if let json_patch::PatchOperation::Test(t) = &op {
            let at = target.pointer(t.path.as_str());
            if t.value.is_null() && at.is_none_or(Value::is_null) {
                continue;
            }
        }
        if let Err(e) = json_patch::patch(target, std::slice::from_ref(&op)) {
            *target = original;
            return Err(status(422, "Invalid", &e.to_string()));
        }
    }
    Ok(())
}

/// A simplified strategic merge patch (see the module notes).
pub fn strategic_patch(target: &mut Value, patch: &Value) {
    strategic(target, patch, "");
}

fn strategic(target: &mut Value, patch: &Value, field: &str) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
                    if let (Some(Value::Array(items)), Value::Array(gone)) = (t.get_mut(list), v) {
                        items.retain(|i| !gone.contains(i));
                    }
                    continue;
                }
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic(slot, v, k);
            }
        }
        (Value::Array(t), Value::Array(p)) if field == "finalizers" => {
            for item in p {
                if !t.contains(item) {
                    t.push(item.clone());
                }
            }
        }
        (Value::Array(t), Value::Array(p)) => {
            let key = if field == "ownerReferences" { "uid" } else { "name" };
            let keyed = |a: &[Value]| a.iter().all(|i| i.get(key).is_some_and(Value::is_string));
            if !keyed(t) || !keyed(p) {
                *t = p
                    .iter()
                    .filter(|i| i.get("$patch") != Some(&json!("delete")))
                    .cloned()
                    .collect();
                return;
            }
            for item in p {
                let pos = t.iter().position(|i| i[key] == item[key]);
                match (pos, item.get("$patch").and_then(Value::as_str)) {
                    (Some(i), Some("delete")) => {
                        t.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => strategic(&mut t[i], item, ""),
                    (None, _) => {
                        let mut fresh = Value::Object(Map::new());
                        strategic(&mut fresh, item, "");
                        t.push(fresh);
                    }
                }
            }
        }
        (t, p) => {
            if p.is_object() {
                let mut fresh = Value::Object(Map::new());
                strategic(&mut fresh, p, field);
                *t = fresh;
            } else {
                *t = p.clone();
            }
        }
    }
}

/// Merges an applied configuration into an object: maps recursively,
/// everything else replaced.
fn merge_config(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                if v.is_object() && !slot.is_object() {
                    *slot = json!({});
                }
                merge_config(slot, v);
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// Removes the field at a JSON pointer, if there.
fn remove_at(target: &mut Value, ptr: &str) {
    let Some((parent, last)) = ptr.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(m)) = target.pointer_mut(parent) {
        m.remove(&last);
    }
}

impl State {
    /// Server-side apply of `config` by `manager` to the object at `key`
    /// (created when missing, unless `status_only`).
    pub fn apply(
        &mut self,
        d: &ResDef,
        key: &Key,
        mut config: Value,
        manager: &str,
        force: bool,
        status_only: bool,
    ) -> Result<(u16, Value), (u16, Value)> {
        let api_version = config.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version.is_empty() || kind.is_empty() {
            return Err(status(
                400,
                "BadRequest",
                &format!("invalid object type: {api_version}, Kind={kind}"),
            ));
        }
        if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "managedFields",
                "deletionTimestamp",
            ] {
                m.remove(f);
            }
        }
        let Some(live) = self.objects.get(key).cloned() else {
            if status_only {
                return Err(super::not_found(d, &key.3));
            }
            let created = self.create(d, config, manager, true)?;
            if let Some(entry) = self.owners_of(&created).get_mut(manager) {
                entry.0 = "Apply".to_owned();
            }
            let mut obj = self.objects[&created].clone();
            self.render_managed(&created, &mut obj);
            if let Some(stored) = self.objects.get_mut(&created) {
                *stored = obj.clone();
            }
            return Ok((201, obj));
        };
        if let Some(m) = config.as_object_mut() {
            if status_only {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
                if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.retain(|k, _| k == "name" || k == "namespace");
                }
            } else if d.status_subresource {
                m.remove("status");
            }
        }
        let applied = leaves(&config);
        let current = leaves(&live);
        let owners = self.owners_of(key).clone();
        let mut conflicts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, value) in &applied {
            if current.get(path).is_none_or(|v| v == value) {
                continue;
            }
            for (other, (_, paths)) in &owners {
                if other != manager && paths.contains(path) {
                    conflicts.entry(other.clone()).or_default().push(path.clone());
                }
            }
        }
        if !conflicts.is_empty() && !force {
            let n: usize = conflicts.values().map(Vec::len).sum();
            let lines: Vec<String> = conflicts
                .iter()
                .flat_map(|(m, ps)| {
                    ps.iter().map(move |p| {
                        format!(
                            "conflict with \"{m}\" using {}: {}",
                            api_version_of(d),
                            p.replace('/', ".")
                        )
                    })
                })
                .collect();
            let plural = if n == 1 { "" } else { "s" };
            let (code, mut v) = status(
                409,
                "Conflict",
                &format!("Apply failed with {n} conflict{plural}: {}", lines.join("\n")),
            );
            v["details"] = json!({"name": key.3, "group": d.group, "kind": d.plural,
                                  "causes": lines.iter().map(|l| json!({"reason": "FieldManagerConflict", "message": l})).collect::<Vec<_>>()});
            return Err((code, v));
        }
        let mut result = live.clone();
        let mine: BTreeSet<String> = owners.get(manager).map(|(_, p)| p.clone()).unwrap_or_default();
        for path in mine.iter().filter(|p| !applied.contains_key(*p)) {
            let shared = owners.iter().any(|(m, (_, ps))| m != manager && ps.contains(path));
            if !shared {
                remove_at(&mut result, path);
            }
        }
        merge_config(&mut result, &config);
        let all = self.owners_of(key);
        if force {
            for (m, (_, paths)) in all.iter_mut() {
                if m != manager {
                    paths.retain(|p| !applied.contains_key(p));
                }
            }
        }
        all.insert(
            manager.to_owned(),
            ("Apply".to_owned(), applied.keys().cloned().collect()),
        );
        all.retain(|_, (_, paths)| !paths.is_empty());
        let mut forced_render = true;
        let out = self.replace(d, key, result, None)?;
        if out["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"] {
            forced_render = false;
        }
        let mut out = out;
        if forced_render && self.objects.contains_key(key) {
            // Ownership moved without a change of the object: show it.
            self.render_managed(key, &mut out);
            if let Some(stored) = self.objects.get_mut(key) {
                *stored = out.clone();
            }
        }
        Ok((200, out))
    }
}

fn api_version_of(d: &ResDef) -> String {
    super::api_version(&d.group, &d.version)
}
