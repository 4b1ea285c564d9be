//! `cairn k8s restore` where things are not as they were: `latest` in a
//! repository that holds other snapshots and other clusters' manifests,
//! objects stored at a version the target no longer serves, and a server
//! that throttles, fails or goes away.

#![cfg(feature = "k8s")]

mod cli_support;
mod controller_support;
mod k8s_cli;
mod k8s_support;

use assert_cmd::Command;
use cli_support::{cairn, json_summary};
use k8s_cli::{k8s, repo};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

fn ok(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    json_summary(&out)
}

fn cluster_with(configmaps: &[&str]) -> FakeCluster {
    let cluster = FakeCluster::empty();
    {
        let mut s = cluster.state();
        s.seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
        for name in configmaps {
            s.seed(
                "",
                "configmaps",
                json!({"metadata": {"name": name, "namespace": "shop"}, "data": {"k": "v"}}),
            );
        }
    }
    cluster
}

fn outcome_of<'a>(summary: &'a Value, resource: &str, name: &str) -> &'a Value {
    summary["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["resource"] == resource && o["name"] == name)
        .unwrap_or_else(|| panic!("no {resource} {name} in {summary}"))
}

#[test]
fn latest_is_the_latest_manifest_snapshot_of_one_cluster() {
    let repo = repo();
    let prod = cluster_with(&["from-prod"]);
    ok(k8s(&repo.path, &prod, &["backup", "--host", "prod"])
        .arg("--include-namespaces")
        .arg("shop"));
    // A later snapshot of files, even tagged `k8s`, is not what `latest` means.
    let files = repo.dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("a"), "a").unwrap();
    cairn(&repo.path)
        .args(["backup", "--tag", "k8s", "--host", "prod"])
        .arg(&files)
        .assert()
        .success();

    let target = FakeCluster::empty();
    let summary = ok(&mut k8s(&repo.path, &target, &["restore", "latest"]));
    assert_eq!(outcome_of(&summary, "configmaps", "from-prod")["outcome"], "created");

    // Manifests of a second cluster: `latest` is ambiguous unless --host picks.
    let staging = cluster_with(&["from-staging"]);
    ok(&mut k8s(&repo.path, &staging, &["backup", "--host", "staging"]));
    let other = FakeCluster::empty();
    let out = k8s(&repo.path, &other, &["restore", "latest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("manifest snapshots of 2 clusters (prod, staging): pick one with --host"),
        "{stderr}"
    );
    assert!(other.objects().is_empty());
    let summary = ok(&mut k8s(&repo.path, &other, &["restore", "latest", "--host", "prod"]));
    assert_eq!(outcome_of(&summary, "configmaps", "from-prod")["outcome"], "created");
    assert!(other.get("", "configmaps", "shop", "from-staging").is_none());
    let out = k8s(&repo.path, &other, &["restore", "latest", "--host", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest snapshot of host nowhere"));
}

fn shop(configmaps: &[&str], secrets: &[&str]) -> FakeCluster {
    let cluster = cluster_with(configmaps);
    for name in secrets {
        cluster.state().seed(
            "",
            "secrets",
            json!({"metadata": {"name": name, "namespace": "shop"}, "type": "Opaque", "data": {"k": "dg=="}}),
        );
    }
    cluster
}

fn posts(cluster: &FakeCluster, path_contains: &str) -> usize {
    cluster.posts().iter().filter(|p| p.contains(path_contains)).count()
}

#[test]
fn throttled_and_failing_requests_are_retried_per_object_and_one_failure_never_ends_the_run() {
    let repo = repo();
    let source = shop(&["a", "b", "c"], &["s1", "s2"]);
    ok(&mut k8s(&repo.path, &source, &["backup"]));

    let target = FakeCluster::empty();
    // Configmap `a`: two server errors, then created (retried here).
    target.fail_requests("POST", "/configmaps", 2, 500);
    // Secret `s1`: throttled twice (the client waits its Retry-After), then
    // created; `s2` is refused with 503 until the client gives up: tried
    // six times by the client, never again here.
    target.fail_requests("POST", "/secrets", 2, 429);
    target.fail_requests("POST", "/secrets", 6, 503);
    let out = k8s(&repo.path, &target, &["restore", "latest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = json_summary(&out);
    for name in ["a", "b", "c"] {
        assert_eq!(
            outcome_of(&summary, "configmaps", name)["outcome"],
            "created",
            "{summary}"
        );
    }
    assert_eq!(posts(&target, "/configmaps"), 5);
    let created: Vec<&str> = ["s1", "s2"]
        .into_iter()
        .filter(|n| outcome_of(&summary, "secrets", n)["outcome"] == "created")
        .collect();
    assert_eq!(created.len(), 1, "{summary}");
    let failed = ["s1", "s2"]
        .into_iter()
        .map(|n| outcome_of(&summary, "secrets", n))
        .find(|o| o["outcome"] == "failed")
        .unwrap();
    assert!(failed["reason"].as_str().unwrap().contains("503"), "{failed}");
    // 2 throttled + 1 created + 6 refused: each at one layer only.
    assert_eq!(posts(&target, "/secrets"), 9);
    assert!(target.state().faults.is_empty());

    // The human summary names the failure.
    let other = FakeCluster::empty();
    other.fail_requests("POST", "/configmaps", 4, 502);
    let out = cairn(&repo.path)
        .env_remove("KUBECONFIG")
        .args(["k8s", "restore", "latest", "--kubeconfig"])
        .arg(other.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].contains("configmaps shop/a") && failed[0].contains("502"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 object could not be restored"));
    assert!(other.get("", "configmaps", "shop", "b").is_some());
}

#[test]
fn a_dropped_connection_fails_one_object_and_a_server_gone_for_good_stops_the_restore() {
    let repo = repo();
    let source = shop(&["a", "b", "c", "d"], &[]);
    ok(&mut k8s(&repo.path, &source, &["backup"]));

    // Every try of one object's create gets no answer: that object fails.
    let target = FakeCluster::empty();
    target.drop_requests("POST", "/configmaps", 4);
    let out = k8s(&repo.path, &target, &["restore", "latest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = json_summary(&out);
    let a = outcome_of(&summary, "configmaps", "a");
    assert_eq!(a["outcome"], "failed");
    assert!(
        a["reason"].as_str().unwrap().contains("no answer from the API server"),
        "{a}"
    );
    for name in ["b", "c", "d"] {
        assert_eq!(outcome_of(&summary, "configmaps", name)["outcome"], "created");
    }

    // The answer to a create is lost: the create is tried again, finds the
    // object (409) with this restore's label, and counts it as created.
    let lost = FakeCluster::empty();
    lost.drop_answers("POST", "/configmaps", 1);
    let summary = ok(&mut k8s(&repo.path, &lost, &["restore", "latest"]));
    for name in ["a", "b", "c", "d"] {
        assert_eq!(
            outcome_of(&summary, "configmaps", name)["outcome"],
            "created",
            "{summary}"
        );
    }
    assert_eq!(posts(&lost, "/configmaps"), 5);

    // No write gets an answer any more: after three objects in a row the
    // restore stops, saying why.
    let gone = FakeCluster::empty();
    gone.drop_requests("POST", "/", 1000);
    let out = k8s(&repo.path, &gone, &["restore", "latest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach the Kubernetes API server")
            && stderr.contains("3 objects in a row got no answer")
            && stderr.contains("the restore stopped after 3 of"),
        "{stderr}"
    );
    // Three objects, four tries each: the Namespace, then two objects in
    // it, each failing on its namespace without a create of its own.
    assert_eq!(posts(&gone, "/"), 12);
    assert!(gone.posts().iter().all(|p| p == "/api/v1/namespaces"));
}

/// A Restore resource whose objects partly fail: it ends PartiallyFailed,
/// `status.errors` naming each failed object and why.
#[test]
fn a_restore_resource_names_each_failed_object_in_its_errors() {
    use controller_support::{create, repository, wait_phase, Controller, NS};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    controller_support::init_repository(&path);
    let source = shop(&["a", "b"], &[]);
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
    // The first configmap create fails four times (every try), the next
    // once (then it is created on its second try).
    target.fail_requests("POST", "/namespaces/shop/configmaps", 5, 500);
    create(
        &target,
        "restores",
        "Restore",
        "partly",
        json!({"backupName": "shop", "restoreVolumes": false}),
    );
    let controller = Controller::start(&target, &[]);
    let obj = wait_phase(&target, &controller, "restores", "partly", "PartiallyFailed");
    assert_eq!(obj["status"]["objects"]["failed"], 1, "{obj}");
    let errors: Vec<&str> = obj["status"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 1, "{obj}");
    assert!(errors[0].starts_with("configmaps shop/a: 500 InternalError"), "{obj}");
    assert!(target.get("", "configmaps", "shop", "b").is_some());
}

fn definition(plural: &str, kind: &str, versions: Value) -> Value {
    json!({"metadata": {"name": format!("{plural}.example.com")},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                    "versions": versions}})
}

fn schema(size_type: &str) -> Value {
    json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"size": {"type": size_type}}}}}})
}

