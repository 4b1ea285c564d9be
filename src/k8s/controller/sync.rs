//! The sync of a BackupRepository: every backup recorded in the repository
//! whose Backup object is missing gets one, so that a new cluster pointed at
//! an old cluster's bucket sees its backups and can restore them.
//!
//! The repository side runs on the blocking pool ([`scan`], [`list_ids`]);
//! what was read of each snapshot is kept in memory ([`Memory`]), so a sync
//! of an unchanged repository reads the list of snapshot names and nothing
//! else. The cluster side ([`create_missing`]) follows the contract of the
//! Backup reconciler: a Backup whose snapshots are being forgotten is never
//! brought back. The snapshots are listed, then the Backups, then the
//! snapshots again, and only what both lists hold is synced: a finalizer
//! forgets a Backup's snapshots before its object goes, so a snapshot still
//! listed after its Backup was found missing was not being forgotten.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kube::api::{ListParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::record::{BackupRecord, LABEL_BACKUP_UID, RECORD_PATH, TAG_BACKUP_UID, TAG_MANIFESTS};
use super::status::patch_status;
use super::{log, Context, Error};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::k8s::crd::backup::{Backup, BackupSpec, Phase};
use crate::k8s::crd::common::Time;
use crate::k8s::crd::repository::BackupRepository;
use crate::k8s::manifests::stored::read_stored_file;
use crate::k8s::K8sError;
use crate::repo::{IndexedRepository, RepoError, Repository};

/// How many snapshot files are read at once.
const READ_CONNECTIONS: usize = 8;

/// The largest backup record read (records are a few KiB).
const MAX_RECORD: u64 = 4 << 20;

/// What a snapshot turned out to be.
#[derive(Debug, Clone)]
pub enum Seen {
    /// Not a manifest snapshot of a Backup.
    Other,
    /// A Backup's manifest snapshot whose record cannot be used (warned
    /// about once).
    Broken,
    /// A Backup's manifest snapshot with its record.
    Backup(Arc<Found>),
}

/// A backup found in the repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub snapshot: SnapshotId,
    /// The `backup-uid` tag: the uid the snapshots are forgotten by.
    pub uid: String,
    pub record: BackupRecord,
    /// When the snapshot was taken.
    pub time: Time,
    /// Whether some resource lists could not be read.
    pub partial: bool,
}

/// What was read of one repository, kept between syncs.
#[derive(Debug, Default)]
pub struct Memory {
    /// The repository's id: a BackupRepository pointed elsewhere starts over.
    repository: String,
    seen: HashMap<SnapshotId, Seen>,
}

impl Memory {
    /// The snapshots already read (for [`scan`]).
    pub fn known(&self) -> HashSet<SnapshotId> {
        self.seen.keys().copied().collect()
    }

    /// Takes in a scan: forgets snapshots no longer listed and what was
    /// read of another repository.
    pub fn absorb(&mut self, scan: &Scan) {
        if self.repository != scan.repository {
            self.seen.clear();
            self.repository = scan.repository.clone();
        }
        let listed: HashSet<&SnapshotId> = scan.listed.iter().collect();
        self.seen.retain(|id, _| listed.contains(id));
        for (id, seen) in &scan.read {
            self.seen.insert(*id, seen.clone());
        }
    }

    /// The backups of the snapshots listed in both `first` and `second`,
    /// one per uid (the newest snapshot when a killed run left several).
    pub fn candidates(&self, first: &[SnapshotId], second: &HashSet<SnapshotId>) -> Vec<Arc<Found>> {
        let mut by_uid: BTreeMap<&str, Arc<Found>> = BTreeMap::new();
        for id in first.iter().filter(|id| second.contains(id)) {
            let Some(Seen::Backup(found)) = self.seen.get(id) else {
                continue;
            };
            match by_uid.get(found.uid.as_str()) {
                Some(have) if (have.time, have.snapshot) >= (found.time, found.snapshot) => {}
                _ => {
                    by_uid.insert(found.uid.as_str(), found.clone());
                }
            }
        }
        by_uid.into_values().collect()
    }
}

