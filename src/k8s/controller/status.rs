//! Writing status and finalizers.
//!
//! Status is written with JSON merge patches on the status subresource:
//! a merge patch carries no resourceVersion, so it never conflicts with a
//! concurrent writer of other fields, and each reconciler writes only the
//! fields it owns. Finalizers are added and removed with JSON patches that
//! test the list first; a 409 or a failed test means the object changed,
//! and the patch is retried against the fresh object.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::Error;

/// The finalizer of Backups: their snapshots are forgotten before the
/// object goes.
pub const FINALIZER: &str = "backup.cairn.io/forget-snapshots";

/// How often a finalizer patch is tried against a changing object.
const ATTEMPTS: u32 = 5;

/// Merges `status` into the object's status.
pub async fn patch_status<K>(api: &Api<K>, name: &str, status: Value) -> Result<K, Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let patch = Patch::Merge(json!({ "status": status }));
    Ok(api.patch_status(name, &PatchParams::default(), &patch).await?)
}

/// Adds `finalizer` to the object unless it has it.
pub async fn add_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    edit_finalizers(api, obj, |list| {
        if list.iter().any(|f| f == finalizer) {
            false
        } else {
            list.push(finalizer.to_owned());
            true
        }
    })
    .await
}

/// Removes `finalizer` from the object if it has it.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    edit_finalizers(api, obj, |list| {
        let before = list.len();
        list.retain(|f| f != finalizer);
        list.len() != before
    })
    .await
}

async fn edit_finalizers<K>(api: &Api<K>, obj: &K, edit: impl Fn(&mut Vec<String>) -> bool) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let name = obj.name_any();
    let mut current = obj.clone();
    for attempt in 1..=ATTEMPTS {
        let before = current.finalizers().to_vec();
        let mut after = before.clone();
        if !edit(&mut after) {
            return Ok(current);
        }
        // Test the list as it was read, so that a concurrent change is
        // never overwritten.
        let ops = if current.meta().finalizers.is_none() {
            json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                   {"op": "add", "path": "/metadata/finalizers", "value": after}])
        } else {
            json!([{"op": "test", "path": "/metadata/finalizers", "value": before},
                   {"op": "replace", "path": "/metadata/finalizers", "value": after}])
        };
        let patch: json_patch::Patch = serde_json::from_value(ops).map_err(|e| Error::Invalid(e.to_string()))?;
        match api
            .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(updated) => return Ok(updated),
            Err(e) if attempt < ATTEMPTS && retry_on_fresh_object(&e) => {
                current = api.get(&name).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(current)
}

/// A conflict, or a JSON patch test that failed (422 from the API server,
/// 500 from some aggregated servers), means the object changed under us.
fn retry_on_fresh_object(e: &kube::Error) -> bool {
    matches!(crate::k8s::client::status_code(e), Some(409 | 422 | 500))
}
