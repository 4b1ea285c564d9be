//! Running a Backup's hooks, each exactly once.
//!
//! After the manifests are stored, the pre hooks of every selected Running
//! pod run before any VolumeBackup of that pod is created; a pod whose pre
//! hook fails with `Fail` gets no VolumeBackups and its post hooks do not
//! run (as Velero does: the pod was never quiesced as asked, so nothing is
//! undone). The post hooks of a pod run once all its VolumeBackups ended
//! (also when they failed), or right after its pre hooks when it has no
//! volumes.
//!
//! Every hook is written into `status.hooks` before it starts (without a
//! completion time) and again when it ends, each time with a status patch,
//! so a controller that restarts finds it there and never runs it twice:
//! a hook that was started but not seen to end counts as failed. A pod's
//! post hooks are listed without a start time once its pre hooks ended:
//! later passes look only at the pods such entries name.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::backup_steps::now;
use super::hooks::{pod_hooks, Hook, PodHooks};
use super::volume_backups::{self, Planned};
use super::{log, Context, Error};
use crate::k8s::crd::backup::{Backup, HookErrorMode, HookPhase, HookStatus};
use crate::k8s::crd::volume_backup::VolumePhase;
use crate::k8s::hooks::exec;
use crate::k8s::manifests::filter::{excluded_by_label, Filters};

/// The hooks of a Backup as recorded so far, kept in step with its status.
struct Recorder<'a> {
    ctx: &'a Context,
    api: &'a Api<Backup>,
    backup: &'a Backup,
    records: Vec<HookStatus>,
}

impl Recorder<'_> {
    fn find(&self, ns: &str, pod: &str, phase: HookPhase, index: u32) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.namespace == ns && r.pod == pod && r.phase == phase && r.index == index)
    }

    async fn save(&self) -> Result<(), Error> {
        super::status::patch_status(self.api, &self.backup.name_any(), json!({ "hooks": self.records })).await?;
        Ok(())
    }

    async fn announce_failure(&self, record: &HookStatus) {
        let message = failure_line(record);
        log::warn(&format!(
            "Backup {}/{}: {message}",
            self.backup.namespace().unwrap_or_default(),
            self.backup.name_any()
        ));
        self.ctx.event(self.backup, true, "HookFailed", message).await;
    }

    /// Runs the hooks of `phase` in `pod` that have no record yet; false
    /// when one failed with `Fail` (the rest of the phase is not run).
    async fn run_phase(&mut self, pod: &Pod, phase: HookPhase, hooks: &[Hook]) -> Result<bool, Error> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        for (i, hook) in hooks.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let found = self.find(&ns, &name, phase, index);
            // A planned post hook that has not started yet runs now.
            let pending = found.filter(|at| self.records[*at].start_timestamp.is_none());
            if let (Some(at), None) = (found, pending) {
                if self.records[at].completion_timestamp.is_none() {
                    // Started by a controller that stopped meanwhile (or
                    // whose status write failed after it): it may have run,
                    // so it is not run again.
                    let record = &mut self.records[at];
                    record.error = Some(
                        "the controller restarted while this hook ran (or could not record its end); its outcome is \
                         unknown and it is not run again"
                            .to_owned(),
                    );
                    record.completion_timestamp = Some(now());
                    self.save().await?;
                    self.announce_failure(&self.records[at].clone()).await;
                }
                let record = &self.records[at];
                if record.failed() && record.on_error == HookErrorMode::Fail {
                    return Ok(false);
                }
                continue;
            }
            let mut record = HookStatus {
                namespace: ns.clone(),
                pod: name.clone(),
                container: hook.container.clone(),
                phase,
                index,
                command: hook.command.clone(),
                on_error: hook.on_error,
                exit_code: None,
                output: String::new(),
                error: None,
                start_timestamp: Some(now()),
                completion_timestamp: None,
            };
            if let Some(at) = pending {
                self.records.remove(at);
            }
            if let Some(problem) = &hook.invalid {
                record.error = Some(problem.clone());
                record.completion_timestamp = Some(now());
            } else {
                self.records.push(record.clone());
                self.save().await?;
                match exec(
                    self.ctx.client.clone(),
                    &ns,
                    &name,
                    &hook.container,
                    &hook.command,
                    hook.timeout,
                )
                .await
                {
                    Ok(outcome) => {
                        record.exit_code = outcome.exit_code;
                        record.output = outcome.output;
                        record.error = outcome.failure;
                    }
                    Err(e) => record.error = Some(e.to_string()),
                }
                record.completion_timestamp = Some(now());
                self.records.pop();
            }
            self.records.push(record.clone());
            self.save().await?;
            if record.failed() {
                self.announce_failure(&record).await;
                if record.on_error == HookErrorMode::Fail {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

impl Recorder<'_> {
    /// Lists the post hooks of `pod` as planned (not started), so that a
    /// later pass knows which pods wait for their post hooks.
    fn plan(&mut self, pod: &Pod, hooks: &[Hook]) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        for (i, hook) in hooks.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            if self.find(&ns, &name, HookPhase::Post, index).is_some() {
                continue;
            }
            self.records.push(HookStatus {
                namespace: ns.clone(),
                pod: name.clone(),
                container: hook.container.clone(),
                phase: HookPhase::Post,
                index,
                command: hook.command.clone(),
                on_error: hook.on_error,
                exit_code: None,
                output: String::new(),
                error: None,
                start_timestamp: None,
                completion_timestamp: None,
            });
        }
    }
}

