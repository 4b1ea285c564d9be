//! Owner references in a restore.
//!
//! An object whose controller is a built-in controller that recreates it
//! (a ReplicaSet of a Deployment, a Pod of a ReplicaSet, StatefulSet,
//! DaemonSet, Job or ReplicationController, a Job of a CronJob, an
//! EndpointSlice of a Service, a ControllerRevision of a StatefulSet or
//! DaemonSet) is left to that controller, but only when the owner is
//! restored too: otherwise nothing would recreate it. Every other object
//! keeps its owner references to owners that are restored, re-pointed at
//! their new uids; references to owners that are not restored are
//! removed (the garbage collector deletes an object all of whose owners
//! are gone).
//!
//! Objects are restored in resource order, and custom resources, which own
//! an operator's Secrets, ConfigMaps and claims, come late. So a dependent
//! is created before its owner with the references whose owners exist
//! already, and is patched with the others as each owner is created: the
//! order stays what the dependencies of creation need, and the operator
//! finds its objects in place when its custom resource appears.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{json, Value};

use super::discovery::Discovered;
use super::normalise::ObjectPath;
use super::restore::path_segment;
use super::transform::Rewrite;
use crate::k8s::client::{describe, Cluster};
use crate::k8s::RESTORE_LABEL;

/// (owner group, owner kind, dependent group, dependent plural): the
/// owners whose controllers make their dependents themselves.
const RECREATED: &[(&str, &str, &str, &str)] = &[
    ("apps", "Deployment", "apps", "replicasets"),
    ("apps", "ReplicaSet", "", "pods"),
    ("apps", "StatefulSet", "", "pods"),
    ("apps", "DaemonSet", "", "pods"),
    ("batch", "Job", "", "pods"),
    ("", "ReplicationController", "", "pods"),
    ("batch", "CronJob", "batch", "jobs"),
    ("", "Service", "discovery.k8s.io", "endpointslices"),
    ("apps", "StatefulSet", "apps", "controllerrevisions"),
    ("apps", "DaemonSet", "apps", "controllerrevisions"),
];

/// An object as owner references name it: group, kind, namespace (none
/// for cluster-scoped objects) and name, as backed up (before namespace
/// mapping).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ident {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// The identity of a stored object.
pub fn ident_of(at: &ObjectPath, object: &Value) -> Ident {
    Ident {
        group: at.group.clone(),
        kind: object.get("kind").and_then(Value::as_str).unwrap_or("").to_owned(),
        namespace: at.namespace.clone(),
        name: at.name.clone(),
    }
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn references(object: &Value) -> &[Value] {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn is_controller(reference: &Value) -> bool {
    reference.get("controller").and_then(Value::as_bool) == Some(true)
}

/// Which objects exist once the restore is done (restored, or recreated by
/// a restored owner), by identity.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    present: BTreeMap<Ident, ObjectPath>,
    /// Owners some present object refers to.
    wanted: BTreeSet<Ident>,
}

impl Owners {
    /// The plan for `objects`: the selection of a restore, each with
    /// whether a rule leaves it out whatever else is restored.
    pub fn new<'a>(objects: impl IntoIterator<Item = (&'a ObjectPath, &'a Value, bool)>) -> Self {
        let mut plan = Self::default();
        let mut dependents = Vec::new();
        for (at, object, skipped) in objects {
            if !skipped {
                plan.present.insert(ident_of(at, object), at.clone());
                dependents.push((at, object));
            }
        }
        let wanted: BTreeSet<Ident> = dependents
            .iter()
            .flat_map(|(at, object)| {
                references(object)
                    .iter()
                    .filter_map(|r| plan.find(at.namespace.as_deref(), r))
                    .collect::<Vec<_>>()
            })
            .collect();
        plan.wanted = wanted;
        plan
    }

    /// The present owner a reference of an object in `namespace` names: an
    /// object of that namespace, or a cluster-scoped one.
    fn find(&self, namespace: Option<&str>, reference: &Value) -> Option<Ident> {
        let s = |k: &str| reference.get(k).and_then(Value::as_str).unwrap_or("");
        let mut ident = Ident {
            group: group_of(s("apiVersion")).to_owned(),
            kind: s("kind").to_owned(),
            namespace: namespace.map(str::to_owned),
            name: s("name").to_owned(),
        };
        if self.present.contains_key(&ident) {
            return Some(ident);
        }
        ident.namespace = None;
        self.present.contains_key(&ident).then_some(ident)
    }

    /// Why an object is left to the built-in controller of its owner: that
    /// controller recreates it, and the owner is restored.
    pub fn recreated(&self, at: &ObjectPath, object: &Value) -> Option<String> {
        let controller = references(object).iter().find(|r| is_controller(r))?;
        let owner = self.find(at.namespace.as_deref(), controller)?;
        RECREATED
            .iter()
            .any(|(g, k, dg, dp)| *g == owner.group && *k == owner.kind && *dg == at.group && *dp == at.plural)
            .then(|| format!("owned by {owner}, which recreates it"))
    }

    /// The owner references of an object that survive the restore: those
    /// whose owner is restored, with the owner's identity.
    pub fn kept(&self, at: &ObjectPath, object: &Value) -> Vec<(Ident, Value)> {
        let me = ident_of(at, object);
        references(object)
            .iter()
            .filter_map(|r| Some((self.find(at.namespace.as_deref(), r)?, r.clone())))
            .filter(|(owner, _)| *owner != me)
            .collect()
    }

    /// Whether an object is the owner of some restored object.
    pub fn is_wanted(&self, ident: &Ident) -> bool {
        self.wanted.contains(ident)
    }

    /// Where a present object is stored.
    pub fn path_of(&self, ident: &Ident) -> Option<&ObjectPath> {
        self.present.get(ident)
    }
}

