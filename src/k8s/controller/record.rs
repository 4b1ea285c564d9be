//! The backup record: what a Backup was, stored in its manifest snapshot
//! as `cairn/backup.json`, so that a controller that has only the bucket (a
//! new cluster, another cloud) can recreate the Backup object and restore
//! it.
//!
//! The record is JSON like the manifests beside it. Readers ignore fields
//! they do not know and refuse a `version` above their own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backup::MemoryFile;
use crate::k8s::crd::backup::{Backup, BackupSpec};
use crate::k8s::crd::common::Time;

/// Where the record lies in the manifest snapshot.
pub const RECORD_PATH: &str = "cairn/backup.json";

/// The record version this build writes and reads.
pub const RECORD_VERSION: u32 = 1;

/// Tag naming the Backup of a snapshot: `backup=<name>`.
pub const TAG_BACKUP: &str = "backup";
/// Tag holding the Backup's uid: `backup-uid=<uid>`.
pub const TAG_BACKUP_UID: &str = "backup-uid";
/// Tag of manifest snapshots (volume snapshots carry `volume=`).
pub const TAG_MANIFESTS: &str = "k8s";

/// Label of Backups made by a Schedule: the Schedule's name.
pub const LABEL_SCHEDULE: &str = "backup.cairn.io/schedule";
/// Label of Backups recreated from a repository by a sync: the uid of the
/// Backup that wrote the snapshots (their `backup-uid` tag).
pub const LABEL_BACKUP_UID: &str = "backup.cairn.io/backup-uid";

/// The uid a Backup's snapshots are tagged with: its own, or for a Backup
/// recreated by a sync, the original's (label [`LABEL_BACKUP_UID`]).
pub fn snapshot_uid(backup: &Backup) -> String {
    backup
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_BACKUP_UID))
        .cloned()
        .or_else(|| backup.metadata.uid.clone())
        .unwrap_or_default()
}

/// What a Backup was when its manifests were stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    pub version: u32,
    /// The Backup's name, namespace and uid.
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The cluster it was taken from (the snapshots' host).
    pub cluster: String,
    /// Its labels (the Schedule that made it, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub spec: BackupSpec,
    pub start_timestamp: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Time>,
    /// The pod volumes to be backed up with it (filled by the node agent's
    /// issue; empty for manifest-only backups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeRecord>,
}

/// One pod volume of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    pub namespace: String,
    pub pod: String,
    pub volume: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<String>,
}

/// Why a stored record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{RECORD_PATH}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{RECORD_PATH}: version {found} is newer than this cairn reads ({RECORD_VERSION}); upgrade cairn")]
    Version { found: u32 },
}

impl BackupRecord {
    /// The record as the file stored beside the manifests.
    pub fn to_file(&self) -> MemoryFile {
        MemoryFile {
            path: RECORD_PATH.to_owned(),
            // A record of plain strings and numbers always serialises.
            data: serde_json::to_vec_pretty(self).unwrap_or_default(),
        }
    }

    /// Reads a stored record.
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        #[derive(Deserialize)]
        struct Head {
            version: u32,
        }
        let head: Head = serde_json::from_slice(bytes)?;
        if head.version > RECORD_VERSION {
            return Err(RecordError::Version { found: head.version });
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> BackupRecord {
        BackupRecord {
            version: RECORD_VERSION,
            name: "nightly-20261206010000".into(),
            namespace: "cairn-system".into(),
            uid: "0b6f8a52-9d6e-4a55-a0a4-0b7fe44c51c3".into(),
            cluster: "prod".into(),
            labels: BTreeMap::from([("backup.cairn.io/schedule".into(), "nightly".into())]),
            spec: serde_json::from_value(serde_json::json!({"includedNamespaces": ["shop"], "ttl": "24h"})).unwrap(),
            start_timestamp: "2026-12-06T01:00:00Z".parse().unwrap(),
            expiration: Some("2026-12-07T01:00:00Z".parse().unwrap()),
            volumes: vec![],
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let file = record().to_file();
        assert_eq!(file.path, "cairn/backup.json");
        assert_eq!(BackupRecord::parse(&file.data).unwrap(), record());
    }

    #[test]
    fn a_newer_or_broken_record_is_refused_with_its_path() {
        let mut v = serde_json::to_value(record()).unwrap();
        v["version"] = 2.into();
        let err = BackupRecord::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 2 is newer"), "{err}");
        let err = BackupRecord::parse(b"{\"version\": 1}").unwrap_err();
        assert!(err.to_string().starts_with("cairn/backup.json: "), "{err}");
    }
}