/// The claims a pod mounts.
fn claims_of(pod: &Pod) -> BTreeSet<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// One line about a failed hook.
pub fn failure_line(r: &HookStatus) -> String {
    format!(
        "{} hook {} in pod {}/{} container {} {:?}: {}",
        r.phase,
        r.index,
        r.namespace,
        r.pod,
        r.container,
        r.command,
        r.error.as_deref().unwrap_or("failed")
    )
}

/// The selected Running pods that have hooks, with them.
async fn pods_with_hooks(ctx: &Context, backup: &Backup, filters: &Filters) -> Result<Vec<(Pod, PodHooks)>, Error> {
    let annotated = |p: &Pod| {
        p.annotations()
            .keys()
            .any(|k| k.starts_with("pre.hook.backup.cairn.io/") || k.starts_with("post.hook.backup.cairn.io/"))
    };
    let spec = backup.spec.hooks.as_ref().filter(|h| !h.resources.is_empty());
    let pods = Api::<Pod>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    Ok(pods
        .into_iter()
        .filter(|p| spec.is_some() || annotated(p))
        .filter(|p| {
            let value = serde_json::to_value(p).unwrap_or_default();
            filters.namespace_selected(&p.namespace().unwrap_or_default())
                && filters.label_selected(&value)
                && !excluded_by_label(&value)
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .map(|p| {
            let hooks = pod_hooks(&p, spec);
            (p, hooks)
        })
        .filter(|(_, h)| !h.is_empty())
        .collect())
}

/// The Backup's recorded hooks as the server holds them now.
async fn fresh(api: &Api<Backup>, backup: &Backup) -> Result<Vec<HookStatus>, Error> {
    Ok(api
        .get_opt(&backup.name_any())
        .await?
        .and_then(|b| b.status)
        .map(|s| s.hooks)
        .unwrap_or_default())
}

/// Runs the pre hooks of the pods `backup` selects (the post hooks too for
/// pods without planned volumes) and returns the planned volumes that may
/// be backed up: not those of a pod whose pre hook failed with `Fail`.
pub async fn pre(
    ctx: &Context,
    api: &Api<Backup>,
    backup: &Backup,
    filters: &Filters,
    planned: Vec<Planned>,
) -> Result<Vec<Planned>, Error> {
    let pods = pods_with_hooks(ctx, backup, filters).await?;
    if pods.is_empty() {
        return Ok(planned);
    }
    let mut recorder = Recorder {
        ctx,
        api,
        backup,
        records: fresh(api, backup).await?,
    };
    let mut planned = planned;
    let mut waiting = false;
    for (pod, hooks) in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // Its own volumes, or a claim it shares with a pod whose
        // VolumeBackup takes it.
        let claims = claims_of(&pod);
        let ns = pod.namespace().unwrap_or_default();
        let its = |p: &Planned| {
            p.pod_uid == uid || (p.namespace == ns && p.pvc.as_ref().is_some_and(|(c, _)| claims.contains(c)))
        };
        let has_volumes = planned.iter().any(its);
        if !recorder.run_phase(&pod, HookPhase::Pre, &hooks.pre).await? {
            // Whichever pod the claim would be read through.
            planned.retain(|p| !its(p));
            continue;
        }
        if has_volumes {
            recorder.plan(&pod, &hooks.post);
            waiting |= !hooks.post.is_empty();
        } else {
            recorder.run_phase(&pod, HookPhase::Post, &hooks.post).await?;
        }
    }
    if waiting {
        recorder.save().await?;
    }
    Ok(planned)
}

/// Runs the planned post hooks of each pod all of whose VolumeBackups
/// of `backup` ended.
pub async fn post(ctx: &Context, api: &Api<Backup>, backup: &Backup) -> Result<(), Error> {
    let records = fresh(api, backup).await?;
    let waiting: BTreeSet<(String, String)> = records
        .iter()
        .filter(|r| r.phase == HookPhase::Post && r.start_timestamp.is_none())
        .map(|r| (r.namespace.clone(), r.pod.clone()))
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    // Pods with a volume still to be backed up, and the uid each was
    // backed up as.
    let mut busy: BTreeSet<(String, String)> = BTreeSet::new();
    let mut busy_claims: BTreeSet<(String, String)> = BTreeSet::new();
    let mut uids: BTreeMap<(String, String), String> = BTreeMap::new();
    for vb in volume_backups::of_backup(ctx, backup).await? {
        let pod = (vb.spec.pod.namespace.clone(), vb.spec.pod.name.clone());
        let done = matches!(
            vb.status.as_ref().and_then(|s| s.phase),
            Some(VolumePhase::Completed | VolumePhase::Failed | VolumePhase::Canceled)
        );
        if !done {
            busy.insert(pod.clone());
            if let Some(pvc) = &vb.spec.pvc {
                busy_claims.insert((pvc.namespace.clone(), pvc.name.clone()));
            }
        }
        uids.insert(pod, vb.spec.pod.uid.clone());
    }
    let mut recorder = Recorder {
        ctx,
        api,
        backup,
        records,
    };
    for (ns, name) in waiting {
        if busy.contains(&(ns.clone(), name.clone())) {
            continue;
        }
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let found = pods.get_opt(&name).await?;
        let expected = uids.get(&(ns.clone(), name.clone())).cloned().unwrap_or_default();
        // A pod recreated under the name is not the one backed up.
        let pod = found.filter(|p| expected.is_empty() || p.metadata.uid.as_deref() == Some(expected.as_str()));
        match pod {
            // A claim it shares is still being read through another pod.
            Some(pod)
                if claims_of(&pod)
                    .into_iter()
                    .any(|c| busy_claims.contains(&(ns.clone(), c))) => {}
            Some(pod) => {
                let hooks = pod_hooks(&pod, backup.spec.hooks.as_ref());
                if recorder.run_phase(&pod, HookPhase::Post, &hooks.post).await? {
                    // Planned hooks the pod no longer has.
                    recorder.abandon(&ns, &name, "the pod's hooks changed during the backup; not run");
                } else {
                    recorder.abandon(&ns, &name, "not run after an earlier post hook failed");
                }
            }
            None => recorder.abandon(&ns, &name, "the pod is gone; not run"),
        }
        recorder.save().await?;
    }
    Ok(())
}

impl Recorder<'_> {
    /// Ends the planned, unstarted post hooks of a pod with `why`.
    fn abandon(&mut self, ns: &str, pod: &str, why: &str) {
        for r in &mut self.records {
            if r.namespace == ns && r.pod == pod && r.phase == HookPhase::Post && r.start_timestamp.is_none() {
                r.error = Some(why.to_owned());
                r.start_timestamp = Some(now());
                r.completion_timestamp = Some(now());
            }
        }
    }
}

/// What the recorded hooks add to a finished Backup: errors (failed with
/// `Fail`) and warnings (failed with `Continue`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// The failed hooks of `backup` as errors and warnings.
pub async fn summary(api: &Api<Backup>, backup: &Backup) -> Result<Summary, Error> {
    let mut s = Summary::default();
    for r in fresh(api, backup).await? {
        if !r.failed() {
            continue;
        }
        let mut line = failure_line(&r);
        match (r.on_error, r.phase) {
            (HookErrorMode::Fail, HookPhase::Pre) => {
                line.push_str("; the pod's volumes were not backed up");
                s.errors.push(line);
            }
            (HookErrorMode::Fail, HookPhase::Post) => s.errors.push(line),
            (HookErrorMode::Continue, _) => s.warnings.push(line),
        }
    }
    Ok(s)
}
