//! The manifest backup and restore as a library: `backup_manifests` and
//! `restore_manifests` called directly against the fake API server
//! (tests/k8s_support) and a local repository, as the controller calls them.

#![cfg(feature = "k8s")]

mod cli_support;
mod k8s_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn::k8s::client::ClusterAccess;
use cairn::k8s::manifests::filter::{ClusterResources, Filters};
use cairn::k8s::manifests::restore::Outcome;
use cairn::k8s::manifests::restore::Pass;
use cairn::k8s::manifests::run::{backup_manifests, restore_manifests, ManifestBackupOptions, ManifestRestoreOptions};
use cairn::k8s::{K8sError, RESTORE_LABEL, SNAPSHOT_LABEL};
use cairn::repo::Repository;
use cairn::storage::local::LocalStorage;
use cli_support::{small_repo_options, PASSWORD};
use k8s_support::FakeCluster;

struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        Repository::init(
            Arc::new(LocalStorage::new(path.clone())),
            PASSWORD.as_bytes(),
            small_repo_options(),
        )
        .unwrap();
        Self { _dir: dir, path }
    }

    fn open(&self) -> Repository {
        Repository::open(Arc::new(LocalStorage::new(self.path.clone())), PASSWORD.as_bytes()).unwrap()
    }
}

fn access(cluster: &FakeCluster) -> ClusterAccess {
    ClusterAccess {
        kubeconfig: Some(cluster.kubeconfig()),
        context: None,
    }
}

fn backup_options(cluster: &FakeCluster) -> ManifestBackupOptions {
    ManifestBackupOptions {
        access: access(cluster),
        connections: 2,
        ..ManifestBackupOptions::default()
    }
}

fn mutating(cluster: &FakeCluster) -> usize {
    cluster.log().into_iter().filter(|l| l.method != "GET").count()
}

#[test]
fn backup_manifests_stores_a_tagged_snapshot_and_reports_it() {
    let cluster = FakeCluster::seeded();
    let repo = Repo::new();
    let opts = ManifestBackupOptions {
        tags: vec!["nightly,team=ops".into()],
        ..backup_options(&cluster)
    };
    let report = backup_manifests(repo.open(), &opts).unwrap();
    assert_eq!(report.cluster.name, "fake");
    assert_eq!(report.cluster.server, cluster.url);
    assert!(!report.partial(), "{:?}", report.errors);
    assert!(report.objects > 10, "{}", report.objects);
    assert_eq!(report.counts.values().sum::<usize>(), report.objects);
    let id = report.snapshot_id.expect("a snapshot id");

    let snapshots = repo.open().list_snapshots().unwrap();
    assert_eq!(snapshots.len(), 1);
    let (stored_id, snap) = &snapshots[0];
    assert_eq!(*stored_id, id);
    assert_eq!(snap.hostname, "fake");
    for tag in ["k8s", "cluster=fake", "nightly", "team=ops"] {
        assert!(snap.tags.iter().any(|t| t == tag), "{tag} missing from {:?}", snap.tags);
    }
    assert_eq!(snap.summary.files_new as usize, report.objects);
    // The backup changes nothing in the cluster.
    assert_eq!(mutating(&cluster), 0);
}

#[test]
fn backup_manifests_dry_run_stores_nothing() {
    let cluster = FakeCluster::seeded();
    let repo = Repo::new();
    let opts = ManifestBackupOptions {
        dry_run: true,
        host: Some("elsewhere".into()),
        ..backup_options(&cluster)
    };
    let report = backup_manifests(repo.open(), &opts).unwrap();
    assert!(report.snapshot_id.is_none());
    assert!(report.objects > 0);
    assert!(repo.open().list_snapshots().unwrap().is_empty());
}

