//! Collecting a cluster's objects: discovery, paginated lists, filters,
//! normalisation. The result is a set of in-memory files for
//! [`crate::backup::backup_files`].

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::discovery::{discover, qualified, Resource};
use super::filter::{excluded_by_label, needable, ClusterResources, Filters, ResourceNames};
use super::normalise::{normalise, path_of, to_bytes};
use crate::backup::MemoryFile;
use crate::k8s::client::{chain, describe, status_code, Cluster};
use crate::k8s::K8sError;

/// Objects asked for per list request.
pub const PAGE: u32 = 500;

/// What a backup read from the cluster.
#[derive(Debug, Default)]
pub struct Collected {
    pub files: Vec<MemoryFile>,
    /// What could not be read (each a line naming the resource and why);
    /// the rest was read, and the snapshot is marked partial.
    pub errors: Vec<String>,
    /// What did not make the backup partial but should be known: API
    /// groups whose discovery failed when nothing selected was named in
    /// them.
    pub warnings: Vec<String>,
    /// Objects per resource (`deployments.apps`).
    pub counts: BTreeMap<String, usize>,
}

/// Cluster-scoped objects the selected namespaced objects need.
#[derive(Debug, Default)]
struct Needed {
    /// (group, plural, name)
    objects: BTreeSet<(String, String, String)>,
}

impl Needed {
    fn add(&mut self, group: &str, plural: &str, name: &str) {
        if !name.is_empty() {
            self.objects.insert((group.into(), plural.into(), name.into()));
        }
    }

    fn contains(&self, group: &str, plural: &str, name: &str) -> bool {
        self.objects.contains(&(group.into(), plural.into(), name.into()))
    }

    /// Notes what `object`, just taken, refers to.
    fn note(&mut self, r: &Resource, object: &Value) {
        let str_at = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
        // The definition of a custom resource (none exists for built-in
        // groups, so asking costs nothing).
        if !r.group.is_empty() {
            self.add(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                &qualified(&r.group, &r.plural),
            );
        }
        match (r.group.as_str(), r.plural.as_str()) {
            ("", "persistentvolumeclaims") => {
                self.add("", "persistentvolumes", str_at("/spec/volumeName"));
                self.add("storage.k8s.io", "storageclasses", str_at("/spec/storageClassName"));
            }
            ("", "persistentvolumes") => {
                self.add("storage.k8s.io", "storageclasses", str_at("/spec/storageClassName"));
            }
            ("rbac.authorization.k8s.io", "clusterrolebindings" | "rolebindings")
                if str_at("/roleRef/kind") == "ClusterRole" =>
            {
                self.add("rbac.authorization.k8s.io", "clusterroles", str_at("/roleRef/name"));
            }
            _ => {}
        }
    }

    /// Whether a cluster-scoped object is needed by what was taken.
    fn wants(&self, r: &Resource, object: &Value, filters: &Filters) -> bool {
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        if self.contains(&r.group, &r.plural, name) {
            return true;
        }
        match (r.group.as_str(), r.plural.as_str()) {
            // A binding that grants something to a service account of a
            // selected namespace.
            ("rbac.authorization.k8s.io", "clusterrolebindings") => object
                .get("subjects")
                .and_then(Value::as_array)
                .is_some_and(|subjects| {
                    subjects.iter().any(|s| {
                        s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                            && s.get("namespace")
                                .and_then(Value::as_str)
                                .is_some_and(|ns| filters.namespace_selected(ns))
                    })
                }),
            _ => false,
        }
    }
}

fn names(r: &Resource) -> ResourceNames<'_> {
    ResourceNames {
        group: &r.group,
        plural: &r.plural,
        singular: &r.singular,
        kind: &r.kind,
        short_names: &r.short_names,
    }
}

/// Which cluster-scoped objects of a type are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    All,
    Needed,
    None,
}

struct Lister<'a> {
    cluster: &'a Cluster,
    filters: &'a Filters,
    out: Collected,
    needed: Needed,
    /// Namespaces being deleted: neither they nor their objects are taken.
    terminating: BTreeSet<String>,
}

