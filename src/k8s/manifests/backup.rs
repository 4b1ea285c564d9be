//! Collecting a cluster's objects: discovery, paginated lists, filters,
//! normalisation, and the objects the selected ones need. Each object is
//! sent on as soon as its page is read (see [`collect`]), so a backup
//! never holds the whole cluster; what is kept is counted per resource, or
//! is the few facts the dependency step needs ([`Needed`]).
//!
//! The order: namespaces (which are being deleted, and their objects),
//! the selected namespaced objects, the namespaced objects those need
//! (claims, service accounts, the role bindings that grant to those
//! accounts, their roles), then the cluster-scoped objects, those that
//! lead to others first.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::discovery::{discover, Resource};
use super::filter::{excluded_by_label, needable, ClusterResources, Filters, ResourceNames};
use super::needs::{grants_to, Needed, NAMESPACED_NEEDS};
use super::normalise::{normalise, path_of, to_bytes};
use super::pager::Pager;
use crate::backup::MemoryFile;
use crate::k8s::client::{chain, describe, status_code, Cluster};
use crate::k8s::K8sError;

/// Objects asked for per list request.
pub const PAGE: u32 = 500;

/// Where [`collect`] sends each object it takes.
pub type Sink = tokio::sync::mpsc::Sender<MemoryFile>;

/// What a backup read from the cluster, beside the objects themselves.
#[derive(Debug, Default)]
pub struct Collected {
    /// What could not be read (each a line naming the resource and why);
    /// the rest was read, and the snapshot is marked partial.
    pub errors: Vec<String>,
    /// What did not make the backup partial but should be known: API
    /// groups whose discovery failed when nothing selected was named in
    /// them, objects the selected ones need that could not be read.
    pub warnings: Vec<String>,
    /// Objects per resource (`deployments.apps`).
    pub counts: BTreeMap<String, usize>,
    /// Of those, the objects taken because selected objects need them.
    pub dependencies: BTreeMap<String, usize>,
    /// Lists that started again after their continue token expired.
    pub restarted_lists: u32,
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
}

