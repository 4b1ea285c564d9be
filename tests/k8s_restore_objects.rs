//! Restore order and per-object rules of `cairn k8s restore`, against a
//! fake API server that refuses what a real one refuses: Jobs with a
//! selector it did not generate, Pods whose priority is not their class's,
//! node ports that are taken, dependents whose owners are gone, and
//! creates a webhook without a backend intercepts.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_cli;
mod k8s_support;

use std::path::Path;
use std::sync::Arc;

use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cli_support::{json_summary, PASSWORD};
use k8s_cli::{k8s, outcomes, repo, stored};
use k8s_support::FakeCluster;
use serde_json::{json, Value};

fn backup(repo: &Path, cluster: &FakeCluster) {
    let out = k8s(repo, cluster, &["backup"]).output().unwrap();
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a restore of the latest snapshot; returns its exit code and summary.
fn restore_code(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["restore", "latest"];
    all.extend_from_slice(args);
    let out = k8s(repo, cluster, &all).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 3,
        "restore failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (code, json_summary(&out))
}

fn restore(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> Value {
    let (code, summary) = restore_code(repo, cluster, args);
    assert_eq!(code, 0, "{summary:#}");
    summary
}

fn outcome(summary: &Value, what: &str) -> (String, String) {
    outcomes(summary)
        .get(what)
        .cloned()
        .unwrap_or_else(|| panic!("{what} is not in the report: {summary:#}"))
}

/// A client's create (as a kube client would send it), answered by the
/// fake's store.
fn client_create(cluster: &FakeCluster, group: &str, plural: &str, obj: Value) -> Result<Value, (u16, String)> {
    let mut state = cluster.state();
    let d = state.def_of(group, plural).unwrap();
    match state.create(&d, obj, "test", true) {
        Ok(key) => Ok(state.objects[&key].clone()),
        Err((code, status)) => Err((code, status["message"].as_str().unwrap_or("").to_owned())),
    }
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap().to_owned()
}

fn ns(cluster: &FakeCluster, name: &str) {
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": name}}));
}

#[test]
fn status_is_backed_up_whole_and_never_sent_back() {
    let source = FakeCluster::seeded();
    // Widgets have no status subresource: a status sent with one would be
    // stored as it is.
    source.state().seed(
        "example.com",
        "widgets",
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "sprocket", "namespace": "team-a"},
               "spec": {"size": 1}, "status": {"ready": true, "observedGeneration": 4}}),
    );
    let repo = repo();
    backup(&repo.path, &source);
    let objects = stored(&repo.path);
    let widget = &objects["/resources/example.com/widgets/namespaces/team-a/sprocket.json"];
    assert_eq!(widget["status"], json!({"ready": true, "observedGeneration": 4}));
    let pv = &objects["/resources/core/persistentvolumes/cluster/pv-data-db-0.json"];
    assert_eq!(pv["status"]["phase"], "Bound");

    let target = FakeCluster::empty();
    restore(&repo.path, &target, &[]);
    let restored = target.get("example.com", "widgets", "team-a", "sprocket").unwrap();
    assert_eq!(restored["spec"], json!({"size": 1}));
    assert!(restored.get("status").is_none(), "{restored}");
}

