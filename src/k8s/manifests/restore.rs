//! Restoring objects into a cluster: filter, order, rewrite, create (or
//! update what exists), and report per object.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde::Serialize;
use serde_json::Value;

use super::claims::{self, ClaimPlan};
use super::discovery::{discover, qualified, Discovered};
use super::existing::{is_merged, merge_service_account, replace};
use super::filter::{excluded_by_label, needable, ClusterResources, Filters, ResourceNames};
use super::namespaces::{never_went, terminating, wait_gone};
use super::normalise::ObjectPath;
use super::order::{is_builtin_group, Order};
use super::stored::StoredObject;
use super::tokens;
use super::transform::{is_workload, skip_reason, transform, Rewrite};
use crate::k8s::client::{chain, describe, status_code, Cluster};
use crate::k8s::K8sError;

/// What to do with an object that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingPolicy {
    /// Leave it as it is (reported as skipped).
    #[default]
    None,
    /// Put the backed-up object in its place (fields added since are
    /// removed; what the server owns is kept: see
    /// [`super::existing::replacement`]).
    Update,
}

impl std::str::FromStr for ExistingPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "update" => Ok(Self::Update),
            _ => Err(format!("{s:?} is not one of none, update")),
        }
    }
}

/// How a restore runs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub filters: Filters,
    pub rewrite: Rewrite,
    pub policy: ExistingPolicy,
    pub dry_run: bool,
    pub order: Order,
    /// How long to wait for a created CustomResourceDefinition to be
    /// established.
    pub crd_timeout: Duration,
    /// How long to wait for a namespace being deleted to go before it is
    /// created again.
    pub namespace_timeout: Duration,
    /// Which objects of the selection this pass restores.
    pub pass: Pass,
}

/// A restore in one pass, or in two around the restore of volume data:
/// first everything but the workloads (the claims among it), then the
/// workloads, whose pods then find their data in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pass {
    #[default]
    All,
    /// Everything but the workloads ([`super::transform::WORKLOADS`]).
    WithoutWorkloads,
    /// The workloads only.
    Workloads,
}

impl Pass {
    fn keeps(self, group: &str, plural: &str) -> bool {
        match self {
            Self::All => true,
            Self::WithoutWorkloads => !is_workload(group, plural),
            Self::Workloads => is_workload(group, plural),
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    /// Merged into the object the cluster made (a ServiceAccount): what
    /// was added.
    Merged(String),
    Skipped(String),
    Failed(String),
    /// Dry run: would be created.
    WouldCreate,
    /// Dry run: exists and would be updated.
    WouldUpdate,
    /// Dry run: exists and would be merged into.
    WouldMerge,
}

/// One object's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// `deployments.apps`
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Counts for one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub merged: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// The result of a restore, in the order the objects were handled.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub results: Vec<ObjectResult>,
    /// Problems that concern no single object (a definition that never
    /// became established, an API group that could not be discovered).
    pub warnings: Vec<String>,
}

impl Report {
    /// Counts per resource (dry-run outcomes count as what they would be).
    pub fn counts(&self) -> BTreeMap<String, Counts> {
        let mut out: BTreeMap<String, Counts> = BTreeMap::new();
        for r in &self.results {
            let c = out.entry(r.resource.clone()).or_default();
            match r.outcome {
                Outcome::Created | Outcome::WouldCreate => c.created += 1,
                Outcome::Updated | Outcome::WouldUpdate => c.updated += 1,
                Outcome::Merged(_) | Outcome::WouldMerge => c.merged += 1,
                Outcome::Skipped(_) => c.skipped += 1,
                Outcome::Failed(_) => c.failed += 1,
            }
        }
        out
    }

    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .count()
    }
}