/// What one look at the repository found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The repository's id.
    pub repository: String,
    /// Every snapshot listed.
    pub listed: Vec<SnapshotId>,
    /// What the snapshots not known before turned out to be.
    pub read: Vec<(SnapshotId, Seen)>,
    /// One line per snapshot that could not be used, naming it.
    pub warnings: Vec<String>,
}

/// The `backup-uid` of a Backup's manifest snapshot, if it is one.
fn backup_uid(snapshot: &Snapshot) -> Option<&str> {
    if !snapshot.tags.iter().any(|t| t == TAG_MANIFESTS) {
        return None;
    }
    snapshot
        .tags
        .iter()
        .find_map(|t| t.strip_prefix(TAG_BACKUP_UID)?.strip_prefix('='))
        .filter(|uid| !uid.is_empty())
}

/// Whether a failure may go away by itself (the store was unreachable),
/// so that the snapshot is read again at the next sync.
fn transient(e: &K8sError) -> bool {
    match e {
        K8sError::Repo(RepoError::Storage(s)) => s.is_transient(),
        other => other.is_transient(),
    }
}

/// The names of the repository's snapshots.
pub fn list_ids(repo: &Repository) -> Result<HashSet<SnapshotId>, K8sError> {
    Ok(repo.snapshot_ids()?.into_iter().collect())
}

/// Lists the snapshots and reads those not in `known`: each snapshot file,
/// and for Backups' manifest snapshots their record (the index is loaded
/// only then). Blocks.
pub fn scan(repo: Repository, known: &HashSet<SnapshotId>) -> Result<(Opened, Scan), K8sError> {
    let mut listed: Vec<SnapshotId> = list_ids(&repo)?.into_iter().collect();
    listed.sort();
    let mut out = Scan {
        repository: repo.config().id.to_hex(),
        ..Scan::default()
    };
    let mut pending: Vec<(SnapshotId, Snapshot, String)> = Vec::new();
    let unknown: Vec<SnapshotId> = listed.iter().filter(|id| !known.contains(id)).copied().collect();
    for (id, loaded) in repo.load_snapshots(READ_CONNECTIONS, &unknown) {
        match loaded {
            Ok(snapshot) => match backup_uid(&snapshot) {
                Some(uid) => {
                    let uid = uid.to_owned();
                    pending.push((id, snapshot, uid));
                }
                None => out.read.push((id, Seen::Other)),
            },
            Err(e) => {
                let e = K8sError::from(e);
                out.warnings.push(format!("snapshot {}: {e}", id.short()));
                if !transient(&e) {
                    out.read.push((id, Seen::Other));
                }
            }
        }
    }
    pending.sort_by_key(|p| p.0);
    out.listed = listed;
    if pending.is_empty() {
        return Ok((Opened::Plain(repo), out));
    }
    let repo = repo.load_index()?;
    for (id, snapshot, uid) in pending {
        match read_record(&repo, &snapshot) {
            Ok(record) => {
                let found = Found {
                    snapshot: id,
                    uid,
                    record,
                    time: snapshot_time(&snapshot),
                    partial: snapshot.partial,
                };
                out.read.push((id, Seen::Backup(Arc::new(found))));
            }
            Err(e) => {
                out.warnings.push(format!("snapshot {}: {e}", id.short()));
                if !transient(&e) {
                    out.read.push((id, Seen::Broken));
                }
            }
        }
    }
    Ok((Opened::Indexed(repo), out))
}

/// A repository as [`scan`] leaves it: with its index when it had to read
/// records.
pub enum Opened {
    Plain(Repository),
    Indexed(IndexedRepository),
}

impl Opened {
    pub fn repository(&self) -> &Repository {
        match self {
            Self::Plain(r) => r,
            Self::Indexed(r) => r,
        }
    }
}

