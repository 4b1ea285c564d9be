//! A fake Kubernetes API server for tests: plain HTTP on 127.0.0.1, over an
//! in-memory store, speaking the protocol for what cairn uses: `/version`,
//! discovery (`/api`, `/apis`, `/api/v1`, `/apis/G/V`), list with label
//! selectors and pagination (`limit`, `continue`), get, create, server-side
//! apply and delete. It rejects what a real server rejects and the restore
//! order must avoid: a namespaced object whose namespace does not exist, a
//! custom resource whose definition is not established, a Service whose
//! cluster IP is taken. Resources can be made forbidden (403). Every
//! request is logged.

#![allow(dead_code)]

pub mod seed;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
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
    }
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
        def("apps", "v1", "Deployment", "deployments", true, &["deploy"]),
        def("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"]),
        def("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"]),
        def("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"]),
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
        def("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[]),
        def("events.k8s.io", "v1", "Event", "events", true, &["ev"]),
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

/// Store key: (group, plural, namespace or "", name).
pub type Key = (String, String, String, String);

/// One logged request: method, path, query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
}

#[derive(Debug, Default)]
pub struct State {
    pub objects: BTreeMap<Key, Value>,
    pub forbidden: BTreeSet<(String, String)>,
    pub log: Vec<Logged>,
    rv: u64,
    next_ip: u32,
    /// Definitions created but not yet seen established by a client.
    pending_crds: BTreeSet<String>,
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
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
fn decode_path(s: &str) -> String {
    decode(&s.replace('+', "%2B"))
}

/// Why the API server refuses `name` for any object (apimachinery's
/// `IsValidPathSegmentName`).
fn path_segment_problem(name: &str) -> Option<&'static str> {
    match name {
        "." => Some("may not be '.'"),
        ".." => Some("may not be '..'"),
        _ if name.contains('/') => Some("may not contain '/'"),
        _ if name.contains('%') => Some("may not contain '%'"),
        _ => None,
    }
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

impl State {
    /// Every served resource: the built-in ones and those of established
    /// definitions.
    pub fn served(&self) -> Vec<ResDef> {
        let mut defs = builtin();
        for ((g, p, _, name), crd) in &self.objects {
            if g != "apiextensions.k8s.io" || p != "customresourcedefinitions" || !established(crd) {
                continue;
            }
            let _ = name;
            let s = |ptr: &str| crd.pointer(ptr).and_then(Value::as_str).unwrap_or("").to_owned();
            let version = crd
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
                .and_then(|v| v["name"].as_str())
                .unwrap_or("v1")
                .to_owned();
            defs.push(ResDef {
                group: s("/spec/group"),
                version,
                kind: s("/spec/names/kind"),
                plural: s("/spec/names/plural"),
                singular: s("/spec/names/singular"),
                namespaced: s("/spec/scope") == "Namespaced",
                short: crd
                    .pointer("/spec/names/shortNames")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
            });
        }
        defs
    }

    fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResDef> {
        self.served()
            .into_iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    /// Puts an object in the store as the server would on create.
    pub fn insert(&mut self, d: &ResDef, mut obj: Value) -> Result<Key, (u16, Value)> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let ns = if d.namespaced {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        } else {
            String::new()
        };
        if name.is_empty() {
            return Err(status(422, "Invalid", "metadata.name: Required value"));
        }
        if let Some(problem) = path_segment_problem(&name) {
            return Err(status(
                422,
                "Invalid",
                &format!("metadata.name: Invalid value: \"{name}\": {problem}"),
            ));
        }
        if d.namespaced
            && !self
                .objects
                .contains_key(&(String::new(), "namespaces".into(), String::new(), ns.clone()))
        {
            return Err(status(404, "NotFound", &format!("namespaces \"{ns}\" not found")));
        }
        let key = (d.group.clone(), d.plural.clone(), ns, name.clone());
        if self.objects.contains_key(&key) {
            return Err(status(
                409,
                "AlreadyExists",
                &format!("{}.{} \"{name}\" already exists", d.plural, d.group),
            ));
        }
        if d.group.is_empty() && d.plural == "services" {
            let ip = obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match ip {
                Some(ip) if ip != "None" => {
                    let taken = self.objects.iter().any(|((g, p, _, _), o)| {
                        g.is_empty()
                            && p == "services"
                            && o.pointer("/spec/clusterIP").and_then(Value::as_str) == Some(&ip)
                    });
                    if taken {
                        return Err(status(
                            422,
                            "Invalid",
                            &format!("Service \"{name}\" is invalid: spec.clusterIPs: Invalid value: \"{ip}\": provided IP is already allocated"),
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    self.next_ip += 1;
                    let ip = format!("10.96.1.{}", self.next_ip);
                    obj["spec"]["clusterIP"] = json!(ip);
                    obj["spec"]["clusterIPs"] = json!([ip]);
                }
            }
        }
        self.rv += 1;
        let meta = &mut obj["metadata"];
        meta["uid"] = json!(format!("uid-{}", self.rv));
        meta["resourceVersion"] = json!(self.rv.to_string());
        meta["creationTimestamp"] = json!("2024-05-01T12:00:00Z");
        meta["managedFields"] = json!([{"manager": "test", "operation": "Update"}]);
        obj["apiVersion"] = json!(api_version(&d.group, &d.version));
        obj["kind"] = json!(d.kind);
        if d.group == "apiextensions.k8s.io" && d.plural == "customresourcedefinitions" {
            obj["status"] = json!({"conditions": []});
            self.pending_crds.insert(name);
        }
        self.objects.insert(key.clone(), obj);
        Ok(key)
    }

    /// Seeds an object as if it had been created long ago (definitions are
    /// established at once).
    pub fn seed(&mut self, group: &str, plural: &str, obj: Value) {
        let d = self
            .served()
            .into_iter()
            .find(|d| d.group == group && d.plural == plural)
            .unwrap_or_else(|| panic!("no resource {plural}.{group}"));
        let key = self
            .insert(&d, obj)
            .unwrap_or_else(|e| panic!("seeding {plural}: {}", e.1));
        if let Some(name) = (group == "apiextensions.k8s.io").then(|| key.3.clone()) {
            self.pending_crds.remove(&name);
            self.objects.get_mut(&key).unwrap()["status"] =
                json!({"conditions": [{"type": "Established", "status": "True"}]});
        }
    }

    fn route(&mut self, method: &Method, path: &str, query: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        self.log.push(Logged {
            method: method.to_string(),
            path: path.to_owned(),
            query: query.to_owned(),
        });
        // Like the API server, the path is split after it is decoded: an
        // encoded `/` separates segments as a plain one does.
        let decoded = decode_path(path);
        let parts: Vec<&str> = decoded.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["version"] => (
                200,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "2024-05-01T00:00:00Z",
                "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64"}),
            ),
            ["api"] => (
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            ),
            ["apis"] => (200, self.group_list()),
            ["api", "v1"] => (200, self.resource_list("", "v1")),
            ["apis", g, v] => {
                if self.served().iter().any(|d| d.group == *g && d.version == *v) {
                    (200, self.resource_list(g, v))
                } else {
                    status(404, "NotFound", "the server could not find the requested resource")
                }
            }
            ["api", "v1", rest @ ..] => self.object_route(method, "", "v1", rest, query, content_type, body),
            ["apis", g, v, rest @ ..] => self.object_route(method, g, v, rest, query, content_type, body),
            _ => status(404, "NotFound", "the server could not find the requested resource"),
        }
    }