/// A reference re-pointed at its owner's new uid.
pub fn repoint(reference: &Value, uid: &str) -> Value {
    let mut r = reference.clone();
    r["uid"] = Value::String(uid.to_owned());
    r
}

/// A restored object that waits for owners created after it.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub ar: ApiResource,
    /// Its namespace in the cluster (after mapping).
    pub namespace: Option<String>,
    pub name: String,
    /// Its references to restored owners.
    pub refs: Vec<(Ident, Value)>,
    /// Restored by an earlier pass: patched only if it carries this
    /// restore's label (it may have existed before).
    pub earlier: bool,
}

/// The owner references of one restore (or of one pass of it): which
/// owners are restored, their new uids as they become known, and the
/// dependents waiting for them.
#[derive(Debug, Default)]
pub struct Links {
    pub plan: Owners,
    /// The objects this pass restores.
    pub in_pass: BTreeSet<Ident>,
    uids: BTreeMap<Ident, String>,
    waiting: Vec<Waiting>,
    /// Owners looked up in the cluster and not found there.
    missing: BTreeSet<Ident>,
}

/// The API resource of a stored object as the cluster serves it.
pub fn api_resource(discovered: &Discovered, at: &ObjectPath) -> Option<ApiResource> {
    let served = discovered.find(&at.group, &at.plural)?;
    Some(ApiResource {
        group: served.group.clone(),
        version: served.version.clone(),
        api_version: served.api_version(),
        kind: served.kind.clone(),
        plural: served.plural.clone(),
    })
}

pub(super) fn api(cluster: &Cluster, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(cluster.client.clone(), &path_segment(ns), ar),
        None => Api::all_with(cluster.client.clone(), ar),
    }
}

/// Whether the object `name` exists labelled as made by restore `restore`.
pub(super) async fn restored_by(api: &Api<DynamicObject>, name: &str, restore: &str) -> Result<bool, kube::Error> {
    Ok(api.get_opt(&path_segment(name)).await?.is_some_and(|o| {
        o.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(RESTORE_LABEL))
            .map(String::as_str)
            == Some(restore)
    }))
}

impl Links {
    pub fn new(plan: Owners, in_pass: BTreeSet<Ident>) -> Self {
        Self {
            plan,
            in_pass,
            ..Self::default()
        }
    }

    /// `refs` re-pointed at the uids known, and whether some owner of this
    /// pass is still to come.
    pub fn resolved(&self, refs: &[(Ident, Value)]) -> (Vec<Value>, bool) {
        let mut out = Vec::new();
        let mut waits = false;
        for (owner, reference) in refs {
            match self.uids.get(owner) {
                Some(uid) => out.push(repoint(reference, uid)),
                None => waits |= self.in_pass.contains(owner),
            }
        }
        (out, waits)
    }