fn read_record(repo: &IndexedRepository, snapshot: &Snapshot) -> Result<BackupRecord, K8sError> {
    let bytes = read_stored_file(repo, snapshot.tree, RECORD_PATH, MAX_RECORD)?;
    BackupRecord::parse(&bytes).map_err(|e| K8sError::InvalidObject {
        path: format!("/{RECORD_PATH}"),
        reason: e.to_string(),
    })
}

/// A snapshot's time, to the second.
fn snapshot_time(snapshot: &Snapshot) -> Time {
    let seconds = snapshot.time_ns.div_euclid(1_000_000_000);
    Time::from_second(seconds).unwrap_or(Time::UNIX_EPOCH)
}

/// The Backup a sync creates for `found` in the BackupRepository `repo`.
pub fn backup_for(repo: &BackupRepository, found: &Found) -> Backup {
    let mut labels = found.record.labels.clone();
    labels.insert(LABEL_BACKUP_UID.to_owned(), found.uid.clone());
    let spec = BackupSpec {
        repository: Some(repo.name_any()),
        ..found.record.spec.clone()
    };
    Backup {
        metadata: ObjectMeta {
            name: Some(found.record.name.clone()),
            namespace: repo.namespace(),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// The status a synced Backup gets.
pub fn status_for(found: &Found) -> serde_json::Value {
    let phase = if found.partial {
        Phase::PartiallyFailed
    } else {
        Phase::Completed
    };
    let mut status = json!({
        "phase": phase,
        "startTimestamp": found.record.start_timestamp,
        "completionTimestamp": found.time,
        "manifestSnapshot": found.snapshot.to_hex(),
    });
    if let Some(expiration) = found.record.expiration {
        status["expiration"] = json!(expiration);
    }
    status
}

/// The Backups of the cluster, as a sync needs them: the names taken in
/// the BackupRepository's namespace, and the uids every Backup's snapshots
/// carry (a backup is synced once per cluster, whichever namespace it is
/// in, so two BackupRepositories on one bucket do not both bring it back).
pub struct Existing {
    names: HashSet<String>,
    uids: HashSet<String>,
}

/// Lists the Backups of the cluster.
pub async fn existing(ctx: &Context, namespace: &str) -> Result<Existing, Error> {
    // Names, labels and uids are all it needs: metadata only, so that
    // thousands of Backups cost little to list.
    let api: Api<Backup> = Api::all(ctx.client.clone());
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| K8sError::request(&ctx.server, "LIST Backups", e))?;
    let uid_of = |m: &kube::core::PartialObjectMeta<Backup>| {
        m.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_BACKUP_UID))
            .cloned()
            .or_else(|| m.metadata.uid.clone())
            .unwrap_or_default()
    };
    Ok(Existing {
        names: list
            .items
            .iter()
            .filter(|b| b.metadata.namespace.as_deref() == Some(namespace))
            .filter_map(|b| b.metadata.name.clone())
            .collect(),
        uids: list.items.iter().map(uid_of).filter(|u| !u.is_empty()).collect(),
    })
}