#[test]
fn objects_of_a_version_no_longer_served_are_converted_when_the_schema_is_the_same() {
    // The source serves three custom resources at v1alpha1 only.
    let source = cluster_with(&[]);
    {
        let mut s = source.state();
        for (plural, kind) in [("widgets", "Widget"), ("gadgets", "Gadget"), ("gizmos", "Gizmo")] {
            s.seed(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                definition(
                    plural,
                    kind,
                    json!([{"name": "v1alpha1", "served": true, "storage": true, "schema": schema("integer")}]),
                ),
            );
            s.seed(
                "example.com",
                plural,
                json!({"apiVersion": "example.com/v1alpha1", "kind": kind,
                       "metadata": {"name": "one", "namespace": "shop"}, "spec": {"size": 3}}),
            );
        }
    }
    let repo = repo();
    ok(&mut k8s(&repo.path, &source, &["backup"]));

    // The target's definitions moved on to v1: widgets keep v1alpha1 in
    // the definition (not served) with v1's schema; gizmos dropped
    // v1alpha1 (the backed-up definition gives its schema); gadgets
    // changed the schema.
    let target = cluster_with(&[]);
    {
        let mut s = target.state();
        s.seed(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            definition(
                "widgets",
                "Widget",
                json!([{"name": "v1", "served": true, "storage": true, "schema": schema("integer")},
                       {"name": "v1alpha1", "served": false, "storage": false, "schema": schema("integer")}]),
            ),
        );
        s.seed(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            definition(
                "gizmos",
                "Gizmo",
                json!([{"name": "v1", "served": true, "storage": true, "schema": schema("integer")}]),
            ),
        );
        s.seed(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            definition(
                "gadgets",
                "Gadget",
                json!([{"name": "v1", "served": true, "storage": true, "schema": schema("string")},
                       {"name": "v1beta1", "served": true, "storage": false, "schema": schema("string")}]),
            ),
        );
    }
    let out = k8s(&repo.path, &target, &["restore", "latest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = json_summary(&out);
    for plural in ["widgets", "gizmos"] {
        let resource = format!("{plural}.example.com");
        assert_eq!(
            outcome_of(&summary, &resource, "one")["outcome"],
            "created",
            "{summary}"
        );
        let obj = target.get("example.com", plural, "shop", "one").unwrap();
        assert_eq!(obj["apiVersion"], "example.com/v1");
        assert_eq!(obj["spec"]["size"], 3);
        assert!(
            summary["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().starts_with(&format!(
                    "{resource}: stored at example.com/v1alpha1, which the cluster no longer serves; created at example.com/v1"
                ))),
            "{summary}"
        );
    }
    let gadget = outcome_of(&summary, "gadgets.example.com", "one");
    assert_eq!(gadget["outcome"], "failed");
    let why = gadget["reason"].as_str().unwrap();
    assert!(
        why.contains("stored at example.com/v1alpha1, which the cluster no longer serves (it serves example.com/v1, example.com/v1beta1)")
            && why.contains("schema differs"),
        "{why}"
    );
    assert!(target.get("example.com", "gadgets", "shop", "one").is_none());
    // Nothing was sent at the version the target does not serve.
    assert!(
        !target
            .log()
            .iter()
            .any(|l| l.method == "POST" && l.path.contains("/v1alpha1/")),
        "{:?}",
        target.log()
    );
}

