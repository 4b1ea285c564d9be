//! The contract of the custom resources: names, fields, defaults, round trips.

use serde_json::{json, Value};

use super::*;

fn crd_json(kind: &str) -> Value {
    let crd = all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no definition of {kind}"));
    serde_json::to_value(crd).unwrap()
}

fn schema(kind: &str) -> Value {
    crd_json(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn props<'a>(schema: &'a Value, path: &str) -> Vec<&'a str> {
    let mut node = schema;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        node = &node["properties"][part];
    }
    let mut keys: Vec<&str> = node["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties at {path}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The values of an enum (kube lists `null` too for optional fields).
fn values(v: &Value) -> Value {
    Value::Array(v.as_array().unwrap().iter().filter(|x| !x.is_null()).cloned().collect())
}

fn has(schema: &Value, path: &str, fields: &[&str]) {
    let keys = props(schema, path);
    for f in fields {
        assert!(keys.contains(f), "{path} lacks {f}: {keys:?}");
    }
}

#[test]
fn every_kind_is_namespaced_with_status_names_and_category() {
    let expected = [
        ("BackupRepository", "backuprepositories", "brepo"),
        ("Backup", "backups", "bkp"),
        ("Restore", "restores", "rst"),
        ("Schedule", "schedules", "sched"),
        ("VolumeBackup", "volumebackups", "vbk"),
        ("VolumeRestore", "volumerestores", "vrst"),
    ];
    let crds = all();
    assert_eq!(crds.len(), expected.len());
    for (crd, (kind, plural, short)) in crds.iter().zip(expected) {
        let c = serde_json::to_value(crd).unwrap();
        assert_eq!(c["metadata"]["name"], format!("{plural}.backup.cairn.io"));
        assert_eq!(c["spec"]["group"], GROUP);
        assert_eq!(c["spec"]["scope"], "Namespaced");
        assert_eq!(c["spec"]["names"]["kind"], kind);
        assert_eq!(c["spec"]["names"]["plural"], plural);
        assert_eq!(c["spec"]["names"]["shortNames"], json!([short]));
        assert_eq!(c["spec"]["names"]["categories"], json!([CATEGORY]));
        let v = &c["spec"]["versions"][0];
        assert_eq!(v["name"], VERSION);
        assert_eq!(v["served"], true);
        assert_eq!(v["storage"], true);
        assert_eq!(v["subresources"]["status"], json!({}), "{kind}");
        let columns: Vec<&str> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(columns.contains(&"Age"), "{kind}: {columns:?}");
        if kind != "BackupRepository" {
            assert!(columns.contains(&"Phase"), "{kind}: {columns:?}");
        }
    }
}

#[test]
fn repository_fields() {
    let s = schema("BackupRepository");
    has(
        &s,
        "spec",
        &[
            "url",
            "passwordSecretRef",
            "credentialsSecretRef",
            "options",
            "initialize",
            "maintenance",
        ],
    );
    has(&s, "spec.passwordSecretRef", &["name", "key"]);
    has(&s, "spec.credentialsSecretRef", &["name"]);
    has(
        &s,
        "spec.maintenance",
        &["schedule", "checkSchedule", "readDataSubset", "keepJobs", "resources"],
    );
    has(&s, "status", &["phase", "message", "lastMaintenance", "lastCheck"]);
    assert_eq!(
        s["properties"]["spec"]["properties"]["initialize"]["default"],
        "IfMissing"
    );
    assert_eq!(
        s["properties"]["spec"]["properties"]["initialize"]["enum"],
        json!(["IfMissing", "Never"])
    );
    assert_eq!(
        values(&s["properties"]["status"]["properties"]["phase"]["enum"]),
        json!(["Ready", "NotReady"])
    );
    let req = s["properties"]["spec"]["required"].as_array().unwrap();
    assert!(req.contains(&json!("url")) && req.contains(&json!("passwordSecretRef")));
}

#[test]
fn backup_fields() {
    let s = schema("Backup");
    has(
        &s,
        "spec",
        &[
            "includedNamespaces",
            "excludedNamespaces",
            "includedResources",
            "excludedResources",
            "labelSelector",
            "includeClusterResources",
            "repository",
            "ttl",
            "volumes",
            "hooks",
        ],
    );
    has(&s, "spec.volumes", &["defaultVolumesToBackup", "excludePaths"]);
    has(
        &s,
        "status",
        &[
            "phase",
            "startTimestamp",
            "completionTimestamp",
            "expiration",
            "manifestSnapshot",
            "volumeBackups",
            "progress",
            "warnings",
            "errors",
            "message",
        ],
    );
    has(&s, "status.volumeBackups", &["total", "completed", "failed"]);
    has(&s, "status.progress", &["bytesDone", "totalBytes"]);
    assert_eq!(s["properties"]["spec"]["properties"]["ttl"]["default"], "720h");
    assert_eq!(
        values(&s["properties"]["status"]["properties"]["phase"]["enum"]),
        json!(["New", "InProgress", "Completed", "PartiallyFailed", "Failed"])
    );
    assert_eq!(
        s["properties"]["status"]["properties"]["expiration"]["format"],
        "date-time"
    );
}

#[test]
fn restore_schedule_and_volume_fields() {
    let r = schema("Restore");
    has(
        &r,
        "spec",
        &[
            "backupName",
            "includedNamespaces",
            "labelSelector",
            "namespaceMapping",
            "existingResourcePolicy",
            "restoreVolumes",
        ],
    );
    assert_eq!(r["properties"]["spec"]["properties"]["restoreVolumes"]["default"], true);
    has(
        &r,
        "status",
        &[
            "phase",
            "startTimestamp",
            "completionTimestamp",
            "objects",
            "volumeRestores",
            "errors",
            "message",
        ],
    );
    has(&r, "status.objects", &["created", "updated", "skipped", "failed"]);
    has(&r, "status.volumeRestores", &["total", "completed", "failed"]);

    let s = schema("Schedule");
    has(
        &s,
        "spec",
        &["schedule", "template", "paused", "useOwnerReferencesInBackup"],
    );
    has(
        &s,
        "spec.template",
        &["includedNamespaces", "ttl", "repository", "volumes"],
    );
    has(&s, "status", &["lastBackup", "nextBackup", "phase"]);
    assert!(s["properties"]["status"]["properties"]["phase"]["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("FailedValidation")));

    for (kind, owner) in [("VolumeBackup", "backupName"), ("VolumeRestore", "restoreName")] {
        let v = schema(kind);
        has(
            &v,
            "spec",
            &["node", "pod", "volume", "pvc", "repository", owner, "cancel"],
        );
        has(&v, "spec.pod", &["namespace", "name", "uid"]);
        has(&v, "spec.pvc", &["namespace", "name", "uid"]);
        has(
            &v,
            "status",
            &[
                "phase",
                "snapshotID",
                "progress",
                "message",
                "startTimestamp",
                "completionTimestamp",
            ],
        );
        assert_eq!(
            values(&v["properties"]["status"]["properties"]["phase"]["enum"]),
            json!(["New", "InProgress", "Completed", "Failed", "Canceled"])
        );
        let c = crd_json(kind);
        assert_eq!(
            c["spec"]["versions"][0]["selectableFields"],
            json!([{"jsonPath": ".spec.node"}])
        );
    }
    has(&schema("VolumeRestore"), "spec", &["snapshotID"]);
}

/// A schema the API server accepts is structural: every node has a type,
/// no `$ref`, no `allOf`.
#[test]
fn schemas_are_structural() {
    fn walk(node: &Value, path: &str) {
        let m = node.as_object().unwrap_or_else(|| panic!("not a schema at {path}"));
        assert!(!m.contains_key("$ref"), "$ref at {path}");
        assert!(!m.contains_key("allOf"), "allOf at {path}");
        assert!(
            m.contains_key("type") || m.contains_key("x-kubernetes-int-or-string"),
            "no type at {path}: {node}"
        );
        if let Some(props) = m.get("properties").and_then(Value::as_object) {
            for (k, child) in props {
                walk(child, &format!("{path}.{k}"));
            }
        }
        if let Some(items) = m.get("items") {
            walk(items, &format!("{path}[]"));
        }
        if let Some(extra) = m.get("additionalProperties").filter(|v| v.is_object()) {
            walk(extra, &format!("{path}{{}}"));
        }
    }
    for crd in all() {
        let v = serde_json::to_value(&crd).unwrap();
        walk(
            &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            &crd.spec.names.kind,
        );
    }
}

#[test]
fn examples_round_trip() {
    let backup: Backup = serde_json::from_value(json!({
        "apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": "nightly", "namespace": "cairn-system"},
        "spec": {"includedNamespaces": ["shop"], "labelSelector": "app=web",
                 "includeClusterResources": false,
                 "volumes": {"defaultVolumesToBackup": true, "excludePaths": ["cache/**"]},
                 "hooks": {"resources": [{"name": "db", "pre": [{"command": ["pg_dump", "-f", "/d/x"], "onError": "Continue"}]}]}},
        "status": {"phase": "PartiallyFailed", "startTimestamp": "2026-01-31T03:00:00Z",
                   "expiration": "2026-03-02T03:00:00Z", "manifestSnapshot": "ab12",
                   "volumeBackups": {"total": 2, "completed": 1, "failed": 1},
                   "warnings": ["w"], "errors": ["e"]}
    }))
    .unwrap();
    assert_eq!(backup.spec.ttl, "720h");
    assert_eq!(backup.spec.ttl().unwrap(), std::time::Duration::from_secs(720 * 3600));
    assert_eq!(backup.spec.repository_name(), "default");
    assert_eq!(backup.spec.filters.included_namespaces, ["shop"]);
    assert_eq!(
        backup.spec.hooks.as_ref().unwrap().resources[0].pre[0].on_error,
        backup::HookErrorMode::Continue
    );
    let status = backup.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::PartiallyFailed));
    assert_eq!(status.start_timestamp.unwrap().to_string(), "2026-01-31T03:00:00Z");
    let again: Backup = serde_json::from_value(serde_json::to_value(&backup).unwrap()).unwrap();
    assert_eq!(again, backup);
    // Unset fields are left out, not written as null.
    let text = serde_json::to_string(&Backup::new("b", BackupSpec::default())).unwrap();
    assert!(!text.contains("null"), "{text}");

    let repo: BackupRepository = serde_json::from_value(json!({
        "apiVersion": "backup.cairn.io/v1alpha1", "kind": "BackupRepository",
        "metadata": {"name": "default"},
        "spec": {"url": "s3://bucket/cairn", "passwordSecretRef": {"name": "pw", "key": "password"},
                 "credentialsSecretRef": {"name": "aws"}, "options": {"s3.region": "eu-west-1"},
                 "maintenance": {"schedule": "0 3 * * 0", "resources": {"limits": {"cpu": 1, "memory": "512Mi"}}}}
    }))
    .unwrap();
    assert_eq!(repo.spec.initialize, repository::Initialize::IfMissing);
    let m = repo.spec.maintenance.as_ref().unwrap();
    assert_eq!(m.keep_jobs, 3);
    assert_eq!(m.resources.as_ref().unwrap().limits["cpu"], "1");
    let again: BackupRepository = serde_json::from_value(serde_json::to_value(&repo).unwrap()).unwrap();
    assert_eq!(again, repo);

    let restore: Restore = serde_json::from_value(json!({
        "apiVersion": "backup.cairn.io/v1alpha1", "kind": "Restore",
        "metadata": {"name": "r1"},
        "spec": {"backupName": "nightly", "namespaceMapping": {"shop": "shop-copy"}, "existingResourcePolicy": "update"}
    }))
    .unwrap();
    assert!(restore.spec.restore_volumes);
    assert_eq!(
        restore.spec.existing_resource_policy,
        restore::ExistingResourcePolicy::Update
    );
    let again: Restore = serde_json::from_value(serde_json::to_value(&restore).unwrap()).unwrap();
    assert_eq!(again, restore);

    let vb: VolumeBackup = serde_json::from_value(json!({
        "apiVersion": "backup.cairn.io/v1alpha1", "kind": "VolumeBackup",
        "metadata": {"name": "nightly-abc"},
        "spec": {"node": "n1", "pod": {"namespace": "shop", "name": "db-0", "uid": "u1"}, "volume": "data",
                 "pvc": {"namespace": "shop", "name": "data-db-0", "uid": "u2"}, "repository": "default",
                 "backupName": "nightly"},
        "status": {"phase": "Completed", "snapshotID": "cd34", "progress": {"bytesDone": 10, "totalBytes": 10}}
    }))
    .unwrap();
    assert!(!vb.spec.cancel);
    let status = vb.status.as_ref().unwrap();
    assert_eq!(status.snapshot_id.as_deref(), Some("cd34"));
    assert!(status.phase.unwrap().is_final());
    let text = serde_json::to_value(&vb).unwrap();
    assert_eq!(text["status"]["snapshotID"], "cd34");
    let again: VolumeBackup = serde_json::from_value(text).unwrap();
    assert_eq!(again, vb);
}

#[test]
fn bad_values_are_refused() {
    let bad = serde_json::from_value::<Backup>(json!({
        "apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup", "metadata": {"name": "b"},
        "status": {"phase": "Done"}, "spec": {}
    }));
    assert!(bad.unwrap_err().to_string().contains("Done"));
    let mut b = Backup::new("b", BackupSpec::default());
    b.spec.ttl = "30d".into();
    let err = b.spec.ttl().unwrap_err();
    assert!(err.to_string().contains("\"30d\""), "{err}");
    // The schema refuses what the parser refuses.
    let pattern = schema("Backup")["properties"]["spec"]["properties"]["ttl"]["pattern"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pattern.starts_with('^') && pattern.ends_with('$'), "{pattern}");
}
