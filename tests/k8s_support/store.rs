//! The store's writes, as the API server makes them: create (with
//! `generateName`), update, delete with finalizers and deletion timestamps,
//! background garbage collection, namespace termination; the metadata the
//! server owns (`uid`, `resourceVersion`, `creationTimestamp`, `generation`,
//! `managedFields`) and the change history watches read.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{api_version, builtin, established, invalid, now, path_segment_problem, resource_name, status};
use super::{Change, Key, ResDef, State};

/// Characters the API server appends to a `generateName`.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// How many changes are kept for watches.
const HISTORY: usize = 100_000;

/// Top-level metadata fields a client owns (the rest belongs to the server).
const CLIENT_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// Metadata fields only the server sets; a client's values are ignored.
const SERVER_METADATA: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
];

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn being_deleted(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
}

/// Escapes one JSON pointer segment.
fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// The leaf fields a client can own, as JSON pointers with their values.
/// Lists are atomic (a simplification: the real server merges lists by key
/// where the schema says so).
pub fn leaves(obj: &Value) -> BTreeMap<String, Value> {
    fn walk(v: &Value, prefix: String, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    walk(v, format!("{prefix}/{}", escape(k)), out);
                }
            }
            _ if !prefix.is_empty() => {
                out.insert(prefix, v.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    let Some(m) = obj.as_object() else {
        return out;
    };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for f in CLIENT_METADATA {
                    if let Some(v) = v.get(f) {
                        walk(v, format!("/metadata/{f}"), &mut out);
                    }
                }
            }
            _ => walk(v, format!("/{}", escape(k)), &mut out),
        }
    }
    out
}

/// `managedFields` entries' `fieldsV1` for a set of leaf paths.
fn fields_v1(paths: &BTreeSet<String>) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut node = &mut root;
        for seg in p.trim_start_matches('/').split('/') {
            node = node
                .as_object_mut()
                .map(|m| m.entry(format!("f:{}", unescape(seg))).or_insert_with(|| json!({})))
                .unwrap_or_else(|| unreachable!("fields are objects"));
        }
    }
    root
}

/// Everything of an object that moves its `generation`: all but metadata,
/// and all but status when status is a subresource.
fn generation_part(d: &ResDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        if d.status_subresource {
            m.remove("status");
        }
    }
    o
}

/// An object without what changes on every write.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    o
}

