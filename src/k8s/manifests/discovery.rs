//! Discovery: every resource the cluster serves, each once: at its group's
//! preferred version when that serves it, else at the first version (in
//! the server's priority order) that does, so that a resource served only
//! at an older version of its group (`monitoring.coreos.com/v1alpha1`
//! AlertmanagerConfig beside v1 Prometheus) is not missed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::discovery::ApiResource;

use crate::k8s::client::{describe, Cluster};
use crate::k8s::K8sError;

/// A resource type served by the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The API group (`""` for the legacy core group).
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural name used in URLs and in the snapshot's paths.
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `configmaps` for the core group.
    pub fn qualified(&self) -> String {
        qualified(&self.group, &self.plural)
    }

    /// Whether objects of this type can be listed.
    pub fn listable(&self) -> bool {
        self.has_verbs(&["list"])
    }

    /// Whether objects of this type can be both read and restored (create,
    /// get, list, delete), and so are worth backing up: `metrics.k8s.io`
    /// pods and nodes can be listed but never created.
    pub fn restorable(&self) -> bool {
        self.has_verbs(&["create", "get", "list", "delete"])
    }

    fn has_verbs(&self, verbs: &[&str]) -> bool {
        verbs.iter().all(|want| self.verbs.iter().any(|v| v == want))
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }
}

/// `plural.group`, or `plural` for the core group.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

/// The result of a discovery: what the cluster serves, and the API groups
/// that could not be asked (such as an aggregated API whose backend is down).
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub resources: Vec<Resource>,
    /// One line per group version that could not be read, naming it.
    pub errors: Vec<String>,
    /// The groups of those group versions.
    pub failed_groups: Vec<String>,
    /// (group, plural) to every version that serves it, in the server's
    /// priority order (the preferred version first).
    pub versions: BTreeMap<(String, String), Vec<String>>,
}

impl Discovered {
    /// The resource of this group and plural name.
    pub fn find(&self, group: &str, plural: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.group == group && r.plural == plural)
    }

    /// Every version that serves `group`/`plural`.
    pub fn versions_of(&self, group: &str, plural: &str) -> &[String] {
        self.versions
            .get(&(group.to_owned(), plural.to_owned()))
            .map_or(&[], Vec::as_slice)
    }
}

fn resources_of(list: APIResourceList, group: &str, version: &str, found: &mut Discovered) {
    let out = &mut found.resources;
    for r in list.resources {
        if r.name.contains('/') {
            continue;
        }
        found
            .versions
            .entry((group.to_owned(), r.name.clone()))
            .or_default()
            .push(version.to_owned());
        // Subresources (`pods/log`, `deployments/scale`) are not objects;
        // a resource a more preferred version serves is taken there.
        if out.iter().any(|o| o.group == group && o.plural == r.name) {
            continue;
        }
        out.push(Resource {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: r.kind,
            singular: r.singular_name,
            short_names: r.short_names.unwrap_or_default(),
            namespaced: r.namespaced,
            verbs: r.verbs,
            plural: r.name,
        });
    }
}

/// Asks the cluster what it serves. Failing to read `/api` or `/apis` is an
/// error; a group version that cannot be read is recorded and skipped.
pub async fn discover(cluster: &Cluster) -> Result<Discovered, K8sError> {
    let client = &cluster.client;
    let api_error = |what: &str, e: kube::Error| K8sError::Api {
        server: cluster.server.clone(),
        what: what.to_owned(),
        reason: describe(&e),
        source: Box::new(e),
    };
    let mut found = Discovered::default();
    let core = client
        .list_core_api_versions()
        .await
        .map_err(|e| api_error("GET /api", e))?;
    if let Some(version) = core.versions.first() {
        let what = format!("GET /api/{version}");
        match client.list_core_api_resources(version).await {
            Ok(list) => resources_of(list, "", version, &mut found),
            Err(e) => return Err(api_error(&what, e)),
        }
    }
    let groups = client.list_api_groups().await.map_err(|e| api_error("GET /apis", e))?;
    for group in groups.groups {
        // The preferred version first, then the others in the server's
        // (priority) order.
        let mut versions = group.versions.clone();
        if let Some(preferred) = &group.preferred_version {
            versions.retain(|v| v.version != preferred.version);
            versions.insert(0, preferred.clone());
        }
        for gv in versions {
            match client.list_api_group_resources(&gv.group_version).await {
                Ok(list) => resources_of(list, &group.name, &gv.version, &mut found),
                Err(e) => {
                    found.errors.push(format!(
                        "API group {}: discovery of {} failed: {}",
                        group.name,
                        gv.group_version,
                        describe(&e)
                    ));
                    if !found.failed_groups.contains(&group.name) {
                        found.failed_groups.push(group.name.clone());
                    }
                }
            }
        }
    }
    Ok(found)
}
