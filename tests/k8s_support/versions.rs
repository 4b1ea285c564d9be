//! Custom resources served at several versions, as the real server serves
//! them: every version of a definition with `served: true` has its URL (the
//! storage version first, which names the objects' store), an object is
//! shown at the version it is asked at (the `None` conversion strategy:
//! only `apiVersion` changes), and a body whose `apiVersion` is not the
//! URL's is refused with the real server's 400. Simplified: watch events
//! carry the `apiVersion` the object was written at.

use serde_json::Value;

use super::{api_version, status, ResDef};

/// The versions of a definition that are served, the storage version
/// first.
pub fn served_versions(crd: &Value) -> Vec<Value> {
    let mut versions: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| vs.iter().filter(|v| v["served"] != false).cloned().collect())
        .unwrap_or_default();
    versions.sort_by_key(|v| v["storage"] != true);
    versions
}

/// The real server's refusal of a body whose `apiVersion` is not the one
/// of the URL it is sent to.
pub fn check_body_version(d: &ResDef, body: &[u8]) -> Result<(), (u16, Value)> {
    let Ok(obj) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let expected = api_version(&d.group, &d.version);
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(given) if given != expected => Err(status(
            400,
            "BadRequest",
            &format!("the API version in the data ({given}) does not match the expected API version ({expected})"),
        )),
        _ => Ok(()),
    }
}

/// An answer shown at the version of the request: the object, or each
/// item of a list, of this resource.
pub fn at_version(d: &ResDef, value: &mut Value) {
    let version = Value::String(api_version(&d.group, &d.version));
    if value.get("kind").and_then(Value::as_str) == Some(d.kind.as_str()) {
        value["apiVersion"] = version.clone();
    }
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if item.get("kind").and_then(Value::as_str) == Some(d.kind.as_str()) {
                item["apiVersion"] = version.clone();
            }
        }
    }
}
