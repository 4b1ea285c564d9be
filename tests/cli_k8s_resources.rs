//! `cairn k8s create|get|describe|delete` through the binary against the
//! fake API server (tests/k8s_support), with the definitions installed.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use cli_support::{fails_with, succeeds};
use k8s_support::{FakeCluster, Key};
use serde_json::{json, Value};

const NS: &str = "cairn-system";

fn cluster() -> FakeCluster {
    let cluster = FakeCluster::empty();
    k8s_support::seed::cairn_installed(&mut cluster.state(), NS);
    cluster
}

fn k8s(cluster: &FakeCluster, words: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("cairn").unwrap();
    cmd.env_remove("KUBECONFIG")
        .arg("k8s")
        .args(words)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig());
    cmd
}

fn key(plural: &str, name: &str) -> Key {
    ("backup.cairn.io".into(), plural.into(), NS.into(), name.into())
}

fn set_status(cluster: &FakeCluster, plural: &str, name: &str, status: Value) {
    let mut state = cluster.state();
    let obj = state.objects.get_mut(&key(plural, name)).expect("object exists");
    obj["status"] = status;
}

#[test]
fn create_then_get_shows_it() {
    let cluster = cluster();
    let out = succeeds(&mut k8s(
        &cluster,
        &[
            "create",
            "backup",
            "shop-1",
            "--include-namespaces",
            "shop",
            "-l",
            "app=web",
            "--ttl",
            "1h30m",
        ],
    ));
    assert!(out.contains("backup.backup.cairn.io/shop-1 created"), "{out}");
    let stored = &cluster.objects()[&key("backups", "shop-1")];
    assert_eq!(stored["spec"]["includedNamespaces"], json!(["shop"]));
    assert_eq!(stored["spec"]["labelSelector"], "app=web");
    assert_eq!(stored["spec"]["ttl"], "1h30m");

    succeeds(&mut k8s(
        &cluster,
        &[
            "create",
            "schedule",
            "hourly",
            "--schedule",
            "0 */1 * * *",
            "--include-namespaces",
            "shop",
        ],
    ));
    assert_eq!(
        cluster.objects()[&key("schedules", "hourly")]["spec"]["schedule"],
        "0 */1 * * *"
    );
    succeeds(&mut k8s(
        &cluster,
        &[
            "create",
            "restore",
            "r1",
            "--from-backup",
            "shop-1",
            "--namespace-mapping",
            "shop:shop2",
            "--preserve-nodeports",
        ],
    ));
    let r = &cluster.objects()[&key("restores", "r1")];
    assert_eq!(r["spec"]["backupName"], "shop-1");
    assert_eq!(r["spec"]["namespaceMapping"], json!({"shop": "shop2"}));
    assert_eq!(r["spec"]["preserveNodePorts"], true);

    let table = succeeds(&mut k8s(&cluster, &["get", "backups"]));
    assert!(table.lines().any(|l| l.starts_with("shop-1")), "{table}");
    let json = succeeds(k8s(&cluster, &["get", "backups", "--json"]).arg("--namespace").arg(NS));
    let list: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(list[0]["metadata"]["name"], "shop-1");
    let schedules = succeeds(&mut k8s(&cluster, &["get", "schedules"]));
    assert!(
        schedules.contains("hourly") && schedules.contains("0 */1 * * *"),
        "{schedules}"
    );
    let restores: Value =
        serde_json::from_str(succeeds(&mut k8s(&cluster, &["get", "restores", "--json"])).trim()).unwrap();
    assert_eq!(restores.as_array().unwrap().len(), 1);
    let repos: Value =
        serde_json::from_str(succeeds(&mut k8s(&cluster, &["get", "repositories", "--json"])).trim()).unwrap();
    assert_eq!(repos, json!([]));
}

