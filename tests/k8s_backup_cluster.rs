//! A manifest backup of a real-sized, real-permissioned cluster: a
//! label-selected backup takes what the selected objects need; lists
//! survive expired continue tokens and transient failures; a user whose
//! rights end at their namespaces backs those up without warnings about
//! cluster-scoped kinds they never asked for.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_cli;
mod k8s_support;

use std::path::Path;
use std::sync::Arc;

use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cli_support::{cairn, json_summary, small_repo_options, PASSWORD};
use k8s_cli::stored;
use k8s_support::FakeCluster;
use serde_json::{json, Value};

const RBAC: &str = "rbac.authorization.k8s.io";

/// What `cairn k8s backup ARGS` printed: (exit code, summary, stderr).
fn backup(repo: &Path, cluster: &FakeCluster, args: &[&str]) -> (i32, Value, String) {
    let out = cairn(repo)
        .env_remove("KUBECONFIG")
        .args(["--json", "k8s", "backup", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        json_summary(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn setup(namespaces: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, FakeCluster) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    Repository::init(
        Arc::new(LocalStorage::new(path.clone())),
        PASSWORD.as_bytes(),
        small_repo_options(),
    )
    .unwrap();
    let cluster = FakeCluster::empty();
    for ns in namespaces {
        cluster
            .state()
            .seed("", "namespaces", json!({"metadata": {"name": ns}}));
    }
    (dir, path, cluster)
}

fn namespaced(group: &str, plural: &str, ns: &str, name: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    format!("/resources/{group}/{plural}/namespaces/{ns}/{name}.json")
}

fn cluster_path(group: &str, plural: &str, name: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    format!("/resources/{group}/{plural}/cluster/{name}.json")
}

fn seed_configmaps(cluster: &FakeCluster, ns: &str, n: usize) {
    let mut s = cluster.state();
    for i in 0..n {
        s.seed(
            "",
            "configmaps",
            json!({"metadata": {"name": format!("bulk-{i:04}"), "namespace": ns}, "data": {"i": i.to_string()}}),
        );
    }
}

/// Requests logged for paths ending in `suffix`.
fn requests(cluster: &FakeCluster, suffix: &str) -> Vec<String> {
    cluster
        .log()
        .into_iter()
        .filter(|l| l.method == "GET" && l.path.ends_with(suffix))
        .map(|l| l.query)
        .collect()
}

#[test]
fn a_label_selected_backup_takes_what_its_pods_and_workloads_need() {
    let (_dir, repo, cluster) = setup(&["shop", "other"]);
    {
        let mut s = cluster.state();
        let web = json!({"app": "web"});
        s.seed(
            "apps",
            "deployments",
            json!({"metadata": {"name": "web", "namespace": "shop", "labels": web},
                   "spec": {"selector": {"matchLabels": web},
                            "template": {"metadata": {"labels": web},
                                         "spec": {"serviceAccountName": "web-sa", "priorityClassName": "high",
                                                  "containers": [{"name": "c", "image": "nginx"}],
                                                  "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "web-data"}}]}}}}),
        );
        s.seed(
            "batch",
            "cronjobs",
            json!({"metadata": {"name": "report", "namespace": "shop", "labels": web},
                   "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
                       "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}],
                       "volumes": [{"name": "r", "persistentVolumeClaim": {"claimName": "reports"}}]}}}}}}),
        );
        s.seed(
            "apps",
            "statefulsets",
            json!({"metadata": {"name": "db", "namespace": "shop", "labels": web},
                   "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                                      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
                            "template": {"metadata": {"labels": {"app": "db"}},
                                         "spec": {"serviceAccountName": "web-sa", "containers": [{"name": "c", "image": "postgres"}]}}}}),
        );
        // What they need, unlabelled.
        for (claim, pv) in [
            ("web-data", "pv-web"),
            ("reports", "pv-reports"),
            ("data-db-0", "pv-db"),
        ] {
            s.seed(
                "",
                "persistentvolumeclaims",
                json!({"metadata": {"name": claim, "namespace": "shop"},
                       "spec": {"volumeName": pv, "storageClassName": "fast", "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "1Gi"}}}}),
            );
            s.seed(
                "",
                "persistentvolumes",
                json!({"metadata": {"name": pv}, "spec": {"storageClassName": "fast", "capacity": {"storage": "1Gi"},
                       "claimRef": {"namespace": "shop", "name": claim}}}),
            );
        }
        s.seed(
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": "fast"}, "provisioner": "csi.example"}),
        );
        s.seed(
            "scheduling.k8s.io",
            "priorityclasses",
            json!({"metadata": {"name": "high"}, "value": 1000}),
        );
        // (The namespace's `default` account is made with it.)
        for sa in ["web-sa", "unused"] {
            s.seed(
                "",
                "serviceaccounts",
                json!({"metadata": {"name": sa, "namespace": "shop"}}),
            );
        }
        s.seed(
            RBAC,
            "rolebindings",
            json!({"metadata": {"name": "web-reads", "namespace": "shop"},
                   "subjects": [{"kind": "ServiceAccount", "name": "web-sa"}],
                   "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "reader"}}),
        );
        s.seed(
            RBAC,
            "roles",
            json!({"metadata": {"name": "reader", "namespace": "shop"},
                   "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        );
        s.seed(
            RBAC,
            "clusterrolebindings",
            json!({"metadata": {"name": "web-views"},
                   "subjects": [{"kind": "ServiceAccount", "name": "web-sa", "namespace": "shop"}],
                   "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "viewer"}}),
        );
        s.seed(
            RBAC,
            "clusterroles",
            json!({"metadata": {"name": "viewer"}, "rules": []}),
        );
        // What nothing selected needs.
        s.seed(
            "",
            "persistentvolumeclaims",
            json!({"metadata": {"name": "spare", "namespace": "shop"}, "spec": {"storageClassName": "slow"}}),
        );
        s.seed(
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": "slow"}, "provisioner": "csi.example"}),
        );
        s.seed(
            "scheduling.k8s.io",
            "priorityclasses",
            json!({"metadata": {"name": "low"}, "value": 1}),
        );
        s.seed(
            RBAC,
            "rolebindings",
            json!({"metadata": {"name": "unused-reads", "namespace": "shop"},
                   "subjects": [{"kind": "ServiceAccount", "name": "unused"}],
                   "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "writer"}}),
        );
        s.seed(
            RBAC,
            "roles",
            json!({"metadata": {"name": "writer", "namespace": "shop"}, "rules": []}),
        );
        s.seed(
            RBAC,
            "clusterrolebindings",
            json!({"metadata": {"name": "unused-admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": "unused", "namespace": "shop"}],
                   "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "admin"}}),
        );
        s.seed(
            RBAC,
            "clusterroles",
            json!({"metadata": {"name": "admin"}, "rules": []}),
        );
        s.seed(
            "",
            "configmaps",
            json!({"metadata": {"name": "plain", "namespace": "shop"}}),
        );
    }
    let (code, summary, stderr) = backup(&repo, &cluster, &["--selector", "app=web"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["partial"], false, "{summary}");
    let objects = stored(&repo);
    let wanted = [
        namespaced("apps", "deployments", "shop", "web"),
        namespaced("batch", "cronjobs", "shop", "report"),
        namespaced("apps", "statefulsets", "shop", "db"),
        namespaced("", "persistentvolumeclaims", "shop", "web-data"),
        namespaced("", "persistentvolumeclaims", "shop", "data-db-0"),
        cluster_path("", "persistentvolumes", "pv-db"),
        namespaced("", "persistentvolumeclaims", "shop", "reports"),
        cluster_path("", "persistentvolumes", "pv-web"),
        cluster_path("", "persistentvolumes", "pv-reports"),
        cluster_path("storage.k8s.io", "storageclasses", "fast"),
        cluster_path("scheduling.k8s.io", "priorityclasses", "high"),
        namespaced("", "serviceaccounts", "shop", "web-sa"),
        // The cron job's pods run as the namespace's default account.
        namespaced("", "serviceaccounts", "shop", "default"),
        namespaced(RBAC, "rolebindings", "shop", "web-reads"),
        namespaced(RBAC, "roles", "shop", "reader"),
        cluster_path(RBAC, "clusterrolebindings", "web-views"),
        cluster_path(RBAC, "clusterroles", "viewer"),
    ];
    for path in &wanted {
        assert!(objects.contains_key(path), "{path} missing from {:?}", objects.keys());
    }
    let unwanted = [
        namespaced("", "persistentvolumeclaims", "shop", "spare"),
        cluster_path("storage.k8s.io", "storageclasses", "slow"),
        cluster_path("scheduling.k8s.io", "priorityclasses", "low"),
        namespaced("", "serviceaccounts", "shop", "unused"),
        namespaced(RBAC, "rolebindings", "shop", "unused-reads"),
        namespaced(RBAC, "roles", "shop", "writer"),
        cluster_path(RBAC, "clusterrolebindings", "unused-admin"),
        cluster_path(RBAC, "clusterroles", "admin"),
        namespaced("", "configmaps", "shop", "plain"),
    ];
    for path in &unwanted {
        assert!(!objects.contains_key(path), "{path} taken");
    }
    // Everything but the three selected objects (and the namespaces, which
    // follow the namespace filter) came as a dependency.
    let dependencies = summary["dependencies"].as_object().unwrap();
    let total: u64 = dependencies.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total as usize, wanted.len() - 3, "{summary}");
    assert_eq!(dependencies["persistentvolumeclaims"], 3, "{summary}");
    assert_eq!(dependencies["priorityclasses.scheduling.k8s.io"], 1, "{summary}");
}

#[test]
fn a_selected_custom_resource_takes_its_definition() {
    let (_dir, repo, cluster) = setup(&["mon"]);
    {
        let mut s = cluster.state();
        s.seed(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            json!({"metadata": {"name": "prometheuses.monitoring.coreos.com"},
                   "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                            "names": {"plural": "prometheuses", "singular": "prometheus", "kind": "Prometheus"},
                            "versions": [{"name": "v1", "served": true, "storage": true,
                                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
        );
        s.seed(
            "monitoring.coreos.com",
            "prometheuses",
            json!({"metadata": {"name": "main", "namespace": "mon", "labels": {"team": "obs"}}, "spec": {}}),
        );
    }
    let (code, summary, stderr) = backup(&repo, &cluster, &["--selector", "team=obs"]);
    assert_eq!(code, 0, "{stderr}");
    let objects = stored(&repo);
    assert!(objects.contains_key(&cluster_path(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "prometheuses.monitoring.coreos.com"
    )));
    assert_eq!(
        summary["dependencies"]["customresourcedefinitions.apiextensions.k8s.io"], 1,
        "{summary}"
    );
}

#[test]
fn an_expired_continue_token_starts_the_list_again_without_duplicates() {
    let (_dir, repo, cluster) = setup(&["bulk"]);
    seed_configmaps(&cluster, "bulk", 1203);
    // The second page's token has expired by the time it is presented.
    cluster.state().expire_continue(1);
    let (code, summary, stderr) = backup(
        &repo,
        &cluster,
        &["--include-namespaces", "bulk", "--include-resources", "cm"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["partial"], false, "{summary}");
    assert_eq!(summary["resources"]["configmaps"], 1203, "{summary}");
    assert_eq!(summary["restarted_lists"], 1, "{summary}");
    let pages = requests(&cluster, "/namespaces/bulk/configmaps");
    // First page, the refused second, then the whole list again.
    assert_eq!(pages.len(), 5, "{pages:?}");
    assert!(!pages[0].contains("continue=") && pages[1].contains("continue="));
    assert!(!pages[2].contains("continue="), "{pages:?}");
    let stored = stored(&repo);
    assert_eq!(stored.keys().filter(|p| p.contains("/bulk-")).count(), 1203);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_expires_continue_tokens_older_than_a_compaction() {
    use kube::api::{Api, ListParams};
    let cluster = FakeCluster::empty();
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "bulk"}}));
    seed_configmaps(&cluster, "bulk", 5);
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(cluster.client(), "bulk");
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2);
    cluster.compact();
    let err = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("{other}"),
    }
}

#[test]
fn transient_failures_are_retried_per_request() {
    let (_dir, repo, cluster) = setup(&["shop"]);
    seed_configmaps(&cluster, "shop", 700);
    {
        let mut s = cluster.state();
        s.seed("", "secrets", json!({"metadata": {"name": "s", "namespace": "shop"}}));
        s.seed(
            "",
            "services",
            json!({"metadata": {"name": "svc", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}}),
        );
    }
    // The first page of config maps fails twice, secrets are throttled
    // once (with Retry-After), services lose their connection once.
    cluster.fail_requests("GET", "/namespaces/shop/secrets", 1, 429);
    cluster.fail_requests("GET", "/namespaces/shop/configmaps", 2, 503);
    cluster.drop_requests("GET", "/namespaces/shop/services", 1);
    let (code, summary, stderr) = backup(&repo, &cluster, &["--include-namespaces", "shop"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["partial"], false, "{summary}");
    assert_eq!(summary["resources"]["configmaps"], 700, "{summary}");
    assert_eq!(summary["resources"]["secrets"], 1, "{summary}");
    assert_eq!(summary["resources"]["services"], 1, "{summary}");
    // Each failed request was sent again, and only it.
    assert_eq!(
        requests(&cluster, "/namespaces/shop/configmaps").len(),
        2 + 2,
        "{:?}",
        cluster.log()
    );
    assert_eq!(requests(&cluster, "/namespaces/shop/secrets").len(), 2);
    assert_eq!(requests(&cluster, "/namespaces/shop/services").len(), 2);
}

#[test]
fn a_server_error_that_lasts_fails_only_its_list() {
    let (_dir, repo, cluster) = setup(&["shop"]);
    {
        let mut s = cluster.state();
        s.seed("", "secrets", json!({"metadata": {"name": "s", "namespace": "shop"}}));
        s.seed(
            "",
            "configmaps",
            json!({"metadata": {"name": "c", "namespace": "shop"}}),
        );
    }
    cluster.fail_requests("GET", "/namespaces/shop/secrets", 100, 500);
    let (code, summary, stderr) = backup(&repo, &cluster, &["--include-namespaces", "shop"]);
    assert_eq!(code, 3, "partial: {stderr}");
    assert!(
        summary["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("secrets in namespace shop:"),
        "{summary}"
    );
    assert_eq!(summary["resources"]["configmaps"], 1, "{summary}");
    // The first try and five more.
    assert_eq!(requests(&cluster, "/namespaces/shop/secrets").len(), 6);
}

/// A cluster with namespaces a, b and c, each with a config map and a pod
/// using a claim bound to a volume, and a user allowed in a and b only.
fn namespace_user() -> (tempfile::TempDir, std::path::PathBuf, FakeCluster) {
    let (dir, repo, cluster) = setup(&["a", "b", "c"]);
    {
        let mut s = cluster.state();
        for ns in ["a", "b", "c"] {
            s.seed(
                "",
                "configmaps",
                json!({"metadata": {"name": "settings", "namespace": ns}}),
            );
        }
        s.seed(
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": "fast"}, "provisioner": "x"}),
        );
        s.seed(
            RBAC,
            "clusterroles",
            json!({"metadata": {"name": "viewer"}, "rules": []}),
        );
        s.allow_only_namespaces(&["a", "b"]);
    }
    (dir, repo, cluster)
}

#[test]
fn a_namespace_scoped_user_backs_up_their_namespaces_without_cluster_warnings() {
    let (_dir, repo, cluster) = namespace_user();
    let (code, summary, stderr) = backup(&repo, &cluster, &["--include-namespaces", "a,b"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["partial"], false, "{summary}");
    assert_eq!(summary["warnings"], json!([]), "{summary}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let objects = stored(&repo);
    for ns in ["a", "b"] {
        assert!(objects.contains_key(&namespaced("", "configmaps", ns, "settings")));
        // Namespaces cannot be listed; each named one is read by name.
        assert!(
            objects.contains_key(&cluster_path("", "namespaces", ns)),
            "{:?}",
            objects.keys()
        );
    }
    assert!(!objects.keys().any(|p| p.contains("/c/") || p.ends_with("/c.json")));
    // The fake refused what the real server refuses such a user.
    let refused = |path: &str| {
        let mut s = cluster.state();
        let reply = s.route(&hyper::Method::GET, path, "", "", b"");
        match reply {
            k8s_support::Reply::Json(code, _) => code,
            k8s_support::Reply::Watch(_) => 0,
        }
    };
    assert_eq!(refused("/api/v1/namespaces"), 403);
    assert_eq!(refused("/api/v1/configmaps"), 403);
    assert_eq!(refused("/api/v1/namespaces/c/configmaps"), 403);
    assert_eq!(refused("/apis/storage.k8s.io/v1/storageclasses"), 403);
    assert_eq!(refused("/api/v1/namespaces/a/configmaps"), 200);
    assert_eq!(refused("/api/v1/namespaces/a"), 200);
    assert_eq!(refused("/api/v1/namespaces/c"), 403);
}

#[test]
fn a_namespace_scoped_user_is_warned_of_the_dependencies_it_cannot_read() {
    let (_dir, repo, cluster) = namespace_user();
    {
        let mut s = cluster.state();
        s.seed(
            "",
            "persistentvolumeclaims",
            json!({"metadata": {"name": "data", "namespace": "a"},
                   "spec": {"volumeName": "pv-a", "storageClassName": "fast"}}),
        );
        s.seed(
            "",
            "persistentvolumes",
            json!({"metadata": {"name": "pv-a"}, "spec": {"storageClassName": "fast"}}),
        );
    }
    let (code, summary, stderr) = backup(&repo, &cluster, &["--include-namespaces", "a"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["partial"], false, "{summary}");
    let warnings: Vec<&str> = summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|w| w.starts_with("persistentvolumes: forbidden") && w.ends_with("left out: pv-a")));
    assert!(warnings
        .iter()
        .any(|w| w.starts_with("storageclasses.storage.k8s.io: forbidden") && w.ends_with("left out: fast")));
    assert!(stored(&repo).contains_key(&namespaced("", "persistentvolumeclaims", "a", "data")));
}

#[test]
fn a_cluster_scoped_kind_named_by_a_namespace_scoped_user_is_still_an_error() {
    let (_dir, repo, cluster) = namespace_user();
    let (code, summary, stderr) = backup(
        &repo,
        &cluster,
        &[
            "--include-namespaces",
            "a",
            "--include-resources",
            "configmaps,storageclasses",
        ],
    );
    assert_eq!(code, 3, "partial: {stderr}");
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    assert!(errors[0]
        .as_str()
        .unwrap()
        .starts_with("storageclasses.storage.k8s.io: forbidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_retries_reads_after_a_server_error_but_not_writes() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ListParams, PostParams};
    let cluster = FakeCluster::empty();
    cluster
        .state()
        .seed("", "namespaces", json!({"metadata": {"name": "shop"}}));
    let access = cairn::k8s::client::ClusterAccess {
        kubeconfig: Some(cluster.kubeconfig()),
        context: None,
    };
    let connected = cairn::k8s::client::connect(&access).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(connected.client.clone(), "shop");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    let count = |method: &str| {
        cluster
            .log()
            .iter()
            .filter(|l| l.method == method && l.path.ends_with("/namespaces/shop/configmaps"))
            .count()
    };
    // A create answered 500 may have been done: it is not sent again.
    cluster.fail_requests("POST", "/namespaces/shop/configmaps", 1, 500);
    let err = api.create(&PostParams::default(), &cm).await.unwrap_err();
    assert_eq!(cairn::k8s::client::status_code(&err), Some(500));
    assert_eq!(count("POST"), 1);
    // One that was throttled or refused for now was not: it is.
    cluster.fail_requests("POST", "/namespaces/shop/configmaps", 1, 503);
    api.create(&PostParams::default(), &cm).await.unwrap();
    assert_eq!(count("POST"), 3);
    // A read is sent again after a 500 and after a dropped connection.
    cluster.fail_requests("GET", "/namespaces/shop/configmaps", 1, 500);
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
    assert_eq!(count("GET"), 2);
    cluster.drop_requests("GET", "/namespaces/shop/configmaps", 1);
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
    assert_eq!(count("GET"), 4);
}

#[test]
fn without_a_selector_nothing_is_listed_twice_for_dependencies() {
    let (_dir, repo, cluster) = setup(&["shop"]);
    {
        let mut s = cluster.state();
        s.seed(
            "",
            "serviceaccounts",
            json!({"metadata": {"name": "web", "namespace": "shop"}}),
        );
        s.seed(
            "",
            "pods",
            json!({"metadata": {"name": "web-0", "namespace": "shop"},
                   "spec": {"serviceAccountName": "web", "containers": [{"name": "c", "image": "nginx"}]}}),
        );
        s.seed(
            RBAC,
            "rolebindings",
            json!({"metadata": {"name": "web-reads", "namespace": "shop"},
                   "subjects": [{"kind": "ServiceAccount", "name": "web"}],
                   "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "reader"}}),
        );
    }
    let (code, summary, stderr) = backup(&repo, &cluster, &["--include-namespaces", "shop"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["dependencies"], json!({}), "{summary}");
    assert_eq!(requests(&cluster, "/namespaces/shop/rolebindings").len(), 1);
    assert_eq!(requests(&cluster, "/namespaces/shop/serviceaccounts").len(), 1);
    assert!(stored(&repo).contains_key(&namespaced(RBAC, "rolebindings", "shop", "web-reads")));
}

#[test]
fn a_namespace_scoped_user_with_a_pattern_is_told_to_name_the_namespaces() {
    let (_dir, repo, cluster) = namespace_user();
    let out = cairn(&repo)
        .env_remove("KUBECONFIG")
        .args(["--json", "k8s", "backup", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .args(["--include-namespaces", "a*"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("namespaces cannot be listed") && lines[0].contains("--include-namespaces a*"),
        "{stderr}"
    );
    // Nothing was listed after the namespaces, and no snapshot was written.
    let lists: Vec<String> = cluster
        .log()
        .into_iter()
        .filter(|l| l.method == "GET" && l.path.ends_with("/configmaps"))
        .map(|l| l.path)
        .collect();
    assert_eq!(lists, Vec::<String>::new());
    let snapshots = std::fs::read_dir(repo.join("snapshots")).unwrap().count();
    assert_eq!(snapshots, 0);
}