    /// Looks up in the cluster the owners restored by another pass (or
    /// existing already) whose uids are not known yet.
    pub async fn look_up(
        &mut self,
        cluster: &Cluster,
        discovered: &Discovered,
        rewrite: &Rewrite,
        refs: &[(Ident, Value)],
    ) -> Result<(), kube::Error> {
        for (owner, _) in refs {
            if self.uids.contains_key(owner) || self.in_pass.contains(owner) || self.missing.contains(owner) {
                continue;
            }
            let Some(ar) = self.plan.path_of(owner).and_then(|at| api_resource(discovered, at)) else {
                continue;
            };
            let namespace = owner.namespace.as_deref().map(|ns| rewrite.namespace(ns));
            match api(cluster, &ar, namespace).get_opt(&path_segment(&owner.name)).await? {
                Some(found) => {
                    if let Some(uid) = found.metadata.uid {
                        self.uids.insert(owner.clone(), uid);
                    }
                }
                None => {
                    self.missing.insert(owner.clone());
                }
            }
        }
        Ok(())
    }

    /// Records a dependent created with some owners still to come.
    pub fn wait(&mut self, waiting: Waiting) {
        self.waiting.push(waiting);
    }

    /// An owner is in the cluster now (created, updated, or found there):
    /// its dependents that wait for it are patched with their references.
    /// `uid` is the one the write answered with, if any. Returns a warning
    /// per dependent that could not be patched.
    pub async fn owner_ready(
        &mut self,
        cluster: &Cluster,
        ar: &ApiResource,
        owner: &Ident,
        namespace: Option<&str>,
        uid: Option<String>,
        restore: &str,
    ) -> Result<Vec<String>, kube::Error> {
        if !self.plan.is_wanted(owner) {
            return Ok(Vec::new());
        }
        let uid = match uid {
            Some(uid) => uid,
            None => match api(cluster, ar, namespace).get_opt(&path_segment(&owner.name)).await? {
                Some(found) => found.metadata.uid.unwrap_or_default(),
                None => return Ok(Vec::new()),
            },
        };
        if uid.is_empty() {
            return Ok(Vec::new());
        }
        self.uids.insert(owner.clone(), uid);
        let mut warnings = Vec::new();
        let ready: Vec<Waiting> = self
            .waiting
            .iter()
            .filter(|w| w.refs.iter().any(|(o, _)| o == owner))
            .cloned()
            .collect();
        for w in ready {
            let (refs, _) = self.resolved(&w.refs);
            let dependent = api(cluster, &w.ar, w.namespace.as_deref());
            let name = path_segment(&w.name);
            if w.earlier && !restored_by(&dependent, &w.name, restore).await? {
                continue;
            }
            let patch = json!({"metadata": {"ownerReferences": refs}});
            if let Err(e) = dependent
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                let ns = w.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default();
                warnings.push(format!(
                    "{} {ns}{}: its owner reference to {owner} could not be set: {}",
                    w.ar.plural,
                    w.name,
                    describe(&e)
                ));
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(group: &str, plural: &str, ns: Option<&str>, name: &str) -> ObjectPath {
        ObjectPath {
            group: group.into(),
            plural: plural.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        }
    }

    fn owned(kind: &str, api_version: &str, name: &str, controller: bool) -> Value {
        json!({"metadata": {"ownerReferences": [
            {"apiVersion": api_version, "kind": kind, "name": name, "uid": "old", "controller": controller}]}})
    }

    #[test]
    fn built_in_dependents_are_left_to_restored_owners_only() {
        let deploy = (
            at("apps", "deployments", Some("a"), "web"),
            json!({"kind": "Deployment"}),
        );
        let rs_at = at("apps", "replicasets", Some("a"), "web-1");
        let mut rs = owned("Deployment", "apps/v1", "web", true);
        rs["kind"] = json!("ReplicaSet");
        let pod_at = at("", "pods", Some("a"), "web-1-x");
        let mut pod = owned("ReplicaSet", "apps/v1", "web-1", true);
        pod["kind"] = json!("Pod");
        let plan = Owners::new([
            (&deploy.0, &deploy.1, false),
            (&rs_at, &rs, false),
            (&pod_at, &pod, false),
        ]);
        assert_eq!(
            plan.recreated(&rs_at, &rs).unwrap(),
            "owned by Deployment/web, which recreates it"
        );
        // The pod's ReplicaSet is recreated by its Deployment: still there.
        assert!(plan.recreated(&pod_at, &pod).unwrap().contains("ReplicaSet/web-1"));
        // Without the Deployment the ReplicaSet is restored, and keeps no
        // reference.
        let alone = Owners::new([(&rs_at, &rs, false), (&pod_at, &pod, false)]);
        assert_eq!(alone.recreated(&rs_at, &rs), None);
        assert!(alone.kept(&rs_at, &rs).is_empty());
        // An owner a rule leaves out does not count.
        let skipped = Owners::new([(&deploy.0, &deploy.1, true), (&rs_at, &rs, false)]);
        assert_eq!(skipped.recreated(&rs_at, &rs), None);
        // Not the controller: not recreated.
        let mut loose = owned("Deployment", "apps/v1", "web", false);
        loose["kind"] = json!("ReplicaSet");
        let plan = Owners::new([(&deploy.0, &deploy.1, false), (&rs_at, &loose, false)]);
        assert_eq!(plan.recreated(&rs_at, &loose), None);
        assert_eq!(plan.kept(&rs_at, &loose).len(), 1);
    }

    #[test]
    fn custom_owners_are_kept_when_restored_and_found_by_group_kind_and_name() {
        let db = (
            at("example.com", "databases", Some("a"), "main"),
            json!({"kind": "Database"}),
        );
        let cluster_owner = (at("example.com", "tenants", None, "t1"), json!({"kind": "Tenant"}));
        let secret_at = at("", "secrets", Some("a"), "main-password");
        let mut secret = json!({"kind": "Secret", "metadata": {"ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Database", "name": "main", "uid": "u1", "controller": true},
            {"apiVersion": "example.com/v1", "kind": "Tenant", "name": "t1", "uid": "u2"},
            {"apiVersion": "example.com/v1", "kind": "Database", "name": "gone", "uid": "u3"},
            {"apiVersion": "other.io/v1", "kind": "Database", "name": "main", "uid": "u4"}]}});
        let plan = Owners::new([
            (&db.0, &db.1, false),
            (&cluster_owner.0, &cluster_owner.1, false),
            (&secret_at, &secret, false),
        ]);
        assert_eq!(plan.recreated(&secret_at, &secret), None);
        let kept = plan.kept(&secret_at, &secret);
        let names: Vec<String> = kept.iter().map(|(i, _)| i.to_string()).collect();
        assert_eq!(names, ["Database/main", "Tenant/t1"]);
        assert_eq!(kept[1].0.namespace, None);
        assert!(plan.is_wanted(&ident_of(&db.0, &db.1)));
        assert!(!plan.is_wanted(&ident_of(&secret_at, &secret)));
        assert_eq!(repoint(&kept[0].1, "new")["uid"], "new");
        assert_eq!(repoint(&kept[0].1, "new")["controller"], true);
        secret["metadata"]["ownerReferences"] = json!([]);
        assert!(plan.kept(&secret_at, &secret).is_empty());
    }

