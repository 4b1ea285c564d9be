//! Resource modifiers of `cairn k8s restore` and of the Restore resource,
//! against the fake API server: storage class and image mappings, patch
//! rules selected by resource, namespace, name and labels, and bad input
//! refused in one line before anything is created.

#![cfg(feature = "k8s")]

mod cli_support;
mod controller_support;
mod k8s_cli;
mod k8s_support;

use std::path::Path;

use cli_support::json_summary;
use controller_support::{create, repository, wait_phase, Controller, NS};
use k8s_cli::{k8s, repo};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

/// A cluster with a namespace `shop` holding a StatefulSet with a claim
/// template, a claim, a Deployment, a CronJob and two ConfigMaps, all
/// naming storage class `gp2` or images of an old registry.
fn source() -> FakeCluster {
    let cluster = FakeCluster::empty();
    {
        let mut s = cluster.state();
        s.seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
        s.seed(
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": "gp2"}, "provisioner": "example.com/disk"}),
        );
        s.seed(
            "apps",
            "statefulsets",
            json!({"metadata": {"name": "db", "namespace": "shop", "labels": {"app": "db"}},
                   "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                                "initContainers": [{"name": "init", "image": "registry.old:5000/tools/init:1"}],
                                "containers": [{"name": "pg", "image": "postgres:16"}]}},
                            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                "spec": {"storageClassName": "gp2", "accessModes": ["ReadWriteOnce"],
                                         "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        );
        s.seed(
            "",
            "persistentvolumeclaims",
            json!({"metadata": {"name": "scratch-space", "namespace": "shop"},
                   "spec": {"storageClassName": "gp2", "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        s.seed(
            "apps",
            "deployments",
            json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}},
                   "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                                "containers": [{"name": "web", "image": "registry.old:5000/shop/web:2.1"},
                                               {"name": "proxy", "image": "nginx:1.25"}]}}}}),
        );
        s.seed(
            "batch",
            "cronjobs",
            json!({"metadata": {"name": "report", "namespace": "shop"},
                   "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                       "restartPolicy": "Never", "containers": [{"name": "r", "image": "postgres:16"}]}}}}}}),
        );
        for name in ["db-config", "web-config"] {
            s.seed(
                "",
                "configmaps",
                json!({"metadata": {"name": name, "namespace": "shop"}, "data": {"mode": "prod"}}),
            );
        }
    }
    cluster
}