#[test]
fn describe_prints_phase_and_snapshot_and_delete_removes() {
    let cluster = cluster();
    succeeds(&mut k8s(&cluster, &["create", "backup", "b1"]));
    set_status(
        &cluster,
        "backups",
        "b1",
        json!({"phase": "PartiallyFailed", "manifestSnapshot": "5e1f00aa", "warnings": ["pods list: forbidden"],
               "errors": ["volume shop/db-0/data: no such directory"],
               "volumeBackups": {"total": 2, "completed": 1, "failed": 1},
               "hooks": [{"namespace": "shop", "pod": "db-0", "container": "db", "phase": "pre", "index": 0,
                          "command": ["fsfreeze", "--freeze", "/data"], "onError": "Fail", "exitCode": 0,
                          "output": "frozen\n", "completionTimestamp": "2026-01-01T00:00:00Z"},
                         {"namespace": "shop", "pod": "db-0", "container": "db", "phase": "post", "index": 0,
                          "command": ["fsfreeze", "--unfreeze", "/data"], "onError": "Fail", "exitCode": 1,
                          "error": "exited with code 1", "completionTimestamp": "2026-01-01T00:00:01Z"}]}),
    );
    let text = succeeds(&mut k8s(&cluster, &["describe", "backup", "b1"]));
    assert!(text.contains("Hooks:      2"), "{text}");
    assert!(
        text.contains("pre  shop/db-0 container db [\"fsfreeze\",\"--freeze\",\"/data\"]: exit code 0"),
        "{text}"
    );
    assert!(text.contains("      | frozen"), "{text}");
    assert!(
        text.contains(
            "post shop/db-0 container db [\"fsfreeze\",\"--unfreeze\",\"/data\"]: failed (Fail): exited with code 1"
        ),
        "{text}"
    );
    assert!(text.contains("Phase:      PartiallyFailed"), "{text}");
    assert!(text.contains("5e1f00aa"), "{text}");
    assert!(text.contains("2 total, 1 completed, 1 failed"), "{text}");
    assert!(
        text.contains("pods list: forbidden") && text.contains("no such directory"),
        "{text}"
    );

    let out = succeeds(&mut k8s(&cluster, &["delete", "backup", "b1"]));
    assert!(out.contains("deleted"), "{out}");
    assert!(!cluster.objects().contains_key(&key("backups", "b1")));
    let err = fails_with(&mut k8s(&cluster, &["describe", "backup", "b1"]), 1);
    assert!(err.contains("b1") && err.contains("404"), "{err}");
}

/// Runs `create backup NAME --wait`, sets `phase` once the object exists,
/// and returns the exit code.
fn wait_for_phase(phase: &str) -> i32 {
    let cluster = cluster();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .env_remove("KUBECONFIG")
        .args([
            "k8s",
            "create",
            "backup",
            "w",
            "--wait",
            "--wait-timeout",
            "60s",
            "--kubeconfig",
        ])
        .arg(cluster.kubeconfig())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.objects().contains_key(&key("backups", "w")) {
        assert!(Instant::now() < deadline, "the backup was not created");
        std::thread::sleep(Duration::from_millis(20));
    }
    set_status(&cluster, "backups", "w", json!({"phase": "InProgress"}));
    set_status(
        &cluster,
        "backups",
        "w",
        json!({"phase": phase, "manifestSnapshot": "ab"}),
    );
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap();
        }
        assert!(Instant::now() < deadline, "--wait did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn wait_exits_zero_only_when_completed() {
    assert_eq!(wait_for_phase("Completed"), 0);
    assert_eq!(wait_for_phase("Failed"), 1);
}

#[test]
fn bad_input_is_named() {
    let cluster = cluster();
    let err = fails_with(&mut k8s(&cluster, &["create", "backup", "x", "--ttl", "30d"]), 2);
    assert!(err.contains("--ttl") && err.contains("30d"), "{err}");
    let err = fails_with(
        &mut k8s(&cluster, &["create", "schedule", "s", "--schedule", "61 * * * *"]),
        2,
    );
    assert!(err.contains("--schedule"), "{err}");
    let err = fails_with(
        &mut k8s(
            &cluster,
            &[
                "create",
                "restore",
                "r",
                "--from-backup",
                "b",
                "--namespace-mapping",
                "nocolon",
            ],
        ),
        2,
    );
    assert!(err.contains("nocolon"), "{err}");
    assert!(cluster.log().is_empty(), "{:?}", cluster.log());
    succeeds(&mut k8s(&cluster, &["create", "backup", "dup"]));
    let err = fails_with(&mut k8s(&cluster, &["create", "backup", "dup"]), 1);
    assert!(err.contains("dup") && err.contains("409"), "{err}");
}

#[test]
fn wait_gives_up_after_its_timeout_naming_the_object() {
    let cluster = cluster();
    // Nothing ever sets a phase: no controller runs here.
    let out = k8s(
        &cluster,
        &[
            "create",
            "restore",
            "late",
            "--from-backup",
            "b",
            "--wait",
            "--wait-timeout",
            "1s",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("Restore late") && last.contains("not finished within 1s"),
        "{stderr}"
    );
}