/// Creates the Backup (and its status) of each candidate that has none,
/// is not expired, and whose name is free. Returns the Backups created.
pub async fn create_missing(
    ctx: &Context,
    repo: &BackupRepository,
    candidates: &[Arc<Found>],
    existing: &Existing,
) -> Result<Vec<String>, Error> {
    let namespace = repo.namespace().unwrap_or_default();
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = Time::now();
    let mut created = Vec::new();
    for found in candidates {
        let name = &found.record.name;
        let expired = found.record.expiration.is_some_and(|e| e <= now);
        if expired || existing.names.contains(name) || existing.uids.contains(&found.uid) || created.contains(name) {
            continue;
        }
        let backup = backup_for(repo, found);
        match api.create(&PostParams::default(), &backup).await {
            Ok(_) => {}
            // Made meanwhile (by another BackupRepository on the same bucket).
            Err(e) if crate::k8s::client::status_code(&e) == Some(409) => continue,
            // A record this cluster refuses (a name too long, ...): say so.
            Err(e) if matches!(crate::k8s::client::status_code(&e), Some(400 | 422)) => {
                let e = K8sError::request(&ctx.server, &format!("POST Backup {namespace}/{name}"), e);
                let note = format!("snapshot {}: {e}", found.snapshot.short());
                log::warn(&format!("BackupRepository {namespace}/{}: {note}", repo.name_any()));
                ctx.event(repo, true, "SyncFailed", note).await;
                continue;
            }
            Err(e) => return Err(K8sError::request(&ctx.server, &format!("POST Backup {namespace}/{name}"), e).into()),
        }
        patch_status(&api, name, status_for(found)).await?;
        log::info(&format!(
            "BackupRepository {namespace}/{}: created Backup {name} from snapshot {} (cluster {})",
            repo.name_any(),
            found.snapshot.short(),
            found.record.cluster
        ));
        ctx.event(
            repo,
            false,
            "BackupSynced",
            format!(
                "Backup {name} from snapshot {} of cluster {}",
                found.snapshot.short(),
                found.record.cluster
            ),
        )
        .await;
        created.push(name.clone());
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::controller::record::snapshot_uid;

    fn found(snapshot: u8, uid: &str, second: i64) -> Arc<Found> {
        let record: BackupRecord = serde_json::from_value(json!({
            "version": 1, "name": "b", "namespace": "ns", "uid": uid, "cluster": "a",
            "spec": {"ttl": "1h"}, "startTimestamp": "2026-12-06T01:00:00Z",
        }))
        .unwrap();
        Arc::new(Found {
            snapshot: SnapshotId::from_bytes([snapshot; 32]),
            uid: uid.into(),
            record,
            time: Time::from_second(second).unwrap(),
            partial: false,
        })
    }

    #[test]
    fn candidates_are_in_both_lists_one_per_uid_the_newest() {
        let (a, b, c, d) = (
            found(1, "u1", 10),
            found(2, "u1", 20),
            found(3, "u2", 5),
            found(4, "u3", 5),
        );
        let mut memory = Memory::default();
        let scan = Scan {
            repository: "r".into(),
            listed: vec![a.snapshot, b.snapshot, c.snapshot, d.snapshot],
            read: [&a, &b, &c, &d]
                .iter()
                .map(|f| (f.snapshot, Seen::Backup((*f).clone())))
                .collect(),
            warnings: vec![],
        };
        memory.absorb(&scan);
        assert_eq!(memory.known().len(), 4);
        let second: HashSet<SnapshotId> = [a.snapshot, b.snapshot, c.snapshot].into();
        let got = memory.candidates(&scan.listed, &second);
        assert_eq!(got, vec![b.clone(), c.clone()]);
        // A snapshot gone from the list is forgotten; another repository
        // starts over.
        memory.absorb(&Scan {
            repository: "r".into(),
            listed: vec![a.snapshot],
            ..Scan::default()
        });
        assert_eq!(memory.known(), [a.snapshot].into());
        memory.absorb(&Scan {
            repository: "other".into(),
            listed: vec![a.snapshot],
            ..Scan::default()
        });
        assert!(memory.known().is_empty());
    }

    #[test]
    fn a_synced_backup_keeps_the_record_and_names_the_repository() {
        let f = found(1, "u1", 1_765_000_000);
        let repo = BackupRepository::new(
            "store",
            serde_json::from_value(json!({"url": "/r", "passwordSecretRef": {"name": "p", "key": "k"}})).unwrap(),
        );
        let backup = backup_for(&repo, &f);
        assert_eq!(backup.spec.repository.as_deref(), Some("store"));
        assert_eq!(backup.labels().get(LABEL_BACKUP_UID).map(String::as_str), Some("u1"));
        assert_eq!(snapshot_uid(&backup), "u1");
        let status = status_for(&f);
        assert_eq!(status["phase"], "Completed");
        assert_eq!(status["manifestSnapshot"], f.snapshot.to_hex());
        assert_eq!(status["startTimestamp"], "2026-12-06T01:00:00Z");
        assert!(status.get("expiration").is_none());
    }
}