/// Whether an object is being deleted (it has a deletion timestamp): a
/// restore would bring back what its owner meant to remove.
fn being_deleted(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn name_of(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

struct Lister<'a> {
    cluster: &'a Cluster,
    filters: &'a Filters,
    /// The restorable resources discovered.
    resources: Vec<&'a Resource>,
    sink: Sink,
    out: Collected,
    needed: Needed,
    /// Namespaces being deleted: neither they nor their objects are taken.
    terminating: BTreeSet<String>,
}

impl Lister<'_> {
    fn api(&self, r: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = r.api_resource();
        match namespace {
            Some(ns) => Api::namespaced_with(self.cluster.client.clone(), ns, &ar),
            None => Api::all_with(self.cluster.client.clone(), &ar),
        }
    }

    fn pager(&self, r: &Resource, namespace: Option<&str>, use_selector: bool) -> Pager {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(selector) = self.filters.selector.as_ref().filter(|_| use_selector) {
            params = params.labels(selector.as_str());
        }
        Pager::new(self.api(r, namespace), params)
    }

    /// The next page of `pager` as JSON (None after the last). A refused
    /// request is handed back (as `Err((line, error))`, the line naming
    /// what and why); losing the server is an error.
    async fn page(
        &mut self,
        r: &Resource,
        namespace: Option<&str>,
        pager: &mut Pager,
    ) -> Result<Result<Option<Vec<Value>>, (String, kube::Error)>, K8sError> {
        let restarts = pager.restarts;
        let page = pager.next().await;
        self.out.restarted_lists += pager.restarts - restarts;
        match page {
            Ok(Some(items)) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    match serde_json::to_value(item) {
                        Ok(value) => values.push(value),
                        Err(e) => self
                            .out
                            .errors
                            .push(format!("{}: an object cannot be encoded: {e}", r.qualified())),
                    }
                }
                Ok(Ok(Some(values)))
            }
            Ok(None) => Ok(Ok(None)),
            Err(e @ kube::Error::Api(_)) => {
                let scope = namespace.map(|ns| format!(" in namespace {ns}")).unwrap_or_default();
                let what = if status_code(&e) == Some(403) {
                    "forbidden"
                } else {
                    "cannot list"
                };
                Ok(Err((format!("{}{scope}: {what}: {}", r.qualified(), describe(&e)), e)))
            }
            Err(e) => Err(self.unreachable(r, e)),
        }
    }

    fn unreachable(&self, r: &Resource, e: kube::Error) -> K8sError {
        K8sError::Unreachable {
            server: self.cluster.server.clone(),
            reason: format!("listing {}: {}", r.qualified(), chain(&e)),
            source: Box::new(e),
        }
    }

    /// Normalises an object and sends it on.
    async fn store(&mut self, r: &Resource, mut object: Value, dependency: bool) -> Result<(), K8sError> {
        self.needed.note(&r.group, &r.plural, &object);
        normalise(&mut object, &r.api_version(), &r.kind);
        let name = name_of(&object);
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
        if name.is_empty() || name.contains('/') || (r.namespaced && namespace.is_none()) {
            self.out.errors.push(format!(
                "{}: an object without a usable name or namespace was left out",
                r.qualified()
            ));
            return Ok(());
        }
        let path = path_of(&r.group, &r.plural, namespace.filter(|_| r.namespaced), name);
        *self.out.counts.entry(r.qualified()).or_default() += 1;
        if dependency {
            *self.out.dependencies.entry(r.qualified()).or_default() += 1;
        }
        let file = MemoryFile {
            path,
            data: to_bytes(&object),
        };
        self.sink
            .send(file)
            .await
            .map_err(|_| K8sError::Job("the repository stopped taking objects".into()))
    }

    /// Whether a namespaced object of a selected namespace may be taken.
    fn takeable(&self, object: &Value) -> bool {
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        self.filters.namespace_selected(ns)
            && !self.terminating.contains(ns)
            && !excluded_by_label(object)
            && !being_deleted(object)
    }

    /// Reads the namespaces: which are being deleted, and the objects of
    /// the selected ones. A user who may not list namespaces (RBAC inside
    /// namespaces only) names them: those are read one by one, and their
    /// objects are listed as given.
    async fn namespaces(&mut self) -> Result<(), K8sError> {
        let Some(r) = self
            .resources
            .iter()
            .copied()
            .find(|r| r.group.is_empty() && r.plural == "namespaces")
        else {
            return Ok(());
        };
        let mut found = Vec::new();
        let mut pager = self.pager(r, None, false);
        loop {
            match self.page(r, None, &mut pager).await? {
                Ok(None) => break,
                Ok(Some(page)) => found.extend(page),
                Err((line, e)) => match (
                    status_code(&e),
                    self.filters.literal_namespaces(),
                    self.filters.namespace_patterns(),
                ) {
                    (Some(403), Some(named), _) => {
                        found = self.named_namespaces(r, &named).await?;
                        break;
                    }
                    // Patterns cannot be matched without the list: every
                    // list after this would be refused too, one line each.
                    (Some(403), _, Some(patterns)) => {
                        return Err(K8sError::InvalidOption(format!(
                            "namespaces cannot be listed ({}) and --include-namespaces {patterns} holds patterns: \
                             name the namespaces to back up (--include-namespaces a,b)",
                            describe(&e)
                        )));
                    }
                    _ => {
                        self.out.errors.push(line);
                        break;
                    }
                },
            }
        }
        let store = !self.filters.resource_excluded(&names(r));
        for ns in found {
            let name = name_of(&ns).to_owned();
            let phase = ns.pointer("/status/phase").and_then(Value::as_str);
            if being_deleted(&ns) || phase == Some("Terminating") {
                self.terminating.insert(name);
            } else if store && self.filters.namespace_selected(&name) && !excluded_by_label(&ns) {
                self.store(r, ns, false).await?;
            }
        }
        Ok(())
    }

    /// The named namespaces that can be read one by one.
    async fn named_namespaces(&mut self, r: &Resource, named: &[String]) -> Result<Vec<Value>, K8sError> {
        let api = self.api(r, None);
        let mut found = Vec::new();
        let mut unreadable = Vec::new();
        for name in named {
            match api.get_opt(name).await {
                Ok(Some(ns)) => match serde_json::to_value(ns) {
                    Ok(v) => found.push(v),
                    Err(e) => unreadable.push(format!("{name} ({e})")),
                },
                Ok(None) => self.out.warnings.push(format!("namespace {name}: not found")),
                Err(kube::Error::Api(status)) => unreadable.push(format!("{name} ({} {})", status.code, status.reason)),
                Err(e) => return Err(self.unreachable(r, e)),
            }
        }
        if !unreadable.is_empty() {
            self.out.warnings.push(format!(
                "namespaces cannot be listed or read: {}; their objects are backed up without the namespace objects",
                unreadable.join(", ")
            ));
        }
        Ok(found)
    }

    async fn namespaced(&mut self, r: &Resource) -> Result<(), K8sError> {
        match self.filters.literal_namespaces() {
            Some(namespaces) => {
                for ns in &namespaces {
                    if self.filters.namespace_selected(ns) && !self.terminating.contains(ns) {
                        self.take_listed(r, Some(ns)).await?;
                    }
                }
                Ok(())
            }
            None => self.take_listed(r, None).await,
        }
    }

    /// Takes the selected objects of a namespaced resource, in one
    /// namespace or in all.
    async fn take_listed(&mut self, r: &Resource, namespace: Option<&str>) -> Result<(), K8sError> {
        let mut pager = self.pager(r, namespace, true);
        loop {
            let page = match self.page(r, namespace, &mut pager).await? {
                Ok(None) => return Ok(()),
                Ok(Some(page)) => page,
                Err((line, _)) => {
                    self.out.errors.push(line);
                    return Ok(());
                }
            };
            for object in page {
                if self.takeable(&object) {
                    self.store(r, object, false).await?;
                }
            }
        }
    }

    /// A namespaced resource whose objects may be taken as dependencies.
    fn dependency_resource(&self, group: &str, plural: &str) -> Option<&'_ Resource> {
        self.resources.iter().copied().find(|r| {
            r.group == group && r.plural == plural && r.namespaced && !self.filters.resource_excluded(&names(r))
        })
    }

    /// Takes the namespaced objects the taken ones need: claims and service
    /// accounts by name, the role bindings in the accounts' namespaces that
    /// grant to them, and the roles those bind.
    async fn namespaced_needs(&mut self) -> Result<(), K8sError> {
        for (group, plural) in NAMESPACED_NEEDS {
            let Some(r) = self.dependency_resource(group, plural).cloned() else {
                continue;
            };
            if r.plural == "rolebindings" {
                // Without a selector, every binding of the selected
                // namespaces was taken already if bindings were selected.
                let all_taken = self.filters.selector.is_none() && self.filters.resource_selected(&names(&r));
                if !all_taken {
                    self.bindings(&r).await?;
                }
                continue;
            }
            let missing: Vec<(String, String)> = self
                .needed
                .missing(group, plural)
                .into_iter()
                .filter(|(ns, _)| self.filters.namespace_selected(ns) && !self.terminating.contains(ns))
                .collect();
            for (ns, name) in missing {
                match self.api(&r, Some(&ns)).get_opt(&name).await {
                    Ok(Some(object)) => {
                        let object = match serde_json::to_value(object) {
                            Ok(v) => v,
                            Err(e) => {
                                self.out
                                    .errors
                                    .push(format!("{}: an object cannot be encoded: {e}", r.qualified()));
                                continue;
                            }
                        };
                        if self.takeable(&object) {
                            self.store(&r, object, true).await?;
                        }
                    }
                    // Named but not there: nothing to take.
                    Ok(None) => {}
                    Err(e @ kube::Error::Api(_)) => self.out.warnings.push(format!(
                        "{} {ns}/{name}, needed by selected objects: {}",
                        r.qualified(),
                        describe(&e)
                    )),
                    Err(e) => return Err(self.unreachable(&r, e)),
                }
            }
        }
        Ok(())
    }

    /// Takes the role bindings of the accounts' namespaces that grant to
    /// a taken account.
    async fn bindings(&mut self, r: &Resource) -> Result<(), K8sError> {
        let namespaces: BTreeSet<String> = self
            .needed
            .accounts
            .iter()
            .map(|(ns, _)| ns.clone())
            .filter(|ns| self.filters.namespace_selected(ns) && !self.terminating.contains(ns))
            .collect();
        for ns in namespaces {
            let mut pager = self.pager(r, Some(&ns), false);
            loop {
                let page = match self.page(r, Some(&ns), &mut pager).await? {
                    Ok(None) => break,
                    Ok(Some(page)) => page,
                    Err((line, _)) => {
                        self.out
                            .warnings
                            .push(format!("{line} (looked for bindings of the taken service accounts)"));
                        break;
                    }
                };
                for object in page {
                    let taken = self.needed.is_taken(&r.group, &r.plural, &ns, name_of(&object));
                    if !taken && grants_to(&object, &self.needed.accounts) && self.takeable(&object) {
                        self.store(r, object, true).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn cluster_scoped(&mut self, r: &Resource, take: Take) -> Result<(), K8sError> {
        if take == Take::Needed && !self.needed.wants_any(&r.group, &r.plural) {
            return Ok(());
        }
        let mut pager = self.pager(r, None, take == Take::All);
        loop {
            let page = match self.page(r, None, &mut pager).await? {
                Ok(None) => return Ok(()),
                Ok(Some(page)) => page,
                Err((line, e)) => {
                    self.cluster_refused(r, take, line, &e);
                    return Ok(());
                }
            };
            for object in page {
                if excluded_by_label(&object) || being_deleted(&object) {
                    continue;
                }
                let wanted = take == Take::All || self.needed.wants(&r.group, &r.plural, &object);
                if wanted {
                    self.store(r, object, take == Take::Needed).await?;
                }
            }
        }
    }

    /// A refused list of a cluster-scoped resource. Taken whole, it makes
    /// the backup partial. Looked at only for what the selected objects
    /// need, a 403 (a user whose rights end at their namespaces) is a
    /// warning naming the objects left out when some were needed by name,
    /// and nothing otherwise.
    fn cluster_refused(&mut self, r: &Resource, take: Take, line: String, e: &kube::Error) {
        if take == Take::All || status_code(e) != Some(403) {
            self.out.errors.push(line);
            return;
        }
        let missing = self.needed.cluster_names(&r.group, &r.plural);
        if !missing.is_empty() {
            self.out.warnings.push(format!(
                "{line}; needed by selected objects and left out: {}",
                missing.join(", ")
            ));
        }
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

/// Reads every selected object of the cluster, and those they need, and
/// sends each to `sink` as it is read (a page at a time). Returns what
/// could not be read and the counts.
pub async fn collect(cluster: &Cluster, filters: &Filters, sink: Sink) -> Result<Collected, K8sError> {
    let discovered = discover(cluster).await?;
    let (errors, warnings) = discovery_failures(&discovered, filters);
    let mut lister = Lister {
        cluster,
        filters,
        resources: discovered.resources.iter().filter(|r| r.restorable()).collect(),
        sink,
        out: Collected {
            errors,
            warnings,
            ..Collected::default()
        },
        needed: Needed::default(),
        terminating: BTreeSet::new(),
    };
    lister.namespaces().await?;
    // The same resource may be served by two groups (events, events.k8s.io):
    // both are kept, as their paths differ.
    let namespaced: Vec<&Resource> = lister
        .resources
        .iter()
        .copied()
        .filter(|r| r.namespaced && filters.resource_selected(&names(r)))
        .collect();
    for r in namespaced {
        lister.namespaced(r).await?;
    }
    lister.namespaced_needs().await?;
    let everything = match filters.cluster_resources {
        ClusterResources::True => true,
        ClusterResources::False => false,
        ClusterResources::Auto => filters.all_namespaces() && filters.selector.is_none(),
    };
    let mut cluster_types: Vec<(&Resource, Take)> = lister
        .resources
        .iter()
        .copied()
        .filter(|r| !r.namespaced && !filters.resource_excluded(&names(r)))
        .filter(|r| !(r.group.is_empty() && r.plural == "namespaces"))
        .filter_map(|r| {
            let selected = filters.resource_selected(&names(r));
            match filters.cluster_resources {
                ClusterResources::False => None,
                _ if selected && (everything || filters.resource_named(&names(r))) => Some((r, Take::All)),
                _ if selected || needable(&r.group, &r.plural) => Some((r, Take::Needed)),
                _ => None,
            }
        })
        .collect();
    cluster_types.sort_by_key(|(r, _)| cluster_rank(r));
    for (r, take) in cluster_types {
        lister.cluster_scoped(r, take).await?;
    }
    Ok(lister.out)
}

/// [`collect`] into memory: the objects, sorted by path, and the rest.
/// For tests and benchmarks; a backup streams them (see
/// [`super::run::backup_manifests`]).
pub async fn collect_files(cluster: &Cluster, filters: &Filters) -> Result<(Collected, Vec<MemoryFile>), K8sError> {
    let (sink, mut objects) = tokio::sync::mpsc::channel(PAGE as usize);
    let receive = async {
        let mut files = Vec::new();
        while let Some(file) = objects.recv().await {
            files.push(file);
        }
        files
    };
    let (collected, mut files) = tokio::join!(collect(cluster, filters, sink), receive);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((collected?, files))
}
