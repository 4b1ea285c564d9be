//! Maintenance Jobs of `cairn k8s controller`, against the fake API server
//! (which has no Job controller: `finish_job` plays it). A due prune starts
//! one Job in the controller's namespace whose password comes only from its
//! Secret; results land in the BackupRepository's status and metrics; only
//! `keepJobs` finished Jobs stay; a restart starts no second Job for a run;
//! a failed check is recorded; a repository outside the controller's
//! namespace is told why it is not maintained.
//!
//! The schedules are yearly and the repositories were made long ago, so
//! exactly one run is due whatever the minute.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use chrono::{Datelike, Utc};
use controller_support::{
    cluster, create_at, has_event, labelled, secret, wait_object, wait_store, Controller, NS, PASSWORD,
};
use k8s_support::{FakeCluster, Key};
use serde_json::{json, Value};

const YEARLY: &str = "0 0 1 1 *";

fn repository_at(cluster: &FakeCluster, name: &str, url: &str, maintenance: Value) {
    secret(cluster, &format!("{name}-password"), &[("password", PASSWORD)]);
    create_at(
        cluster,
        "backuprepositories",
        "BackupRepository",
        name,
        "2020-06-01T00:00:00Z",
        json!({"url": url, "passwordSecretRef": {"name": format!("{name}-password"), "key": "password"},
               "options": {"timeout": "30s"}, "maintenance": maintenance}),
        Value::Null,
    );
}

fn job_key(name: &str) -> Key {
    ("batch".into(), "jobs".into(), NS.into(), name.into())
}

fn jobs_of(cluster: &FakeCluster, repository: &str) -> Vec<Value> {
    labelled(
        &cluster.objects(),
        "batch",
        "jobs",
        "backup.cairn.io/repository",
        repository,
    )
}

fn repo_key(name: &str) -> Key {
    controller_support::key("backuprepositories", name)
}

