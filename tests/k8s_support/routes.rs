//! Request routing: discovery, and per resource list, watch, get, create,
//! update, patch and delete, on the object and on its `status` subresource.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use serde_json::{json, Value};

use super::fields::FieldSelector;
use super::patch::{self, APPLY, JSON, MERGE, STRATEGIC};
use super::watch::WatchRequest;
use super::{api_version, decode_path, not_found, query_map, status, Key, Logged, Reply, ResDef, State};

type Query = BTreeMap<String, String>;

fn rv_of(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_builtin(d: &ResDef) -> bool {
    super::builtin()
        .iter()
        .any(|b| b.group == d.group && b.plural == d.plural)
}

fn parse_body(body: &[u8]) -> Result<Value, (u16, Value)> {
    serde_json::from_slice::<Value>(body).map_err(|e| status(400, "BadRequest", &format!("body is not JSON: {e}")))
}

/// Who a write is recorded under: `fieldManager`, else "unknown".
fn manager(q: &Query) -> String {
    q.get("fieldManager").cloned().unwrap_or_else(|| "unknown".to_owned())
}

impl State {
    pub fn route(&mut self, method: &Method, path: &str, query: &str, content_type: &str, body: &[u8]) -> Reply {
        self.log.push(Logged {
            method: method.to_string(),
            path: path.to_owned(),
            query: query.to_owned(),
        });
        if let Some(code) = self.take_failure() {
            let reason = match code {
                429 => "TooManyRequests",
                500 => "InternalError",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                409 => "Conflict",
                403 => "Forbidden",
                _ => "Unknown",
            };
            return status(code, reason, &format!("injected failure ({code})")).into();
        }
        if let Some(failure) = self.aimed_failure(path) {
            return failure.into();
        }
        // Like the API server, the path is split after it is decoded: an
        // encoded `/` separates segments as a plain one does.
        let decoded = decode_path(path);
        let parts: Vec<&str> = decoded.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["version"] => Reply::Json(
                200,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "2024-05-01T00:00:00Z",
                "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64"}),
            ),
            ["api"] => Reply::Json(
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            ),
            ["apis"] => Reply::Json(200, self.group_list()),
            ["api", "v1"] => Reply::Json(200, self.resource_list("", "v1")),
            ["apis", g, v] if self.aggregated_down(g, v) => unavailable(),
            ["apis", g, v, ..] if self.aggregated_down(g, v) => unavailable(),
            ["apis", g, v] => {
                if self.served().iter().any(|d| d.group == *g && d.version == *v) {
                    Reply::Json(200, self.resource_list(g, v))
                } else {
                    status(404, "NotFound", "the server could not find the requested resource").into()
                }
            }
            ["api", "v1", rest @ ..] => self.object_route(method, "", "v1", rest, query, content_type, body),
            ["apis", g, v, rest @ ..] => self.object_route(method, g, v, rest, query, content_type, body),
            _ => status(404, "NotFound", "the server could not find the requested resource").into(),
        }
    }

    fn aggregated_down(&self, group: &str, version: &str) -> bool {
        self.aggregated
            .iter()
            .any(|a| a.down && a.def.group == group && a.def.version == version)
    }

    /// Every group with every version it serves, in the server's priority
    /// order (GA before beta before alpha, higher numbers first); the
    /// preferred version is the first.
    fn group_list(&self) -> Value {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.served().into_iter().filter(|d| !d.group.is_empty()) {
            let versions = groups.entry(d.group.clone()).or_default();
            if !versions.contains(&d.version) {
                versions.push(d.version.clone());
            }
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(g, mut versions)| {
                versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
                let gvs: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                    .collect();
                json!({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    fn resource_list(&self, group: &str, version: &str) -> Value {
        let mut resources = Vec::new();
        for d in self
            .served()
            .into_iter()
            .filter(|d| d.group == group && d.version == version)
        {
            let verbs: Vec<String> = match self
                .aggregated
                .iter()
                .find(|a| a.def.group == d.group && a.def.plural == d.plural)
            {
                Some(a) => a.verbs.clone(),
                None => [
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ]
                .map(str::to_owned)
                .to_vec(),
            };
            resources.push(
                json!({"name": d.plural, "singularName": d.singular, "namespaced": d.namespaced,
                   "kind": d.kind, "shortNames": d.short, "verbs": verbs}),
            );
            if d.status_subresource {
                resources.push(json!({"name": format!("{}/status", d.plural), "singularName": "",
                       "namespaced": d.namespaced, "kind": d.kind, "verbs": ["get", "patch", "update"]}));
            }
        }
        json!({"kind": "APIResourceList", "apiVersion": "v1",
               "groupVersion": api_version(group, version), "resources": resources})
    }

    #[allow(clippy::too_many_arguments)]
    fn object_route(
        &mut self,
        method: &Method,
        group: &str,
        version: &str,
        rest: &[&str],
        query: &str,
        content_type: &str,
        body: &[u8],
    ) -> Reply {
        let (ns, plural, name, sub) = match rest {
            [plural] => (None, *plural, None, false),
            [plural, name] => (None, *plural, Some(*name), false),
            [plural, name, "status"] => (None, *plural, Some(*name), true),
            ["namespaces", ns, plural] => (Some(*ns), *plural, None, false),
            ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name), false),
            ["namespaces", ns, plural, name, "status"] => (Some(*ns), *plural, Some(*name), true),
            _ => return status(404, "NotFound", "the server could not find the requested resource").into(),
        };
        let Some(d) = self.find(group, version, plural) else {
            return status(404, "NotFound", "the server could not find the requested resource").into();
        };
        if sub && !d.status_subresource {
            return status(404, "NotFound", "the server could not find the requested resource").into();
        }
        if self.forbidden.contains(&(group.to_owned(), plural.to_owned())) {
            let scope = ns
                .map(|n| format!("in the namespace \"{n}\""))
                .unwrap_or("at the cluster scope".into());
            return status(
                403,
                "Forbidden",
                &format!("{plural} is forbidden: User \"tester\" cannot list resource \"{plural}\" in API group \"{group}\" {scope}"),
            )
            .into();
        }
        let q = query_map(query);
        if let Some(denied) = self.outside_namespaces(&d, ns, name, method, &q) {
            return denied.into();
        }
        let ns_key = if d.namespaced { ns.unwrap_or("") } else { "" };
        let key = |name: &str| -> Key { (d.group.clone(), d.plural.clone(), ns_key.to_owned(), name.to_owned()) };
        let result = match (method.clone(), name) {
            (Method::GET, None) if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) => {
                return match self.watch_request(&d, ns, &q) {
                    Ok(w) => Reply::Watch(Box::new(w)),
                    Err(e) => e.into(),
                }
            }
            (Method::GET, None) => self.list(&d, ns, &q),
            (Method::GET, Some(name)) => self.get(&d, &key(name)),
            (Method::POST, None) => self.post(&d, ns, &q, body),
            (Method::PUT, Some(name)) => self.put(&d, &key(name), ns, &q, body, sub),
            (Method::PATCH, Some(name)) => self.patch(&d, &key(name), ns, &q, content_type, body, sub),
            (Method::DELETE, Some(name)) => self.delete_request(&d, &key(name), &q, body),
            (Method::DELETE, None) => self.delete_collection(&d, ns, &q, body),
            _ => Err(status(405, "MethodNotAllowed", "the server does not allow this method")),
        };
        match result {
            Ok(ok) | Err(ok) => ok.into(),
        }
    }

    fn get(&mut self, d: &ResDef, key: &Key) -> Result<(u16, Value), (u16, Value)> {
        let pending = d.plural == "customresourcedefinitions" && self.take_pending(&key.3);
        let shown = self.objects.get(key).cloned().ok_or_else(|| not_found(d, &key.3))?;
        if pending {
            // Established from the second read on.
            if let Some(obj) = self.objects.get_mut(key) {
                obj["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
            }
        }
        Ok((200, shown))
    }

    fn post(&mut self, d: &ResDef, ns: Option<&str>, q: &Query, body: &[u8]) -> Result<(u16, Value), (u16, Value)> {
        let mut obj = parse_body(body)?;
        if d.namespaced {
            let given = obj.pointer("/metadata/namespace").and_then(Value::as_str);
            if given.is_some_and(|g| Some(g) != ns) {
                return Err(status(
                    400,
                    "BadRequest",
                    "the namespace of the object does not match the namespace of the request",
                ));
            }
            obj["metadata"]["namespace"] = json!(ns.unwrap_or(""));
        }
        let key = self.create(d, obj, &manager(q), true)?;
        let created = self.objects[&key].clone();
        self.collect_if_orphaned(&key);
        self.after_client_create(&key);
        Ok((201, created))
    }

    /// The stored object, or 404; and a 409 when `given` carries a
    /// resourceVersion that is not the stored one.
    fn current(&self, d: &ResDef, key: &Key, given: &Value) -> Result<Value, (u16, Value)> {
        let old = self.objects.get(key).cloned().ok_or_else(|| not_found(d, &key.3))?;
        let want = rv_of(given);
        if !want.is_empty() && want != rv_of(&old) {
            return Err(super::conflict(d, &key.3));
        }
        Ok(old)
    }

    /// The object a write to the main resource or to `status` stores.
    fn written(d: &ResDef, old: &Value, new: Value, sub: bool) -> Value {
        if sub {
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    if let Some(m) = out.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            out
        } else if d.status_subresource {
            let mut out = new;
            match old.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    if let Some(m) = out.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            out
        } else {
            new
        }
    }

    fn put(
        &mut self,
        d: &ResDef,
        key: &Key,
        ns: Option<&str>,
        q: &Query,
        body: &[u8],
        sub: bool,
    ) -> Result<(u16, Value), (u16, Value)> {
        let new = parse_body(body)?;
        let named = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        if named != key.3 {
            return Err(status(
                400,
                "BadRequest",
                &format!(
                    "the name of the object ({named}) does not match the name on the URL ({})",
                    key.3
                ),
            ));
        }
        if d.namespaced {
            let given = new.pointer("/metadata/namespace").and_then(Value::as_str);
            if given.is_some_and(|g| Some(g) != ns) {
                return Err(status(
                    400,
                    "BadRequest",
                    "the namespace of the object does not match the namespace of the request",
                ));
            }
        }
        if !is_builtin(d) && rv_of(&new).is_empty() && self.objects.contains_key(key) {
            // Custom resources do not allow unconditional updates.
            return Err(super::invalid(
                d,
                &key.3,
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
            ));
        }
        let old = self.current(d, key, &new)?;
        let stored = Self::written(d, &old, new, sub);
        let written = self.replace(d, key, stored, Some(&manager(q)))?;
        self.collect_if_orphaned(key);
        Ok((200, written))
    }

    #[allow(clippy::too_many_arguments)]
    fn patch(
        &mut self,
        d: &ResDef,
        key: &Key,
        ns: Option<&str>,
        q: &Query,
        content_type: &str,
        body: &[u8],
        sub: bool,
    ) -> Result<(u16, Value), (u16, Value)> {
        let content_type = content_type.split(';').next().unwrap_or("").trim();
        if content_type == APPLY {
            let Some(manager) = q.get("fieldManager") else {
                return Err(status(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
            };
            let mut config = parse_body(body).map_err(|_| {
                status(
                    400,
                    "BadRequest",
                    "error decoding YAML: the fake API server takes JSON apply configurations",
                )
            })?;
            if d.namespaced {
                config["metadata"]["namespace"] = json!(ns.unwrap_or(""));
            }
            if self.objects.contains_key(key) {
                self.current(d, key, &config)?;
            }
            let force = q.get("force").is_some_and(|f| f == "true");
            return self.apply(d, key, config, manager, force, sub);
        }
        if content_type == STRATEGIC && !is_builtin(d) {
            return Err(patch::unsupported(d));
        }
        if ![MERGE, JSON, STRATEGIC].contains(&content_type) {
            return Err(patch::unsupported(d));
        }
        let old = self.objects.get(key).cloned().ok_or_else(|| not_found(d, &key.3))?;
        let mut new = old.clone();
        match content_type {
            JSON => patch::json_patch(&mut new, body)?,
            MERGE | STRATEGIC => {
                let p = parse_body(body)?;
                if !p.is_object() {
                    return Err(status(400, "BadRequest", "the patch is not a JSON object"));
                }
                if content_type == MERGE {
                    patch::merge_patch(&mut new, &p);
                } else {
                    patch::strategic_patch(&mut new, &p);
                }
            }
            _ => unreachable!("checked above"),
        }
        // A patch that sets metadata.resourceVersion is a precondition.
        self.current(d, key, &new)?;
        let stored = Self::written(d, &old, new, sub);
        let written = self.replace(d, key, stored, Some(&manager(q)))?;
        self.collect_if_orphaned(key);
        Ok((200, written))
    }

    fn delete_request(&mut self, d: &ResDef, key: &Key, q: &Query, body: &[u8]) -> Result<(u16, Value), (u16, Value)> {
        let opts: Value = if body.is_empty() { json!({}) } else { parse_body(body)? };
        let old = self.objects.get(key).cloned().ok_or_else(|| not_found(d, &key.3))?;
        let meta = |f: &str| {
            old.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
            if uid != meta("uid") {
                return Err(status(
                    409,
                    "Conflict",
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta("uid")
                    ),
                ));
            }
        }
        if let Some(rv) = opts.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
            if rv != meta("resourceVersion") {
                return Err(status(
                    409,
                    "Conflict",
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta("resourceVersion")
                    ),
                ));
            }
        }
        let policy = opts
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| q.get("propagationPolicy").cloned())
            .unwrap_or_default();
        Ok((200, self.delete(d, key, policy == "Orphan")?))
    }

    /// `deletecollection`: every selected object is deleted as DELETE
    /// would; the answer lists them as they were left.
    fn delete_collection(
        &mut self,
        d: &ResDef,
        ns: Option<&str>,
        q: &Query,
        body: &[u8],
    ) -> Result<(u16, Value), (u16, Value)> {
        let (labels, fields) = self.selectors(d, q)?;
        let opts: Value = if body.is_empty() { json!({}) } else { parse_body(body)? };
        let orphan = opts.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
            || q.get("propagationPolicy").is_some_and(|p| p == "Orphan");
        let keys: Vec<Key> = self
            .of_resource(&d.group, &d.plural)
            .filter(|((_, _, n, _), _)| ns.is_none_or(|ns| ns == n))
            .filter(|(_, o)| selected(o, labels.as_ref(), &fields))
            .map(|(k, _)| k.clone())
            .collect();
        let mut items = Vec::new();
        for key in keys {
            items.push(self.delete(d, &key, orphan)?);
        }
        Ok((
            200,
            json!({"kind": format!("{}List", d.kind), "apiVersion": api_version(&d.group, &d.version),
                   "metadata": {"resourceVersion": self.resource_version().to_string()}, "items": items}),
        ))
    }

    fn selectors(
        &self,
        d: &ResDef,
        q: &Query,
    ) -> Result<(Option<cairn::k8s::manifests::filter::Selector>, FieldSelector), (u16, Value)> {
        let labels_text = q.get("labelSelector").cloned().unwrap_or_default();
        let labels = match q.get("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => Some(
                cairn::k8s::manifests::filter::Selector::parse(s)
                    .map_err(|e| status(400, "BadRequest", &e.to_string()))?,
            ),
            None => None,
        };
        let fields = match q.get("fieldSelector") {
            Some(f) => FieldSelector::parse(d, f, &labels_text)?,
            None => FieldSelector::default(),
        };
        Ok((labels, fields))
    }

    /// The objects of a list or the first events of a watch.
    pub fn matching(
        &self,
        d: &ResDef,
        ns: Option<&str>,
        labels: Option<&cairn::k8s::manifests::filter::Selector>,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.of_resource(&d.group, &d.plural)
            .filter(|((_, _, n, _), _)| ns.is_none_or(|ns| ns == n))
            .filter(|(_, o)| selected(o, labels, fields))
            .map(|(_, o)| o.clone())
            .collect()
    }

    fn list(&mut self, d: &ResDef, ns: Option<&str>, q: &Query) -> Result<(u16, Value), (u16, Value)> {
        let (labels, fields) = self.selectors(d, q)?;
        if q.get("resourceVersionMatch").map(String::as_str) == Some("Exact") {
            let rv: u64 = q.get("resourceVersion").and_then(|r| r.parse().ok()).unwrap_or(0);
            if rv < self.compacted() {
                return Err(gone(rv, self.compacted()));
            }
        }
        let start = self.continue_offset(q)?;
        let limit: usize = q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        // Only the page is copied: a list of 100,000 objects is read in
        // pages without copying the rest each time.
        let mut total = 0usize;
        let mut page: Vec<Value> = Vec::new();
        for (_, o) in self
            .of_resource(&d.group, &d.plural)
            .filter(|((_, _, n, _), _)| ns.is_none_or(|ns| ns == n))
            .filter(|(_, o)| selected(o, labels.as_ref(), &fields))
        {
            if total >= start && page.len() < limit {
                page.push(o.clone());
            }
            total += 1;
        }
        let end = start.saturating_add(limit).min(total);
        let rv = self.resource_version();
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if end < total {
            meta["continue"] = json!(super::access::continue_token(rv, end));
            meta["remainingItemCount"] = json!(total - end);
        }
        Ok((
            200,
            json!({"kind": format!("{}List", d.kind), "apiVersion": api_version(&d.group, &d.version),
                   "metadata": meta, "items": page}),
        ))
    }

    fn watch_request(&mut self, d: &ResDef, ns: Option<&str>, q: &Query) -> Result<WatchRequest, (u16, Value)> {
        let (labels, fields) = self.selectors(d, q)?;
        let flag = |k: &str| matches!(q.get(k).map(String::as_str), Some("true" | "1"));
        let initial_events = flag("sendInitialEvents");
        let bookmarks = flag("allowWatchBookmarks");
        let version_match = q.get("resourceVersionMatch").map(String::as_str).unwrap_or("");
        let rv_text = q.get("resourceVersion").map(String::as_str).unwrap_or("");
        let invalid_opts = |cause: &str| {
            status(
                422,
                "Invalid",
                &format!("ListOptions.meta.k8s.io \"\" is invalid: {cause}"),
            )
        };
        if initial_events {
            if version_match != "NotOlderThan" {
                return Err(invalid_opts("resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
            }
            if !bookmarks {
                return Err(invalid_opts(
                    "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
                ));
            }
        } else if !version_match.is_empty() && q.get("sendInitialEvents").is_none() {
            return Err(invalid_opts("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
        }
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|t| *t > 0)
            .map(Duration::from_secs);
        let now = self.resource_version();
        let no_initial = q.get("sendInitialEvents").is_some_and(|v| v == "false");
        let (initial, from, gone_from) = if no_initial && (rv_text.is_empty() || rv_text == "0") {
            // "Start at any": no synthetic events, changes from now.
            (Vec::new(), now, None)
        } else if initial_events || rv_text.is_empty() || rv_text == "0" {
            // The current state as ADDED first (the legacy meaning of "0"
            // and of no resourceVersion), then changes.
            (self.matching(d, ns, labels.as_ref(), &fields), now, None)
        } else {
            let rv: u64 = rv_text.parse().map_err(|_| {
                invalid_opts(&format!(
                    "resourceVersion: Invalid value: \"{rv_text}\": must be a number"
                ))
            })?;
            let gone = (rv < self.compacted()).then_some(rv);
            (Vec::new(), rv, gone)
        };
        Ok(WatchRequest {
            def: d.clone(),
            namespace: ns.map(str::to_owned),
            labels,
            fields,
            initial,
            initial_events_end: initial_events,
            from,
            gone: gone_from.map(|rv| gone(rv, self.compacted()).1),
            bookmarks,
            timeout,
            epoch: self.watch_epoch(),
        })
    }
}

/// Whether an object is in a selection.
pub fn selected(obj: &Value, labels: Option<&cairn::k8s::manifests::filter::Selector>, fields: &FieldSelector) -> bool {
    labels.is_none_or(|s| s.matches(&cairn::k8s::manifests::filter::labels_of(obj))) && fields.matches(obj)
}

/// The real server's 410 for a resourceVersion older than the compaction.
pub fn gone(rv: u64, compacted: u64) -> (u16, Value) {
    status(
        410,
        "Expired",
        &format!("too old resource version: {rv} ({})", compacted.saturating_sub(1)),
    )
}

/// What the API server answers for an aggregated API whose server is away.
fn unavailable() -> Reply {
    status(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
    )
    .into()
}

/// A Kubernetes version's rank: `v2` > `v1` > `v1beta2` > `v1beta1` >
/// `v1alpha1` > anything else.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    match &rest[digits.len()..] {
        "" => (3, major, 0),
        tail => {
            let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
                (2, n)
            } else if let Some(n) = tail.strip_prefix("alpha") {
                (1, n)
            } else {
                return (0, 0, 0);
            };
            (stage, major, n.parse().unwrap_or(0))
        }
    }
}
