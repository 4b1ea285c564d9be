//! Which volumes of a pod are backed up, where the node agent finds each
//! one's files, and under what logical path its snapshot is stored. Pure:
//! the objects come in, a plan goes out; nothing here touches the cluster
//! or the disk.
//!
//! The kubelet keeps a pod's volumes at
//! `<pods dir>/<pod uid>/volumes/<escaped plugin>/<dir>`: `<dir>` is the PV's
//! name for a claim (with `mount` below it for CSI volumes) and the pod's
//! volume name otherwise. hostPath volumes are not there: a pod's own
//! hostPath volumes are never backed up, and claims bound to hostPath PVs
//! (local-path provisioners) only below the `--host-path-root` the agent
//! was given.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Volume};

/// Pod annotation naming the volumes to back up (opt-in): `a,b`.
pub const ANNOTATION_VOLUMES: &str = "backup.cairn.io/volumes";
/// Pod annotation naming volumes never to back up (with opt-out).
pub const ANNOTATION_EXCLUDES: &str = "backup.cairn.io/volumes-excludes";
/// Pod annotation of paths left out inside its volumes (globs).
pub const ANNOTATION_EXCLUDE_PATHS: &str = "backup.cairn.io/exclude-paths";

/// The CSI plugin's directory below a pod's `volumes/`.
pub const CSI_PLUGIN_DIR: &str = "kubernetes.io~csi";

/// What becomes of one pod volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Backup(VolumeTarget),
    Skip { volume: String, reason: String },
}

/// A volume to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeTarget {
    /// The pod's name for the volume.
    pub volume: String,
    /// The claim, for a PVC-backed volume.
    pub pvc: Option<String>,
    /// Where its files are on the node.
    pub location: HostLocation,
    /// The snapshot's path: `/volumes/<ns>/<pvc>` for a claim (so that the
    /// next backup finds its parent wherever the pod runs), else
    /// `/volumes/<ns>/<pod>/<volume>`.
    pub logical_path: String,
}

/// Where the agent reads (or writes) a volume's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostLocation {
    /// `<pods dir>/<pod_uid>/volumes/<plugin>/<dir>` (then `mount` when
    /// `csi`). `plugin` is None when any plugin directory may hold it; the
    /// agent then requires exactly one match.
    PodVolume {
        pod_uid: String,
        plugin: Option<String>,
        dir: String,
        csi: bool,
    },
    /// A hostPath PV's directory, relative to `--host-path-root`.
    HostPath { relative: String },
}

/// Why a set of objects cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("pod {namespace}/{name} has no uid")]
    NoUid { namespace: String, name: String },
}

/// What the plan needs besides the pod.
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    /// The claims of the pod's namespace.
    pub claims: &'a [PersistentVolumeClaim],
    /// The PVs they are bound to.
    pub volumes: &'a [PersistentVolume],
    /// The names of the cluster's CSIDrivers.
    pub csi_drivers: &'a BTreeSet<String>,
    /// The `--host-path-root` the agent reads hostPath PVs below, if any.
    pub host_path_root: Option<&'a str>,
}

static NO_DRIVERS: BTreeSet<String> = BTreeSet::new();

impl Default for Lookup<'_> {
    fn default() -> Self {
        Self {
            claims: &[],
            volumes: &[],
            csi_drivers: &NO_DRIVERS,
            host_path_root: None,
        }
    }
}

/// Comma-separated names of an annotation, trimmed, empty ones dropped.
fn annotation_list(pod: &Pod, key: &str) -> Vec<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The paths left out inside the pod's volumes (annotation
/// `backup.cairn.io/exclude-paths`, comma-separated globs).
pub fn exclude_paths(pod: &Pod) -> Vec<String> {
    annotation_list(pod, ANNOTATION_EXCLUDE_PATHS)
}

/// Why a volume of this type never has files of its own to back up, if so.
fn never_backed_up(v: &Volume) -> Option<&'static str> {
    if v.host_path.is_some() {
        Some("a hostPath volume of the pod (the node's own files)")
    } else if v.config_map.is_some() {
        Some("a configMap volume (the ConfigMap is in the manifests)")
    } else if v.secret.is_some() {
        Some("a secret volume (the Secret is in the manifests)")
    } else if v.projected.is_some() {
        Some("a projected volume (its sources are in the manifests)")
    } else if v.downward_api.is_some() {
        Some("a downwardAPI volume (made from the pod itself)")
    } else {
        None
    }
}

/// Plans every volume of `pod` that the backup selects: with
/// `default_volumes_to_backup` all but those named in
/// `backup.cairn.io/volumes-excludes`, else those named in
/// `backup.cairn.io/volumes`. Volumes mounted by no container are skipped,
/// as are block volumes and volumes whose type has no files of its own.
pub fn plan_pod(pod: &Pod, default_volumes_to_backup: bool, lookup: &Lookup<'_>) -> Result<Vec<Plan>, PlanError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(uid) = pod.metadata.uid.clone() else {
        return Err(PlanError::NoUid { namespace, name });
    };
    let Some(spec) = &pod.spec else {
        return Ok(Vec::new());
    };
    let chosen = annotation_list(pod, ANNOTATION_VOLUMES);
    let excluded = annotation_list(pod, ANNOTATION_EXCLUDES);
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let mut mounted = BTreeSet::new();
    let mut block = BTreeSet::new();
    for c in containers {
        for m in c.volume_mounts.iter().flatten() {
            mounted.insert(m.name.as_str());
        }
        for d in c.volume_devices.iter().flatten() {
            block.insert(d.name.as_str());
        }
    }
    let mut plans = Vec::new();
    for v in spec.volumes.iter().flatten() {
        let selected = if default_volumes_to_backup {
            !excluded.contains(&v.name)
        } else {
            chosen.contains(&v.name)
        };
        if !selected {
            continue;
        }
        let skip = |reason: String| Plan::Skip {
            volume: v.name.clone(),
            reason,
        };
        if block.contains(v.name.as_str()) {
            plans.push(skip("a block volume (raw device, no files)".into()));
            continue;
        }
        if let Some(reason) = never_backed_up(v) {
            // Opt-out silently passes over these; opt-in says why not.
            if !default_volumes_to_backup {
                plans.push(skip(reason.into()));
            }
            continue;
        }
        if !mounted.contains(v.name.as_str()) {
            plans.push(skip("no container mounts it".into()));
            continue;
        }
        plans.push(plan_volume(v, &namespace, &name, &uid, lookup));
    }
    Ok(plans)
}