#[test]
fn the_fake_serves_every_served_version_and_refuses_a_body_of_another() {
    let cluster = cluster_with(&[]);
    cluster.state().seed(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        definition(
            "widgets",
            "Widget",
            json!([{"name": "v1", "served": true, "storage": true, "schema": schema("integer")},
                   {"name": "v1beta1", "served": true, "storage": false, "schema": schema("integer")},
                   {"name": "v1alpha1", "served": false, "storage": false, "schema": schema("integer")}]),
        ),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = cluster.client();
        let at = |version: &str| kube::api::ApiResource {
            group: "example.com".into(),
            version: version.into(),
            api_version: format!("example.com/{version}"),
            kind: "Widget".into(),
            plural: "widgets".into(),
        };
        let v1beta1: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(client.clone(), "shop", &at("v1beta1"));
        let obj: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1beta1",
            "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}))
        .unwrap();
        v1beta1.create(&Default::default(), &obj).await.unwrap();
        // Read at v1, it is shown at v1.
        let v1: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client.clone(), "shop", &at("v1"));
        let got = v1.get("w").await.unwrap();
        assert_eq!(got.types.unwrap().api_version, "example.com/v1");
        // A body of another version is refused, as the real server does.
        let wrong: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1beta1",
            "kind": "Widget", "metadata": {"name": "x"}}))
        .unwrap();
        let e = v1.create(&Default::default(), &wrong).await.unwrap_err();
        assert!(e.to_string().contains("does not match the expected API version"), "{e}");
        // A version that is not served has no URL.
        let v1alpha1: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(client.clone(), "shop", &at("v1alpha1"));
        assert!(v1alpha1.get("w").await.is_err());
    });
}
