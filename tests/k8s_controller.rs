//! `cairn k8s controller` as a process against the fake API server: it
//! refuses a cluster without cairn's definitions, runs without a password
//! in its environment, and serves its health and metrics endpoints.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use assert_cmd::Command;
use controller_support::{cluster, Controller};
use k8s_support::FakeCluster;

/// Runs the controller until it exits; returns its standard error.
fn fails(cluster: &FakeCluster) -> String {
    let out = Command::cargo_bin("cairn")
        .unwrap()
        .env_remove("KUBECONFIG")
        .env_remove("CAIRN_PASSWORD")
        .args(["k8s", "controller", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn without_the_definitions_it_says_to_install_them() {
    let cluster = FakeCluster::empty();
    let err = fails(&cluster);
    assert!(
        err.contains("CustomResourceDefinition backuprepositories.backup.cairn.io is not installed")
            && err.contains("cairn k8s install"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn an_unreachable_cluster_is_one_line() {
    let cluster = FakeCluster::empty();
    cluster.stop();
    let err = fails(&cluster);
    assert!(err.contains("cannot reach the Kubernetes API server"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn it_serves_health_readiness_and_metrics_without_a_password() {
    let cluster = cluster();
    let controller = Controller::start(&cluster, &[]);
    let health = controller.http_get("/healthz");
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    let ready = controller.http_get("/readyz");
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    let metrics = controller.http_get("/metrics");
    assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
    assert!(
        controller.log().contains("cairn controller for cluster test"),
        "{}",
        controller.log()
    );
}
