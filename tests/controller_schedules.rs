//! The Schedule reconciler of `cairn k8s controller`, against the fake API
//! server: a valid cron is Enabled with its next run, an invalid one
//! FailedValidation; a Schedule that missed runs gets one catch-up Backup,
//! also across a restart; a paused one gets none; a running Backup holds
//! the next run.
//!
//! Cron has minute resolution, so the tests place the times that matter in
//! the past (a creationTimestamp seeded long ago, a yearly cron) instead of
//! waiting for minutes to pass.
#![cfg(feature = "k8s")]

mod controller_support;
mod k8s_support;

use chrono::{DateTime, Datelike, Duration as Span, Utc};
use controller_support::{
    cluster, create, create_at, has_event, init_repository, key, labelled, repository, set_status, wait_object,
    wait_phase, wait_store, Controller, NS, PASSWORD,
};
use serde_json::{json, Value};

const LABEL: &str = "backup.cairn.io/schedule";

fn time(v: &Value, ptr: &str) -> Option<DateTime<Utc>> {
    v.pointer(ptr)?.as_str()?.parse().ok()
}

fn backups_of(cluster: &k8s_support::FakeCluster, schedule: &str) -> Vec<Value> {
    labelled(&cluster.objects(), "backup.cairn.io", "backups", LABEL, schedule)
}

#[test]
fn a_valid_cron_is_enabled_with_its_next_run_and_an_invalid_one_fails_validation() {
    let cluster = cluster();
    create(
        &cluster,
        "schedules",
        "Schedule",
        "every",
        json!({"schedule": "* * * * *"}),
    );
    create(
        &cluster,
        "schedules",
        "Schedule",
        "bad",
        json!({"schedule": "61 * * * *"}),
    );
    create(
        &cluster,
        "schedules",
        "Schedule",
        "badttl",
        json!({"schedule": "@daily", "template": {"ttl": "5 days"}}),
    );
    let controller = Controller::start(&cluster, &[]);

    let every = wait_phase(&cluster, &controller, "schedules", "every", "Enabled");
    let created = time(&every, "/metadata/creationTimestamp").unwrap();
    let next = time(&every, "/status/nextBackup").unwrap();
    let first_run = DateTime::from_timestamp(created.timestamp() / 60 * 60 + 60, 0).unwrap();
    // The first run is the first minute after the Schedule appeared; when
    // that minute has already come, its Backup exists and the next follows.
    if next == first_run {
        assert!(every.pointer("/status/lastBackup").is_none(), "{every}");
    } else {
        assert_eq!(time(&every, "/status/lastBackup"), Some(first_run), "{every}");
        assert_eq!(next, first_run + Span::minutes(1), "{every}");
    }
    assert_eq!(every["status"]["message"], Value::Null, "{every}");

    let bad = wait_phase(&cluster, &controller, "schedules", "bad", "FailedValidation");
    let message = bad["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("61 * * * *") && message.contains("minute 61 is outside 0-59"),
        "{bad}"
    );
    assert!(bad.pointer("/status/nextBackup").is_none(), "{bad}");
    let badttl = wait_phase(&cluster, &controller, "schedules", "badttl", "FailedValidation");
    let message = badttl["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("template.ttl: ") && message.contains("5 days"),
        "{badttl}"
    );
    assert!(backups_of(&cluster, "bad").is_empty());
    wait_store(&cluster, &controller, "an event says why", |objects| {
        has_event(objects, "bad", "FailedValidation")
    });
}