/// The names of a stored object's resource, from the cluster's discovery
/// when it serves the resource.
fn names_of<'a>(discovered: &'a Discovered, o: &'a StoredObject) -> ResourceNames<'a> {
    match discovered.find(&o.at.group, &o.at.plural) {
        Some(r) => ResourceNames {
            group: &r.group,
            plural: &r.plural,
            singular: &r.singular,
            kind: &r.kind,
            short_names: &r.short_names,
        },
        None => ResourceNames {
            group: &o.at.group,
            plural: &o.at.plural,
            singular: "",
            kind: o.object.get("kind").and_then(Value::as_str).unwrap_or(""),
            short_names: &[],
        },
    }
}

/// The objects the filters select.
fn select(objects: Vec<StoredObject>, discovered: &Discovered, filters: &Filters) -> Vec<StoredObject> {
    let (namespaced, mut cluster): (Vec<StoredObject>, Vec<StoredObject>) = objects
        .into_iter()
        .filter(|o| !excluded_by_label(&o.object) && !filters.resource_excluded(&names_of(discovered, o)))
        .partition(|o| o.at.namespace.is_some());
    let namespaced: Vec<StoredObject> = namespaced
        .into_iter()
        .filter(|o| {
            filters.resource_selected(&names_of(discovered, o))
                && o.at
                    .namespace
                    .as_deref()
                    .is_some_and(|ns| filters.namespace_selected(ns))
                && filters.label_selected(&o.object)
        })
        .collect();
    let everything = match filters.cluster_resources {
        ClusterResources::True => true,
        ClusterResources::False => false,
        ClusterResources::Auto => filters.all_namespaces() && filters.selector.is_none(),
    };
    // What the selected namespaced objects need, in `auto` mode.
    let mut needed: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut need = |g: &str, p: &str, n: &str| {
        if !n.is_empty() {
            needed.insert((g.to_owned(), p.to_owned(), n.to_owned()));
        }
    };
    let rbac = "rbac.authorization.k8s.io";
    for o in &namespaced {
        let s = |p: &str| o.object.pointer(p).and_then(Value::as_str).unwrap_or("");
        if !o.at.group.is_empty() {
            need(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                &qualified(&o.at.group, &o.at.plural),
            );
        }
        if o.at.group.is_empty() && o.at.plural == "persistentvolumeclaims" {
            need("", "persistentvolumes", s("/spec/volumeName"));
            need("storage.k8s.io", "storageclasses", s("/spec/storageClassName"));
        }
        if o.at.group == rbac && o.at.plural == "rolebindings" && s("/roleRef/kind") == "ClusterRole" {
            need(rbac, "clusterroles", s("/roleRef/name"));
        }
    }
    for o in &cluster {
        let grants_selected = o
            .object
            .get("subjects")
            .and_then(Value::as_array)
            .is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                        && s.get("namespace")
                            .and_then(Value::as_str)
                            .is_some_and(|ns| filters.namespace_selected(ns))
                })
            });
        if o.at.group == rbac && o.at.plural == "clusterrolebindings" && grants_selected {
            need(rbac, "clusterrolebindings", &o.at.name);
            let role = o.object.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
            need(rbac, "clusterroles", role);
        }
    }
    cluster.retain(|o| {
        if o.at.group.is_empty() && o.at.plural == "namespaces" {
            return filters.namespace_selected(&o.at.name);
        }
        let names = names_of(discovered, o);
        let selected = filters.resource_selected(&names);
        let wanted = needed.contains(&(o.at.group.clone(), o.at.plural.clone(), o.at.name.clone()));
        match filters.cluster_resources {
            ClusterResources::False => false,
            _ if selected && (everything || filters.resource_named(&names)) => filters.label_selected(&o.object),
            _ => wanted && (selected || needable(&o.at.group, &o.at.plural)),
        }
    });
    cluster.extend(namespaced);
    cluster
}

