//! Manifest backup and restore from start to end: the repository's lock
//! and index, the cluster connection, tags and host name, and the report.
//! Plain options in, report structs out; nothing is printed.
//!
//! Both functions block: they run the Kubernetes client on a runtime of
//! their own and use the repository (which blocks on its own runtime). From
//! async code call them through [`crate::k8s::jobs`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::backup::{collect, PAGE};
use super::filter::{split_list, Filters};
use super::latest;
use super::modifiers::Modifiers;
use super::order::Order;
use super::restore::{restore, ExistingPolicy, Pass, Report, RestoreOptions};
use super::stored::load_objects;
use super::transform::Rewrite;
use crate::backup::memory::MemoryBackup;
use crate::backup::progress::Progress;
use crate::backup::{BackupOptions, MemoryFile, ParentChoice};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::k8s::client::{connect, Cluster, ClusterAccess};
use crate::k8s::{runtime, K8sError, ROOT};
use crate::repo::saver::SaverOptions;
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::{CancelToken, IndexedRepository, LockKind, Repository};

/// The cluster a backup or restore talked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The kubeconfig's cluster name (or `in-cluster`).
    pub name: String,
    /// The API server's URL.
    pub server: String,
    /// The API server's version.
    pub version: String,
}

impl From<&Cluster> for ClusterInfo {
    fn from(c: &Cluster) -> Self {
        Self {
            name: c.name.clone(),
            server: c.server.clone(),
            version: c.version.clone(),
        }
    }
}

