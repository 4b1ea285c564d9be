//! A fake Kubernetes API server for tests: plain HTTP on 127.0.0.1, over an
//! in-memory store, speaking the protocol a client, a kube-runtime controller
//! and a node agent use: `/version`, discovery (`/api`, `/apis`, `/api/v1`,
//! `/apis/G/V`), list with label and field selectors and pagination (`limit`,
//! `continue`), watch (`?watch=true`: newline-delimited events from a
//! resourceVersion, bookmarks, `timeoutSeconds`, `410 Gone` as an ERROR event
//! once compacted, streaming lists with `sendInitialEvents`), get, create
//! (with `generateName`), update, delete (finalizers, deletion timestamps,
//! background garbage collection of dependents), the status subresource,
//! merge, JSON, strategic-merge and server-side-apply patches, and 409 on
//! stale resourceVersions. The server owns `uid`, `resourceVersion` (one
//! global counter), `creationTimestamp`, `generation` and `managedFields`.
//!
//! It rejects what a real server rejects and the restore order must avoid: a
//! namespaced object whose namespace does not exist (or is terminating), a
//! custom resource whose definition is not established, a Service whose
//! cluster IP is taken, strategic merge patches of custom resources, new
//! finalizers on an object being deleted. Resources can be made forbidden
//! (403), requests can be made to fail (`fail_next`), and the server can be
//! stopped and restarted on the same port. Every request is logged.
//!
//! Simplified on purpose (documented where it is done): server-side apply
//! tracks ownership per leaf field and treats lists as atomic; strategic
//! merge patches merge lists of objects by `name` and replace other lists;
//! bookmarks come every `bookmark_interval` rather than about once a minute.

#![allow(dead_code)]

pub mod access;
pub mod admission;
pub mod cluster;
pub mod controllers;
pub mod exec;
pub mod faults;
pub mod fields;
pub mod kubelet;
pub mod patch;
pub mod routes;
pub mod seed;
pub mod store;
pub mod watch;

pub use cluster::FakeCluster;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

/// A resource type the server serves.
#[derive(Debug, Clone)]
pub struct ResDef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short: Vec<String>,
    /// Whether `.../NAME/status` is served and writes to the object itself
    /// leave `status` alone.
    pub status_subresource: bool,
    /// Field selectors beyond `metadata.name` and `metadata.namespace`.
    pub selectable: Vec<String>,
}

fn def(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool, short: &[&str]) -> ResDef {
    ResDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        namespaced,
        short: short.iter().map(|s| (*s).to_owned()).collect(),
        status_subresource: builtin_status(group, plural),
        selectable: fields::builtin_selectable(group, plural),
    }
}

/// Built-in kinds with a status subresource.
fn builtin_status(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        (
            "",
            "namespaces" | "services" | "pods" | "persistentvolumeclaims" | "persistentvolumes" | "nodes"
        ) | ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
            | ("batch", "jobs" | "cronjobs")
            | ("apiextensions.k8s.io", "customresourcedefinitions")
    )
}

/// The built-in resources of the fake server.
pub fn builtin() -> Vec<ResDef> {
    vec![
        def("", "v1", "Namespace", "namespaces", false, &["ns"]),
        def("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
        def("", "v1", "Secret", "secrets", true, &[]),
        def("", "v1", "Service", "services", true, &["svc"]),
        def("", "v1", "Pod", "pods", true, &["po"]),
        def(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
        ),
        def("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"]),
        def("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
        def("", "v1", "Event", "events", true, &["ev"]),
        def("", "v1", "Node", "nodes", false, &["no"]),
        def("", "v1", "LimitRange", "limitranges", true, &["limits"]),
        def("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"]),
        def("", "v1", "Endpoints", "endpoints", true, &["ep"]),
        def("apps", "v1", "Deployment", "deployments", true, &["deploy"]),
        def("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"]),
        def("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"]),
        def("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"]),
        def("apps", "v1", "ControllerRevision", "controllerrevisions", true, &[]),
        def("batch", "v1", "Job", "jobs", true, &[]),
        def("batch", "v1", "CronJob", "cronjobs", true, &["cj"]),
        def("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[]),
        def(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
        ),
        def(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
        ),
        def(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
        ),
        def("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"]),
        def("storage.k8s.io", "v1", "CSINode", "csinodes", false, &[]),
        def(
            "storage.k8s.io",
            "v1",
            "VolumeAttachment",
            "volumeattachments",
            false,
            &[],
        ),
        def(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            false,
            &["pc"],
        ),
        def(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            &[],
        ),
        def(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            &[],
        ),
        def("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, &[]),
        def("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[]),
        def("events.k8s.io", "v1", "Event", "events", true, &["ev"]),
        def("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
        def(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
        ),
    ]
}

/// A resource of an aggregated API: its definition, the verbs its server
/// offers, and whether that server is down (its group version then
/// answers 503, as the real API server does for an unavailable
/// APIService, while `/apis` still lists the group).
#[derive(Debug, Clone)]
pub struct Aggregated {
    pub def: ResDef,
    pub verbs: Vec<String>,
    pub down: bool,
}

impl Aggregated {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool, verbs: &[&str]) -> Self {
        Self {
            def: def(group, version, kind, plural, namespaced, &[]),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            down: false,
        }
    }
}

