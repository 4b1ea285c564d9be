//! Restoring objects into a cluster: filter, order, rewrite, create (or
//! update what exists), and report per object.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::Value;

use super::attempts::{attempt, lost, Unanswered};
use super::claims::{self, ClaimPlan};
use super::discovery::{discover, qualified, Discovered};
use super::existing::{is_merged, merge_service_account, replace};
use super::filter::Filters;
use super::modifiers::{Modifiers, Target};
use super::namespaces::{never_went, terminating, wait_gone};
use super::normalise::ObjectPath;
use super::order::{is_builtin_group, Order};
use super::owners::{self, api_resource, ident_of, Ident, Links, Owners, Waiting};
pub use super::report::{Counts, ObjectResult, Outcome, Report};
pub use super::segment::{path_segment, path_segment_problem};
use super::select::{names_of, select};
use super::stored::StoredObject;
use super::tokens;
use super::transform::{is_workload, skip_reason, transform, Rewrite};
use super::versions::Versions;
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
    /// Storage class and image mappings, and patch rules.
    pub modifiers: Modifiers,
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
    /// Owner references: who is restored, new uids, who waits for them.
    links: Links,
    /// Token Secrets (namespace, name) the cluster generated.
    tokens: BTreeSet<(String, String)>,
    /// Claims (namespace as restored, name) provisioned anew, and the
    /// Released volumes to make bindable for theirs.
    claims: ClaimPlan,
    report: Report,
    /// A request of the object being restored got no answer.
    lost_now: Option<kube::Error>,
    /// Versions no longer served: what is done with objects stored at them.
    versions: Versions,
}

