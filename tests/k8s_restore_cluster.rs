//! Restores into a living cluster, through the binary against the fake API
//! server playing the cluster's controllers (tests/k8s_support/
//! controllers.rs, kubelet.rs): service accounts the cluster made,
//! service account token Secrets, terminating namespaces, the `update`
//! policy against fields other managers added, and claims whose volumes
//! are or are not restored with them.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_cli;
mod k8s_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cli_support::json_summary;

use k8s_cli::{backup, k8s, key, outcomes, repo, restore, restore_any, Repo};
use k8s_support::controllers::{SA_NAME_ANNOTATION, SA_UID_ANNOTATION, TOKEN_SECRET_TYPE};
use k8s_support::{FakeCluster, Key};
use serde_json::{json, Value};

fn namespace(cluster: &FakeCluster, name: &str, labels: Value) {
    cluster.state().seed(
        "",
        "namespaces",
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"finalizers": ["kubernetes"]},
               "status": {"phase": "Active"}}),
    );
}

/// Changes a stored object as another client would (the store moves its
/// resourceVersion).
fn edit(cluster: &FakeCluster, k: &Key, manager: &str, change: impl FnOnce(&mut Value)) {
    let mut s = cluster.state();
    let d = s.def_of(&k.0, &k.1).unwrap();
    let mut obj = s.objects[k].clone();
    change(&mut obj);
    s.replace(&d, k, obj, Some(manager)).unwrap();
}

#[test]
fn service_accounts_are_merged_into_the_ones_the_cluster_made() {
    let source = FakeCluster::empty();
    namespace(&source, "shop", json!({"team": "shop"}));
    // The cluster made `default`; the user gave it a role and a registry.
    let default = key("", "serviceaccounts", "shop", "default");
    assert!(source.get("", "serviceaccounts", "shop", "default").is_some());
    edit(&source, &default, "kubectl", |sa| {
        sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/shop"});
        sa["imagePullSecrets"] = json!([{"name": "registry"}]);
    });
    source.state().seed(
        "",
        "serviceaccounts",
        json!({"metadata": {"name": "builder", "namespace": "shop", "annotations": {"team": "old", "role": "build"}},
               "imagePullSecrets": [{"name": "registry"}]}),
    );
    let repo = repo();
    backup(&repo.path, &source, &["--include-namespaces", "shop"]);

    // The target: a new namespace gets its own `default`; an operator made
    // `builder` with values of its own.
    let target = FakeCluster::empty();
    namespace(&target, "other", json!({}));
    let report = restore(&repo.path, &target, &[]);
    let results = outcomes(&report);
    assert_eq!(results["namespaces shop"].0, "created", "{results:#?}");
    let (outcome, why) = &results["serviceaccounts shop/default"];
    assert_eq!(outcome, "merged", "{results:#?}");
    assert!(
        why.contains("eks.amazonaws.com/role-arn") && why.contains("registry"),
        "{why}"
    );
    assert_eq!(results["serviceaccounts shop/builder"].0, "created");
    let sa = target.get("", "serviceaccounts", "shop", "default").unwrap();
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::1:role/shop"
    );
    assert_eq!(sa["imagePullSecrets"], json!([{"name": "registry"}]));
    assert_eq!(report["resources"]["serviceaccounts"]["merged"], 1, "{report:#}");

    // Again over accounts that exist with values of their own, with the
    // `none` policy: the backed-up values are added, the live ones kept.
    let builder = key("", "serviceaccounts", "shop", "builder");
    edit(&target, &builder, "operator", |sa| {
        sa["metadata"]["annotations"] = json!({"team": "live"});
        sa["imagePullSecrets"] = json!([{"name": "live-pull"}]);
    });
    edit(&target, &default, "operator", |sa| {
        sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::2:role/new"});
    });
    let report = restore(&repo.path, &target, &["--existing-resource-policy", "none"]);
    let results = outcomes(&report);
    assert_eq!(results["serviceaccounts shop/builder"].0, "merged", "{results:#?}");
    let sa = target.get("", "serviceaccounts", "shop", "builder").unwrap();
    assert_eq!(sa["metadata"]["annotations"], json!({"team": "live", "role": "build"}));
    assert_eq!(
        sa["imagePullSecrets"],
        json!([{"name": "live-pull"}, {"name": "registry"}])
    );
    let default_sa = target.get("", "serviceaccounts", "shop", "default").unwrap();
    assert_eq!(
        default_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn:aws:iam::2:role/new",
        "a live value is kept"
    );
    assert_eq!(default_sa["imagePullSecrets"], json!([{"name": "registry"}]));
    assert_eq!(report["resources"]["serviceaccounts"]["merged"], 2, "{report:#}");
    // A third time there is nothing to add; the account is labelled with
    // the restore that touched it.
    let report = restore(&repo.path, &target, &[]);
    let (outcome, why) = &outcomes(&report)["serviceaccounts shop/builder"];
    assert_eq!(outcome, "merged");
    assert!(why.contains("everything"), "{why}");
    let again = target.get("", "serviceaccounts", "shop", "builder").unwrap();
    assert_eq!(again["metadata"]["annotations"], sa["metadata"]["annotations"]);
    assert_eq!(again["imagePullSecrets"], sa["imagePullSecrets"]);
    assert_eq!(
        again["metadata"]["labels"]["backup.cairn.io/restore"],
        report["restore"]
    );
}