struct Restorer<'a> {
    cluster: &'a Cluster,
    opts: &'a RestoreOptions,
    discovered: Discovered,
    /// (group, plural) of the custom resources whose definitions are restored.
    definitions: BTreeSet<(String, String)>,
    /// Namespaces known to exist (or, in a dry run, to be created).
    namespaces: BTreeSet<String>,
    /// Namespaces that were being deleted and did not go in time, with
    /// the reason each of their objects fails.
    doomed: BTreeMap<String, String>,
    /// Token Secrets (namespace, name) the cluster generated.
    tokens: BTreeSet<(String, String)>,
    /// Claims (namespace as restored, name) provisioned anew, and the
    /// Released volumes to make bindable for theirs.
    claims: ClaimPlan,
    report: Report,
}

/// Whether a failed request means the server is gone (as opposed to the
/// server refusing the object).
fn lost(e: &kube::Error) -> bool {
    !matches!(e, kube::Error::Api(_) | kube::Error::SerdeError(_))
}

impl Restorer<'_> {
    fn unreachable(&self, what: &str, e: kube::Error) -> K8sError {
        K8sError::Unreachable {
            server: self.cluster.server.clone(),
            reason: format!("{what}: {}", chain(&e)),
            source: Box::new(e),
        }
    }

    fn api(&self, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.cluster.client.clone(), &path_segment(ns), ar),
            None => Api::all_with(self.cluster.client.clone(), ar),
        }
    }

    fn push(&mut self, resource: String, namespace: Option<String>, name: String, outcome: Outcome) {
        self.report.results.push(ObjectResult {
            resource,
            namespace,
            name,
            outcome,
        });
    }

    /// Makes sure a namespace exists before objects go into it (a bare one
    /// is created when the backup does not hold it, or it was filtered out).
    async fn ensure_namespace(&mut self, ns: &str) -> Result<(), K8sError> {
        if self.namespaces.contains(ns) || self.doomed.contains_key(ns) {
            return Ok(());
        }
        let ar = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Namespace".into(),
            plural: "namespaces".into(),
        };
        let api = self.api(&ar, None);
        let mut found = api.get_opt(&path_segment(ns)).await;
        if matches!(&found, Ok(Some(live)) if terminating(live)) && !self.opts.dry_run {
            if !self.namespace_gone(&api, ns).await? {
                return Ok(());
            }
            found = Ok(None);
        }
        match found {
            Ok(Some(_)) => {}
            Ok(None) => {
                let outcome = if self.opts.dry_run {
                    Outcome::WouldCreate
                } else {
                    let mut obj = DynamicObject::new(ns, &ar);
                    obj.metadata.labels = Some(
                        [
                            (
                                crate::k8s::SNAPSHOT_LABEL.to_owned(),
                                self.opts.rewrite.snapshot.clone(),
                            ),
                            (crate::k8s::RESTORE_LABEL.to_owned(), self.opts.rewrite.restore.clone()),
                        ]
                        .into(),
                    );
                    match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => Outcome::Created,
                        Err(e) if status_code(&e) == Some(409) => Outcome::Skipped("already exists".into()),
                        Err(e) if lost(&e) => return Err(self.unreachable(&format!("creating namespace {ns}"), e)),
                        Err(e) => Outcome::Failed(describe(&e)),
                    }
                };
                self.push("namespaces".into(), None, ns.to_owned(), outcome);
            }
            Err(e) if lost(&e) => return Err(self.unreachable(&format!("reading namespace {ns}"), e)),
            // Not allowed to read it: creating objects in it will tell.
            Err(_) => {}
        }
        self.namespaces.insert(ns.to_owned());
        Ok(())
    }

    /// Makes a Released volume bindable for the claim restored (once).
    async fn release_volume(&mut self, volume: String) -> Result<(String, Outcome), K8sError> {
        self.claims.release.remove(&volume);
        if self.opts.dry_run {
            return Ok((volume, Outcome::WouldUpdate));
        }
        match claims::release(&self.cluster.client, &path_segment(&volume)).await {
            Ok(()) => Ok((volume, Outcome::Updated)),
            Err(e) if lost(&e) => Err(self.unreachable(&format!("releasing persistentvolume {volume}"), e)),
            Err(e) => {
                let why = format!("it is Released and making it bindable failed: {}", describe(&e));
                Ok((volume, Outcome::Failed(why)))
            }
        }
    }

    /// Waits for a terminating namespace to go; false (and the namespace
    /// doomed) when it is still there after the timeout.
    async fn namespace_gone(&mut self, api: &Api<DynamicObject>, ns: &str) -> Result<bool, K8sError> {
        let timeout = self.opts.namespace_timeout;
        match wait_gone(api, &path_segment(ns), timeout).await {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.doomed.insert(ns.to_owned(), never_went(ns, timeout));
                Ok(false)
            }
            Err(e) if lost(&e) => Err(self.unreachable(&format!("reading namespace {ns}"), e)),
            // Not allowed to read it: creating objects in it will tell.
            Err(_) => Ok(true),
        }
    }

    /// Waits until the definitions just created are established, then asks
    /// the cluster again what it serves.
    async fn settle_definitions(&mut self, names: &[String]) -> Result<(), K8sError> {
        if names.is_empty() {
            return Ok(());
        }
        let ar = ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        };
        let api = self.api(&ar, None);
        for name in names {
            let deadline = Instant::now() + self.opts.crd_timeout;
            loop {
                let crd = api
                    .get_opt(name)
                    .await
                    .map_err(|e| self.unreachable(&format!("reading customresourcedefinition {name}"), e))?;
                let established = crd.as_ref().is_some_and(|crd| {
                    crd.data
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .is_some_and(|cs| {
                            cs.iter().any(|c| {
                                c.get("type").and_then(Value::as_str) == Some("Established")
                                    && c.get("status").and_then(Value::as_str) == Some("True")
                            })
                        })
                });
                if established {
                    break;
                }
                if Instant::now() >= deadline {
                    self.report.warnings.push(format!(
                        "customresourcedefinition {name} was not established within {:?}",
                        self.opts.crd_timeout
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let again = discover(self.cluster).await?;
        self.discovered = again;
        Ok(())
    }

    /// What becomes of an object that exists: merged into (service
    /// accounts), left alone or replaced by the policy.
    async fn existing(
        &self,
        api: &Api<DynamicObject>,
        at: &ObjectPath,
        resource: &str,
        name: &str,
        dynamic: &DynamicObject,
    ) -> Result<Outcome, K8sError> {
        let merged = is_merged(&at.group, &at.plural);
        if !merged && self.opts.policy == ExistingPolicy::None {
            return Ok(Outcome::Skipped("already exists".into()));
        }
        let desired = match serde_json::to_value(dynamic) {
            Ok(v) => v,
            Err(e) => return Ok(Outcome::Failed(format!("not an object: {e}"))),
        };
        if tokens::is_token_secret(at, &desired) {
            // Replaced, it would lose the token the cluster gave it.
            return Ok(Outcome::Skipped("already exists (its token is the cluster's)".into()));
        }
        let segment = path_segment(name);
        let result = if merged {
            merge_service_account(api, &segment, &desired, self.opts.dry_run).await
        } else {
            replace(api, &segment, &at.group, &at.plural, &desired).await
        };
        let what = if merged { "merging into" } else { "updating" };
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) if lost(&e) => Err(self.unreachable(&format!("{what} {resource} {name}"), e)),
            Err(e) => Ok(Outcome::Failed(format!(
                "exists, and {what} it failed: {}",
                describe(&e)
            ))),
        }
    }

    /// Creates (or updates, or plans) one object.
    async fn one(&mut self, stored: StoredObject) -> Result<Option<String>, K8sError> {
        let resource = qualified(&stored.at.group, &stored.at.plural);
        let namespace = stored
            .at
            .namespace
            .as_deref()
            .map(|ns| self.opts.rewrite.namespace(ns).to_owned());
        let mut object = stored.object;
        let is_namespace = stored.at.group.is_empty() && stored.at.plural == "namespaces";
        let name = if is_namespace {
            self.opts.rewrite.namespace(&stored.at.name).to_owned()
        } else {
            stored.at.name.clone()
        };
        if let Some(why) =
            skip_reason(&stored.at, &object).or_else(|| tokens::skip_reason(&stored.at, &object, &self.tokens))
        {
            self.push(resource, namespace, name, Outcome::Skipped(why));
            return Ok(None);
        }
        // Names come from the snapshot: one that is no path segment would
        // address another object; nothing is sent for it.
        let bad_name = [("name", Some(name.as_str())), ("namespace", namespace.as_deref())]
            .into_iter()
            .find_map(|(what, v)| Some((what, v?, path_segment_problem(v?)?)));
        if let Some((what, value, problem)) = bad_name {
            let why = format!("{what} {value:?} cannot name an object: {problem}");
            self.push(resource, namespace, name, Outcome::Failed(why));
            return Ok(None);
        }
        let Some(served) = self.discovered.find(&stored.at.group, &stored.at.plural) else {
            let defined = self
                .definitions
                .contains(&(stored.at.group.clone(), stored.at.plural.clone()));
            if self.opts.dry_run && defined {
                // Its definition would be created first.
                self.push(resource, namespace, name, Outcome::WouldCreate);
                return Ok(None);
            }
            let why = format!("the cluster does not serve {resource}");
            self.push(resource, namespace, name, Outcome::Failed(why));
            return Ok(None);
        };
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let version = api_version.rsplit('/').next().unwrap_or(&served.version).to_owned();
        let ar = ApiResource {
            group: stored.at.group.clone(),
            version: if version.is_empty() {
                served.version.clone()
            } else {
                version
            },
            api_version: if api_version.is_empty() {
                served.api_version()
            } else {
                api_version
            },
            kind: served.kind.clone(),
            plural: stored.at.plural.clone(),
        };
        transform(&stored.at, &mut object, &self.opts.rewrite);
        tokens::rewrite(&stored.at, &mut object, &self.tokens);
        let is_volume = stored.at.group.is_empty() && stored.at.plural == "persistentvolumes";
        let is_claim = stored.at.group.is_empty() && stored.at.plural == "persistentvolumeclaims";
        if is_claim {
            if let Some(ns) = &namespace {
                if self.claims.unbound.contains(&(ns.clone(), name.clone())) {
                    claims::unbind(&mut object);
                }
            }
            let volume = object.pointer("/spec/volumeName").and_then(Value::as_str).unwrap_or("");
            if self.claims.release.contains(volume) {
                let (volume, outcome) = self.release_volume(volume.to_owned()).await?;
                self.push("persistentvolumes".into(), None, volume, outcome);
            }
        }
        if is_volume && self.claims.release.contains(&name) {
            let (name, outcome) = self.release_volume(name).await?;
            self.push(resource, namespace, name, outcome);
            return Ok(None);
        }
        let dynamic: DynamicObject = match serde_json::from_value(object) {
            Ok(d) => d,
            Err(e) => {
                let why = format!("{}: not an object: {e}", stored.path);
                self.push(resource, namespace, name, Outcome::Failed(why));
                return Ok(None);
            }
        };
        if let Some(ns) = &namespace {
            self.ensure_namespace(ns).await?;
            if let Some(why) = self.doomed.get(ns) {
                let why = why.clone();
                self.push(resource, namespace, name, Outcome::Failed(why));
                return Ok(None);
            }
        }
        if is_namespace && !self.opts.dry_run {
            let api = self.api(&ar, None);
            let live = match api.get_opt(&path_segment(&name)).await {
                Ok(live) => live,
                Err(e) if lost(&e) => return Err(self.unreachable(&format!("reading namespace {name}"), e)),
                Err(_) => None,
            };
            if live.as_ref().is_some_and(terminating) && !self.namespace_gone(&api, &name).await? {
                let why = self.doomed.get(&name).cloned().unwrap_or_default();
                self.push(resource, namespace, name, Outcome::Failed(why));
                return Ok(None);
            }
        }
        let api = self.api(&ar, namespace.as_deref());
        let outcome = if self.opts.dry_run {
            match api.get_opt(&path_segment(&name)).await {
                Ok(None) => Outcome::WouldCreate,
                Ok(Some(_)) if is_merged(&stored.at.group, &stored.at.plural) => {
                    self.existing(&api, &stored.at, &resource, &name, &dynamic).await?
                }
                Ok(Some(_)) if self.opts.policy == ExistingPolicy::Update => Outcome::WouldUpdate,
                Ok(Some(_)) => Outcome::Skipped("already exists".into()),
                Err(e) if lost(&e) => return Err(self.unreachable(&format!("reading {resource} {name}"), e)),
                Err(e) => Outcome::Failed(describe(&e)),
            }
        } else {
            match api.create(&PostParams::default(), &dynamic).await {
                Ok(_) => Outcome::Created,
                Err(e) if status_code(&e) == Some(409) => {
                    self.existing(&api, &stored.at, &resource, &name, &dynamic).await?
                }
                Err(e) if lost(&e) => return Err(self.unreachable(&format!("creating {resource} {name}"), e)),
                Err(e) => Outcome::Failed(describe(&e)),
            }
        };
        let created_definition = matches!(outcome, Outcome::Created | Outcome::Updated)
            && stored.at.group == "apiextensions.k8s.io"
            && stored.at.plural == "customresourcedefinitions";
        if is_namespace && !matches!(outcome, Outcome::Failed(_)) {
            self.namespaces.insert(name.clone());
        }
        self.push(resource, namespace, name.clone(), outcome);
        Ok(created_definition.then_some(name))
    }
}

/// Restores `objects` into the cluster.
pub async fn restore(cluster: &Cluster, objects: Vec<StoredObject>, opts: &RestoreOptions) -> Result<Report, K8sError> {
    let discovered = discover(cluster).await?;
    let generated_tokens = tokens::generated(&objects);
    let mut selected = select(objects, &discovered, &opts.filters);
    // The volumes of claims provisioned anew are not restored.
    let fresh_volumes: BTreeSet<String> = selected
        .iter()
        .filter(|o| o.at.group.is_empty() && o.at.plural == "persistentvolumeclaims")
        .filter(|o| {
            o.at.namespace
                .as_ref()
                .is_some_and(|ns| opts.rewrite.fresh_claims.contains(&(ns.clone(), o.at.name.clone())))
        })
        .filter_map(|o| o.object.pointer("/spec/volumeName").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    selected.retain(|o| {
        opts.pass.keeps(&o.at.group, &o.at.plural)
            && !(o.at.group.is_empty() && o.at.plural == "persistentvolumes" && fresh_volumes.contains(&o.at.name))
    });
    // Custom resources: those whose definition is in the backup, and those
    // of groups Kubernetes does not define.
    let definitions: BTreeSet<(String, String)> = selected
        .iter()
        .filter(|o| o.at.group == "apiextensions.k8s.io" && o.at.plural == "customresourcedefinitions")
        .filter_map(|o| {
            let group = o.object.pointer("/spec/group")?.as_str()?;
            let plural = o.object.pointer("/spec/names/plural")?.as_str()?;
            Some((group.to_owned(), plural.to_owned()))
        })
        .collect();
    let rank = |o: &StoredObject| {
        let custom = definitions.contains(&(o.at.group.clone(), o.at.plural.clone())) || !is_builtin_group(&o.at.group);
        opts.order.rank(&names_of(&discovered, o), custom)
    };
    selected.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.path.cmp(&b.path)));
    tokens::after_accounts(&mut selected);
    let mut rewrite_volumes = opts.rewrite.restored_volumes.clone();
    rewrite_volumes.extend(
        selected
            .iter()
            .filter(|o| {
                o.at.group.is_empty() && o.at.plural == "persistentvolumes" && skip_reason(&o.at, &o.object).is_none()
            })
            .map(|o| o.at.name.clone()),
    );
    // Claims that name a volume, against the volumes of the cluster.
    let named: BTreeMap<(String, String), String> = selected
        .iter()
        .filter(|o| o.at.group.is_empty() && o.at.plural == "persistentvolumeclaims")
        .filter_map(|o| {
            let ns = o.at.namespace.as_ref()?;
            if opts.rewrite.fresh_claims.contains(&(ns.clone(), o.at.name.clone())) {
                return None;
            }
            let volume = o.object.pointer("/spec/volumeName")?.as_str()?;
            let key = (opts.rewrite.namespace(ns).to_owned(), o.at.name.clone());
            Some((key, volume.to_owned()))
        })
        .collect();
    let mut warnings = discovered.errors.clone();
    let claim_plan = match claims::plan(&cluster.client, &named, path_segment).await {
        Ok(plan) => plan,
        Err(e) if lost(&e) => {
            return Err(K8sError::Unreachable {
                server: cluster.server.clone(),
                reason: format!("reading persistent volumes: {}", chain(&e)),
                source: Box::new(e),
            })
        }
        Err(e) => {
            warnings.push(format!(
                "persistent volumes could not be read ({}): claims keep the volumes they name",
                describe(&e)
            ));
            ClaimPlan::default()
        }
    };
    rewrite_volumes.extend(claim_plan.kept.iter().cloned());
    let opts = RestoreOptions {
        rewrite: Rewrite {
            restored_volumes: rewrite_volumes,
            ..opts.rewrite.clone()
        },
        ..opts.clone()
    };
    let mut restorer = Restorer {
        cluster,
        opts: &opts,
        report: Report {
            warnings,
            ..Report::default()
        },
        discovered,
        definitions,
        namespaces: BTreeSet::new(),
        tokens: generated_tokens,
        doomed: BTreeMap::new(),
        claims: claim_plan,
    };
    let mut pending_definitions: Vec<String> = Vec::new();
    for stored in selected {
        let is_definition =
            stored.at.group == "apiextensions.k8s.io" && stored.at.plural == "customresourcedefinitions";
        if !is_definition && !pending_definitions.is_empty() {
            restorer.settle_definitions(&pending_definitions).await?;
            pending_definitions.clear();
        }
        if let Some(name) = restorer.one(stored).await? {
            pending_definitions.push(name);
        }
    }
    restorer.settle_definitions(&pending_definitions).await?;
    Ok(restorer.report)
}

/// Why `name` cannot be one segment of an API path, as the API server
/// rules (apimachinery's `IsValidPathSegmentName`): `.`, `..`, and names
/// with `/` or `%` would address something else. `None` when it can.
pub fn path_segment_problem(name: &str) -> Option<&'static str> {
    match name {
        "" => Some("it is empty"),
        "." | ".." => Some("it may not be '.' or '..'"),
        _ if name.contains('/') => Some("it may not contain '/'"),
        _ if name.contains('%') => Some("it may not contain '%'"),
        _ => None,
    }
}

/// `s` percent-encoded as one path segment: every byte but RFC 3986's
/// unreserved characters. kube puts names into request paths as they are.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_single_path_segments() {
        assert_eq!(path_segment("frontend-config.v1"), "frontend-config.v1");
        assert_eq!(path_segment("a?b#c d/e%f"), "a%3Fb%23c%20d%2Fe%25f");
        assert_eq!(path_segment("system:node"), "system%3Anode");
        for bad in ["", ".", "..", "a/b", "50%"] {
            assert!(path_segment_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["...", "a..b", "system:controller:x", "a?b"] {
            assert_eq!(path_segment_problem(good), None, "{good:?}");
        }
    }
}