impl State {
    /// Every served resource: the built-in ones and those of established
    /// definitions.
    pub fn served(&self) -> Vec<ResDef> {
        let mut defs = builtin();
        for (_, crd) in self.of_resource("apiextensions.k8s.io", "customresourcedefinitions") {
            if !established(crd) {
                continue;
            }
            let s = |ptr: &str| str_at(crd, ptr).to_owned();
            let storage = crd
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
                .cloned()
                .unwrap_or(Value::Null);
            defs.push(ResDef {
                group: s("/spec/group"),
                version: storage["name"].as_str().unwrap_or("v1").to_owned(),
                kind: s("/spec/names/kind"),
                plural: s("/spec/names/plural"),
                singular: s("/spec/names/singular"),
                namespaced: s("/spec/scope") == "Namespaced",
                short: crd
                    .pointer("/spec/names/shortNames")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
                status_subresource: storage.pointer("/subresources/status").is_some(),
                selectable: storage["selectableFields"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| f["jsonPath"].as_str())
                            .map(|p| p.trim_start_matches('.').to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        defs.extend(self.aggregated.iter().map(|a| a.def.clone()));
        defs
    }

    /// The stored objects of one resource, in key order, without a scan of
    /// the rest of the store.
    pub fn of_resource<'a>(&'a self, group: &str, plural: &str) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let start: Key = (group.to_owned(), plural.to_owned(), String::new(), String::new());
        let (group, plural) = (group.to_owned(), plural.to_owned());
        self.objects
            .range(start..)
            .take_while(move |((g, p, _, _), _)| *g == group && *p == plural)
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResDef> {
        self.served()
            .into_iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    /// The definition of a served resource by group and plural.
    pub fn def_of(&self, group: &str, plural: &str) -> Option<ResDef> {
        self.served()
            .into_iter()
            .find(|d| d.group == group && d.plural == plural)
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.notify.send_replace(self.rv);
        self.rv
    }

    fn record(&mut self, kind: &'static str, key: &Key, object: &Value, previous: Option<Value>) {
        self.changes.push(Change {
            rv: self.rv,
            kind,
            key: key.clone(),
            object: object.clone(),
            previous,
        });
        // Like etcd's compaction, old history goes: watches from before the
        // oldest change kept get 410.
        if self.changes.len() > HISTORY {
            self.changes.drain(..HISTORY / 2);
            self.compacted = self.changes[0].rv - 1;
        }
    }

    /// Makes every resourceVersion handed out so far too old to watch from.
    pub fn compact(&mut self) {
        self.next_rv();
        self.compacted = self.rv;
        self.changes.clear();
        self.watch_epoch += 1;
        self.notify.send_replace(self.rv);
    }

    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    pub fn watch_epoch(&self) -> u64 {
        self.watch_epoch
    }

    /// Ends every open watch (as when the API server goes away).
    pub fn end_watches(&mut self) {
        self.watch_epoch += 1;
        self.notify.send_replace(self.rv);
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// The next `n` requests answer `code`.
    pub fn fail_next(&mut self, n: u32, code: u16) {
        self.failing = (n > 0).then_some((n, code));
    }

    /// Consumes one injected failure, if any.
    pub fn take_failure(&mut self) -> Option<u16> {
        let (n, code) = self.failing?;
        self.failing = (n > 1).then_some((n - 1, code));
        Some(code)
    }

    /// Puts an object in the store as the server would on create, keeping
    /// the status it carries (for seeding).
    pub fn insert(&mut self, d: &ResDef, obj: Value) -> Result<Key, (u16, Value)> {
        self.create(d, obj, "seed", false)
    }

    /// Creates an object. A client's create (`from_client`) drops the status
    /// of kinds with a status subresource, as the real server does.
    pub fn create(
        &mut self,
        d: &ResDef,
        mut obj: Value,
        manager: &str,
        from_client: bool,
    ) -> Result<Key, (u16, Value)> {
        if !obj.is_object() {
            return Err(status(400, "BadRequest", "the object is not a JSON object"));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let mut name = str_at(&obj, "/metadata/name").to_owned();
        let generate = str_at(&obj, "/metadata/generateName").to_owned();
        if name.is_empty() && !generate.is_empty() {
            self.names += 1;
            let mut n = self.names.wrapping_mul(2_654_435_761);
            let suffix: String = (0..5)
                .map(|_| {
                    let c = NAME_ALPHABET[(n % NAME_ALPHABET.len() as u64) as usize] as char;
                    n /= NAME_ALPHABET.len() as u64;
                    c
                })
                .collect();
            name = format!("{generate}{suffix}");
            obj["metadata"]["name"] = json!(name);
        }
        let ns = if d.namespaced {
            str_at(&obj, "/metadata/namespace").to_owned()
        } else {
            String::new()
        };
        if name.is_empty() {
            return Err(invalid(
                d,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        if let Some(problem) = path_segment_problem(&name) {
            return Err(status(
                422,
                "Invalid",
                &format!("metadata.name: Invalid value: \"{name}\": {problem}"),
            ));
        }
        if d.namespaced {
            let ns_key = (String::new(), "namespaces".to_owned(), String::new(), ns.clone());
            match self.objects.get(&ns_key) {
                None => return Err(status(404, "NotFound", &format!("namespaces \"{ns}\" not found"))),
                Some(n) if being_deleted(n) => {
                    return Err(status(
                        403,
                        "Forbidden",
                        &format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                            resource_name(d)
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        let key = (d.group.clone(), d.plural.clone(), ns, name.clone());
        if self.objects.contains_key(&key) {
            let (code, mut v) = status(
                409,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", resource_name(d)),
            );
            v["details"] = json!({"name": name, "group": d.group, "kind": d.plural});
            return Err((code, v));
        }
        if d.group.is_empty() && d.plural == "services" {
            self.assign_cluster_ip(&name, &mut obj)?;
        }
        if from_client && d.status_subresource {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
            if d.group.is_empty() && d.plural == "namespaces" {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        // A seeded object may say when it was created (to play an object
        // made long ago); a client's never does.
        let created = obj
            .pointer("/metadata/creationTimestamp")
            .filter(|t| !from_client && t.is_string())
            .cloned()
            .unwrap_or_else(|| json!(now()));
        self.next_rv();
        let meta = obj["metadata"]
            .as_object_mut()
            .unwrap_or_else(|| unreachable!("set above"));
        for f in SERVER_METADATA {
            meta.remove(f);
        }
        meta.insert("uid".into(), json!(format!("6b1e3c7a-0000-4000-8000-{:012x}", self.rv)));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        meta.insert("creationTimestamp".into(), created);
        meta.insert("generation".into(), json!(1));
        obj["apiVersion"] = json!(api_version(&d.group, &d.version));
        obj["kind"] = json!(d.kind);
        self.admit(d, &mut obj, from_client)?;
        if d.group == "apiextensions.k8s.io" && d.plural == "customresourcedefinitions" {
            obj["status"] = json!({"conditions": []});
            self.pending_crds.insert(name);
        }
        let paths: BTreeSet<String> = leaves(&obj).into_keys().collect();
        self.owners
            .entry(key.clone())
            .or_default()
            .insert(manager.to_owned(), ("Update".to_owned(), paths));
        self.render_managed(&key, &mut obj);
        self.record("ADDED", &key, &obj, None);
        self.objects.insert(key.clone(), obj);
        self.after_create(&key);
        Ok(key)
    }

    /// Marks a definition established at once (as seeding does).
    pub fn establish(&mut self, name: &str) {
        self.pending_crds.remove(name);
        let key = (
            "apiextensions.k8s.io".to_owned(),
            "customresourcedefinitions".to_owned(),
            String::new(),
            name.to_owned(),
        );
        if let Some(crd) = self.objects.get_mut(&key) {
            crd["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
        }
    }

    /// Whether a read of this definition should establish it (the second
    /// read on sees it established).
    pub fn take_pending(&mut self, name: &str) -> bool {
        self.pending_crds.remove(name)
    }

    fn assign_cluster_ip(&mut self, name: &str, obj: &mut Value) -> Result<(), (u16, Value)> {
        let ip = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match ip {
            Some(ip) if ip != "None" && !ip.is_empty() => {
                let taken = self.objects.iter().any(|((g, p, _, _), o)| {
                    g.is_empty() && p == "services" && o.pointer("/spec/clusterIP").and_then(Value::as_str) == Some(&ip)
                });
                if taken {
                    return Err(status(
                        422,
                        "Invalid",
                        &format!("Service \"{name}\" is invalid: spec.clusterIPs: Invalid value: \"{ip}\": provided IP is already allocated"),
                    ));
                }
            }
            Some(ip) if ip == "None" => {}
            _ => {
                self.next_ip += 1;
                let ip = format!("10.96.1.{}", self.next_ip);
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
        }
        Ok(())
    }

    pub fn render_managed(&self, key: &Key, obj: &mut Value) {
        let Some(owners) = self.owners.get(key) else {
            return;
        };
        let entries: Vec<Value> = owners
            .iter()
            .filter(|(_, (_, paths))| !paths.is_empty())
            .map(|(manager, (op, paths))| {
                json!({"manager": manager, "operation": op, "apiVersion": obj["apiVersion"],
                       "time": now(), "fieldsType": "FieldsV1", "fieldsV1": fields_v1(paths)})
            })
            .collect();
        obj["metadata"]["managedFields"] = json!(entries);
    }

    /// The field ownership of an object.
    pub fn owners_of(&mut self, key: &Key) -> &mut super::Owners {
        self.owners.entry(key.clone()).or_default()
    }

    /// Replaces a stored object with `new` (an update, a patch or a status
    /// write whose result is computed): keeps what the server owns, checks
    /// the finalizer rule, moves `generation`, gives the changed fields to
    /// `manager` (operation "Update"), and deletes the object when it is
    /// being deleted and its last finalizer is gone. A write that changes
    /// nothing is not stored (the resourceVersion stays).
    pub fn replace(
        &mut self,
        d: &ResDef,
        key: &Key,
        mut new: Value,
        manager: Option<&str>,
    ) -> Result<Value, (u16, Value)> {
        let Some(old) = self.objects.get(key).cloned() else {
            return Err(super::not_found(d, &key.3));
        };
        if !new.is_object() {
            return Err(status(400, "BadRequest", "the object is not a JSON object"));
        }
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        for f in SERVER_METADATA.iter().chain(["name", "namespace"].iter()) {
            match old["metadata"].get(*f) {
                Some(v) => new["metadata"][*f] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(*f);
                    }
                }
            }
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        self.before_update(d, &old, &mut new)?;
        if being_deleted(&old) {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new).into_iter().filter(|f| !before.contains(f)).collect();
            if !added.is_empty() {
                let list = added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ");
                return Err(invalid(
                    d,
                    &key.3,
                    &format!("metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
                ));
            }
        }
        if generation_part(d, &old) != generation_part(d, &new) {
            let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
        if comparable(&new) == comparable(&old) {
            return Ok(old);
        }
        if let Some(manager) = manager {
            self.take_ownership(key, &old, &new, manager);
        }
        self.next_rv();
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.render_managed(key, &mut new);
        if being_deleted(&new) && finalizers(&new).is_empty() {
            return Ok(self.remove(key, new, true));
        }
        self.record("MODIFIED", key, &new, Some(old));
        self.objects.insert(key.clone(), new.clone());
        Ok(new)
    }

    /// Gives the fields an update changed to `manager`.
    fn take_ownership(&mut self, key: &Key, old: &Value, new: &Value, manager: &str) {
        let before = leaves(old);
        let after = leaves(new);
        let changed: BTreeSet<String> = after
            .iter()
            .filter(|(p, v)| before.get(*p) != Some(*v))
            .map(|(p, _)| p.clone())
            .collect();
        let owners = self.owners.entry(key.clone()).or_default();
        for (_, paths) in owners.values_mut() {
            paths.retain(|p| after.contains_key(p) && !changed.contains(p));
        }
        let entry = owners
            .entry(manager.to_owned())
            .or_insert_with(|| ("Update".to_owned(), BTreeSet::new()));
        entry.1.extend(changed);
        owners.retain(|_, (_, paths)| !paths.is_empty());
    }

    /// Deletes an object as DELETE does: with finalizers it is marked
    /// (`deletionTimestamp`, `deletionGracePeriodSeconds: 0`) and stays
    /// until the last one is removed; without, it goes, and its dependents
    /// are collected in the background unless `orphan`.
    pub fn delete(&mut self, d: &ResDef, key: &Key, orphan: bool) -> Result<Value, (u16, Value)> {
        let Some(old) = self.objects.get(key).cloned() else {
            return Err(super::not_found(d, &key.3));
        };
        let is_namespace = d.group.is_empty() && d.plural == "namespaces";
        if being_deleted(&old) {
            return Ok(old);
        }
        if !finalizers(&old).is_empty() || is_namespace {
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = json!(now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if is_namespace {
                new["status"] = json!({"phase": "Terminating"});
            }
            self.next_rv();
            new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.record("MODIFIED", key, &new, Some(old));
            self.objects.insert(key.clone(), new.clone());
            if is_namespace {
                self.terminate_namespace(&key.3);
                return Ok(self.objects.get(key).cloned().unwrap_or(new));
            }
            return Ok(new);
        }
        Ok(self.remove(key, old, !orphan))
    }

    /// Removes an object from the store (DELETED), then what it owned.
    fn remove(&mut self, key: &Key, mut obj: Value, collect: bool) -> Value {
        self.objects.remove(key);
        self.owners.remove(key);
        self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record("DELETED", key, &obj, None);
        let uid = str_at(&obj, "/metadata/uid").to_owned();
        if collect && !uid.is_empty() {
            self.collect_dependents(&uid);
        }
        if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
            // A definition takes its custom resources with it.
            let group = str_at(&obj, "/spec/group").to_owned();
            let plural = str_at(&obj, "/spec/names/plural").to_owned();
            let gone: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.0 == group && k.1 == plural)
                .cloned()
                .collect();
            for k in gone {
                if let Some(o) = self.objects.get(&k).cloned() {
                    self.remove(&k, o, true);
                }
            }
        }
        if !key.2.is_empty() {
            self.finish_namespace(&key.2.clone());
        }
        obj
    }

    /// Background cascading deletion: objects with an ownerReference to
    /// `uid` are deleted (their finalizers respected).
    fn collect_dependents(&mut self, uid: &str) {
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in dependents {
            if let Some(d) = self.def_of(&key.0, &key.1) {
                let _ = self.delete(&d, &key, false);
            }
        }
    }

    /// Deletes everything in a terminating namespace.
    fn terminate_namespace(&mut self, ns: &str) {
        let inside: Vec<Key> = self.objects.keys().filter(|k| k.2 == ns).cloned().collect();
        for key in inside {
            if let Some(d) = self.def_of(&key.0, &key.1) {
                let _ = self.delete(&d, &key, false);
            }
        }
        self.finish_namespace(ns);
    }

    /// Removes a terminating namespace once it is empty.
    fn finish_namespace(&mut self, ns: &str) {
        let key = (String::new(), "namespaces".to_owned(), String::new(), ns.to_owned());
        let terminating = self.objects.get(&key).is_some_and(being_deleted);
        if terminating && !self.objects.keys().any(|k| k.2 == ns) {
            if let Some(obj) = self.objects.get(&key).cloned() {
                self.remove(&key, obj, false);
            }
        }
    }

    /// Seeds an object as if it had been created long ago (definitions are
    /// established at once); a `metadata.creationTimestamp` it carries is
    /// kept.
    pub fn seed(&mut self, group: &str, plural: &str, obj: Value) {
        let d = self
            .def_of(group, plural)
            .unwrap_or_else(|| panic!("no resource {plural}.{group}"));
        // A seeded `default` account stands for the one the service account
        // controller made with its namespace.
        if group.is_empty() && plural == "serviceaccounts" && obj.pointer("/metadata/name") == Some(&json!("default")) {
            let made = (
                String::new(),
                plural.to_owned(),
                str_at(&obj, "/metadata/namespace").to_owned(),
                "default".to_owned(),
            );
            self.objects.remove(&made);
        }
        let key = self
            .insert(&d, obj)
            .unwrap_or_else(|e| panic!("seeding {plural}: {}", e.1));
        if group == "apiextensions.k8s.io" {
            self.establish(&key.3);
        }
    }
}