#[test]
fn a_due_prune_runs_once_as_a_job_with_the_password_from_its_secret() {
    let cluster = cluster();
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("repo").to_str().unwrap().to_owned();
    repository_at(
        &cluster,
        "main",
        &url,
        json!({"schedule": YEARLY, "keepJobs": 1,
        "resources": {"limits": {"memory": "512Mi"}}}),
    );
    // The Job of last year's run, finished long ago.
    let uid = cluster
        .get("backup.cairn.io", "backuprepositories", NS, "main")
        .unwrap()["metadata"]["uid"]
        .clone();
    let year = Utc::now().year();
    let old = format!("main-prune-{}0101000000", year - 1);
    cluster.state().seed(
        "batch",
        "jobs",
        json!({"metadata": {"name": old, "namespace": NS,
                            "labels": {"backup.cairn.io/repository": "main", "backup.cairn.io/maintenance": "prune"},
                            "annotations": {"backup.cairn.io/run-time": format!("{}-01-01T00:00:00Z", year - 1)},
                            "ownerReferences": [{"apiVersion": "backup.cairn.io/v1alpha1", "kind": "BackupRepository",
                                                 "name": "main", "uid": uid, "controller": true}]},
               "spec": {"template": {"spec": {"containers": [], "restartPolicy": "Never"}}},
               "status": {"completionTime": format!("{}-01-01T00:10:00Z", year - 1), "succeeded": 1,
                          "conditions": [{"type": "Complete", "status": "True", "message": "done"}]}}),
    );
    let mut controller = Controller::start(&cluster, &[]);

    let name = format!("main-prune-{year}0101000000");
    let job = wait_object(&cluster, &controller, &job_key(&name), "this year's prune Job", |o| {
        o.is_some()
    })
    .unwrap();
    assert_eq!(job["metadata"]["labels"]["backup.cairn.io/maintenance"], "prune");
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], uid);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(args.contains(&"prune"), "{args:?}");
    assert_eq!(&args[..2], ["-r", url.as_str()]);
    assert!(args.windows(2).any(|w| w == ["-o", "timeout=30s"]), "{args:?}");
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    let password_env: Vec<&Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "CAIRN_PASSWORD")
        .collect();
    assert_eq!(
        password_env,
        [
            &json!({"name": "CAIRN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "main-password", "key": "password"}}})
        ]
    );
    assert!(!job.to_string().contains(PASSWORD), "{job}");
    assert!(job["spec"]["backoffLimit"].as_i64().is_some_and(|b| b <= 1), "{job}");
    assert!(
        job["spec"]["activeDeadlineSeconds"].as_i64().is_some_and(|s| s > 0),
        "{job}"
    );
    // Last year's Job was the newest result when the controller started.
    let repo = wait_object(&cluster, &controller, &repo_key("main"), "last year's result", |o| {
        o.and_then(|o| o.pointer("/status/lastMaintenance/job")) == Some(&json!(old))
    })
    .unwrap();
    assert_eq!(repo["status"]["lastMaintenance"]["result"], "Succeeded");
    wait_store(&cluster, &controller, "an event of the Job started", |objects| {
        has_event(objects, "main", "MaintenanceStarted")
    });

    // A restart while the Job runs starts no second one; once it finishes,
    // its result is recorded and last year's Job goes (keepJobs 1).
    controller.restart();
    cluster.finish_job(NS, &name, true);
    let repo = wait_object(&cluster, &controller, &repo_key("main"), "this year's result", |o| {
        o.and_then(|o| o.pointer("/status/lastMaintenance/job")) == Some(&json!(name))
    })
    .unwrap();
    let last = &repo["status"]["lastMaintenance"];
    assert_eq!(last["result"], "Succeeded", "{repo}");
    assert_eq!(last["message"], "Reached expected number of succeeded pods", "{repo}");
    assert!(
        last["time"].as_str().is_some_and(|t| t.starts_with(&year.to_string())),
        "{repo}"
    );
    wait_object(&cluster, &controller, &job_key(&old), "last year's Job deleted", |o| {
        o.is_none()
    });
    let names: Vec<Value> = jobs_of(&cluster, "main")
        .iter()
        .map(|j| j["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, vec![json!(name)]);
    let metrics = controller.http_get("/metrics");
    assert!(
        metrics.contains(
            "cairn_maintenance_jobs_total{repository=\"cairn-system/main\",kind=\"prune\",result=\"Succeeded\"} 1\n"
        ),
        "{metrics}"
    );
    wait_store(&cluster, &controller, "an event of the result", |objects| {
        has_event(objects, "main", "PruneSucceeded")
    });
}

#[test]
fn a_failed_check_is_recorded_and_other_namespaces_are_told_why_not() {
    let cluster = cluster();
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("repo").to_str().unwrap().to_owned();
    repository_at(
        &cluster,
        "checked",
        &url,
        json!({"checkSchedule": YEARLY, "readDataSubset": "10%"}),
    );
    {
        let mut s = cluster.state();
        s.seed("", "namespaces", json!({"metadata": {"name": "elsewhere"}}));
        s.seed(
            "backup.cairn.io",
            "backuprepositories",
            json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "BackupRepository",
                   "metadata": {"name": "away", "namespace": "elsewhere", "creationTimestamp": "2020-06-01T00:00:00Z"},
                   "spec": {"url": url, "passwordSecretRef": {"name": "pw", "key": "password"},
                            "maintenance": {"schedule": YEARLY}}}),
        );
    }
    let controller = Controller::start(&cluster, &[]);

    let name = format!("checked-check-{}0101000000", Utc::now().year());
    let job = wait_object(&cluster, &controller, &job_key(&name), "the check Job", |o| o.is_some()).unwrap();
    let args: Vec<&str> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args[args.len() - 3..],
        ["check", "--read-data-subset", "10%"],
        "{args:?}"
    );
    cluster.finish_job(NS, &name, false);
    let repo = wait_object(&cluster, &controller, &repo_key("checked"), "the failed check", |o| {
        o.and_then(|o| o.pointer("/status/lastCheck/job")) == Some(&json!(name))
    })
    .unwrap();
    let last = &repo["status"]["lastCheck"];
    assert_eq!(last["result"], "Failed", "{repo}");
    assert_eq!(last["message"], "Job has reached the specified backoff limit", "{repo}");
    assert!(repo.pointer("/status/lastMaintenance").is_none(), "{repo}");

    let away: Key = (
        "backup.cairn.io".into(),
        "backuprepositories".into(),
        "elsewhere".into(),
        "away".into(),
    );
    let repo = wait_object(&cluster, &controller, &away, "why it is not maintained", |o| {
        o.and_then(|o| o.pointer("/status/lastMaintenance/message")).is_some()
    })
    .unwrap();
    let message = repo["status"]["lastMaintenance"]["message"].as_str().unwrap();
    assert!(message.contains("controller's namespace cairn-system"), "{message}");
    assert_eq!(repo["status"]["lastMaintenance"]["result"], "Failed");
    assert!(
        !cluster
            .objects()
            .keys()
            .any(|(g, p, _, n)| g == "batch" && p == "jobs" && n.starts_with("away-")),
        "no Job for a repository in another namespace"
    );
    let metrics = controller.http_get("/metrics");
    assert!(
        metrics.contains(
            "cairn_maintenance_jobs_total{repository=\"cairn-system/checked\",kind=\"check\",result=\"Failed\"} 1\n"
        ),
        "{metrics}"
    );
}
