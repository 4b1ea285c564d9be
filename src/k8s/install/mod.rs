//! What `cairn k8s install` creates: the custom resource definitions, the
//! namespace, service accounts, least-privilege RBAC, the controller
//! Deployment and the agent DaemonSet. [`manifests`] builds them (pure:
//! options in, objects out); [`apply`] creates or updates them in a
//! cluster with server-side apply.

pub mod apply;
pub mod rbac;
pub mod render;
pub mod workloads;

use serde_json::Value;

use super::crd;
use super::K8sError;

pub use apply::{apply, Applied, Change};
pub use render::{render, Format};

/// The field manager of every object cairn applies.
pub const FIELD_MANAGER: &str = "cairn";
/// The namespace cairn runs in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "cairn-system";
/// The kubelet's root directory on most distributions.
pub const DEFAULT_KUBELET_ROOT: &str = "/var/lib/kubelet";
/// The controller's and agent's service accounts (and workloads).
pub const CONTROLLER: &str = "cairn-controller";
pub const AGENT: &str = "cairn-agent";

/// The image of this version of cairn.
pub fn default_image() -> String {
    format!("ghcr.io/cairn-backup/cairn:{}", env!("CARGO_PKG_VERSION"))
}

/// What to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where the controller, the agent and their resources live.
    pub namespace: String,
    /// The container image of both workloads.
    pub image: String,
    /// The kubelet's root directory on the nodes (its `pods` directory is
    /// mounted into the agent).
    pub kubelet_root_dir: String,
    /// The name the controller records as the host of its snapshots; unset,
    /// the controller uses its own default.
    pub cluster_name: Option<String>,
    /// The nodes' directory of hostPath PersistentVolumes (local-path
    /// provisioners), mounted into the agent at the same path.
    pub host_path_root: Option<String>,
    /// The agent's `--read-rate-limit`, bytes a second.
    pub agent_read_rate_limit: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.into(),
            image: default_image(),
            kubelet_root_dir: DEFAULT_KUBELET_ROOT.into(),
            cluster_name: None,
            host_path_root: None,
            agent_read_rate_limit: None,
        }
    }
}

/// Whether `s` is a DNS label (RFC 1123) as namespace names must be.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl Options {
    /// Refuses options the objects could not carry, naming the option.
    pub fn validate(&self) -> Result<(), K8sError> {
        let bad = |what: String| Err(K8sError::InvalidOption(what));
        if !is_dns_label(&self.namespace) {
            return bad(format!(
                "--namespace: {:?} is not a valid namespace name (lower-case letters, digits and '-', at most 63)",
                self.namespace
            ));
        }
        if self.image.is_empty() || self.image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad(format!("--image: {:?} is not an image reference", self.image));
        }
        let root = &self.kubelet_root_dir;
        if !root.starts_with('/') || root.split('/').any(|p| p == "..") || root.chars().any(char::is_control) {
            return bad(format!(
                "--kubelet-root-dir: {root:?} must be an absolute path on the nodes"
            ));
        }
        if let Some(dir) = &self.host_path_root {
            let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            if !dir.starts_with('/')
                || parts.is_empty()
                || parts.iter().any(|p| *p == ".." || *p == ".")
                || dir.chars().any(char::is_control)
            {
                return bad(format!(
                    "--host-path-root: {dir:?} must be an absolute path below / on the nodes"
                ));
            }
        }
        if let Some(name) = &self.cluster_name {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return bad(format!(
                    "--cluster-name: {name:?} may hold only letters, digits, '-', '_' and '.'"
                ));
            }
        }
        Ok(())
    }

    /// The kubelet's pods directory on the nodes.
    pub fn host_pods_dir(&self) -> String {
        format!("{}/pods", self.kubelet_root_dir.trim_end_matches('/'))
    }
}

/// The labels every installed object carries.
pub fn labels(component: Option<&str>) -> Value {
    let mut labels = serde_json::json!({
        "app.kubernetes.io/name": "cairn",
        "app.kubernetes.io/part-of": "cairn",
        "app.kubernetes.io/managed-by": "cairn",
    });
    if let Some(c) = component {
        labels["app.kubernetes.io/component"] = c.into();
    }
    labels
}

/// The CustomResourceDefinitions as objects to print or apply.
pub fn definitions() -> Result<Vec<Value>, K8sError> {
    crd::all()
        .into_iter()
        .map(|def| {
            let mut v = serde_json::to_value(&def).map_err(|e| K8sError::InvalidObject {
                path: def.metadata.name.clone().unwrap_or_default(),
                reason: e.to_string(),
            })?;
            v["metadata"]["labels"] = labels(None);
            Ok(v)
        })
        .collect()
}

/// Every object to install, in the order they are applied: definitions,
/// namespace, service accounts, RBAC, workloads.
pub fn manifests(opts: &Options) -> Result<Vec<Value>, K8sError> {
    opts.validate()?;
    let mut objects = definitions()?;
    objects.push(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": opts.namespace, "labels": labels(None)},
    }));
    objects.extend(rbac::objects(opts));
    objects.push(workloads::controller(opts));
    objects.push(workloads::agent(opts));
    Ok(objects)
}

#[cfg(test)]
mod tests;