impl Restorer<'_> {
    /// Notes a request of the current object that got no answer, and says
    /// so for its report line.
    fn lost(&mut self, e: kube::Error) -> String {
        let why = format!("no answer from the API server: {}", chain(&e));
        self.lost_now = Some(e);
        why
    }

    fn api(&self, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        owners::api(self.cluster, ar, namespace)
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
    /// `Some(why)` when the namespace could not be made sure of (the server
    /// did not answer, or it was being deleted and did not go in time): the
    /// object then fails without a try.
    async fn ensure_namespace(&mut self, ns: &str) -> Option<String> {
        if let Some(why) = self.doomed.get(ns) {
            return Some(why.clone());
        }
        if self.namespaces.contains(ns) {
            return None;
        }
        let ar = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Namespace".into(),
            plural: "namespaces".into(),
        };
        let api = self.api(&ar, None);
        let segment = path_segment(ns);
        let post = PostParams::default();
        let mut found = api.get_opt(&segment).await;
        if matches!(&found, Ok(Some(live)) if terminating(live)) && !self.opts.dry_run {
            if let Some(why) = self.namespace_gone(&api, ns).await {
                return Some(why);
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
                    match attempt(|| api.create(&post, &obj)).await.result {
                        Ok(_) => Outcome::Created,
                        Err(e) if status_code(&e) == Some(409) => Outcome::Skipped("already exists".into()),
                        Err(e) if lost(&e) => {
                            let why = self.lost(e);
                            self.push("namespaces".into(), None, ns.to_owned(), Outcome::Failed(why.clone()));
                            return Some(format!("namespace {ns} could not be created: {why}"));
                        }
                        Err(e) => Outcome::Failed(describe(&e)),
                    }
                };
                self.push("namespaces".into(), None, ns.to_owned(), outcome);
            }
            Err(e) if lost(&e) => return Some(format!("namespace {ns} could not be read: {}", self.lost(e))),
            // Not allowed to read it: creating objects in it will tell.
            Err(_) => {}
        }
        self.namespaces.insert(ns.to_owned());
        None
    }

    /// Makes a Released volume bindable for the claim restored (once).
    async fn release_volume(&mut self, volume: String) -> (String, Outcome) {
        self.claims.release.remove(&volume);
        if self.opts.dry_run {
            return (volume, Outcome::WouldUpdate);
        }
        match claims::release(&self.cluster.client, &path_segment(&volume)).await {
            Ok(()) => (volume, Outcome::Updated),
            Err(e) if lost(&e) => {
                let why = self.lost(e);
                (volume, Outcome::Failed(why))
            }
            Err(e) => {
                let why = format!("it is Released and making it bindable failed: {}", describe(&e));
                (volume, Outcome::Failed(why))
            }
        }
    }

    /// Waits for a terminating namespace to go: None once it is gone,
    /// else why its objects fail (it was still there after the timeout,
    /// and is doomed, or the server did not answer).
    async fn namespace_gone(&mut self, api: &Api<DynamicObject>, ns: &str) -> Option<String> {
        let timeout = self.opts.namespace_timeout;
        match wait_gone(api, &path_segment(ns), timeout).await {
            Ok(true) => None,
            Ok(false) => {
                let why = never_went(ns, timeout);
                self.doomed.insert(ns.to_owned(), why.clone());
                Some(why)
            }
            Err(e) if lost(&e) => Some(format!("namespace {ns} could not be read: {}", self.lost(e))),
            // Not allowed to read it: creating objects in it will tell.
            Err(_) => None,
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
                let crd = match api.get_opt(name).await {
                    Ok(crd) => crd,
                    Err(e) => {
                        self.report.warnings.push(format!(
                            "customresourcedefinition {name}: cannot tell whether it is established: {}",
                            describe(&e)
                        ));
                        break;
                    }
                };
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
        &mut self,
        api: &Api<DynamicObject>,
        at: &ObjectPath,
        name: &str,
        dynamic: &DynamicObject,
    ) -> Outcome {
        let merged = is_merged(&at.group, &at.plural);
        if !merged && self.opts.policy == ExistingPolicy::None {
            return Outcome::Skipped("already exists".into());
        }
        let desired = match serde_json::to_value(dynamic) {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(format!("not an object: {e}")),
        };
        if tokens::is_token_secret(at, &desired) {
            // Replaced, it would lose the token the cluster gave it.
            return Outcome::Skipped("already exists (its token is the cluster's)".into());
        }
        let segment = path_segment(name);
        let result = if merged {
            merge_service_account(api, &segment, &desired, self.opts.dry_run).await
        } else {
            replace(api, &segment, &at.group, &at.plural, &desired).await
        };
        let what = if merged { "merging into" } else { "updating" };
        match result {
            Ok(outcome) => outcome,
            Err(e) if lost(&e) => Outcome::Failed(self.lost(e)),
            Err(e) => Outcome::Failed(format!("exists, and {what} it failed: {}", describe(&e))),
        }
    }

    /// Whether the object `name` exists labelled with this restore's name.
    async fn created_by_this_restore(&self, api: &Api<DynamicObject>, name: &str) -> bool {
        owners::restored_by(api, name, &self.opts.rewrite.restore)
            .await
            .unwrap_or(false)
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
        if let Some(why) = self.links.plan.recreated(&stored.at, &object) {
            self.push(resource, namespace, name, Outcome::Skipped(why));
            return Ok(None);
        }
        let me = ident_of(&stored.at, &object);
        let owner_refs = self.links.plan.kept(&stored.at, &object);
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
        // Stored at a version no longer served: converted, or failed.
        let stored_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        let (g, p) = (&stored.at.group, &stored.at.plural);
        match self
            .versions
            .resolve(self.cluster, &self.discovered, g, p, &stored_version)
            .await
        {
            Ok((Ok(None), _)) => {}
            Ok((Ok(Some(to)), first)) => {
                let (from, to) = (format!("{g}/{stored_version}"), format!("{g}/{to}"));
                if first {
                    self.report.warnings.push(format!(
                        "{resource}: stored at {from}, which the cluster no longer serves; created at {to}, whose schema is the same"
                    ));
                }
                object["apiVersion"] = Value::String(to);
            }
            Ok((Err(why), _)) => {
                self.push(resource, namespace, name, Outcome::Failed(why));
                return Ok(None);
            }
            Err(e) => {
                let why = if lost(&e) {
                    self.lost(e)
                } else {
                    format!("reading its definition failed: {}", describe(&e))
                };
                self.push(resource, namespace, name, Outcome::Failed(why));
                return Ok(None);
            }
        }
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
        let mut waits = false;
        if !self.opts.dry_run && !owner_refs.is_empty() {
            let found = self
                .links
                .look_up(self.cluster, &self.discovered, &self.opts.rewrite, &owner_refs)
                .await;
            if let Err(e) = found {
                let why = if lost(&e) {
                    self.lost(e)
                } else {
                    format!("reading its owners failed: {}", describe(&e))
                };
                self.push(resource, namespace, name, Outcome::Failed(why));
                return Ok(None);
            }
            let (refs, later) = self.links.resolved(&owner_refs);
            waits = later;
            if !refs.is_empty() {
                object["metadata"]["ownerReferences"] = Value::Array(refs);
            }
        }
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
                let (volume, outcome) = self.release_volume(volume.to_owned()).await;
                self.push("persistentvolumes".into(), None, volume, outcome);
            }
        }
        if is_volume && self.claims.release.contains(&name) {
            let (name, outcome) = self.release_volume(name).await;
            self.push(resource, namespace, name, outcome);
            return Ok(None);
        }
        let target = Target {
            group: &stored.at.group,
            plural: &stored.at.plural,
            namespace: namespace.as_deref(),
            name: &name,
        };
        if let Err(why) = self.opts.modifiers.apply(target, &mut object) {
            self.push(resource, namespace, name, Outcome::Failed(why));
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
            if let Some(why) = self.ensure_namespace(ns).await {
                self.push(resource, namespace.clone(), name, Outcome::Failed(why));
                return Ok(None);
            }
        }
        if is_namespace {
            let api = self.api(&ar, None);
            let live = match api.get_opt(&path_segment(&name)).await {
                Ok(live) => live,
                Err(e) if lost(&e) => {
                    let why = self.lost(e);
                    self.push(resource, namespace, name, Outcome::Failed(why));
                    return Ok(None);
                }
                Err(_) => None,
            };
            if live.as_ref().is_some_and(terminating) && self.opts.dry_run {
                // The restore would wait for it to go, then create it.
                self.namespaces.insert(name.clone());
                self.push(resource, namespace, name, Outcome::WouldCreate);
                return Ok(None);
            }
            if live.as_ref().is_some_and(terminating) {
                if let Some(why) = self.namespace_gone(&api, &name).await {
                    self.push(resource, namespace, name, Outcome::Failed(why));
                    return Ok(None);
                }
            }
        }
        let api = self.api(&ar, namespace.as_deref());
        let mut uid = None;
        let segment = path_segment(&name);
        let post = PostParams::default();
        let outcome = if self.opts.dry_run {
            match api.get_opt(&segment).await {
                Ok(None) => Outcome::WouldCreate,
                Ok(Some(_)) if is_merged(&stored.at.group, &stored.at.plural) => {
                    self.existing(&api, &stored.at, &name, &dynamic).await
                }
                Ok(Some(_)) if self.opts.policy == ExistingPolicy::Update => Outcome::WouldUpdate,
                Ok(Some(_)) => Outcome::Skipped("already exists".into()),
                Err(e) if lost(&e) => Outcome::Failed(self.lost(e)),
                Err(e) => Outcome::Failed(describe(&e)),
            }
        } else {
            let created = attempt(|| api.create(&post, &dynamic)).await;
            match created.result {
                Ok(created) => {
                    uid = created.metadata.uid;
                    Outcome::Created
                }
                // An earlier try that got no answer (or a server error)
                // may have created it: then it carries this restore's label.
                Err(e)
                    if status_code(&e) == Some(409)
                        && created.retried
                        && self.created_by_this_restore(&api, &name).await =>
                {
                    Outcome::Created
                }
                Err(e) if status_code(&e) == Some(409) => self.existing(&api, &stored.at, &name, &dynamic).await,
                Err(e) if lost(&e) => Outcome::Failed(self.lost(e)),
                Err(e) => Outcome::Failed(describe(&e)),
            }
        };
        let created_definition = matches!(outcome, Outcome::Created | Outcome::Updated)
            && stored.at.group == "apiextensions.k8s.io"
            && stored.at.plural == "customresourcedefinitions";
        if is_namespace && !matches!(outcome, Outcome::Failed(_)) {
            self.namespaces.insert(name.clone());
        }
        if !self.opts.dry_run && !matches!(outcome, Outcome::Failed(_)) {
            if waits && matches!(outcome, Outcome::Created | Outcome::Updated) {
                self.links.wait(Waiting {
                    ar: ar.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    refs: owner_refs,
                    earlier: false,
                });
            }
            let ready = self
                .links
                .owner_ready(
                    self.cluster,
                    &ar,
                    &me,
                    namespace.as_deref(),
                    uid,
                    &self.opts.rewrite.restore,
                )
                .await;
            match ready {
                Ok(warnings) => self.report.warnings.extend(warnings),
                Err(e) => self.report.warnings.push(format!(
                    "owner references to {resource} {name} were not set: {}",
                    chain(&e)
                )),
            }
        }
        self.push(resource, namespace, name.clone(), outcome);
        Ok(created_definition.then_some(name))
    }
}

