//! Peak resident memory of `cairn k8s backup` for a large cluster.
//!
//! Seeds the tests' fake API server with `CAIRN_BENCH_OBJECTS` (default
//! 100000) ConfigMaps of about 300 bytes in ten namespaces, runs the
//! built binary's `k8s backup` against it into a new local repository, and
//! prints the backup's wall time and its peak RSS: the child's `VmHWM`,
//! read every 10 ms until it exits (the fake server runs in this process
//! and is not counted; `getrusage(RUSAGE_CHILDREN)` would count it, as
//! Linux carries the high-water mark of the spawning process's memory
//! across the child's exec). The repository's
//! key is derived with 8 MiB (the smallest Argon2id memory cairn allows)
//! so that the key derivation, which with the default parameters alone
//! peaks above a hundred MiB when the repository is opened, does not hide
//! the memory the objects take. Run with
//! `cargo bench --bench k8s_backup_memory` (a release build), or
//! `CAIRN_BENCH_OBJECTS=10000 cargo bench --bench k8s_backup_memory` to
//! compare sizes.

#[path = "../tests/k8s_support/mod.rs"]
#[allow(unused_imports)]
mod k8s_support;

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;

const PASSWORD: &str = "bench-password";

/// The binary measured: this build's, or `CAIRN_BENCH_BIN` (another
/// build, to compare).
fn cairn(repo: &std::path::Path) -> Command {
    let bin = std::env::var_os("CAIRN_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_cairn").into());
    let mut cmd = Command::new(bin);
    cmd.env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_REPOSITORY")
        .env_remove("KUBECONFIG")
        .arg("-r")
        .arg(repo)
        .stdin(Stdio::null());
    cmd
}

/// A process's peak resident set so far, in KiB (0 once it is gone).
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let objects: usize = std::env::var("CAIRN_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // CAIRN_BENCH_DRY_RUN=1: read and chunk everything, store nothing.
    let dry_run = std::env::var_os("CAIRN_BENCH_DRY_RUN").is_some_and(|v| v == "1");
    let cluster = k8s_support::FakeCluster::empty();
    let seeding = Instant::now();
    {
        let mut state = cluster.state();
        for ns in 0..10 {
            state.seed("", "namespaces", json!({"metadata": {"name": format!("ns-{ns}")}}));
        }
        for i in 0..objects {
            state.seed(
                "",
                "configmaps",
                json!({"metadata": {"name": format!("cm-{i:06}"), "namespace": format!("ns-{}", i % 10),
                                    "labels": {"app": "bench"}},
                       "data": {"index": i.to_string(), "config": "x".repeat(200)}}),
            );
        }
    }
    eprintln!("seeded {objects} config maps in {:.1?}", seeding.elapsed());
    let dir = tempfile::tempdir().expect("temporary directory");
    let repo = dir.path().join("repo");
    // Created here, not by a child, so that only the backup is measured.
    cairn::repo::Repository::init(
        std::sync::Arc::new(cairn::storage::local::LocalStorage::new(repo.clone())),
        PASSWORD.as_bytes(),
        cairn::repo::InitOptions {
            kdf: cairn::format::keyfile::KdfParams {
                memory_kib: 8192,
                iterations: 1,
                parallelism: 1,
            },
            ..cairn::repo::InitOptions::default()
        },
    )
    .expect("creating the repository");
    let started = Instant::now();
    let child = cairn(&repo)
        .env("CAIRN_CACHE_DIR", dir.path().join("cache"))
        .args(["--json", "k8s", "backup", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .args(dry_run.then_some("--dry-run"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn k8s backup");
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(peak_kib(pid));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak
        })
    };
    let out = child.wait_with_output().expect("cairn k8s backup");
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = watcher.join().unwrap_or(0);
    assert!(
        out.status.success(),
        "cairn k8s backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let stored = summary
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .and_then(|v| v["resources"]["configmaps"].as_u64())
        .unwrap_or(0);
    assert_eq!(stored as usize, objects, "{summary}");
    println!(
        "k8s backup of {objects} config maps: {:.1?}, peak RSS {:.1} MiB",
        took,
        peak as f64 / 1024.0
    );
}