#[test]
fn missed_runs_give_one_catch_up_backup_also_across_a_restart() {
    let cluster = cluster();
    // Yearly, since 2020: every New Year's run since was missed.
    create_at(
        &cluster,
        "schedules",
        "Schedule",
        "yearly",
        "2020-06-01T00:00:00Z",
        json!({"schedule": "0 0 1 1 *", "useOwnerReferencesInBackup": true,
               "template": {"includedNamespaces": ["shop"], "ttl": "24h", "repository": "main"}}),
        Value::Null,
    );
    let mut controller = Controller::start(&cluster, &[]);
    let year = Utc::now().year();
    let name = format!("yearly-{year}0101000000");
    let k = key("backups", &name);
    let backup = wait_object(&cluster, &controller, &k, "the catch-up Backup", |o| o.is_some()).unwrap();
    assert_eq!(backup["metadata"]["labels"][LABEL], "yearly", "{backup}");
    assert_eq!(
        backup["spec"],
        json!({"includedNamespaces": ["shop"], "ttl": "24h", "repository": "main"})
    );
    let schedule = cluster.get("backup.cairn.io", "schedules", NS, "yearly").unwrap();
    let owner = &backup["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Schedule");
    assert_eq!(owner["uid"], schedule["metadata"]["uid"]);

    let sk = key("schedules", "yearly");
    let schedule = wait_object(&cluster, &controller, &sk, "the run recorded", |o| {
        o.and_then(|o| o.pointer("/status/nextBackup")).is_some()
    })
    .unwrap();
    assert_eq!(schedule["status"]["phase"], "Enabled");
    assert_eq!(schedule["status"]["lastBackup"], format!("{year}-01-01T00:00:00Z"));
    assert_eq!(
        schedule["status"]["nextBackup"],
        format!("{}-01-01T00:00:00Z", year + 1)
    );
    assert_eq!(backups_of(&cluster, "yearly").len(), 1);
    wait_store(&cluster, &controller, "an event of the Backup created", |objects| {
        has_event(objects, "yearly", "BackupCreated")
    });

    // Killed after creating the Backup but (as far as the status tells)
    // before recording it: the restarted controller finds it by name.
    controller.kill();
    set_status(&cluster, "backup.cairn.io", "schedules", NS, "yearly", json!({}));
    controller.restart();
    wait_object(&cluster, &controller, &sk, "the run recorded again", |o| {
        o.and_then(|o| o.pointer("/status/lastBackup")).is_some()
    });
    let names: Vec<Value> = backups_of(&cluster, "yearly")
        .iter()
        .map(|b| b["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, vec![json!(name)]);
}

#[test]
fn a_paused_schedule_creates_nothing() {
    let cluster = cluster();
    create_at(
        &cluster,
        "schedules",
        "Schedule",
        "paused",
        "2020-06-01T00:00:00Z",
        json!({"schedule": "* * * * *", "paused": true}),
        json!({"phase": "Enabled", "nextBackup": "2020-06-01T00:01:00Z"}),
    );
    let controller = Controller::start(&cluster, &[]);
    let k = key("schedules", "paused");
    let schedule = wait_object(&cluster, &controller, &k, "nextBackup cleared", |o| {
        o.is_some_and(|o| {
            o.pointer("/status/phase") == Some(&json!("Enabled")) && o.pointer("/status/nextBackup").is_none()
        })
    })
    .unwrap();
    assert!(schedule.pointer("/status/lastBackup").is_none(), "{schedule}");
    assert!(backups_of(&cluster, "paused").is_empty());
}

#[test]
fn a_running_backup_holds_the_next_run_until_it_finishes() {
    let cluster = cluster();
    let last = (Utc::now() - Span::minutes(10))
        .format("%Y-%m-%dT%H:%M:00Z")
        .to_string();
    let last_name = format!("busy-{}", last.replace(['-', ':', 'T', 'Z'], ""));
    create_at(
        &cluster,
        "schedules",
        "Schedule",
        "busy",
        "2020-06-01T00:00:00Z",
        json!({"schedule": "* * * * *"}),
        json!({"phase": "Enabled", "lastBackup": last}),
    );
    // Its last Backup has not finished: a prune's lock on the repository
    // holds it InProgress until the test lets it go.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_repository(&path);
    repository(&cluster, "default", &path, json!({}));
    let repo = cairn::repo::Repository::open(
        std::sync::Arc::new(cairn::storage::local::LocalStorage::new(path.clone())),
        PASSWORD.as_bytes(),
    )
    .unwrap();
    let lock = repo
        .lock(cairn::repo::LockKind::Exclusive, std::time::Duration::ZERO)
        .unwrap();
    cluster.state().seed(
        "backup.cairn.io",
        "backups",
        json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup",
               "metadata": {"name": last_name, "namespace": NS, "labels": {LABEL: "busy"}},
               "spec": {}}),
    );
    let controller = Controller::start(&cluster, &[]);
    wait_phase(&cluster, &controller, "backups", &last_name, "InProgress");
    let k = key("schedules", "busy");
    let schedule = wait_object(&cluster, &controller, &k, "the run waits", |o| {
        o.and_then(|o| o.pointer("/status/message"))
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains(&format!("waits for Backup {last_name} to finish")))
    })
    .unwrap();
    assert_eq!(schedule["status"]["phase"], "Enabled");
    assert_eq!(backups_of(&cluster, "busy").len(), 1);

    // Once it finishes, the overdue run starts at once (one Backup, for the
    // latest minute).
    set_status(
        &cluster,
        "backup.cairn.io",
        "backups",
        NS,
        &last_name,
        json!({"phase": "Completed", "completionTimestamp": Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()}),
    );
    wait_store(&cluster, &controller, "the overdue run's Backup", |objects| {
        labelled(objects, "backup.cairn.io", "backups", LABEL, "busy").len() == 2
    });
    let all = backups_of(&cluster, "busy");
    let newest = all
        .iter()
        .map(|b| b["metadata"]["name"].as_str().unwrap().to_owned())
        .find(|n| *n != last_name)
        .unwrap();
    let minute = newest.trim_start_matches("busy-");
    assert!(
        minute.ends_with("00") && minute > last_name.trim_start_matches("busy-"),
        "{newest}"
    );
    wait_object(&cluster, &controller, &k, "the run recorded", |o| {
        o.and_then(|o| o.pointer("/status/lastBackup"))
            .and_then(Value::as_str)
            .is_some_and(|t| t.replace(['-', ':', 'T', 'Z'], "") == minute)
    });
    let metrics = controller.http_get("/metrics");
    assert!(
        metrics.contains("cairn_schedule_last_success_timestamp_seconds{schedule=\"cairn-system/busy\"}"),
        "{metrics}"
    );
    drop(lock);
}