/// How a manifest backup runs.
#[derive(Debug, Clone, Default)]
pub struct ManifestBackupOptions {
    pub access: ClusterAccess,
    pub filters: Filters,
    /// Tags beyond `k8s`, `cluster=<name>` and the filters' own (each entry
    /// may hold several, comma-separated).
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot (default: the cluster's name).
    pub host: Option<String>,
    /// Read everything, store nothing.
    pub dry_run: bool,
    /// Concurrent storage operations (0 counts as 1).
    pub connections: usize,
    /// How long to wait for a conflicting lock.
    pub retry_lock: Duration,
    /// Stops the backup between objects and chunks; no snapshot is written.
    pub cancel: Option<CancelToken>,
    /// Files stored beside the manifests, outside `resources/` (the
    /// controller's backup record: `cairn/backup.json`).
    pub extra_files: Vec<MemoryFile>,
}

/// What a manifest backup did.
#[derive(Debug, Clone)]
pub struct ManifestBackupReport {
    pub cluster: ClusterInfo,
    /// None for a dry run.
    pub snapshot_id: Option<SnapshotId>,
    pub snapshot: Snapshot,
    /// Resource lists that could not be read (one line each); the snapshot
    /// is partial when there are any.
    pub errors: Vec<String>,
    /// API groups that could not be discovered while nothing selected was
    /// named in them (one line each); the snapshot is not partial for them.
    pub warnings: Vec<String>,
    /// Objects stored.
    pub objects: usize,
    /// Objects per resource (`deployments.apps`).
    pub counts: BTreeMap<String, usize>,
    /// Of those, the objects taken because selected objects need them
    /// (claims, volumes, service accounts, bindings, roles, classes,
    /// definitions), per resource.
    pub dependencies: BTreeMap<String, usize>,
    /// Lists read again from the start after their continue token expired.
    pub restarted_lists: u32,
}

impl ManifestBackupReport {
    /// Whether some resource lists could not be read.
    pub fn partial(&self) -> bool {
        self.snapshot.partial
    }
}

/// The tags of a manifest backup: `k8s`, `cluster=<name>`, the filters'
/// and the caller's, each once.
pub fn backup_tags(cluster: &str, filters: &Filters, extra: &[String]) -> Vec<String> {
    let mut tags = vec!["k8s".to_owned(), format!("cluster={cluster}")];
    for tag in filters.tags().into_iter().chain(split_list(extra)) {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

/// Backs up the selected objects of a cluster into a snapshot of `repo`,
/// under a shared lock. Blocks the calling thread and runs a runtime of its
/// own for the API calls: async code calls [`crate::k8s::jobs::backup_manifests`],
/// which runs this on tokio's blocking pool.
pub fn backup_manifests(repo: Repository, opts: &ManifestBackupOptions) -> Result<ManifestBackupReport, K8sError> {
    let lock = repo.lock(LockKind::Shared, opts.retry_lock)?;
    let repo = repo.load_index()?;
    let mut paths = vec![format!("/{ROOT}")];
    for extra in &opts.extra_files {
        let top = extra.path.trim_start_matches('/').split('/').next().unwrap_or_default();
        if top.is_empty() || top == ROOT {
            return Err(K8sError::InvalidOption(format!(
                "extra file {:?}: must lie outside {ROOT}/",
                extra.path
            )));
        }
        let top = format!("/{top}");
        if !paths.contains(&top) {
            paths.push(top);
        }
    }
    let rt = runtime()?;
    let connected = rt.block_on(connect(&opts.access))?;
    let cluster = ClusterInfo::from(&connected);
    let backup = BackupOptions {
        tags: backup_tags(&cluster.name, &opts.filters, &opts.tags),
        hostname: Some(opts.host.clone().unwrap_or_else(|| cluster.name.clone())),
        parent: ParentChoice::Latest,
        dry_run: opts.dry_run,
        saver: SaverOptions {
            connections: opts.connections.max(1),
            ..SaverOptions::default()
        },
        lock: Some(lock.watch()),
        cancel: opts.cancel.clone(),
        ..BackupOptions::default()
    };
    let progress = Progress::default();
    let mut snapshot = MemoryBackup::new(&repo, &backup, &progress)?;
    for extra in &opts.extra_files {
        snapshot.add(extra.path.clone(), &extra.data)?;
    }
    // The cluster is read on the runtime while this thread stores each
    // object as it comes: a bounded channel keeps at most a few pages in
    // memory. Should storing fail, the channel closes and the reading ends.
    let (sink, mut objects) = tokio::sync::mpsc::channel::<MemoryFile>(PAGE as usize);
    let filters = opts.filters.clone();
    let reading = rt.spawn(async move { collect(&connected, &filters, sink).await });
    while let Some(file) = objects.blocking_recv() {
        snapshot.add(file.path, &file.data)?;
    }
    let collected = rt
        .block_on(reading)
        .map_err(|e| K8sError::Job(format!("reading the cluster: {e}")))??;
    drop(rt);
    let objects = snapshot.len() - opts.extra_files.len();
    let outcome = snapshot.finish(paths, collected.errors.len() as u64)?;
    drop(lock);
    Ok(ManifestBackupReport {
        cluster,
        snapshot_id: outcome.id,
        snapshot: outcome.snapshot,
        errors: collected.errors,
        warnings: collected.warnings,
        objects,
        counts: collected.counts,
        dependencies: collected.dependencies,
        restarted_lists: collected.restarted_lists,
    })
}

/// How a manifest restore runs.
#[derive(Debug, Clone)]
pub struct ManifestRestoreOptions {
    pub access: ClusterAccess,
    /// The snapshot: an id, a prefix or `latest` (the latest manifest
    /// snapshot, see [`super::latest`]); `ID:/resources/...` for part of it.
    pub snapshot: String,
    /// With `latest`: the latest snapshot of this host (cluster).
    pub host: Option<String>,
    pub filters: Filters,
    /// Namespace OLD restored as NEW.
    pub namespace_mapping: BTreeMap<String, String>,
    pub policy: ExistingPolicy,
    pub order: Order,
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// How long to wait for a restored CustomResourceDefinition.
    pub crd_timeout: Duration,
    /// How long to wait for a namespace being deleted to go.
    pub namespace_timeout: Duration,
    /// The restore's name, recorded in a label on every object (default
    /// `restore-<YYYYMMDD-hhmmss>`).
    pub name: Option<String>,
    /// Which objects this pass restores (all, or one side of the workloads).
    pub pass: Pass,
    /// Claims (namespace in the backup, name) whose data the node agent
    /// restores: created without their binding; their volumes are not
    /// restored.
    pub fresh_claims: BTreeSet<(String, String)>,
    /// Keep every node port of a Service, not only the explicit ones
    /// (those in its last-applied configuration).
    pub preserve_node_ports: bool,
    /// Storage class and image mappings and patch rules, checked.
    pub modifiers: Modifiers,
}

impl Default for ManifestRestoreOptions {
    fn default() -> Self {
        Self {
            access: ClusterAccess::default(),
            snapshot: "latest".to_owned(),
            host: None,
            filters: Filters::default(),
            namespace_mapping: BTreeMap::new(),
            policy: ExistingPolicy::None,
            order: Order::default(),
            dry_run: false,
            crd_timeout: Duration::from_secs(60),
            namespace_timeout: super::namespaces::DEFAULT_TIMEOUT,
            name: None,
            pass: Pass::All,
            fresh_claims: BTreeSet::new(),
            preserve_node_ports: false,
            modifiers: Modifiers::default(),
        }
    }
}

/// What a manifest restore did.
#[derive(Debug, Clone)]
pub struct ManifestRestoreReport {
    pub cluster: ClusterInfo,
    pub snapshot_id: SnapshotId,
    /// The restore's name (its label value).
    pub name: String,
    /// Per object and per resource.
    pub report: Report,
}

/// Restores the objects of a manifest snapshot of `repo` into a cluster.
/// Blocks like [`backup_manifests`]; async code calls
/// [`crate::k8s::jobs::restore_manifests`].
pub fn restore_manifests(
    repo: &IndexedRepository,
    opts: &ManifestRestoreOptions,
) -> Result<ManifestRestoreReport, K8sError> {
    // `latest` is the latest manifest snapshot, of the one cluster the
    // repository holds them of or of `--host`.
    let filter = if latest::is_latest(&opts.snapshot) {
        let all: Vec<Snapshot> = repo.list_snapshots()?.into_iter().map(|(_, s)| s).collect();
        latest::check_latest(&all, opts.host.as_deref())?;
        latest::manifest_filter(opts.host.as_deref())
    } else {
        SnapshotFilter {
            hosts: opts.host.iter().cloned().collect(),
            ..SnapshotFilter::default()
        }
    };
    let (snapshot, objects) = load_objects(repo, &opts.snapshot, &filter)?;
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("restore-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S")));
    let restore_opts = RestoreOptions {
        filters: opts.filters.clone(),
        rewrite: Rewrite {
            mapping: opts.namespace_mapping.clone(),
            snapshot: snapshot.short(),
            restore: name.clone(),
            fresh_claims: opts.fresh_claims.clone(),
            preserve_node_ports: opts.preserve_node_ports,
            ..Rewrite::default()
        },
        policy: opts.policy,
        dry_run: opts.dry_run,
        order: opts.order.clone(),
        crd_timeout: opts.crd_timeout,
        namespace_timeout: opts.namespace_timeout,
        pass: opts.pass,
        modifiers: opts.modifiers.clone(),
    };
    let rt = runtime()?;
    let (cluster, report) = rt.block_on(async {
        let cluster = connect(&opts.access).await?;
        let report = restore(&cluster, objects, &restore_opts).await?;
        Ok::<_, K8sError>((ClusterInfo::from(&cluster), report))
    })?;
    drop(rt);
    Ok(ManifestRestoreReport {
        cluster,
        snapshot_id: snapshot,
        name,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::manifests::filter::ClusterResources;

    #[test]
    fn tags_name_the_cluster_and_the_filters_once_each() {
        let filters = Filters::new(&["shop".into()], &[], &[], &[], None, ClusterResources::Auto).unwrap();
        let tags = backup_tags("prod", &filters, &["nightly,k8s".into(), "nightly".into()]);
        assert_eq!(tags[..2], ["k8s", "cluster=prod"]);
        assert_eq!(tags.iter().filter(|t| *t == "k8s").count(), 1);
        assert_eq!(tags.iter().filter(|t| *t == "nightly").count(), 1);
        for tag in filters.tags() {
            assert!(tags.contains(&tag), "{tag} missing from {tags:?}");
        }
        assert_eq!(tags.last().map(String::as_str), Some("nightly"));
    }
}
