//! Snapshot files: save, list, find by prefix or `latest`.

use super::{RepoError, Repository, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::storage::FileKind;

/// Narrows `latest` and listings.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    /// Each entry is a comma-separated set of tags that must all be present;
    /// a snapshot matches if any entry matches.
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty()
                || self.tags.iter().any(|set| {
                    set.split(',')
                        .filter(|t| !t.is_empty())
                        .all(|t| s.tags.iter().any(|x| x == t))
                }))
            && (self.paths.is_empty()
                || self
                    .paths
                    .iter()
                    .all(|p| s.paths.iter().any(|sp| sp.as_os_str() == p.as_str())))
    }
}

impl Repository {
    /// Stores a snapshot; call only after its data and index are durable.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let name = self.save_file(FileKind::Snapshot, &snapshot.encode())?;
        name.parse()
            .map_err(|_| RepoError::InvalidOption(format!("bad snapshot name {name}")))
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let name = id.to_hex();
        let plain = self.load_file(FileKind::Snapshot, &name)?;
        Snapshot::decode(&plain).map_err(|source| RepoError::Format {
            kind: FileKind::Snapshot,
            name,
            source,
        })
    }

    /// The ids of the stored snapshots, unordered, without reading them.
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let names = self.block_on(self.storage.list(FileKind::Snapshot))?;
        Ok(names.into_iter().filter_map(|info| info.name.parse().ok()).collect())
    }

    /// Reads the snapshot files `ids`, `connections` at a time (a first
    /// look at an object store holding thousands of them would otherwise
    /// take minutes); each comes with its own result.
    pub fn load_snapshots(&self, connections: usize, ids: &[SnapshotId]) -> Vec<(SnapshotId, Result<Snapshot>)> {
        use futures::StreamExt;
        let load = |id: SnapshotId| {
            let storage = self.storage.clone();
            async move {
                let name = id.to_hex();
                let result = match storage.get(FileKind::Snapshot, &name).await {
                    Ok(bytes) => self.open_file(FileKind::Snapshot, &name, &bytes).and_then(|plain| {
                        Snapshot::decode(&plain).map_err(|source| RepoError::Format {
                            kind: FileKind::Snapshot,
                            name,
                            source,
                        })
                    }),
                    Err(e) => Err(e.into()),
                };
                (id, result)
            }
        };
        self.block_on(
            futures::stream::iter(ids.iter().copied())
                .map(load)
                .buffer_unordered(connections.max(1))
                .collect(),
        )
    }

    /// Every snapshot, oldest first.
    pub fn list_snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let names = self.block_on(self.storage.list(FileKind::Snapshot))?;
        let mut out = Vec::with_capacity(names.len());
        for info in names {
            let id: SnapshotId = match info.name.parse() {
                Ok(id) => id,
                Err(_) => continue,
            };
            out.push((id, self.load_snapshot(&id)?));
        }
        out.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Resolves `latest`, a full id or a unique prefix.
    pub fn find_snapshot(&self, spec: &str, filter: &SnapshotFilter) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            return self
                .list_snapshots()?
                .into_iter()
                .rev()
                .find(|(_, s)| filter.matches(s))
                .ok_or_else(|| RepoError::SnapshotNotFound(spec.to_owned()));
        }
        if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RepoError::SnapshotNotFound(spec.to_owned()));
        }
        let spec_lower = spec.to_ascii_lowercase();
        let names = self.block_on(self.storage.list(FileKind::Snapshot))?;
        let matches: Vec<_> = names.into_iter().filter(|n| n.name.starts_with(&spec_lower)).collect();
        match matches.len() {
            0 => Err(RepoError::SnapshotNotFound(spec.to_owned())),
            1 => {
                let id: SnapshotId = matches[0]
                    .name
                    .parse()
                    .map_err(|_| RepoError::SnapshotNotFound(spec.to_owned()))?;
                Ok((id, self.load_snapshot(&id)?))
            }
            count => Err(RepoError::AmbiguousSnapshot {
                prefix: spec.to_owned(),
                count,
            }),
        }
    }
}