#[test]
fn webhooks_and_api_services_come_last_and_order_adds_to_the_list() {
    let source = FakeCluster::seeded();
    {
        let mut s = source.state();
        s.seed(
            "scheduling.k8s.io",
            "priorityclasses",
            json!({"metadata": {"name": "high"}, "value": 1000}),
        );
        s.seed(
            "",
            "resourcequotas",
            json!({"metadata": {"name": "quota", "namespace": "web"}, "spec": {"hard": {"pods": "10"}}}),
        );
        // A webhook whose backend is a service of the cluster: while it is
        // registered and unreachable, every create it intercepts fails.
        s.seed(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            json!({"metadata": {"name": "policy"},
                   "webhooks": [{"name": "check.example.com", "failurePolicy": "Fail",
                                 "clientConfig": {"service": {"namespace": "web", "name": "policy", "path": "/validate"}},
                                 "rules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["CREATE"], "resources": ["*"]}],
                                 "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}),
        );
        s.seed(
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            json!({"metadata": {"name": "defaults"},
                   "webhooks": [{"name": "defaults.example.com", "failurePolicy": "Ignore",
                                 "clientConfig": {"service": {"namespace": "web", "name": "policy"}},
                                 "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
                                 "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}),
        );
        s.seed(
            "apiregistration.k8s.io",
            "apiservices",
            json!({"metadata": {"name": "v1beta1.metrics.example.com"},
                   "spec": {"group": "metrics.example.com", "version": "v1beta1", "groupPriorityMinimum": 100,
                            "versionPriority": 100, "service": {"namespace": "web", "name": "metrics"}}}),
        );
    }
    let repo = repo();
    backup(&repo.path, &source);
    let target = FakeCluster::empty();
    let report = restore(&repo.path, &target, &[]);
    assert_eq!(
        outcome(
            &report,
            "validatingwebhookconfigurations.admissionregistration.k8s.io policy"
        )
        .0,
        "created"
    );
    let posts = target.posts();
    let pos = |needle: &str| {
        posts
            .iter()
            .position(|p| p.ends_with(needle))
            .unwrap_or_else(|| panic!("{needle} never created: {posts:#?}"))
    };
    let n = posts.len();
    assert_eq!(pos("/apiservices"), n - 3, "{posts:#?}");
    assert_eq!(pos("/mutatingwebhookconfigurations"), n - 2, "{posts:#?}");
    assert_eq!(pos("/validatingwebhookconfigurations"), n - 1, "{posts:#?}");
    assert!(pos("/namespaces/team-a/widgets") < pos("/apiservices"));
    assert!(pos("/priorityclasses") < pos("/namespaces/web/serviceaccounts"));
    assert!(pos("/namespaces/web/serviceaccounts") < pos("/namespaces/web/secrets"));
    assert!(pos("/clusterroles") < pos("/clusterrolebindings"));
    assert!(pos("/clusterrolebindings") < pos("/namespaces/web/roles"));
    assert!(pos("/namespaces/web/roles") < pos("/namespaces/web/rolebindings"));
    assert!(pos("/namespaces/web/rolebindings") < pos("/namespaces/web/configmaps"));
    assert!(pos("/namespaces/web/limitranges") < pos("/namespaces/web/resourcequotas"));
    assert!(pos("/namespaces/web/resourcequotas") < pos("/namespaces/web/services"));
    assert!(pos("/namespaces/web/services") < pos("/namespaces/web/deployments"));

    // The fake refuses what the registered webhook intercepts: restored
    // earlier, it would have failed everything after it.
    let refused = client_create(
        &target,
        "",
        "configmaps",
        json!({"metadata": {"name": "late", "namespace": "web"}}),
    )
    .unwrap_err();
    assert_eq!(refused.0, 500, "{refused:?}");
    assert!(
        refused.1.contains("failed calling webhook \"check.example.com\""),
        "{refused:?}"
    );

    // --order adds its entries before the default list.
    let target = FakeCluster::empty();
    restore(
        &repo.path,
        &target,
        &["--order", "configmaps,rolebindings", "--include-namespaces", "web"],
    );
    let posts: Vec<String> = target
        .log()
        .into_iter()
        .filter(|l| l.method == "POST" && !l.path.ends_with("/api/v1/namespaces"))
        .map(|l| l.path)
        .collect();
    assert!(posts[0].ends_with("/namespaces/web/configmaps"), "{posts:#?}");
    assert!(posts[1].ends_with("/namespaces/web/rolebindings"), "{posts:#?}");
    // Then the default list: service accounts before secrets before roles.
    let after: Vec<&String> = posts.iter().skip(2).collect();
    let at = |needle: &str| after.iter().position(|p| p.ends_with(needle)).unwrap();
    assert!(at("/serviceaccounts") < at("/secrets"), "{posts:#?}");
    assert!(at("/secrets") < at("/namespaces/web/roles"), "{posts:#?}");
    assert!(!after.iter().any(|p| p.ends_with("/configmaps")), "{posts:#?}");
}

fn job(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "data"},
           "spec": {"template": {"metadata": {"labels": {"app": "report"}},
                                 "spec": {"restartPolicy": "Never", "containers": [{"name": "r", "image": "busybox"}]}}}})
}

#[test]
fn jobs_get_new_selectors_and_finished_jobs_and_pods_are_not_run_again() {
    let source = FakeCluster::seeded();
    source.state().seed("batch", "jobs", job("report"));
    source.state().seed("batch", "jobs", job("done"));
    source.state().seed("batch", "jobs", job("broken"));
    source.finish_job("data", "done", true);
    source.finish_job("data", "broken", false);
    // The fake generates what the API server generates.
    let original = source.get("batch", "jobs", "data", "report").unwrap();
    let old_uid = uid(&original);
    assert_eq!(
        original["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        old_uid.as_str()
    );
    assert_eq!(
        original["spec"]["template"]["metadata"]["labels"]["controller-uid"],
        old_uid.as_str()
    );
    {
        let mut s = source.state();
        for (name, phase) in [("once-ok", "Succeeded"), ("once-bad", "Failed"), ("still", "Running")] {
            s.seed(
                "",
                "pods",
                json!({"metadata": {"name": name, "namespace": "data"},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": phase}}),
            );
        }
        s.seed(
            "",
            "pods",
            json!({"metadata": {"name": "etcd-node-1", "namespace": "kube-system",
                                "annotations": {"kubernetes.io/config.mirror": "0f3a", "kubernetes.io/config.source": "file"}},
                   "spec": {"nodeName": "node-1", "containers": [{"name": "etcd", "image": "etcd"}]},
                   "status": {"phase": "Running"}}),
        );
    }
    let repo = repo();
    backup(&repo.path, &source);

    // As backed up, the Job is refused by an API server: its selector and
    // labels carry the old uid.
    let target = FakeCluster::empty();
    ns(&target, "data");
    let backed_up = stored(&repo.path)["/resources/batch/jobs/namespaces/data/report.json"].clone();
    let (code, message) = client_create(&target, "batch", "jobs", backed_up).unwrap_err();
    assert_eq!(code, 422);
    assert!(message.starts_with("Job.batch \"report\" is invalid: ["), "{message}");
    assert!(
        message.contains(&format!(
            "spec.template.metadata.labels[controller-uid]: Invalid value: \"{old_uid}\": must be '"
        )),
        "{message}"
    );
    assert!(message.contains("`selector` not auto-generated"), "{message}");
    // A selector given without manualSelector is refused too.
    let mut selected = job("selected");
    selected["spec"]["selector"] = json!({"matchLabels": {"app": "report"}});
    let (code, message) = client_create(&target, "batch", "jobs", selected).unwrap_err();
    assert_eq!(code, 422);
    assert!(message.contains("spec.selector: Invalid value: "), "{message}");
    assert!(message.ends_with("`selector` not auto-generated"), "{message}");

    let target = FakeCluster::empty();
    let report = restore(&repo.path, &target, &[]);
    assert_eq!(outcome(&report, "jobs.batch data/report").0, "created");
    let restored = target.get("batch", "jobs", "data", "report").unwrap();
    let new_uid = uid(&restored);
    assert_ne!(new_uid, old_uid);
    assert_eq!(
        restored["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": new_uid}})
    );
    let labels = &restored["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["controller-uid"], new_uid.as_str());
    assert_eq!(labels["batch.kubernetes.io/job-name"], "report");
    assert_eq!(labels["app"], "report");
    assert_eq!(
        outcome(&report, "jobs.batch data/done"),
        ("skipped".into(), "finished (condition Complete): not run again".into())
    );
    assert_eq!(
        outcome(&report, "jobs.batch data/broken"),
        ("skipped".into(), "finished (condition Failed): not run again".into())
    );
    assert_eq!(
        outcome(&report, "pods data/once-ok"),
        ("skipped".into(), "finished (phase Succeeded): not run again".into())
    );
    assert_eq!(
        outcome(&report, "pods data/once-bad"),
        ("skipped".into(), "finished (phase Failed): not run again".into())
    );
    assert_eq!(outcome(&report, "pods data/still").0, "created");
    let mirror = outcome(&report, "pods kube-system/etcd-node-1");
    assert_eq!(mirror.0, "skipped");
    assert!(mirror.1.contains("mirror pod"), "{mirror:?}");
    for gone in ["done", "broken"] {
        assert!(target.get("batch", "jobs", "data", gone).is_none());
    }
    for gone in ["once-ok", "once-bad"] {
        assert!(target.get("", "pods", "data", gone).is_none());
    }
    assert!(target.get("", "pods", "kube-system", "etcd-node-1").is_none());
}

#[test]
fn pods_lose_their_node_and_get_their_priority_from_the_target() {
    let source = FakeCluster::seeded();
    {
        let mut s = source.state();
        s.seed(
            "scheduling.k8s.io",
            "priorityclasses",
            json!({"metadata": {"name": "high"}, "value": 1000}),
        );
        s.seed(
            "",
            "pods",
            json!({"metadata": {"name": "tool", "namespace": "data"},
                   "spec": {"nodeName": "node-9", "priorityClassName": "high",
                            "containers": [{"name": "c", "image": "busybox"}]},
                   "status": {"phase": "Running"}}),
        );
    }
    let backed_priority = source.get("", "pods", "data", "tool").unwrap()["spec"]["priority"].clone();
    assert_eq!(backed_priority, 1000, "the fake computes the priority");
    let repo = repo();
    backup(&repo.path, &source);

    // A cluster whose class has another value refuses the pod as backed up.
    let target = FakeCluster::empty();
    ns(&target, "data");
    target.state().seed(
        "scheduling.k8s.io",
        "priorityclasses",
        json!({"metadata": {"name": "high"}, "value": 2000}),
    );
    let backed_up = stored(&repo.path)["/resources/core/pods/namespaces/data/tool.json"].clone();
    assert_eq!(backed_up["spec"]["nodeName"], "node-9");
    let (code, message) = client_create(&target, "", "pods", backed_up).unwrap_err();
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"tool\" is forbidden: the integer value of priority (1000) must not be provided in pod spec; \
         priority admission controller computed 2000 from the given PriorityClass name"
    );
    let (code, message) = client_create(
        &target,
        "",
        "pods",
        json!({"metadata": {"name": "x", "namespace": "data"},
               "spec": {"priorityClassName": "missing", "containers": []}}),
    )
    .unwrap_err();
    assert_eq!(
        (code, message.as_str()),
        (
            403,
            "pods \"x\" is forbidden: no PriorityClass with name missing was found"
        )
    );

    // Restored there, it takes the target's value, and no node.
    let report = restore(&repo.path, &target, &["--include-namespaces", "data"]);
    assert_eq!(outcome(&report, "pods data/tool").0, "created");
    let pod = target.get("", "pods", "data", "tool").unwrap();
    assert_eq!(pod["spec"]["priority"], 2000);
    assert_eq!(pod["spec"]["priorityClassName"], "high");
    assert!(pod["spec"].get("nodeName").is_none(), "{pod}");
}

#[test]
fn owned_objects_follow_their_owners() {
    let source = FakeCluster::seeded();
    let gizmo = source.get("example.com", "widgets", "team-a", "gizmo").unwrap();
    {
        let mut s = source.state();
        let by_widget = |name: &str, uid: &str| {
            json!([{"apiVersion": "example.com/v1", "kind": "Widget", "name": name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true}])
        };
        // An operator's objects: owned by a custom resource that is backed
        // up, and by one that no longer exists.
        s.seed(
            "",
            "secrets",
            json!({"metadata": {"name": "gizmo-password", "namespace": "team-a",
                                "ownerReferences": by_widget("gizmo", &uid(&gizmo))},
                   "data": {"password": "c2VjcmV0"}}),
        );
        s.seed(
            "",
            "configmaps",
            json!({"metadata": {"name": "gizmo-settings", "namespace": "team-a",
                                "ownerReferences": by_widget("gizmo", &uid(&gizmo))},
                   "data": {"a": "1"}}),
        );
        s.seed(
            "",
            "configmaps",
            json!({"metadata": {"name": "leftover", "namespace": "team-a",
                                "ownerReferences": by_widget("gone", "6b1e3c7a-dead")},
                   "data": {"a": "1"}}),
        );
    }
    let repo = repo();
    backup(&repo.path, &source);

    // The fake collects what a real garbage collector collects.
    let target = FakeCluster::empty();
    ns(&target, "team-a");
    let orphan = json!({"metadata": {"name": "orphan", "namespace": "team-a",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "no-such-uid"}]}});
    let created = {
        let mut s = target.state();
        let d = s.def_of("", "configmaps").unwrap();
        let key = s.create(&d, orphan, "test", true).unwrap();
        s.collect_if_orphaned(&key);
        key
    };
    assert!(!target.state().objects.contains_key(&created));

    let target = FakeCluster::empty();
    let report = restore(&repo.path, &target, &[]);
    assert!(report["warnings"].as_array().unwrap().is_empty(), "{report:#}");
    let widget = target.get("example.com", "widgets", "team-a", "gizmo").unwrap();
    for (plural, name) in [("secrets", "gizmo-password"), ("configmaps", "gizmo-settings")] {
        assert_eq!(outcome(&report, &format!("{plural} team-a/{name}")).0, "created");
        let obj = target
            .get("", plural, "team-a", name)
            .unwrap_or_else(|| panic!("{name} was collected"));
        let refs = &obj["metadata"]["ownerReferences"];
        assert_eq!(
            refs,
            &json!([{"apiVersion": "example.com/v1", "kind": "Widget", "name": "gizmo", "uid": uid(&widget),
                     "controller": true, "blockOwnerDeletion": true}]),
            "{obj}"
        );
    }
    // Created before its owner (config maps come before custom
    // resources), then pointed at it.
    let posts: Vec<String> = target
        .log()
        .into_iter()
        .filter(|l| l.method != "GET")
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    let pos = |needle: &str| posts.iter().position(|p| p.ends_with(needle)).unwrap();
    assert!(
        pos("POST /api/v1/namespaces/team-a/configmaps") < pos("POST /apis/example.com/v1/namespaces/team-a/widgets")
    );
    assert!(
        pos("PATCH /api/v1/namespaces/team-a/configmaps/gizmo-settings")
            > pos("POST /apis/example.com/v1/namespaces/team-a/widgets")
    );
    // The owner that is not restored: the reference goes, the object stays.
    let leftover = target.get("", "configmaps", "team-a", "leftover").unwrap();
    assert!(leftover["metadata"].get("ownerReferences").is_none(), "{leftover}");

    // Built-in dependents are left to their owners only when the owners
    // are restored: without the Deployment its ReplicaSet is restored (and
    // it recreates the pods).
    let target = FakeCluster::empty();
    let report = restore(
        &repo.path,
        &target,
        &["--include-namespaces", "web", "--exclude-resources", "deployments.apps"],
    );
    assert_eq!(outcome(&report, "replicasets.apps web/frontend-5d9c7").0, "created");
    let rs = target.get("apps", "replicasets", "web", "frontend-5d9c7").unwrap();
    assert!(rs["metadata"].get("ownerReferences").is_none(), "{rs}");
    let pod = outcome(&report, "pods web/frontend-5d9c7-abcde");
    assert_eq!(
        pod,
        (
            "skipped".into(),
            "owned by ReplicaSet/frontend-5d9c7, which recreates it".into()
        )
    );
}

#[test]
fn cluster_made_objects_are_never_restored_and_hand_made_slices_are() {
    let source = FakeCluster::seeded();
    {
        let mut s = source.state();
        s.seed(
            "storage.k8s.io",
            "csinodes",
            json!({"metadata": {"name": "node-1"}, "spec": {"drivers": []}}),
        );
        s.seed(
            "storage.k8s.io",
            "volumeattachments",
            json!({"metadata": {"name": "csi-123"},
                   "spec": {"attacher": "example.com/disk", "nodeName": "node-1",
                            "source": {"persistentVolumeName": "pv-data-db-0"}}}),
        );
        s.seed(
            "apiregistration.k8s.io",
            "apiservices",
            json!({"metadata": {"name": "v1.apps", "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                   "spec": {"group": "apps", "version": "v1", "groupPriorityMinimum": 17800, "versionPriority": 15}}),
        );
        s.seed(
            "discovery.k8s.io",
            "endpointslices",
            json!({"metadata": {"name": "db-abcde", "namespace": "data",
                                "labels": {"kubernetes.io/service-name": "db",
                                           "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                   "addressType": "IPv4", "endpoints": []}),
        );
        s.seed(
            "discovery.k8s.io",
            "endpointslices",
            json!({"metadata": {"name": "external-db", "namespace": "data",
                                "labels": {"kubernetes.io/service-name": "external-db"}},
                   "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.10"]}],
                   "ports": [{"port": 5432}]}),
        );
    }
    let repo = repo();
    backup(&repo.path, &source);
    let target = FakeCluster::empty();
    let report = restore(&repo.path, &target, &[]);
    for (what, why) in [
        ("csinodes.storage.k8s.io node-1", "kubelet"),
        ("volumeattachments.storage.k8s.io csi-123", "attach/detach"),
        ("apiservices.apiregistration.k8s.io v1.apps", "API server registers"),
        (
            "endpointslices.discovery.k8s.io data/db-abcde",
            "endpoint slice controller",
        ),
    ] {
        let (o, reason) = outcome(&report, what);
        assert_eq!(o, "skipped", "{what}");
        assert!(reason.contains(why), "{what}: {reason}");
    }
    // Nodes and events are not even backed up unless named (the seeded
    // source holds both); none of the kinds above reaches the target.
    assert!(source.count("", "nodes") > 0 && source.count("", "events") > 0);
    let kept = stored(&repo.path);
    assert!(
        !kept
            .keys()
            .any(|p| p.contains("/core/nodes/") || p.contains("/core/events/")),
        "{:?}",
        kept.keys()
    );
    for (g, p) in [
        ("", "nodes"),
        ("", "events"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "volumeattachments"),
        ("apiregistration.k8s.io", "apiservices"),
    ] {
        assert_eq!(target.count(g, p), 0, "{p}");
    }
    assert_eq!(
        outcome(&report, "endpointslices.discovery.k8s.io data/external-db").0,
        "created"
    );
    let slice = target
        .get("discovery.k8s.io", "endpointslices", "data", "external-db")
        .unwrap();
    assert_eq!(slice["endpoints"], json!([{"addresses": ["192.0.2.10"]}]));
    assert!(target
        .get("discovery.k8s.io", "endpointslices", "data", "db-abcde")
        .is_none());
}

#[test]
fn explicit_node_ports_are_kept_and_allocated_ones_only_with_preserve() {
    let source = FakeCluster::seeded();
    let applied = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "shop", "namespace": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "shop"},
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443}]}});
    source.state().seed(
        "",
        "services",
        json!({"metadata": {"name": "shop", "namespace": "web",
                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied.to_string()}},
               "spec": {"type": "NodePort", "selector": {"app": "shop"},
                        "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                                  {"name": "https", "port": 443, "nodePort": 31443}]}}),
    );
    // The fake allocates node ports and refuses taken ones.
    let (code, message) = client_create(
        &source,
        "",
        "services",
        json!({"metadata": {"name": "copy", "namespace": "web"},
               "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
    )
    .unwrap_err();
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "Service \"copy\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let allocated = client_create(
        &source,
        "",
        "services",
        json!({"metadata": {"name": "auto", "namespace": "web"},
               "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
    )
    .unwrap();
    let port = allocated["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&port) && port != 30080, "{allocated}");
    let repo = repo();
    backup(&repo.path, &source);

    // A cluster where the allocated port of the backup is taken.
    let blocked = || {
        let target = FakeCluster::empty();
        ns(&target, "web");
        target.state().seed(
            "",
            "services",
            json!({"metadata": {"name": "other", "namespace": "web"},
                   "spec": {"type": "NodePort", "ports": [{"port": 8443, "nodePort": 31443}]}}),
        );
        target
    };
    let target = blocked();
    let args = ["--include-namespaces", "web", "--include-resources", "services"];
    let report = restore(&repo.path, &target, &args);
    assert_eq!(outcome(&report, "services web/shop").0, "created");
    let svc = target.get("", "services", "web", "shop").unwrap();
    let ports = svc["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports[0]["nodePort"], 30080, "explicit: kept");
    let https = ports[1]["nodePort"].as_i64().unwrap();
    assert_ne!(https, 31443, "allocated anew");

    // --preserve-nodeports keeps the allocated one too: refused where it is
    // taken, kept where it is free.
    let target = blocked();
    let mut preserve = args.to_vec();
    preserve.push("--preserve-nodeports");
    let (code, report) = restore_code(&repo.path, &target, &preserve);
    assert_eq!(code, 3);
    let (o, why) = outcome(&report, "services web/shop");
    assert_eq!(o, "failed");
    assert!(why.contains("provided port is already allocated"), "{why}");
    let target = FakeCluster::empty();
    restore(&repo.path, &target, &preserve);
    let svc = target.get("", "services", "web", "shop").unwrap();
    assert_eq!(svc["spec"]["ports"][1]["nodePort"], 31443);
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30080);
}

#[test]
fn owners_restored_in_the_other_pass_are_found() {
    use cairn::k8s::client::ClusterAccess;
    use cairn::k8s::manifests::restore::Pass;
    use cairn::k8s::manifests::run::{restore_manifests, ManifestRestoreOptions};

    let source = FakeCluster::seeded();
    let db = source.get("apps", "statefulsets", "data", "db").unwrap();
    let gizmo = source.get("example.com", "widgets", "team-a", "gizmo").unwrap();
    {
        let mut s = source.state();
        // A claim a StatefulSet owns (its retention policy), restored in the
        // first pass, its owner in the second.
        let key = (
            String::new(),
            "persistentvolumeclaims".to_owned(),
            "data".to_owned(),
            "data-db-0".to_owned(),
        );
        let mut claim = s.objects[&key].clone();
        claim["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
            "name": "db", "uid": uid(&db)}]);
        s.objects.insert(key, claim);
        // A Deployment an operator's custom resource owns: the other way round.
        s.seed(
            "apps",
            "deployments",
            json!({"metadata": {"name": "gizmo-runner", "namespace": "team-a",
                                "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Widget",
                                                     "name": "gizmo", "uid": uid(&gizmo), "controller": true}]},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "g"}},
                            "template": {"metadata": {"labels": {"app": "g"}},
                                         "spec": {"containers": [{"name": "g", "image": "busybox"}]}}}}),
        );
    }
    let repo = repo();
    backup(&repo.path, &source);

    let target = FakeCluster::empty();
    let indexed = Repository::open(Arc::new(LocalStorage::new(repo.path.clone())), PASSWORD.as_bytes())
        .unwrap()
        .load_index()
        .unwrap();
    let opts = ManifestRestoreOptions {
        access: ClusterAccess {
            kubeconfig: Some(target.kubeconfig()),
            context: None,
        },
        name: Some("two-passes".into()),
        ..ManifestRestoreOptions::default()
    };
    let first = restore_manifests(
        &indexed,
        &ManifestRestoreOptions {
            pass: Pass::WithoutWorkloads,
            ..opts.clone()
        },
    )
    .unwrap();
    assert!(first.report.warnings.is_empty(), "{:?}", first.report.warnings);
    let claim = target.get("", "persistentvolumeclaims", "data", "data-db-0").unwrap();
    assert!(claim["metadata"].get("ownerReferences").is_none(), "{claim}");
    let second = restore_manifests(
        &indexed,
        &ManifestRestoreOptions {
            pass: Pass::Workloads,
            ..opts
        },
    )
    .unwrap();
    assert!(second.report.warnings.is_empty(), "{:?}", second.report.warnings);
    let set = target.get("apps", "statefulsets", "data", "db").unwrap();
    let claim = target.get("", "persistentvolumeclaims", "data", "data-db-0").unwrap();
    assert_eq!(
        claim["metadata"]["ownerReferences"][0]["uid"],
        uid(&set).as_str(),
        "{claim}"
    );
    let widget = target.get("example.com", "widgets", "team-a", "gizmo").unwrap();
    let runner = target.get("apps", "deployments", "team-a", "gizmo-runner").unwrap();
    assert_eq!(
        runner["metadata"]["ownerReferences"][0]["uid"],
        uid(&widget).as_str(),
        "{runner}"
    );
}