    fn group_list(&self) -> Value {
        let mut groups: BTreeMap<String, String> = BTreeMap::new();
        for d in self.served().into_iter().filter(|d| !d.group.is_empty()) {
            groups.entry(d.group.clone()).or_insert(d.version.clone());
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(g, v)| {
                let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    fn resource_list(&self, group: &str, version: &str) -> Value {
        let resources: Vec<Value> = self
            .served()
            .into_iter()
            .filter(|d| d.group == group && d.version == version)
            .map(|d| {
                json!({"name": d.plural, "singularName": d.singular, "namespaced": d.namespaced,
                       "kind": d.kind, "shortNames": d.short,
                       "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            })
            .collect();
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
    ) -> (u16, Value) {
        let (ns, plural, name) = match rest {
            [plural] => (None, *plural, None),
            [plural, name] => (None, *plural, Some(*name)),
            ["namespaces", ns, plural] => (Some(*ns), *plural, None),
            ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
            _ => return status(404, "NotFound", "the server could not find the requested resource"),
        };
        let Some(d) = self.find(group, version, plural) else {
            return status(404, "NotFound", "the server could not find the requested resource");
        };
        if self.forbidden.contains(&(group.to_owned(), plural.to_owned())) {
            let scope = ns
                .map(|n| format!("in the namespace \"{n}\""))
                .unwrap_or("at the cluster scope".into());
            return status(
                403,
                "Forbidden",
                &format!("{plural} is forbidden: User \"tester\" cannot list resource \"{plural}\" in API group \"{group}\" {scope}"),
            );
        }
        let q = query_map(query);
        let ns_key = if d.namespaced { ns.unwrap_or("") } else { "" };
        match (method.clone(), name) {
            (Method::GET, None) => self.list(&d, ns, &q),
            (Method::GET, Some(name)) => {
                let key = (d.group.clone(), d.plural.clone(), ns_key.to_owned(), name.to_owned());
                let pending = d.plural == "customresourcedefinitions" && self.pending_crds.remove(name);
                match self.objects.get_mut(&key) {
                    Some(obj) => {
                        let shown = obj.clone();
                        if pending {
                            // Established from the second read on.
                            obj["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
                        }
                        (200, shown)
                    }
                    None => status(
                        404,
                        "NotFound",
                        &format!("{}.{} \"{name}\" not found", d.plural, d.group),
                    ),
                }
            }
            (Method::POST, None) => {
                let Ok(mut obj) = serde_json::from_slice::<Value>(body) else {
                    return status(400, "BadRequest", "body is not JSON");
                };
                if d.namespaced {
                    let given = obj.pointer("/metadata/namespace").and_then(Value::as_str);
                    if given.is_some_and(|g| Some(g) != ns) {
                        return status(
                            400,
                            "BadRequest",
                            "the namespace of the object does not match the namespace of the request",
                        );
                    }
                    obj["metadata"]["namespace"] = json!(ns.unwrap_or(""));
                }
                match self.insert(&d, obj) {
                    Ok(key) => (201, self.objects[&key].clone()),
                    Err(e) => e,
                }
            }
            (Method::PATCH, Some(name)) => {
                if content_type != "application/apply-patch+yaml" {
                    return status(
                        415,
                        "UnsupportedMediaType",
                        &format!("unsupported patch type {content_type}"),
                    );
                }
                if !q.contains_key("fieldManager") {
                    return status(422, "Invalid", "fieldManager is required for apply requests");
                }
                let Ok(mut obj) = serde_json::from_slice::<Value>(body) else {
                    return status(400, "BadRequest", "body is not JSON");
                };
                if d.namespaced {
                    obj["metadata"]["namespace"] = json!(ns.unwrap_or(""));
                }
                let key = (d.group.clone(), d.plural.clone(), ns_key.to_owned(), name.to_owned());
                match self.objects.get(&key).cloned() {
                    None => match self.insert(&d, obj) {
                        Ok(key) => (201, self.objects[&key].clone()),
                        Err(e) => e,
                    },
                    Some(old) => {
                        self.rv += 1;
                        for field in ["uid", "creationTimestamp", "managedFields"] {
                            obj["metadata"][field] = old["metadata"][field].clone();
                        }
                        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                        if let Some(st) = old.get("status") {
                            obj["status"] = st.clone();
                        }
                        self.objects.insert(key, obj.clone());
                        (200, obj)
                    }
                }
            }
            (Method::DELETE, Some(name)) => {
                let key = (d.group.clone(), d.plural.clone(), ns_key.to_owned(), name.to_owned());
                match self.objects.remove(&key) {
                    Some(obj) => (200, obj),
                    None => status(404, "NotFound", &format!("{} \"{name}\" not found", d.plural)),
                }
            }
            _ => status(405, "MethodNotAllowed", "the server does not allow this method"),
        }
    }

    fn list(&self, d: &ResDef, ns: Option<&str>, q: &BTreeMap<String, String>) -> (u16, Value) {
        let selector = match q.get("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => match cairn::k8s::filter::Selector::parse(s) {
                Ok(sel) => Some(sel),
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            },
            None => None,
        };
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| *g == d.group && *p == d.plural && ns.is_none_or(|ns| ns == n))
            .filter(|(_, o)| {
                selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&cairn::k8s::filter::labels_of(o)))
            })
            .map(|(_, o)| o)
            .collect();
        let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
        let limit: usize = q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(items.len());
        let page: Vec<Value> = items[start.min(end)..end].iter().map(|o| (*o).clone()).collect();
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        if end < items.len() {
            meta["continue"] = json!(end.to_string());
        }
        (
            200,
            json!({"kind": format!("{}List", d.kind), "apiVersion": api_version(&d.group, &d.version),
                   "metadata": meta, "items": page}),
        )
    }
}

fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (code, value) = lock(&state).route(&method, &path, &query, &content_type, &body);
    let response = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    Ok(response)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running fake API server and a kubeconfig pointing at it.
pub struct FakeCluster {
    pub state: Arc<Mutex<State>>,
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
}

impl FakeCluster {
    /// An empty cluster: no objects, not even namespaces.
    pub fn empty() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = state.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let url = format!("http://{addr}");
        let dir = tempfile::tempdir().unwrap();
        let cluster = Self {
            state,
            url,
            runtime: Some(runtime),
            dir,
        };
        cluster.write_kubeconfig(&cluster.url.clone());
        cluster
    }

    /// A cluster seeded with realistic objects (see [`seed`]).
    pub fn seeded() -> Self {
        let cluster = Self::empty();
        seed::realistic(&mut cluster.state());
        cluster
    }

    fn write_kubeconfig(&self, server: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n\
             users:\n- name: tester\n  user:\n    token: secret-token\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n\
             current-context: fake\n"
        );
        std::fs::write(self.kubeconfig(), text).unwrap();
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A kubeconfig naming another server, written next to this one's.
    pub fn kubeconfig_for(&self, server: &str, file: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        let text = std::fs::read_to_string(self.kubeconfig())
            .unwrap()
            .replace(&self.url, server);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn objects(&self) -> BTreeMap<Key, Value> {
        self.state().objects.clone()
    }

    pub fn forbid(&self, group: &str, plural: &str) {
        self.state().forbidden.insert((group.into(), plural.into()));
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