/// Plans one selected, mounted volume of a pod.
fn plan_volume(v: &Volume, namespace: &str, pod: &str, uid: &str, lookup: &Lookup<'_>) -> Plan {
    let skip = |reason: String| Plan::Skip {
        volume: v.name.clone(),
        reason,
    };
    // A generic ephemeral volume is a claim named <pod>-<volume>.
    let claim_name = match (&v.persistent_volume_claim, &v.ephemeral) {
        (Some(c), _) => Some(c.claim_name.clone()),
        (None, Some(_)) => Some(format!("{pod}-{}", v.name)),
        (None, None) => None,
    };
    let Some(claim_name) = claim_name else {
        // emptyDir, inline CSI, NFS and the like: the pod's volume name.
        let csi = v.csi.is_some();
        let plugin = if csi {
            Some(CSI_PLUGIN_DIR.to_owned())
        } else if v.empty_dir.is_some() {
            Some("kubernetes.io~empty-dir".to_owned())
        } else {
            None
        };
        return Plan::Backup(VolumeTarget {
            volume: v.name.clone(),
            pvc: None,
            location: HostLocation::PodVolume {
                pod_uid: uid.to_owned(),
                plugin,
                dir: v.name.clone(),
                csi,
            },
            logical_path: format!("/volumes/{namespace}/{pod}/{}", v.name),
        });
    };
    let Some(claim) = lookup
        .claims
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(claim_name.as_str()))
    else {
        return skip(format!("its claim {namespace}/{claim_name} does not exist"));
    };
    if claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref()) == Some("Block") {
        return skip(format!(
            "claim {namespace}/{claim_name} is a block volume (raw device, no files)"
        ));
    }
    let Some(pv_name) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
        return skip(format!("claim {namespace}/{claim_name} is not bound to a volume yet"));
    };
    let Some(pv) = lookup
        .volumes
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(pv_name.as_str()))
    else {
        return skip(format!(
            "PersistentVolume {pv_name} of claim {namespace}/{claim_name} does not exist"
        ));
    };
    let logical_path = format!("/volumes/{namespace}/{claim_name}");
    let pv_spec = pv.spec.clone().unwrap_or_default();
    if let Some(host) = &pv_spec.host_path {
        let Some(root) = lookup.host_path_root else {
            return skip(format!(
                "PersistentVolume {pv_name} is a hostPath volume and the agent has no --host-path-root"
            ));
        };
        return match below_root(&host.path, root) {
            Some(relative) => Plan::Backup(VolumeTarget {
                volume: v.name.clone(),
                pvc: Some(claim_name),
                location: HostLocation::HostPath { relative },
                logical_path,
            }),
            None => skip(format!(
                "PersistentVolume {pv_name} is the hostPath {} outside --host-path-root {root}",
                host.path
            )),
        };
    }
    let csi = pv_spec.csi.is_some() || names_csi_driver(pv, lookup.csi_drivers);
    Plan::Backup(VolumeTarget {
        volume: v.name.clone(),
        pvc: Some(claim_name),
        location: HostLocation::PodVolume {
            pod_uid: uid.to_owned(),
            plugin: csi.then(|| CSI_PLUGIN_DIR.to_owned()),
            dir: pv_name,
            csi,
        },
        logical_path,
    })
}

/// Whether the PV was provisioned by, or migrated to, a CSI driver of the
/// cluster (in-tree volumes served by CSI keep their old spec).
fn names_csi_driver(pv: &PersistentVolume, drivers: &BTreeSet<String>) -> bool {
    let Some(annotations) = &pv.metadata.annotations else {
        return false;
    };
    ["pv.kubernetes.io/provisioned-by", "pv.kubernetes.io/migrated-to"]
        .iter()
        .filter_map(|k| annotations.get(*k))
        .any(|d| drivers.contains(d))
}

/// `path` relative to `root` when it lies strictly below it: both
/// absolute, compared component by component, no `.` or `..` anywhere.
pub fn below_root(path: &str, root: &str) -> Option<String> {
    let parts = |p: &str| -> Option<Vec<String>> {
        if !p.starts_with('/') {
            return None;
        }
        let parts: Vec<String> = p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if parts.iter().any(|s| s == "." || s == "..") {
            return None;
        }
        Some(parts)
    };
    let path = parts(path)?;
    let root = parts(root)?;
    if path.len() <= root.len() || path[..root.len()] != root[..] {
        return None;
    }
    Some(path[root.len()..].join("/"))
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