/// Store key: (group, plural, namespace or "", name).
pub type Key = (String, String, String, String);

/// One logged request: method, path, query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
}

/// One change to the store, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub key: Key,
    pub object: Value,
    /// The object before a modification (a watch with a selector reports an
    /// object leaving the selection as DELETED, entering it as ADDED).
    pub previous: Option<Value>,
}

/// Field ownership of one object: manager -> (operation, owned leaf paths).
pub type Owners = BTreeMap<String, (String, BTreeSet<String>)>;

#[derive(Debug)]
pub struct State {
    pub objects: BTreeMap<Key, Value>,
    pub forbidden: BTreeSet<(String, String)>,
    /// Namespace-scoped users, aimed failures, dropped connections,
    /// expired continue tokens.
    pub access: access::Access,
    /// Resources of aggregated APIs (served by another server behind the
    /// API server, such as metrics.k8s.io).
    pub aggregated: Vec<Aggregated>,
    pub log: Vec<Logged>,
    /// Every change since the compaction point, oldest first.
    pub changes: Vec<Change>,
    /// How often an open watch that asked for them gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Scripted answers of exec, the last matching one wins.
    pub exec_scripts: Vec<exec::ExecScript>,
    /// Every exec answered, in order.
    pub execs: Vec<exec::ExecCall>,
    rv: u64,
    /// Watches from a resourceVersion below this get `410 Gone`.
    compacted: u64,
    /// Bumped to end every open watch (compaction, stop).
    watch_epoch: u64,
    /// The next `n` requests answer with this status code.
    failing: Option<(u32, u16)>,
    /// Faults aimed at some requests (see [`faults`]).
    pub faults: Vec<faults::Fault>,
    owners: BTreeMap<Key, Owners>,
    names: u64,
    next_ip: u32,
    /// Definitions created but not yet seen established by a client.
    pending_crds: BTreeSet<String>,
    notify: tokio::sync::watch::Sender<u64>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            forbidden: BTreeSet::new(),
            access: access::Access::default(),
            aggregated: Vec::new(),
            log: Vec::new(),
            changes: Vec::new(),
            bookmark_interval: Duration::from_secs(1),
            exec_scripts: Vec::new(),
            execs: Vec::new(),
            rv: 0,
            compacted: 0,
            watch_epoch: 0,
            failing: None,
            faults: Vec::new(),
            owners: BTreeMap::new(),
            names: 0,
            next_ip: 0,
            pending_crds: BTreeSet::new(),
            notify: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// What the server answers: a JSON document, or a watch stream.
pub enum Reply {
    Json(u16, Value),
    Watch(Box<watch::WatchRequest>),
}

impl From<(u16, Value)> for Reply {
    fn from((code, value): (u16, Value)) -> Self {
        Reply::Json(code, value)
    }
}

pub fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// `plural` or `plural.group`, as the server names a resource in messages.
pub fn resource_name(d: &ResDef) -> String {
    if d.group.is_empty() {
        d.plural.clone()
    } else {
        format!("{}.{}", d.plural, d.group)
    }
}

/// `Kind` or `Kind.group`, as the server names a kind in messages.
pub fn kind_name(d: &ResDef) -> String {
    if d.group.is_empty() {
        d.kind.clone()
    } else {
        format!("{}.{}", d.kind, d.group)
    }
}

pub fn not_found(d: &ResDef, name: &str) -> (u16, Value) {
    let (code, mut v) = status(404, "NotFound", &format!("{} \"{name}\" not found", resource_name(d)));
    v["details"] = json!({"name": name, "group": d.group, "kind": d.plural});
    (code, v)
}

/// The real server's 409 for a stale resourceVersion.
pub fn conflict(d: &ResDef, name: &str) -> (u16, Value) {
    let (code, mut v) = status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            resource_name(d)
        ),
    );
    v["details"] = json!({"name": name, "group": d.group, "kind": d.plural});
    (code, v)
}

