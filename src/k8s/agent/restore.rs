//! The agent's VolumeRestores: a volume snapshot written into a pod
//! volume's directory, through the descriptor the agent opened, never by
//! path.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde_json::{json, Value};

use super::work::{self, drive, locate, Failed, Step};
use super::Agent;
use crate::backup::progress::Progress;
use crate::k8s::controller::Error;
use crate::k8s::crd::volume_restore::VolumeRestore;
use crate::k8s::restore_wait::{valid_marker, MARKER_PREFIX};
use crate::k8s::{jobs, K8sError};
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::CancelToken;
use crate::restore::{restore, subtree, MetaOptions, RestoreOptions};

pub async fn reconcile(vr: Arc<VolumeRestore>, agent: Arc<Agent>) -> Result<Action, Error> {
    work::reconcile(vr, agent, |vr, agent, api| async move { run(&vr, &agent, &api).await }).await
}

/// Restores the snapshot into the volume; the status fields of success
/// and a note.
async fn run(vr: &VolumeRestore, agent: &Agent, api: &Api<VolumeRestore>) -> Step<(Value, String)> {
    let namespace = vr.namespace().unwrap_or_default();
    let spec = &vr.spec;
    let located = match locate(agent, &namespace, &spec.pod, &spec.volume, &spec.repository).await? {
        Ok(l) => l,
        Err(failed) => return Ok(Err(failed)),
    };
    if let Some(marker) = spec.marker.as_deref().filter(|m| !valid_marker(m)) {
        return Ok(Err(Failed(format!(
            "spec.marker {marker:?}: must start with {MARKER_PREFIX:?} and contain no '/'"
        ))));
    }
    let cancel = CancelToken::default();
    let snapshot = spec.snapshot_id.clone();
    let marker = spec.marker.clone();
    let target_name = PathBuf::from(format!("{}:{}", agent.host_pods_name, located.target.logical_path));
    let dir = Arc::new(located.dir);
    let work_cancel = cancel.clone();
    let progress = Arc::new(Progress::default());
    let work_progress = progress.clone();
    let io_priority = agent.io_priority;
    let repos = agent.repos.clone();
    let (uid, repo_name) = located.repository;
    let access = located.access;
    let job = jobs::run(move || {
        io_priority.apply();
        let (repo, ()) = repos.indexed(&uid, &repo_name, &access, |_| Ok(()))?;
        let (_, snap) = repo.find_snapshot(&snapshot, &SnapshotFilter::default())?;
        // A volume snapshot holds one path: the volume's logical path.
        let Some(root) = snap.paths.first().cloned() else {
            return Err(K8sError::Job(format!("snapshot {snapshot} names no path")));
        };
        let tree = subtree(&repo, snap.tree, &root)?;
        // Top-level `.cairn*` entries are markers, never data.
        let exclude = vec![root.join(format!("{MARKER_PREFIX}*")).to_string_lossy().into_owned()];
        let opts = RestoreOptions {
            target: target_name,
            target_dir: Some(dir.clone()),
            subpath: root,
            exclude,
            // Owners as backed up, by number: the node's user names mean
            // nothing to the pod's files.
            meta: MetaOptions::new(true, true),
            cancel: Some(work_cancel),
            ..RestoreOptions::default()
        };
        let bytes = work_progress.clone();
        let summary = restore(
            &repo,
            tree,
            &opts,
            Some(&move |p: &crate::restore::RestoreProgress| {
                bytes
                    .bytes_done
                    .store(p.bytes_done, std::sync::atomic::Ordering::Relaxed);
                bytes
                    .total_bytes
                    .store(p.bytes_total, std::sync::atomic::Ordering::Relaxed);
            }),
        )?;
        if let Some(marker) = &marker {
            write_marker(&dir, marker)
                .map_err(|e| K8sError::Job(format!("writing the marker {marker} into the volume: {e}")))?;
        }
        Ok(summary)
    });
    let summary = match drive(api, &vr.name_any(), job, &progress, &cancel).await? {
        Ok(done) => done,
        Err(failed) => return Ok(Err(failed)),
    };
    let bytes = Progress::get(&progress.bytes_done);
    let note = format!("{} files restored", summary.files_restored);
    let fields = json!({"snapshotID": spec.snapshot_id, "progress": {"bytesDone": bytes, "totalBytes": bytes}});
    Ok(Ok((fields, note)))
}

/// Creates the empty marker file at the root of the volume `dir`, relative
/// to its descriptor; one left by an earlier run of the same restore is
/// kept.
fn write_marker(dir: &OwnedFd, marker: &str) -> std::io::Result<()> {
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match nix::fcntl::openat(Some(dir.as_raw_fd()), marker, flags, Mode::from_bits_truncate(0o644)) {
        Ok(raw) => {
            // SAFETY: `openat` just returned this descriptor; nothing else
            // owns it, so dropping the OwnedFd closes it once.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
            Ok(())
        }
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