/// Whether an object is being deleted (it has a deletion timestamp): a
/// restore would bring back what its owner meant to remove.
fn being_deleted(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

impl Lister<'_> {
    /// Lists one resource (in one namespace, or everywhere) page by page and
    /// hands every object to `keep`. A refused list is recorded and skipped;
    /// losing the server is an error.
    async fn list(
        &mut self,
        r: &Resource,
        namespace: Option<&str>,
        use_selector: bool,
        mut keep: impl FnMut(&mut Self, Value),
    ) -> Result<(), K8sError> {
        let ar = r.api_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.cluster.client.clone(), ns, &ar),
            None => Api::all_with(self.cluster.client.clone(), &ar),
        };
        let mut params = ListParams::default().limit(PAGE);
        if let Some(selector) = self.filters.selector.as_ref().filter(|_| use_selector) {
            params = params.labels(selector.as_str());
        }
        loop {
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(e @ kube::Error::Api(_)) => {
                    let scope = namespace.map(|ns| format!(" in namespace {ns}")).unwrap_or_default();
                    let what = if status_code(&e) == Some(403) {
                        "forbidden"
                    } else {
                        "cannot list"
                    };
                    self.out
                        .errors
                        .push(format!("{}{scope}: {what}: {}", r.qualified(), describe(&e)));
                    return Ok(());
                }
                Err(e) => {
                    return Err(K8sError::Unreachable {
                        server: self.cluster.server.clone(),
                        reason: format!("listing {}: {}", r.qualified(), chain(&e)),
                        source: Box::new(e),
                    })
                }
            };
            for item in page.items {
                match serde_json::to_value(item) {
                    Ok(value) => keep(self, value),
                    Err(e) => self
                        .out
                        .errors
                        .push(format!("{}: an object cannot be encoded: {e}", r.qualified())),
                }
            }
            match page.metadata.continue_.filter(|t| !t.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(()),
            }
        }
    }

    fn store(&mut self, r: &Resource, mut object: Value) {
        normalise(&mut object, &r.api_version(), &r.kind);
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
        if name.is_empty() || name.contains('/') || (r.namespaced && namespace.is_none()) {
            self.out.errors.push(format!(
                "{}: an object without a usable name or namespace was left out",
                r.qualified()
            ));
            return;
        }
        let path = path_of(&r.group, &r.plural, namespace.filter(|_| r.namespaced), name);
        *self.out.counts.entry(r.qualified()).or_default() += 1;
        self.out.files.push(MemoryFile {
            path,
            data: to_bytes(&object),
        });
    }

    async fn namespaced(&mut self, r: &Resource) -> Result<(), K8sError> {
        let filters = self.filters;
        let keep = |this: &mut Self, object: Value| {
            let ns = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !filters.namespace_selected(ns)
                || excluded_by_label(&object)
                || being_deleted(&object)
                || this.terminating.contains(ns)
            {
                return;
            }
            this.needed.note(r, &object);
            this.store(r, object);
        };
        match filters.literal_namespaces() {
            Some(namespaces) => {
                for ns in namespaces.iter().filter(|ns| filters.namespace_selected(ns)) {
                    self.list(r, Some(ns), true, keep).await?;
                }
                Ok(())
            }
            None => self.list(r, None, true, keep).await,
        }
    }

    async fn cluster_scoped(&mut self, r: &Resource, take: Take) -> Result<(), K8sError> {
        let filters = self.filters;
        let is_namespace = r.group.is_empty() && r.plural == "namespaces";
        // Namespace objects follow the namespace filter, whatever the mode.
        let take = if is_namespace { Take::All } else { take };
        if take == Take::None {
            return Ok(());
        }
        let use_selector = take == Take::All && !is_namespace;
        self.list(r, None, use_selector, |this, object| {
            if excluded_by_label(&object) || being_deleted(&object) {
                return;
            }
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let wanted = if is_namespace {
                filters.namespace_selected(name)
            } else {
                take == Take::All || this.needed.wants(r, &object, filters)
            };
            if wanted {
                this.needed.note(r, &object);
                this.store(r, object);
            }
        })
        .await
    }
}

/// Cluster-scoped types are listed after the namespaced ones, those that
/// lead to others (PVs to storage classes, bindings to roles) first.
fn cluster_rank(r: &Resource) -> u8 {
    match r.plural.as_str() {
        "persistentvolumes" | "clusterrolebindings" => 0,
        "customresourcedefinitions" | "storageclasses" | "clusterroles" => 2,
        _ => 1,
    }
}

/// The namespaces being deleted (none when namespaces cannot be listed:
/// their objects are then judged one by one).
async fn terminating_namespaces(cluster: &Cluster) -> BTreeSet<String> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|n| {
                n.metadata.deletion_timestamp.is_some()
                    || n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
            })
            .filter_map(|n| n.metadata.name)
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Splits discovery failures: an error when the filters name a resource of
/// the failed group (it would be missing), else a warning.
fn discovery_failures(discovered: &super::discovery::Discovered, filters: &Filters) -> (Vec<String>, Vec<String>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for line in &discovered.errors {
        let named = discovered
            .failed_groups
            .iter()
            .any(|g| line.starts_with(&format!("API group {g}:")) && filters.names_group(g));
        if named {
            errors.push(line.clone());
        } else {
            warnings.push(line.clone());
        }
    }
    (errors, warnings)
}

/// Reads every selected object of the cluster.
pub async fn collect(cluster: &Cluster, filters: &Filters) -> Result<Collected, K8sError> {
    let discovered = discover(cluster).await?;
    let (errors, warnings) = discovery_failures(&discovered, filters);
    let mut lister = Lister {
        cluster,
        filters,
        out: Collected {
            errors,
            warnings,
            ..Collected::default()
        },
        needed: Needed::default(),
        terminating: terminating_namespaces(cluster).await,
    };
    // The same resource may be served by two groups (events, events.k8s.io):
    // both are kept, as their paths differ.
    let namespaced = discovered
        .resources
        .iter()
        .filter(|r| r.namespaced && r.restorable() && filters.resource_selected(&names(r)));
    for r in namespaced {
        lister.namespaced(r).await?;
    }
    let everything = match filters.cluster_resources {
        ClusterResources::True => true,
        ClusterResources::False => false,
        ClusterResources::Auto => filters.all_namespaces() && filters.selector.is_none(),
    };
    let mut cluster_types: Vec<(&Resource, Take)> = discovered
        .resources
        .iter()
        .filter(|r| !r.namespaced && r.restorable() && !filters.resource_excluded(&names(r)))
        .filter_map(|r| {
            let selected = filters.resource_selected(&names(r));
            let take = match filters.cluster_resources {
                ClusterResources::False => Take::None,
                _ if selected && (everything || filters.resource_named(&names(r))) => Take::All,
                _ if selected || needable(&r.group, &r.plural) => Take::Needed,
                _ => Take::None,
            };
            // Namespace objects follow the namespace filter in every mode.
            let namespace = r.group.is_empty() && r.plural == "namespaces";
            (take != Take::None || namespace).then_some((r, take))
        })
        .collect();
    cluster_types.sort_by_key(|(r, _)| cluster_rank(r));
    for (r, take) in cluster_types {
        lister.cluster_scoped(r, take).await?;
    }
    lister.out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(lister.out)
}