#[test]
fn update_brings_objects_back_to_the_backup_removing_what_other_managers_added() {
    let cluster = FakeCluster::empty();
    namespace(&cluster, "shop", json!({}));
    cluster.state().seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "shop"}},
               "data": {"mode": "production"}}),
    );
    cluster.state().seed(
        "",
        "services",
        json!({"metadata": {"name": "web", "namespace": "shop"},
               "spec": {"type": "NodePort", "selector": {"app": "shop"},
                        "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}}),
    );
    let repo = repo();
    backup(&repo.path, &cluster, &["--include-namespaces", "shop"]);

    // Since the backup, other managers changed and added fields.
    let cm = key("", "configmaps", "shop", "settings");
    let svc = key("", "services", "shop", "web");
    edit(&cluster, &cm, "kubectl-edit", |o| {
        o["data"]["mode"] = json!("debug");
        o["data"]["extra"] = json!("added later");
        o["metadata"]["labels"]["added"] = json!("later");
    });
    edit(&cluster, &svc, "someone-else", |o| {
        o["spec"]["sessionAffinity"] = json!("ClientIP");
        o["metadata"]["annotations"] = json!({"note": "added later"});
    });
    let ip = cluster.get("", "services", "shop", "web").unwrap()["spec"]["clusterIP"].clone();
    let managers = |o: &Value| -> Vec<String> {
        o["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["manager"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(managers(&cluster.objects()[&cm]).contains(&"kubectl-edit".to_owned()));

    let report = restore(&repo.path, &cluster, &["--existing-resource-policy", "update"]);
    let results = outcomes(&report);
    assert_eq!(results["configmaps shop/settings"].0, "updated", "{results:#?}");
    assert_eq!(results["services shop/web"].0, "updated", "{results:#?}");
    let restored = cluster.objects()[&cm].clone();
    assert_eq!(restored["data"], json!({"mode": "production"}));
    assert_eq!(restored["metadata"]["labels"]["app"], "shop");
    assert!(restored["metadata"]["labels"].get("added").is_none(), "{restored}");
    assert!(!managers(&restored).contains(&"kubectl-edit".to_owned()), "{restored}");
    let restored = cluster.objects()[&svc].clone();
    assert!(restored["spec"].get("sessionAffinity").is_none(), "{restored}");
    assert!(restored["metadata"].get("annotations").is_none(), "{restored}");
    // What the cluster allocated stays.
    assert_eq!(restored["spec"]["clusterIP"], ip);
    assert_eq!(restored["spec"]["ports"][0]["nodePort"], 30080);
    assert!(cluster
        .log()
        .iter()
        .any(|l| l.method == "PUT" && l.path.ends_with("/namespaces/shop/services/web")));

    // An update the server refuses fails that object only, saying so.
    edit(&cluster, &cm, "kubectl-edit", |o| {
        o["data"]["mode"] = json!("debug");
    });
    cluster.fail_requests("PUT", "/configmaps/settings", 1, 422);
    let (code, report) = restore_any(&repo.path, &cluster, &["--existing-resource-policy", "update"]);
    assert_eq!(code, Some(3), "{report:#}");
    let results = outcomes(&report);
    let (outcome, reason) = &results["configmaps shop/settings"];
    assert_eq!(outcome, "failed", "{results:#?}");
    assert!(reason.starts_with("exists, and updating it failed"), "{reason}");
    assert_eq!(results["services shop/web"].0, "updated", "{results:#?}");
    assert_eq!(cluster.objects()[&cm]["data"]["mode"], "debug");
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap().to_owned()
}

#[test]
fn token_secrets_are_left_to_the_cluster_or_restored_after_their_account_for_it_to_fill() {
    let source = FakeCluster::empty();
    namespace(&source, "ci", json!({}));
    source.state().seed(
        "",
        "serviceaccounts",
        json!({"metadata": {"name": "runner", "namespace": "ci"}, "secrets": [{"name": "runner-token-x2b7k"}]}),
    );
    let old_uid = uid(&source.get("", "serviceaccounts", "ci", "runner").unwrap());
    let token = |name: &str| {
        json!({"metadata": {"name": name, "namespace": "ci",
                            "annotations": {SA_NAME_ANNOTATION: "runner", SA_UID_ANNOTATION: old_uid}},
               "type": TOKEN_SECRET_TYPE,
               "data": {"token": "b2xkLXRva2Vu", "ca.crt": "b2xkLWNh", "namespace": "Y2k=", "note": "a2VlcA=="}})
    };
    // Generated by the cluster (listed in the account) and hand-made.
    source.state().seed("", "secrets", token("runner-token-x2b7k"));
    source.state().seed("", "secrets", token("runner-long-lived"));
    let repo = repo();
    backup(&repo.path, &source, &["--include-namespaces", "ci"]);

    // The fake plays the tokens controller: a token naming another uid is
    // deleted at once.
    let target = FakeCluster::empty();
    namespace(&target, "other", json!({}));
    namespace(&target, "ci", json!({}));
    target.state().seed(
        "",
        "serviceaccounts",
        json!({"metadata": {"name": "runner", "namespace": "ci"}}),
    );
    let live_uid = uid(&target.get("", "serviceaccounts", "ci", "runner").unwrap());
    assert_ne!(live_uid, old_uid);
    let reply = target.state().route(
        &hyper::Method::POST,
        "/api/v1/namespaces/ci/secrets",
        "",
        "application/json",
        serde_json::to_vec(&token("stale")).unwrap().as_slice(),
    );
    assert!(matches!(reply, k8s_support::Reply::Json(201, _)));
    assert!(target.get("", "secrets", "ci", "stale").is_none());
    target
        .state()
        .objects
        .remove(&key("", "serviceaccounts", "ci", "runner"));

    // Secrets first in the order: the token still comes after its account.
    let report = restore(&repo.path, &target, &["--order", "secrets"]);
    let results = outcomes(&report);
    let (outcome, why) = &results["secrets ci/runner-token-x2b7k"];
    assert_eq!(outcome, "skipped", "{results:#?}");
    assert!(why.contains("generated"), "{why}");
    assert_eq!(results["secrets ci/runner-long-lived"].0, "created", "{results:#?}");
    let names: Vec<String> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect();
    let place = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(place("runner") < place("runner-long-lived"), "{names:?}");

    let account = target.get("", "serviceaccounts", "ci", "runner").unwrap();
    assert!(account.get("secrets").is_none(), "{account}");
    assert!(target.get("", "secrets", "ci", "runner-token-x2b7k").is_none());
    let secret = target.get("", "secrets", "ci", "runner-long-lived").unwrap();
    let annotations = &secret["metadata"]["annotations"];
    assert_eq!(annotations[SA_UID_ANNOTATION], uid(&account.clone()));
    assert_ne!(annotations[SA_UID_ANNOTATION], old_uid.as_str());
    assert_ne!(secret["data"]["token"], "b2xkLXRva2Vu", "filled by the cluster");
    assert_ne!(secret["data"]["ca.crt"], "b2xkLWNh");
    assert_eq!(secret["data"]["note"], "a2VlcA==");
}

/// A namespace `shop` with a ConfigMap and a Secret, backed up, then
/// deleted: it stays terminating while `held` keeps its finalizer.
fn terminating_shop() -> (FakeCluster, Repo) {
    let cluster = FakeCluster::empty();
    namespace(&cluster, "shop", json!({"team": "shop"}));
    cluster.state().seed(
        "",
        "configmaps",
        json!({"metadata": {"name": "settings", "namespace": "shop"}, "data": {"mode": "production"}}),
    );
    cluster.state().seed(
        "",
        "secrets",
        json!({"metadata": {"name": "password", "namespace": "shop"}, "type": "Opaque", "data": {"p": "cA=="}}),
    );
    let repo = repo();
    backup(&repo.path, &cluster, &["--include-namespaces", "shop"]);
    {
        let mut s = cluster.state();
        s.seed(
            "",
            "configmaps",
            json!({"metadata": {"name": "held", "namespace": "shop", "finalizers": ["example.com/hold"]}}),
        );
        let d = s.def_of("", "namespaces").unwrap();
        s.delete(&d, &key("", "namespaces", "", "shop"), false).unwrap();
    }
    let ns = cluster.get("", "namespaces", "", "shop").unwrap();
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(cluster.get("", "configmaps", "shop", "settings").is_none());
    (cluster, repo)
}

#[test]
fn a_restore_waits_for_a_terminating_namespace_to_go_then_creates_it_and_its_objects() {
    let (cluster, repo) = terminating_shop();
    // The plan says it would be created.
    let plan = restore(&repo.path, &cluster, &["--dry-run"]);
    assert_eq!(outcomes(&plan)["namespaces shop"].0, "would_create", "{plan:#}");
    let mut cmd = k8s(
        &repo.path,
        &cluster,
        &["restore", "latest", "--namespace-timeout", "2m"],
    );
    let run = std::thread::spawn(move || cmd.output().unwrap());
    // The restore looks at the namespace again and again while it waits.
    let seen = cluster.log().len();
    let waiting = || {
        cluster.log()[seen..]
            .iter()
            .filter(|l| l.method == "GET" && l.path == "/api/v1/namespaces/shop")
            .count()
            >= 3
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !waiting() {
        assert!(Instant::now() < deadline, "no wait seen: {:#?}", cluster.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!cluster
        .log()
        .iter()
        .any(|l| l.method == "POST" && l.path.starts_with("/api/v1/namespaces/shop/")));
    // The finalizer's owner lets go: the namespace goes.
    edit(&cluster, &key("", "configmaps", "shop", "held"), "example", |o| {
        o["metadata"]["finalizers"] = json!([]);
    });
    let out = run.join().unwrap();
    let summary = json_summary(&out);
    assert_eq!(out.status.code(), Some(0), "{summary:#}");
    let results = outcomes(&summary);
    assert_eq!(results["namespaces shop"].0, "created", "{results:#?}");
    assert_eq!(results["configmaps shop/settings"].0, "created");
    assert_eq!(results["secrets shop/password"].0, "created");
    let ns = cluster.get("", "namespaces", "", "shop").unwrap();
    assert_eq!(ns["metadata"]["labels"]["team"], "shop", "{ns}");
    assert_eq!(ns["status"]["phase"], "Active");
    assert!(ns["metadata"].get("deletionTimestamp").is_none());
    assert_eq!(
        cluster.get("", "configmaps", "shop", "settings").unwrap()["data"]["mode"],
        "production"
    );
}

#[test]
fn objects_of_a_namespace_that_never_goes_fail_once_each_with_the_reason() {
    let (cluster, repo) = terminating_shop();
    let (code, summary) = restore_any(&repo.path, &cluster, &["--namespace-timeout", "1s"]);
    assert_eq!(code, Some(3), "{summary:#}");
    let results = outcomes(&summary);
    for name in ["namespaces shop", "configmaps shop/settings", "secrets shop/password"] {
        let (outcome, why) = &results[name];
        assert_eq!(outcome, "failed", "{name}: {results:#?}");
        assert!(
            why.contains("namespace shop is being deleted") && why.contains("1s"),
            "{name}: {why}"
        );
    }
    // One wait for the namespace, no request per object.
    assert!(!cluster
        .log()
        .iter()
        .any(|l| l.method == "POST" && l.path.starts_with("/api/v1/namespaces/shop/")));
    assert_eq!(summary["resources"]["configmaps"]["failed"], 1);
    assert!(cluster.get("", "configmaps", "shop", "held").is_some());
}

/// A namespace `shop` with claims as a cluster binds them: `data` on a
/// dynamically provisioned volume (reclaim policy Delete), `kept` on a
/// volume kept on release (Retain), `copy` made from a VolumeSnapshot.
fn shop_with_claims(cluster: &FakeCluster) {
    namespace(cluster, "shop", json!({}));
    let mut s = cluster.state();
    for (claim, pv, policy) in [
        ("data", "pvc-0001", "Delete"),
        ("kept", "pv-kept", "Retain"),
        ("copy", "pvc-0002", "Delete"),
    ] {
        s.seed(
            "",
            "persistentvolumeclaims",
            json!({"metadata": {"name": claim, "namespace": "shop", "annotations": {
                    "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.kubernetes.io/selected-node": "node-9",
                    "volume.kubernetes.io/storage-provisioner": "disk.example.com"}},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                            "volumeName": pv},
                   "status": {"phase": "Bound"}}),
        );
        let claim_uid = uid(&s.objects[&key("", "persistentvolumeclaims", "shop", claim)]);
        s.seed(
            "",
            "persistentvolumes",
            json!({"metadata": {"name": pv, "annotations": {"pv.kubernetes.io/provisioned-by": "disk.example.com"}},
                   "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                            "persistentVolumeReclaimPolicy": policy,
                            "csi": {"driver": "disk.example.com", "volumeHandle": format!("vol-{pv}")},
                            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": claim,
                                         "uid": claim_uid}},
                   "status": {"phase": "Bound"}}),
        );
    }
    let copy = key("", "persistentvolumeclaims", "shop", "copy");
    let mut claim = s.objects[&copy].clone();
    let source = json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "nightly"});
    claim["spec"]["dataSource"] = source.clone();
    claim["spec"]["dataSourceRef"] = source;
    let d = s.def_of("", "persistentvolumeclaims").unwrap();
    s.replace(&d, &copy, claim, Some("seed")).unwrap();
}

/// Waits until no claim of `ns` is Pending; then every one must be Bound.
fn claims_settle(cluster: &FakeCluster, ns: &str) -> BTreeMap<String, Value> {
    let claims = |objects: &BTreeMap<Key, Value>| -> BTreeMap<String, Value> {
        objects
            .iter()
            .filter(|(k, _)| k.1 == "persistentvolumeclaims" && k.2 == ns)
            .map(|(k, v)| (k.3.clone(), v.clone()))
            .collect()
    };
    let settled = cluster.wait_for(
        |o| {
            let c = claims(o);
            !c.is_empty()
                && c.values()
                    .all(|c| c["status"]["phase"] == "Bound" || c["status"]["phase"] == "Lost")
        },
        Duration::from_secs(30),
    );
    let claims = claims(&cluster.objects());
    assert!(settled, "{claims:#?}");
    for (name, c) in &claims {
        assert_eq!(c["status"]["phase"], "Bound", "{name}: {c:#}");
    }
    claims
}

#[test]
fn claims_in_another_cluster_get_their_kept_volumes_or_new_ones_and_none_is_lost() {
    let source = FakeCluster::empty();
    shop_with_claims(&source);
    let repo = repo();
    backup(&repo.path, &source, &[]);

    let target = FakeCluster::empty();
    let _kubelet = target.start_kubelet(&["node-1"]);
    let report = restore(&repo.path, &target, &[]);
    let results = outcomes(&report);
    for pv in ["pvc-0001", "pvc-0002"] {
        let (outcome, why) = &results[&format!("persistentvolumes {pv}")];
        assert_eq!(outcome, "skipped", "{results:#?}");
        assert!(why.contains("reclaim policy Delete"), "{why}");
    }
    assert_eq!(results["persistentvolumes pv-kept"].0, "created");
    let claims = claims_settle(&target, "shop");
    // The kept volume is bound again to its claim.
    assert_eq!(claims["kept"]["spec"]["volumeName"], "pv-kept");
    let pv = target.get("", "persistentvolumes", "", "pv-kept").unwrap();
    assert_eq!(pv["spec"]["claimRef"]["uid"], claims["kept"]["metadata"]["uid"]);
    // The others were provisioned anew, without the old node, provisioner
    // or snapshot.
    for name in ["data", "copy"] {
        let c = &claims[name];
        let volume = c["spec"]["volumeName"].as_str().unwrap();
        assert!(volume.starts_with("pvc-6b1e3c7a"), "{name}: {c:#}");
        assert_ne!(
            c["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
            "node-9"
        );
    }
    assert!(
        claims["copy"]["spec"].get("dataSource").is_none(),
        "{:#}",
        claims["copy"]
    );
    assert!(claims["copy"]["spec"].get("dataSourceRef").is_none());
    assert!(target.get("", "persistentvolumes", "", "pvc-0001").is_none());
}

#[test]
fn claims_restored_beside_their_originals_or_after_them_in_the_same_cluster_are_never_lost() {
    let cluster = FakeCluster::empty();
    shop_with_claims(&cluster);
    let repo = repo();
    backup(&repo.path, &cluster, &[]);
    let _kubelet = cluster.start_kubelet(&["node-1"]);

    // Mapped beside the originals: every volume is bound to its original
    // claim, so each copy gets a new one.
    let report = restore(&repo.path, &cluster, &["--namespace-mapping", "shop:shop-copy"]);
    let results = outcomes(&report);
    assert_eq!(results["persistentvolumes pv-kept"].0, "skipped", "{results:#?}");
    let claims = claims_settle(&cluster, "shop-copy");
    assert_eq!(claims.len(), 3);
    for (name, c) in &claims {
        let volume = c["spec"]["volumeName"].as_str().unwrap();
        assert!(volume.starts_with("pvc-6b1e3c7a"), "{name}: {c:#}");
    }
    assert_eq!(
        cluster.get("", "persistentvolumes", "", "pv-kept").unwrap()["spec"]["claimRef"]["namespace"],
        "shop"
    );

    // The namespace deleted: its volume kept on release is Released, still
    // naming the claim; restored, the claim gets it back.
    {
        let mut s = cluster.state();
        let d = s.def_of("", "namespaces").unwrap();
        s.delete(&d, &key("", "namespaces", "", "shop"), false).unwrap();
    }
    assert!(cluster.wait_for(
        |o| o
            .get(&key("", "persistentvolumes", "", "pv-kept"))
            .is_some_and(|pv| pv["status"]["phase"] == "Released"),
        Duration::from_secs(30)
    ));
    // (The dynamic volumes went with their claims in a real cluster.)
    for pv in ["pvc-0001", "pvc-0002"] {
        cluster.state().objects.remove(&key("", "persistentvolumes", "", pv));
    }
    let report = restore(&repo.path, &cluster, &["--include-namespaces", "shop"]);
    let results = outcomes(&report);
    assert_eq!(results["persistentvolumes pv-kept"].0, "updated", "{results:#?}");
    let claims = claims_settle(&cluster, "shop");
    assert_eq!(claims["kept"]["spec"]["volumeName"], "pv-kept");
    let pv = cluster.get("", "persistentvolumes", "", "pv-kept").unwrap();
    assert_eq!(pv["spec"]["claimRef"]["uid"], claims["kept"]["metadata"]["uid"]);
    assert_eq!(pv["status"]["phase"], "Bound");
}