#[test]
fn backup_manifests_names_an_unreachable_server() {
    let cluster = FakeCluster::empty();
    let repo = Repo::new();
    let opts = ManifestBackupOptions {
        access: ClusterAccess {
            kubeconfig: Some(cluster.kubeconfig_for("http://127.0.0.1:9", "closed")),
            context: None,
        },
        ..backup_options(&cluster)
    };
    let err = backup_manifests(repo.open(), &opts).unwrap_err();
    assert!(matches!(err, K8sError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    assert!(repo.open().list_snapshots().unwrap().is_empty());
}

#[test]
fn restore_manifests_creates_the_objects_and_labels_them() {
    let source = FakeCluster::seeded();
    let repo = Repo::new();
    let filters = Filters::new(&["web".into()], &[], &[], &[], None, ClusterResources::Auto).unwrap();
    let backed_up = backup_manifests(
        repo.open(),
        &ManifestBackupOptions {
            filters: filters.clone(),
            ..backup_options(&source)
        },
    )
    .unwrap();
    let id = backed_up.snapshot_id.unwrap();

    let target = FakeCluster::empty();
    let indexed = repo.open().load_index().unwrap();
    let mut opts = ManifestRestoreOptions {
        access: access(&target),
        name: Some("restore-one".into()),
        dry_run: true,
        crd_timeout: Duration::from_secs(10),
        ..ManifestRestoreOptions::default()
    };
    let plan = restore_manifests(&indexed, &opts).unwrap();
    assert_eq!(plan.snapshot_id, id);
    assert!(plan.report.results.iter().any(|r| r.outcome == Outcome::WouldCreate));
    assert_eq!(mutating(&target), 0, "a dry run changes nothing");

    opts.dry_run = false;
    let done = restore_manifests(&indexed, &opts).unwrap();
    assert_eq!(done.name, "restore-one");
    assert_eq!(done.cluster.name, "fake");
    assert_eq!(done.report.failed(), 0, "{:#?}", done.report.results);
    // The `default` ServiceAccount is the cluster's own (the backed-up one
    // is merged into it): it carries no restore labels.
    let created: BTreeMap<_, _> = target
        .objects()
        .into_iter()
        .filter(|(k, _)| k.2 == "web" && !(k.1 == "serviceaccounts" && k.3 == "default"))
        .collect();
    assert!(!created.is_empty());
    for (k, obj) in &created {
        let labels = &obj["metadata"]["labels"];
        assert_eq!(labels[RESTORE_LABEL], "restore-one", "{k:?}");
        assert_eq!(labels[SNAPSHOT_LABEL], id.short(), "{k:?}");
    }
    let counted: usize = done.report.counts().values().map(|c| c.created).sum();
    assert!(counted >= created.len(), "{counted} < {}", created.len());
}

#[test]
fn restore_manifests_names_a_missing_snapshot() {
    let target = FakeCluster::empty();
    let repo = Repo::new();
    let indexed = repo.open().load_index().unwrap();
    let opts = ManifestRestoreOptions {
        access: access(&target),
        snapshot: "latest".into(),
        ..ManifestRestoreOptions::default()
    };
    let err = restore_manifests(&indexed, &opts).unwrap_err();
    assert!(err.to_string().contains("snapshot"), "{err}");
    assert!(target.log().is_empty(), "nothing reaches the cluster");
}

#[test]
fn backup_manifests_canceled_leaves_no_snapshot() {
    let cluster = FakeCluster::seeded();
    let repo = Repo::new();
    let cancel = cairn::repo::CancelToken::new();
    cancel.cancel();
    let opts = ManifestBackupOptions {
        cancel: Some(cancel),
        ..backup_options(&cluster)
    };
    let err = backup_manifests(repo.open(), &opts).unwrap_err();
    assert!(
        matches!(err, K8sError::Backup(cairn::backup::BackupError::Canceled)),
        "{err}"
    );
    assert!(repo.open().list_snapshots().unwrap().is_empty());
    assert!(repo.open().list_locks().unwrap().is_empty(), "the lock is released");
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_and_restore_run_from_async_code_through_jobs() {
    use cairn::k8s::jobs::{self, RepositoryAccess};
    let (source, repo) = std::thread::spawn(|| (FakeCluster::seeded(), Repo::new()))
        .join()
        .unwrap();
    let stored = RepositoryAccess {
        location: repo.path.to_str().unwrap().to_owned(),
        options: cairn::storage::open::OpenOptions::default(),
        password: zeroize::Zeroizing::new(PASSWORD.to_owned()),
    };
    let report = jobs::backup_manifests(stored.clone(), backup_options(&source))
        .await
        .unwrap();
    let id = report.snapshot_id.unwrap();

    let target = std::thread::spawn(FakeCluster::empty).join().unwrap();
    let opts = ManifestRestoreOptions {
        access: access(&target),
        ..ManifestRestoreOptions::default()
    };
    let restored = jobs::restore_manifests(stored, opts).await.unwrap();
    assert_eq!(restored.snapshot_id, id);
    assert_eq!(restored.report.failed(), 0, "{:#?}", restored.report.results);
    assert!(!target.objects().is_empty());
    // The fake servers' runtimes are dropped off the async threads.
    std::thread::spawn(move || drop((source, target, repo))).join().unwrap();
}

/// The workload resources as a restore report names them.
const WORKLOADS: &[&str] = &[
    "pods",
    "replicationcontrollers",
    "replicasets.apps",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "jobs.batch",
    "cronjobs.batch",
];

#[test]
fn restore_in_two_passes_leaves_workloads_for_the_second_and_provisions_fresh_claims() {
    let source = FakeCluster::seeded();
    let repo = Repo::new();
    let filters = Filters::new(&["data".into()], &[], &[], &[], None, ClusterResources::Auto).unwrap();
    backup_manifests(
        repo.open(),
        &ManifestBackupOptions {
            filters: filters.clone(),
            ..backup_options(&source)
        },
    )
    .unwrap();
    let target = FakeCluster::empty();
    let indexed = repo.open().load_index().unwrap();
    let mut opts = ManifestRestoreOptions {
        access: access(&target),
        name: Some("two-pass".into()),
        crd_timeout: Duration::from_secs(10),
        pass: Pass::WithoutWorkloads,
        fresh_claims: [("data".to_owned(), "data-db-0".to_owned())].into(),
        ..ManifestRestoreOptions::default()
    };
    let first = restore_manifests(&indexed, &opts).unwrap();
    assert_eq!(first.report.failed(), 0, "{:#?}", first.report.results);
    let claim = target.get("", "persistentvolumeclaims", "data", "data-db-0").unwrap();
    assert!(claim["spec"].get("volumeName").is_none(), "{claim}");
    assert!(claim["metadata"]["annotations"]
        .get("pv.kubernetes.io/bind-completed")
        .is_none());
    assert!(
        target.get("", "persistentvolumes", "", "pv-data-db-0").is_none(),
        "the volume of a fresh claim is not restored"
    );
    assert!(target.get("", "services", "data", "db").is_some());
    assert!(target.get("apps", "statefulsets", "data", "db").is_none());
    assert!(first
        .report
        .results
        .iter()
        .all(|r| !WORKLOADS.contains(&r.resource.as_str())));

    opts.pass = Pass::Workloads;
    let second = restore_manifests(&indexed, &opts).unwrap();
    assert!(target.get("apps", "statefulsets", "data", "db").is_some());
    assert!(
        second
            .report
            .results
            .iter()
            .all(|r| WORKLOADS.contains(&r.resource.as_str())),
        "{:#?}",
        second.report.results
    );
}
