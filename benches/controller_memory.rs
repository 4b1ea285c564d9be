//! Resident memory of `cairn k8s controller` while it watches many objects.
//!
//! Starts the tests' fake API server with cairn's definitions and
//! `CAIRN_BENCH_OBJECTS` (default 10000) finished Backups and Restores,
//! half each, runs the release binary against it, and prints the peak RSS
//! (VmHWM) once every object has been listed and reconciled and memory has
//! settled. Run with `cargo bench --bench controller_memory`.

#[path = "../tests/k8s_support/mod.rs"]
#[allow(unused_imports)]
mod k8s_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const NS: &str = "cairn-system";

fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let objects: usize = std::env::var("CAIRN_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let cluster = k8s_support::FakeCluster::empty();
    {
        let mut state = cluster.state();
        k8s_support::seed::cairn_installed(&mut state, NS);
        let far = "2126-01-01T00:00:00Z";
        for i in 0..objects / 2 {
            state.seed(
                "backup.cairn.io",
                "backups",
                json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup",
                       "metadata": {"name": format!("b-{i:06}"), "namespace": NS,
                                    "finalizers": ["backup.cairn.io/forget-snapshots"],
                                    "labels": {"backup.cairn.io/schedule": "nightly"}},
                       "spec": {"includedNamespaces": ["shop"], "ttl": "720h"}}),
            );
            state.seed(
                "backup.cairn.io",
                "restores",
                json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "Restore",
                       "metadata": {"name": format!("r-{i:06}"), "namespace": NS},
                       "spec": {"backupName": format!("b-{i:06}")}}),
            );
        }
        // Status is a subresource: set it behind the API's back.
        for (key, obj) in state.objects.iter_mut() {
            if key.1 == "backups" {
                obj["status"] = json!({"phase": "Completed", "startTimestamp": "2026-01-01T00:00:00Z",
                    "completionTimestamp": "2026-01-01T00:01:00Z", "expiration": far,
                    "manifestSnapshot": "0".repeat(64)});
            } else if key.1 == "restores" {
                obj["status"] = json!({"phase": "Completed", "objects": {"created": 10}});
            }
        }
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .env_remove("KUBECONFIG")
        .env("CAIRN_CACHE_DIR", dir.path())
        .args([
            "k8s",
            "controller",
            "--cluster-name",
            "bench",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(cluster.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running cairn k8s controller");
    let pid = child.id();
    let started = Instant::now();
    // Settled: the peak has not moved for five seconds (after at least ten).
    let mut last = 0;
    let mut still_since = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(250));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the controller exited with {status}");
        }
        let hwm = proc_status(pid, "VmHWM:");
        if hwm != last {
            last = hwm;
            still_since = Instant::now();
        } else if started.elapsed() > Duration::from_secs(10) && still_since.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let rss = proc_status(pid, "VmRSS:");
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "controller watching {objects} objects: peak RSS {:.1} MiB, RSS at rest {:.1} MiB",
        last as f64 / 1024.0,
        rss as f64 / 1024.0
    );
}
