//! Runs `cairn k8s controller` (the binary, as a Deployment would) against
//! the tests' fake API server with cairn's definitions installed, and
//! helpers to set up repositories and wait for phases.
//!
//! A test file declares both `mod k8s_support;` and
//! `mod controller_support;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::k8s_support::{FakeCluster, Key};

/// The controller's namespace, and where the tests put their resources.
pub const NS: &str = "cairn-system";
/// The password of the repositories the tests create.
pub const PASSWORD: &str = "correct horse";
/// How long a test waits for the controller to get somewhere.
pub const WAIT: Duration = Duration::from_secs(60);

/// A fake cluster with the namespace and cairn's definitions (Established).
pub fn cluster() -> FakeCluster {
    let cluster = FakeCluster::empty();
    super::k8s_support::seed::cairn_installed(&mut cluster.state(), NS);
    cluster
}

/// A running `cairn k8s controller`, killed when dropped.
pub struct Controller {
    child: Child,
    log: PathBuf,
    kubeconfig: PathBuf,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Controller {
    /// Starts the controller with `--cluster-name test --sync-period 1s`
    /// and `extra` arguments, and waits until it serves.
    pub fn start(cluster: &FakeCluster, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut args: Vec<String> = vec![
            "--cluster-name".into(),
            "test".into(),
            "--sync-period".into(),
            "1s".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let log = dir.path().join("controller.log");
        let mut controller = Self {
            child: spawn(&cluster.kubeconfig(), &args, &log, dir.path()),
            log,
            kubeconfig: cluster.kubeconfig(),
            args,
            _dir: dir,
        };
        controller.wait_serving();
        controller
    }

    fn wait_serving(&mut self) {
        let started = Instant::now();
        while !self.log().contains("serving /metrics on ") {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the controller exited with {status}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < WAIT,
                "the controller did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the controller printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://ADDR` of its metrics and health endpoints.
    pub fn url(&self) -> String {
        let log = self.log();
        let addr = log
            .split("serving /metrics on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the controller printed its address");
        format!("http://{addr}")
    }

    /// The body of `GET path` on its HTTP endpoint.
    pub fn http_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.url().trim_start_matches("http://").to_owned();
        let mut s = std::net::TcpStream::connect(&addr).expect("connecting to the controller");
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("asking the controller");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("reading the answer");
        out
    }

    /// Kills the controller (SIGKILL, as an OOM kill or a node loss would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again with the same arguments (after [`Controller::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let _ = fs::remove_file(&self.log);
        self.child = spawn(
            &self.kubeconfig,
            &self.args,
            &self.log,
            self.log.parent().expect("log directory"),
        );
        self.wait_serving();
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory in KiB (VmRSS), for memory checks.
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(kubeconfig: &Path, args: &[String], log: &Path, dir: &Path) -> Child {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("controller log");
    let err = out.try_clone().expect("controller log");
    Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .env_remove("KUBECONFIG")
        .env_remove("CAIRN_PASSWORD")
        .env_remove("CAIRN_REPOSITORY")
        .env("CAIRN_CACHE_DIR", dir.join("cache"))
        .args(["k8s", "controller", "--kubeconfig"])
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("running cairn k8s controller")
}

/// The key of a cairn object in [`NS`].
pub fn key(plural: &str, name: &str) -> Key {
    ("backup.cairn.io".into(), plural.into(), NS.into(), name.into())
}

/// Stores a Secret in [`NS`].
pub fn secret(cluster: &FakeCluster, name: &str, data: &[(&str, &str)]) {
    use base64::Engine as _;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    cluster.state().seed(
        "",
        "secrets",
        json!({"metadata": {"name": name, "namespace": NS}, "type": "Opaque", "data": data}),
    );
}

/// Creates a cheap repository at `path` with `cairn init` (small Argon2id,
/// so that opening it is fast).
pub fn init_repository(path: &Path) {
    let status = Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_REPOSITORY")
        .arg("-r")
        .arg(path)
        .args(["init", "--kdf-memory", "8192"])
        .stdout(Stdio::null())
        .status()
        .expect("running cairn init");
    assert!(status.success(), "cairn init {}", path.display());
}

/// A Secret `<name>-password` and a BackupRepository `name` for the local
/// repository at `path`, with `spec` merged over the defaults.
pub fn repository(cluster: &FakeCluster, name: &str, path: &Path, spec: Value) {
    secret(cluster, &format!("{name}-password"), &[("password", PASSWORD)]);
    let mut full = json!({
        "url": path.to_str().expect("UTF-8 path"),
        "passwordSecretRef": {"name": format!("{name}-password"), "key": "password"},
    });
    merge(&mut full, spec);
    create(cluster, "backuprepositories", "BackupRepository", name, full);
}

/// Creates a cairn object of `kind` in [`NS`] through the fake's store.
pub fn create(cluster: &FakeCluster, plural: &str, kind: &str, name: &str, spec: Value) {
    cluster.state().seed(
        "backup.cairn.io",
        plural,
        json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": kind,
               "metadata": {"name": name, "namespace": NS}, "spec": spec}),
    );
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A cairn object's `status.phase`.
pub fn phase(cluster: &FakeCluster, plural: &str, name: &str) -> Option<String> {
    cluster
        .get("backup.cairn.io", plural, NS, name)
        .and_then(|o| o.pointer("/status/phase").and_then(Value::as_str).map(str::to_owned))
}

/// Waits until the object's phase is `want`; fails with the object and
/// the controller's log otherwise.
pub fn wait_phase(cluster: &FakeCluster, controller: &Controller, plural: &str, name: &str, want: &str) -> Value {
    wait_phase_logged(cluster, plural, name, want, || {
        format!("controller log:\n{}", controller.log())
    })
}

/// [`wait_phase`] for any process: `log` says what it printed.
pub fn wait_phase_logged(
    cluster: &FakeCluster,
    plural: &str,
    name: &str,
    want: &str,
    log: impl Fn() -> String,
) -> Value {
    let k = key(plural, name);
    let reached = cluster.wait_for(
        |objects| {
            objects
                .get(&k)
                .and_then(|o| o.pointer("/status/phase"))
                .is_some_and(|p| p == want)
        },
        WAIT,
    );
    let obj = cluster.get("backup.cairn.io", plural, NS, name);
    assert!(
        reached,
        "{plural}/{name} did not reach {want}: {}\n{}",
        obj.map(|o| o.to_string()).unwrap_or_else(|| "(gone)".into()),
        log()
    );
    obj.unwrap_or_default()
}

/// `cairn -r PATH snapshots --json`, parsed.
pub fn snapshots(path: &Path) -> Vec<Value> {
    let out = Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_REPOSITORY")
        .arg("-r")
        .arg(path)
        .args(["snapshots", "--json"])
        .output()
        .expect("running cairn snapshots");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("snapshots --json: {e}"))
}

// ---- Backups and Restores: seeding, deleting, reading snapshots back ----

/// Seeds the realistic objects of `k8s_support::seed` (namespaces `web`,
/// `data`, ... with their workloads) into a cluster made by [`cluster`].
pub fn seed_objects(cluster: &FakeCluster) {
    super::k8s_support::seed::realistic(&mut cluster.state());
}

/// Every stored object of the resource `plural` (any group, any
/// namespace), in key order.
pub fn objects_of(cluster: &FakeCluster, plural: &str) -> Vec<Value> {
    cluster
        .objects()
        .into_iter()
        .filter(|(k, _)| k.1 == plural)
        .map(|(_, v)| v)
        .collect()
}

/// The uid the fake gave a cairn object in [`NS`].
pub fn uid(cluster: &FakeCluster, plural: &str, name: &str) -> String {
    cluster
        .get("backup.cairn.io", plural, NS, name)
        .and_then(|o| o.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| panic!("{plural}/{name} has no uid"))
}

/// Deletes a cairn object in [`NS`] as `kubectl delete` does (marked while
/// it has finalizers).
pub fn delete(cluster: &FakeCluster, plural: &str, name: &str) {
    let mut state = cluster.state();
    let def = state.def_of("backup.cairn.io", plural).expect("a cairn resource");
    state
        .delete(&def, &key(plural, name), false)
        .unwrap_or_else(|e| panic!("deleting {plural}/{name}: {}", e.1));
}

/// Waits until a cairn object in [`NS`] is gone.
pub fn wait_gone(cluster: &FakeCluster, controller: &Controller, plural: &str, name: &str) {
    let k = key(plural, name);
    let gone = cluster.wait_for(|objects| !objects.contains_key(&k), WAIT);
    assert!(
        gone,
        "{plural}/{name} is still there: {}\ncontroller log:\n{}",
        cluster
            .get("backup.cairn.io", plural, NS, name)
            .map(|o| o.to_string())
            .unwrap_or_default(),
        controller.log()
    );
}

/// `cairn -r PATH ARGS...` with the tests' password; fails the test
/// unless it succeeds, and returns its standard output.
pub fn cairn_ok(path: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_REPOSITORY")
        .env_remove("KUBECONFIG")
        .arg("-r")
        .arg(path)
        .args(args)
        .output()
        .expect("running cairn");
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cairn k8s backup` of `cluster` into the repository at `path` (host
/// `test`, as the controller's); returns the snapshot's id.
pub fn manifest_backup(path: &Path, cluster: &FakeCluster, args: &[&str]) -> String {
    let kubeconfig = cluster.kubeconfig();
    let mut all: Vec<&std::ffi::OsStr> = ["--json", "k8s", "backup", "--host", "test", "--kubeconfig"]
        .iter()
        .map(|s| std::ffi::OsStr::new(*s))
        .collect();
    all.push(kubeconfig.as_os_str());
    all.extend(args.iter().map(|s| std::ffi::OsStr::new(*s)));
    let out = cairn_ok(path, &all);
    let last = out.lines().last().unwrap_or_default();
    let summary: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{last:?}: {e}"));
    summary["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot id in {summary}"))
        .to_owned()
}

/// The file `file` (e.g. `cairn/backup.json`) of snapshot `id`, read back
/// by restoring the snapshot into a temporary directory.
pub fn snapshot_file(path: &Path, id: &str, file: &str) -> Vec<u8> {
    let target = tempfile::tempdir().expect("temporary directory");
    let os = |s: &str| std::ffi::OsString::from(s);
    let args = [
        os("restore"),
        os(id),
        os("--target"),
        target.path().as_os_str().to_owned(),
    ];
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    cairn_ok(path, &refs);
    fs::read(target.path().join(file)).unwrap_or_else(|e| panic!("{file} in snapshot {id}: {e}"))
}

/// The snapshots of the repository at `path` tagged `tag`.
pub fn snapshots_tagged(path: &Path, tag: &str) -> Vec<Value> {
    snapshots(path)
        .into_iter()
        .filter(|s| s["tags"].as_array().is_some_and(|t| t.iter().any(|x| x == tag)))
        .collect()
}

/// The events (events.k8s.io) about the cairn object `name` in [`NS`], as
/// `(type, reason, note)`.
pub fn events_of(cluster: &FakeCluster, name: &str) -> Vec<(String, String, String)> {
    cluster
        .objects()
        .into_iter()
        .filter(|(k, v)| k.0 == "events.k8s.io" && v.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
        .map(|(_, v)| {
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
            (s("/type"), s("/reason"), s("/note"))
        })
        .collect()
}

/// Waits until an event with `reason` about `name` exists.
pub fn wait_event(cluster: &FakeCluster, controller: &Controller, name: &str, reason: &str) {
    let found = cluster.wait_for(
        |objects| {
            objects.iter().any(|(k, v)| {
                k.0 == "events.k8s.io"
                    && v.pointer("/regarding/name").and_then(Value::as_str) == Some(name)
                    && v["reason"] == reason
            })
        },
        WAIT,
    );
    assert!(
        found,
        "no event {reason} about {name}: {:?}\ncontroller log:\n{}",
        events_of(cluster, name),
        controller.log()
    );
}

/// Waits until the controller's `/metrics` contains `line`.
pub fn wait_metric(controller: &Controller, line: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = controller.http_get("/metrics");
        if metrics.contains(line) {
            return;
        }
        assert!(Instant::now() < deadline, "no {line:?} in /metrics:\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --- Schedules and maintenance: objects made long ago, status edits, lists.

/// Creates a cairn object of `kind` in [`NS`] as if it had been created at
/// `created` (RFC 3339), with `status` when not null.
pub fn create_at(
    cluster: &FakeCluster,
    plural: &str,
    kind: &str,
    name: &str,
    created: &str,
    spec: Value,
    status: Value,
) {
    let mut obj = json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": kind,
                         "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
                         "spec": spec});
    if !status.is_null() {
        obj["status"] = status;
    }
    cluster.state().seed("backup.cairn.io", plural, obj);
}

/// Replaces the `status` of a stored object, as its owner's status write
/// would.
pub fn set_status(cluster: &FakeCluster, group: &str, plural: &str, namespace: &str, name: &str, status: Value) {
    let mut s = cluster.state();
    let d = s.def_of(group, plural).expect("a served resource");
    let k: Key = (group.into(), plural.into(), namespace.into(), name.into());
    let mut obj = s
        .objects
        .get(&k)
        .cloned()
        .unwrap_or_else(|| panic!("no {plural} {namespace}/{name}"));
    obj["status"] = status;
    s.replace(&d, &k, obj, Some("test")).expect("replacing the status");
}

/// The objects of a resource in [`NS`] whose labels include `label=value`
/// (of `cluster.objects()`, or of the map a `wait_for` condition gets).
pub fn labelled(objects: &BTreeMap<Key, Value>, group: &str, plural: &str, label: &str, value: &str) -> Vec<Value> {
    objects
        .iter()
        .filter(|((g, p, n, _), o)| {
            g == group
                && p == plural
                && n == NS
                && o.pointer("/metadata/labels").and_then(|l| l.get(label)) == Some(&json!(value))
        })
        .map(|(_, o)| o.clone())
        .collect()
}

/// Waits until `condition` holds for the object (None: it is gone); fails
/// with `what`, the object and the controller's log otherwise.
pub fn wait_object(
    cluster: &FakeCluster,
    controller: &Controller,
    k: &Key,
    what: &str,
    condition: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let reached = cluster.wait_for(|objects| condition(objects.get(k)), WAIT);
    let obj = cluster.objects().get(k).cloned();
    assert!(
        reached,
        "{what}: {}\ncontroller log:\n{}",
        obj.as_ref().map(|o| o.to_string()).unwrap_or_else(|| "(gone)".into()),
        controller.log()
    );
    obj
}

/// Whether an event with `reason` names the object `name`.
pub fn has_event(objects: &BTreeMap<Key, Value>, name: &str, reason: &str) -> bool {
    objects.iter().any(|((g, p, _, _), o)| {
        g == "events.k8s.io" && p == "events" && o["reason"] == reason && o["regarding"]["name"] == name
    })
}

/// Waits until `condition` holds for the whole store; fails with `what`
/// and the controller's log otherwise.
pub fn wait_store(
    cluster: &FakeCluster,
    controller: &Controller,
    what: &str,
    condition: impl Fn(&BTreeMap<Key, Value>) -> bool,
) {
    let reached = cluster.wait_for(condition, WAIT);
    assert!(reached, "{what}\ncontroller log:\n{}", controller.log());
}

// ---- The node agent ----

/// A `cairn k8s agent` process, killed when dropped.
pub struct Agent(Child, std::path::PathBuf);

impl Agent {
    pub fn start(cluster: &FakeCluster, node: &str, pods: &Path, log: &Path) -> Self {
        let out = fs::File::create(log).expect("agent log");
        let child = Command::new(assert_cmd::cargo::cargo_bin("cairn"))
            .env_remove("KUBECONFIG")
            .env_remove("CAIRN_PASSWORD")
            .env_remove("NODE_NAME")
            .args([
                "k8s",
                "agent",
                "--cluster-name",
                "test",
                "--listen",
                "127.0.0.1:0",
                "--node",
                node,
            ])
            .arg("--host-pods")
            .arg(pods)
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("agent log"))
            .stderr(out)
            .spawn()
            .expect("running cairn k8s agent");
        Self(child, log.to_owned())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
