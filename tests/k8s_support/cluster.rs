//! A running fake API server, its kubeconfig, and what tests do to it:
//! read and wait for objects, inject failures, compact, stop and restart on
//! the same port, and play the Job controller.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::task::AbortHandle;

use super::exec::{ExecCall, ExecResult, ExecScript};
use super::{handle, lock, now, seed, Key, Logged, State};

/// The accept loop and the connections of a running server.
#[derive(Default)]
struct Serving {
    tasks: Vec<AbortHandle>,
}

/// A running fake API server and a kubeconfig pointing at it.
pub struct FakeCluster {
    pub state: Arc<Mutex<State>>,
    pub url: String,
    addr: SocketAddr,
    serving: Arc<Mutex<Serving>>,
    runtime: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
}

fn serve(
    runtime: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    serving: Arc<Mutex<Serving>>,
) {
    let tasks = serving.clone();
    let accept = runtime.spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            let conn = tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
            let mut serving = tasks.lock().unwrap_or_else(|p| p.into_inner());
            serving.tasks.retain(|t| !t.is_finished());
            serving.tasks.push(conn.abort_handle());
        }
    });
    serving
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .tasks
        .push(accept.abort_handle());
}

impl FakeCluster {
    /// An empty cluster: no objects, not even namespaces.
    pub fn empty() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = Arc::new(Mutex::new(Serving::default()));
        serve(&runtime, listener, state.clone(), serving.clone());
        let url = format!("http://{addr}");
        let dir = tempfile::tempdir().unwrap();
        let cluster = Self {
            state,
            url,
            addr,
            serving,
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

    /// A kube client for this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.url.parse().unwrap())).unwrap()
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn objects(&self) -> BTreeMap<Key, Value> {
        self.state().objects.clone()
    }

    /// One object as JSON: `get("batch", "jobs", "ns", "name")` ("" for the
    /// core group or a cluster-scoped object).
    pub fn get(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state()
            .objects
            .get(&(
                group.to_owned(),
                plural.to_owned(),
                namespace.to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }

    /// How many objects of a resource exist.
    pub fn count(&self, group: &str, plural: &str) -> usize {
        self.state()
            .objects
            .keys()
            .filter(|(g, p, _, _)| g == group && p == plural)
            .count()
    }

    /// Polls the store until `condition` holds; false after `timeout`.
    pub fn wait_for(&self, condition: impl Fn(&BTreeMap<Key, Value>) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(&self.state().objects) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next `n` requests answer with status `code`.
    pub fn fail_next(&self, n: u32, code: u16) {
        self.state().fail_next(n, code);
    }

    /// Makes every resourceVersion handed out so far too old: open watches
    /// end, and watches from those versions get 410 Gone.
    pub fn compact(&self) {
        self.state().compact();
    }

    /// How often open watches get a bookmark.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.state().bookmark_interval = interval;
    }

    /// An API server outage: the port closes and every connection (and
    /// watch) is cut. The state is kept for [`restart`](Self::restart).
    pub fn stop(&self) {
        let tasks = std::mem::take(&mut self.serving.lock().unwrap_or_else(|p| p.into_inner()).tasks);
        for t in tasks {
            t.abort();
        }
        self.state().end_watches();
        // Wait until the port is closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(self.addr).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Serves again on the same port, with the same state.
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("rebinding {}: {e}", self.addr),
            }
        };
        listener.set_nonblocking(true).unwrap();
        let runtime = self.runtime.as_ref().unwrap();
        serve(runtime, listener, self.state.clone(), self.serving.clone());
    }

    /// Finishes a Job as the Job controller would: `Complete` (with
    /// `SuccessCriteriaMet`) and `succeeded: 1`, or `Failed` (with
    /// `FailureTarget`) and `failed: 1`; `completionTime` on success.
    pub fn finish_job(&self, namespace: &str, name: &str, succeeded: bool) {
        let mut s = self.state();
        let d = s.def_of("batch", "jobs").unwrap();
        let key = (
            "batch".to_owned(),
            "jobs".to_owned(),
            namespace.to_owned(),
            name.to_owned(),
        );
        let mut job = s
            .objects
            .get(&key)
            .cloned()
            .unwrap_or_else(|| panic!("no job {namespace}/{name}"));
        let t = now();
        let cond = |kind: &str, reason: &str, message: &str| {
            json!({"type": kind, "status": "True", "lastProbeTime": t, "lastTransitionTime": t,
                   "reason": reason, "message": message})
        };
        let start = job.pointer("/status/startTime").cloned().unwrap_or(json!(t));
        job["status"] = if succeeded {
            json!({"startTime": start, "completionTime": t, "succeeded": 1, "ready": 0, "terminating": 0,
                   "uncountedTerminatedPods": {},
                   "conditions": [cond("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                                  cond("Complete", "CompletionsReached", "Reached expected number of succeeded pods")]})
        } else {
            json!({"startTime": start, "failed": 1, "ready": 0, "terminating": 0,
                   "uncountedTerminatedPods": {},
                   "conditions": [cond("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                                  cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]})
        };
        s.replace(&d, &key, job, Some("job-controller")).unwrap();
    }

    pub fn forbid(&self, group: &str, plural: &str) {
        self.state().forbidden.insert((group.into(), plural.into()));
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// The paths of the creates (POST requests) so far, in order.
    pub fn posts(&self) -> Vec<String> {
        self.state()
            .log
            .iter()
            .filter(|l| l.method == "POST")
            .map(|l| l.path.clone())
            .collect()
    }

    /// Scripts the answer of exec for the commands starting with `prefix`
    /// in `container` ("" for any) of pod `namespace/pod`.
    pub fn script_exec(&self, namespace: &str, pod: &str, container: &str, prefix: &[&str], result: ExecResult) {
        self.state().exec_scripts.push(ExecScript {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            prefix: prefix.iter().map(|p| (*p).to_owned()).collect(),
            result,
        });
    }

    /// Every exec answered so far, in order.
    pub fn execs(&self) -> Vec<ExecCall> {
        self.state().execs.clone()
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
