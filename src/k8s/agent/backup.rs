//! The agent's VolumeBackups: one pod volume each, read through the
//! directory descriptors the agent holds and stored as one snapshot under
//! the volume's logical path.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use super::volumes::exclude_paths;
use super::work::{self, drive, locate, Failed, Step};
use super::Agent;
use crate::backup::progress::Progress;
use crate::backup::{backup_dir, BackupOptions, ParentChoice};
use crate::k8s::controller::record::{snapshot_uid, TAG_BACKUP, TAG_BACKUP_UID};
use crate::k8s::controller::Error;
use crate::k8s::crd::backup::Backup;
use crate::k8s::crd::volume_backup::VolumeBackup;
use crate::k8s::restore_wait::MARKER_PREFIX;
use crate::k8s::{jobs, K8sError};
use crate::repo::{CancelToken, LockKind};
use crate::source::walk::WalkOptions;

/// How long a backup waits for an exclusive lock (a prune) to go.
const LOCK_WAIT: Duration = Duration::from_secs(600);

pub async fn reconcile(vb: Arc<VolumeBackup>, agent: Arc<Agent>) -> Result<Action, Error> {
    work::reconcile(vb, agent, |vb, agent, api| async move { run(&vb, &agent, &api).await }).await
}

/// Backs the volume up; the status fields of success and a note.
async fn run(vb: &VolumeBackup, agent: &Agent, api: &Api<VolumeBackup>) -> Step<(Value, String)> {
    let namespace = vb.namespace().unwrap_or_default();
    let spec = &vb.spec;
    let backups: Api<Backup> = Api::namespaced(agent.ctx.client.clone(), &namespace);
    let Some(backup) = backups.get_opt(&spec.backup_name).await? else {
        return Ok(Err(Failed(format!(
            "Backup {namespace}/{} does not exist",
            spec.backup_name
        ))));
    };
    let located = match locate(agent, &namespace, &spec.pod, &spec.volume, &spec.repository).await? {
        Ok(l) => l,
        Err(failed) => return Ok(Err(failed)),
    };
    let mut excludes: Vec<String> = backup
        .spec
        .volumes
        .as_ref()
        .map(|v| v.exclude_paths.clone())
        .unwrap_or_default();
    excludes.extend(exclude_paths(&located.pod));
    // A restore's marker (and any other top-level `.cairn*` entry) is not
    // the volume's data.
    excludes.push(format!("/{MARKER_PREFIX}*"));
    let logical = located.target.logical_path.clone();
    let mut tags = vec![
        format!("{TAG_BACKUP}={}", spec.backup_name),
        format!("{TAG_BACKUP_UID}={}", snapshot_uid(&backup)),
        format!("namespace={}", spec.pod.namespace),
        format!("pod={}", spec.pod.name),
        format!("volume={}", spec.volume),
    ];
    if let Some(pvc) = &located.target.pvc {
        tags.push(format!("pvc={pvc}"));
    }
    let cancel = CancelToken::default();
    let opts = BackupOptions {
        walk: WalkOptions {
            excludes: excludes.iter().map(|g| anchor(&logical, g)).collect(),
            ..WalkOptions::default()
        },
        tags,
        hostname: Some(agent.ctx.settings.cluster_name.clone()),
        parent: ParentChoice::Latest,
        cancel: Some(cancel.clone()),
        read_limit: agent.read_limit.clone(),
        ..BackupOptions::default()
    };
    let progress = Arc::new(Progress::default());
    let work_progress = progress.clone();
    let dir = located.dir;
    let io_priority = agent.io_priority;
    let repos = agent.repos.clone();
    let (uid, repo_name) = located.repository;
    let access = located.access;
    let job = jobs::run(move || {
        io_priority.apply();
        // Shared: agents on every node write one repository at once. The
        // lock comes first, then the index, as with a fresh open.
        let (repo, lock) = repos.indexed(&uid, &repo_name, &access, |repo| {
            Ok(repo.lock(LockKind::Shared, LOCK_WAIT)?)
        })?;
        let opts = BackupOptions {
            lock: Some(lock.watch()),
            ..opts
        };
        let outcome = backup_dir(&repo, dir, &PathBuf::from(&logical), &opts, &work_progress)?;
        drop(lock);
        let id = outcome
            .id
            .map(|id| id.to_hex())
            .ok_or_else(|| K8sError::Job("the backup stored no snapshot".into()))?;
        Ok((id, outcome.snapshot.summary.total_bytes_processed))
    });
    let (id, bytes) = match drive(api, &vb.name_any(), job, &progress, &cancel).await? {
        Ok(done) => done,
        Err(failed) => return Ok(Err(failed)),
    };
    let note = format!("snapshot {}", &id[..8.min(id.len())]);
    let fields = json!({"snapshotID": id, "progress": {"bytesDone": bytes, "totalBytes": bytes}});
    Ok(Ok((fields, note)))
}

/// An exclude glob of a volume as a pattern of the walk, which sees the
/// logical path: a glob with `/` is relative to the volume's root (a
/// leading `/` means the same), one without matches a name at any depth.
fn anchor(logical: &str, glob: &str) -> String {
    let root = logical.trim_end_matches('/');
    let glob = glob.trim_end_matches('/');
    if glob.contains('/') {
        format!("{root}/{}", glob.trim_start_matches('/'))
    } else {
        format!("{root}/**/{glob}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn excludes_are_anchored_at_the_logical_root() {
        assert_eq!(
            super::anchor("/volumes/shop/data", "tmp/**"),
            "/volumes/shop/data/tmp/**"
        );
        assert_eq!(
            super::anchor("/volumes/shop/data", "/cache"),
            "/volumes/shop/data/cache"
        );
        assert_eq!(
            super::anchor("/volumes/shop/data", "*.log"),
            "/volumes/shop/data/**/*.log"
        );
        assert_eq!(
            super::anchor("/volumes/shop/data/", "tmp/"),
            "/volumes/shop/data/**/tmp"
        );
    }
}