/// Restores `objects` into the cluster.
pub async fn restore(cluster: &Cluster, objects: Vec<StoredObject>, opts: &RestoreOptions) -> Result<Report, K8sError> {
    let discovered = discover(cluster).await?;
    let generated_tokens = tokens::generated(&objects);
    let versions = Versions::new(&objects);
    let selected = select(objects, &discovered, &opts.filters);
    // Owners are decided on the whole selection, whichever pass this is.
    let plan = Owners::new(
        selected
            .iter()
            .map(|o| (&o.at, &o.object, skip_reason(&o.at, &o.object).is_some())),
    );
    // The volumes of claims provisioned anew are not restored.
    let fresh_volumes: BTreeSet<String> = selected
        .iter()
        .filter(|o| o.at.group.is_empty() && o.at.plural == "persistentvolumeclaims")
        .filter(|o| opts.rewrite.is_fresh_claim(&o.at))
        .filter_map(|o| o.object.pointer("/spec/volumeName").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let (mut selected, other_pass): (Vec<StoredObject>, Vec<StoredObject>) = selected
        .into_iter()
        .partition(|o| opts.pass.keeps(&o.at.group, &o.at.plural));
    selected.retain(|o| {
        !(o.at.group.is_empty() && o.at.plural == "persistentvolumes" && fresh_volumes.contains(&o.at.name))
    });
    let in_pass: BTreeSet<Ident> = selected.iter().map(|o| ident_of(&o.at, &o.object)).collect();
    let mut links = Links::new(plan, in_pass);
    if opts.pass == Pass::Workloads {
        // What the first pass restored waits for its owners among the
        // workloads (a claim of a StatefulSet).
        for o in &other_pass {
            if skip_reason(&o.at, &o.object).is_some() || links.plan.recreated(&o.at, &o.object).is_some() {
                continue;
            }
            let refs = links.plan.kept(&o.at, &o.object);
            let Some(ar) = api_resource(&discovered, &o.at) else {
                continue;
            };
            if refs.iter().any(|(owner, _)| links.in_pass.contains(owner)) {
                links.wait(Waiting {
                    ar,
                    namespace: o
                        .at
                        .namespace
                        .as_deref()
                        .map(|ns| opts.rewrite.namespace(ns).to_owned()),
                    name: o.at.name.clone(),
                    refs,
                    earlier: true,
                });
            }
        }
    }
    drop(other_pass);
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
            if opts.rewrite.is_fresh_claim(&o.at) {
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
        links,
        tokens: generated_tokens,
        doomed: BTreeMap::new(),
        claims: claim_plan,
        lost_now: None,
        versions,
    };
    let mut pending_definitions: Vec<String> = Vec::new();
    let total = selected.len();
    let mut unanswered = Unanswered::default();
    for (handled, stored) in selected.into_iter().enumerate() {
        let is_definition =
            stored.at.group == "apiextensions.k8s.io" && stored.at.plural == "customresourcedefinitions";
        if !is_definition && !pending_definitions.is_empty() {
            restorer.settle_definitions(&pending_definitions).await?;
            pending_definitions.clear();
        }
        restorer.lost_now = None;
        if let Some(name) = restorer.one(stored).await? {
            pending_definitions.push(name);
        }
        let lost = restorer.lost_now.take();
        let last = restorer.report.results.last();
        if let Some(gone) = unanswered.note(lost, last, handled + 1, total, &restorer.cluster.server) {
            return Err(gone);
        }
    }
    restorer.settle_definitions(&pending_definitions).await?;
    Ok(restorer.report)
}