    #[test]
    fn references_resolve_as_owners_become_known() {
        let owner = |name: &str| Ident {
            group: "example.com".into(),
            kind: "Database".into(),
            namespace: Some("a".into()),
            name: name.into(),
        };
        let reference =
            |name: &str| json!({"apiVersion": "example.com/v1", "kind": "Database", "name": name, "uid": "old"});
        let refs = vec![
            (owner("here"), reference("here")),
            (owner("later"), reference("later")),
            (owner("elsewhere"), reference("elsewhere")),
        ];
        let mut links = Links::new(Owners::default(), [owner("here"), owner("later")].into());
        // Nothing known: the owners of this pass are awaited, the other is not.
        assert_eq!(links.resolved(&refs), (Vec::new(), true));
        links.uids.insert(owner("here"), "u-here".into());
        let (now, waits) = links.resolved(&refs);
        assert_eq!(
            now,
            [json!({"apiVersion": "example.com/v1", "kind": "Database", "name": "here", "uid": "u-here"})]
        );
        assert!(waits);
        links.uids.insert(owner("later"), "u-later".into());
        let (now, waits) = links.resolved(&refs);
        assert_eq!(now.len(), 2);
        assert_eq!(now[1]["uid"], "u-later");
        assert!(!waits);
    }
}