/// The real server's 422 for a field that fails validation.
pub fn invalid(d: &ResDef, name: &str, cause: &str) -> (u16, Value) {
    let (code, mut v) = status(
        422,
        "Invalid",
        &format!("{} \"{name}\" is invalid: {cause}", kind_name(d)),
    );
    v["details"] = json!({"name": name, "group": d.group, "kind": d.kind});
    (code, v)
}

/// The time now as the API server writes it.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A percent-decoded URL path (`+` is a plus sign in a path).
pub fn decode_path(s: &str) -> String {
    decode(&s.replace('+', "%2B"))
}

/// Why the API server refuses `name` for any object (apimachinery's
/// `IsValidPathSegmentName`).
pub fn path_segment_problem(name: &str) -> Option<&'static str> {
    match name {
        "." => Some("may not be '.'"),
        ".." => Some("may not be '..'"),
        _ if name.contains('/') => Some("may not contain '/'"),
        _ if name.contains('%') => Some("may not contain '%'"),
        _ => None,
    }
}

pub fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

pub fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
}

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    // The real server tells a throttled client when to come back.
    if code == 429 {
        builder = builder.header("retry-after", "1");
    }
    builder
        .body(Full::new(Bytes::from(value.to_string())).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// A request the server drops without an answer (the connection closes).
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    if let Some((ns, pod)) = exec::exec_target(req.uri().path()) {
        return Ok(exec::respond(state, req, ns, pod));
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if lock(&state).take_drop(&method, &path, &query) {
        return Err(Dropped);
    }
    let reply = {
        let mut s = lock(&state);
        match s.take_fault(method.as_str(), &path) {
            Some(faults::FaultKind::Drop) => {
                s.log.push(Logged {
                    method: method.to_string(),
                    path: path.clone(),
                    query: query.clone(),
                });
                return Err(Dropped);
            }
            Some(faults::FaultKind::Status(code)) => {
                s.log.push(Logged {
                    method: method.to_string(),
                    path: path.clone(),
                    query: query.clone(),
                });
                let reason = match code {
                    429 => "TooManyRequests",
                    500 => "InternalError",
                    502 => "BadGateway",
                    503 => "ServiceUnavailable",
                    504 => "Timeout",
                    _ => "Unknown",
                };
                Reply::Json(code, status(code, reason, &format!("injected failure ({code})")).1)
            }
            None => s.route(&method, &path, &query, &content_type, &body),
        }
    };
    Ok(match reply {
        Reply::Json(200, value) if accept.contains("as=PartialObjectMetadata") => {
            json_response(200, &metadata_only(value))
        }
        Reply::Json(429, value) => {
            // The real server's priority and fairness asks for a second.
            let mut response = json_response(429, &value);
            response
                .headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
            response
        }
        Reply::Json(code, value) => json_response(code, &value),
        Reply::Watch(w) => watch::respond(state, *w),
    })
}

/// An object or a list as the server answers a request for metadata only
/// (`Accept: ...;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`).
fn metadata_only(value: Value) -> Value {
    let partial =
        |o: &Value| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
    match value.get("items").and_then(Value::as_array) {
        Some(items) => json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                              "metadata": value["metadata"], "items": items.iter().map(partial).collect::<Vec<_>>()}),
        None => partial(&value),
    }
}

pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}