fn backup(repo: &Path, cluster: &FakeCluster) {
    let out = k8s(repo, cluster, &["backup"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

const RULES: &str = r#"
version: v1
resourceModifierRules:
- conditions:
    groupResource: deployments.apps
    namespaces: [shop]
    labelSelector:
      matchLabels: {tier: front}
  patches:
  - operation: replace
    path: /spec/replicas
    value: 1
- conditions:
    groupResource: configmaps
    resourceNameRegex: "^db-"
  patches:
  - {operation: test, path: /data/mode, value: prod}
  - {operation: replace, path: /data/mode, value: staging}
  - {operation: add, path: /metadata/annotations, value: {restored-by: rules}}
- conditions:
    groupResource: configmaps
    resourceNameRegex: "^web-"
  patches:
  - {operation: test, path: /data/mode, value: dev}
  - {operation: replace, path: /data/mode, value: never}
"#;

#[test]
fn mappings_and_rules_change_the_restored_objects() {
    let source = source();
    let repo = repo();
    backup(&repo.path, &source);
    let rules = repo.path.with_file_name("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();

    let target = FakeCluster::empty();
    let out = k8s(
        &repo.path,
        &target,
        &[
            "restore",
            "latest",
            "--storage-class-mapping",
            "gp2:gp3",
            "--image-mapping",
            "registry.old:5000=registry.new,nginx:1.25=nginx:1.27",
            "--image-mapping",
            "postgres:mirror.local/postgres",
            "--resource-modifiers",
            rules.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let summary = json_summary(&out);
    assert!(
        summary["objects"]
            .as_array()
            .unwrap()
            .iter()
            // The cluster made `default` with the namespace: merged into.
            .all(|o| o["outcome"] == "created" || o["resource"] == "serviceaccounts" && o["outcome"] == "merged"),
        "{summary}"
    );

    let sts = target.get("apps", "statefulsets", "shop", "db").unwrap();
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "gp3"
    );
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["image"], "registry.new/tools/init:1");
    assert_eq!(pod["containers"][0]["image"], "mirror.local/postgres:16");
    let pvc = target
        .get("", "persistentvolumeclaims", "shop", "scratch-space")
        .unwrap();
    assert_eq!(pvc["spec"]["storageClassName"], "gp3");
    // The StorageClass itself keeps its name.
    assert!(target.get("storage.k8s.io", "storageclasses", "", "gp2").is_some());

    let web = target.get("apps", "deployments", "shop", "web").unwrap();
    assert_eq!(web["spec"]["replicas"], 1);
    let containers = &web["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "registry.new/shop/web:2.1");
    assert_eq!(containers[1]["image"], "nginx:1.27");
    let cron = target.get("batch", "cronjobs", "shop", "report").unwrap();
    assert_eq!(
        cron.pointer("/spec/jobTemplate/spec/template/spec/containers/0/image"),
        Some(&json!("mirror.local/postgres:16"))
    );

    let db = target.get("", "configmaps", "shop", "db-config").unwrap();
    assert_eq!(db["data"]["mode"], "staging");
    assert_eq!(db["metadata"]["annotations"]["restored-by"], "rules");
    // Its test failed: the rule left the object alone.
    let web_config = target.get("", "configmaps", "shop", "web-config").unwrap();
    assert_eq!(web_config["data"]["mode"], "prod");
}

#[test]
fn a_patch_that_cannot_apply_fails_its_object_only() {
    let source = source();
    let repo = repo();
    backup(&repo.path, &source);
    let rules = repo.path.with_file_name("rules.yaml");
    std::fs::write(
        &rules,
        "version: v1\nresourceModifierRules:\n- conditions: {groupResource: configmaps, resourceNameRegex: '^db-'}\n  patches:\n  - {operation: remove, path: /data/missing}\n",
    )
    .unwrap();
    let target = FakeCluster::empty();
    let out = k8s(
        &repo.path,
        &target,
        &["restore", "latest", "--resource-modifiers", rules.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = json_summary(&out);
    let failed: Vec<&Value> = summary["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{summary}");
    assert_eq!(failed[0]["name"], "db-config");
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("rule 1") && reason.contains("/data/missing"),
        "{reason}"
    );
    assert!(target.get("", "configmaps", "shop", "db-config").is_none());
    assert!(target.get("", "configmaps", "shop", "web-config").is_some());
}

#[test]
fn bad_modifiers_are_one_line_before_anything_is_created() {
    let source = source();
    let repo = repo();
    backup(&repo.path, &source);
    let target = FakeCluster::empty();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches:\n  - {operation: upsert, path: /a, value: 1}\n",
            vec![],
            "rule 1: patch 1: unknown operation \"upsert\"",
        ),
        (
            "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods, resourceNameRegex: '(['}\n  patches:\n  - {operation: remove, path: /a}\n",
            vec![],
            "is not a regex",
        ),
        (
            "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches:\n  - {operation: remove, path: spec}\n",
            vec![],
            "is not a JSON pointer",
        ),
        ("version: v1\nresourceModifierRules: [\n", vec![], "does not parse"),
        ("version: v1\n", vec!["--image-mapping".into(), "a:b:c:d".into()], "--image-mapping"),
        (
            "version: v1\n",
            vec!["--storage-class-mapping".into(), "gp2".into()],
            "--storage-class-mapping",
        ),
    ];
    for (i, (text, extra, want)) in cases.into_iter().enumerate() {
        let rules = dir.path().join(format!("rules-{i}.yaml"));
        std::fs::write(&rules, text).unwrap();
        let mut args = vec!["restore", "latest", "--resource-modifiers", rules.to_str().unwrap()];
        args.extend(extra.iter().map(String::as_str));
        let out = k8s(&repo.path, &target, &args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{want}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
    let missing = dir.path().join("missing.yaml");
    let out = k8s(
        &repo.path,
        &target,
        &["restore", "latest", "--resource-modifiers", missing.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
    // Nothing reached the cluster.
    assert!(target.log().is_empty(), "{:?}", target.log());
    assert!(target.objects().is_empty());
}

/// The Restore resource: mappings in its spec, rules in a ConfigMap it
/// names; a rules ConfigMap that does not parse fails the Restore naming it.
#[test]
fn a_restore_resource_applies_its_mappings_and_the_rules_of_its_config_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    controller_support::init_repository(&path);
    let source = source();
    let snapshot = controller_support::manifest_backup(&path, &source, &["--include-namespaces", "shop"]);

    let target = controller_support::cluster();
    repository(&target, "default", &path, json!({}));
    target.state().seed(
        "backup.cairn.io",
        "backups",
        json!({"apiVersion": "backup.cairn.io/v1alpha1", "kind": "Backup",
               "metadata": {"name": "shop", "namespace": NS},
               "spec": {"includedNamespaces": ["shop"]},
               "status": {"phase": "Completed", "manifestSnapshot": snapshot,
                          "startTimestamp": "2026-12-01T00:00:00Z",
                          "completionTimestamp": "2026-12-01T00:00:05Z",
                          "expiration": "2099-01-01T00:00:00Z"}}),
    );
    target.state().seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "shop-rules", "namespace": NS}, "data": {"rules.yaml": RULES}}),
    );
    target.state().seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "broken-rules", "namespace": NS},
               "data": {"rules.yaml": "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches:\n  - {operation: frobnicate, path: /a}\n"}}),
    );
    create(
        &target,
        "restores",
        "Restore",
        "broken",
        json!({"backupName": "shop", "resourceModifiers": "broken-rules"}),
    );
    create(
        &target,
        "restores",
        "Restore",
        "modified",
        json!({"backupName": "shop", "restoreVolumes": false,
               "storageClassMapping": {"gp2": "gp3"},
               "imageMapping": {"registry.old:5000": "registry.new"},
               "resourceModifiers": "shop-rules"}),
    );
    let controller = Controller::start(&target, &[]);
    let broken = wait_phase(&target, &controller, "restores", "broken", "Failed");
    let message = broken["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("ConfigMap {NS}/broken-rules"))
            && message.contains("unknown operation \"frobnicate\""),
        "{broken}"
    );
    let obj = wait_phase(&target, &controller, "restores", "modified", "Completed");
    assert_eq!(obj["status"]["objects"]["failed"], 0, "{obj}");
    let sts = target.get("apps", "statefulsets", "shop", "db").unwrap();
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "gp3"
    );
    let web = target.get("apps", "deployments", "shop", "web").unwrap();
    assert_eq!(web["spec"]["replicas"], 1);
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.new/shop/web:2.1"
    );
    let db = target.get("", "configmaps", "shop", "db-config").unwrap();
    assert_eq!(db["data"]["mode"], "staging");
}
