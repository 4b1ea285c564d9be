//! The modifiers of a Restore: its storage class and image mappings, and
//! the resource modifier rules of the ConfigMap it names (in its own
//! namespace, the one data key holding the rules). Checked before anything
//! is restored: a bad rule or a missing ConfigMap fails the Restore with
//! one line saying what is wrong.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use super::{Context, Error};
use crate::k8s::crd::restore::RestoreSpec;
use crate::k8s::manifests::modifiers::Modifiers;
use crate::k8s::K8sError;

/// Why the modifiers could not be had.
#[derive(Debug)]
pub enum LoadError {
    /// Reading the ConfigMap failed for now: the reconcile is tried again.
    Retry(Error),
    /// The Restore cannot run as it is: it fails with this message.
    Fail(String),
}

/// The checked modifiers of a Restore in `namespace`.
pub async fn load(ctx: &Context, namespace: &str, spec: &RestoreSpec) -> Result<Modifiers, LoadError> {
    let rules = match &spec.resource_modifiers {
        Some(name) => {
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
            let map = match api.get_opt(name).await {
                Ok(Some(map)) => map,
                Ok(None) => {
                    return Err(LoadError::Fail(format!(
                        "resourceModifiers: ConfigMap {namespace}/{name} does not exist"
                    )))
                }
                Err(e) => return Err(LoadError::Retry(e.into())),
            };
            let data = map.data.unwrap_or_default();
            let mut values = data.into_iter();
            match (values.next(), values.next()) {
                (Some((key, text)), None) => {
                    Some((format!("resourceModifiers ConfigMap {namespace}/{name} ({key})"), text))
                }
                _ => {
                    return Err(LoadError::Fail(format!(
                        "resourceModifiers: ConfigMap {namespace}/{name} must hold the rules in exactly one data key"
                    )))
                }
            }
        }
        None => None,
    };
    Modifiers::new(
        spec.storage_class_mapping.clone(),
        spec.image_mapping.clone(),
        rules.as_ref().map(|(source, text)| (source.as_str(), text.as_str())),
    )
    .map_err(|e| match e {
        K8sError::InvalidOption(line) => LoadError::Fail(line),
        other => LoadError::Fail(other.to_string()),
    })
}
