//! Which snapshot `latest` means to a manifest restore: the latest
//! *manifest* snapshot (tagged `k8s`, holding `/resources`), never a volume
//! snapshot of the node agent or a snapshot of files, and only when the
//! repository's manifest snapshots are of one cluster (host) or `--host`
//! picks one.

use std::collections::BTreeSet;

use crate::format::snapshot::Snapshot;
use crate::k8s::{K8sError, ROOT};
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::RepoError;

/// The filter that selects manifest snapshots (of `host`, if given).
pub fn manifest_filter(host: Option<&str>) -> SnapshotFilter {
    SnapshotFilter {
        hosts: host.iter().map(|h| (*h).to_owned()).collect(),
        tags: vec!["k8s".to_owned()],
        paths: vec![format!("/{ROOT}")],
    }
}

/// Whether `spec` (`latest` or `latest:/sub/path`) asks for the latest
/// snapshot.
pub fn is_latest(spec: &str) -> bool {
    spec.split(':').next() == Some("latest")
}

/// Checks that `latest` names one snapshot: refuses when the manifest
/// snapshots among `snapshots` are of several hosts and no `host` is given,
/// and when there is none (of `host`).
pub fn check_latest(snapshots: &[Snapshot], host: Option<&str>) -> Result<(), K8sError> {
    let filter = manifest_filter(host);
    let hosts: BTreeSet<&str> = snapshots
        .iter()
        .filter(|s| filter.matches(s))
        .map(|s| s.hostname.as_str())
        .collect();
    match (hosts.len(), host) {
        (0, Some(host)) => Err(K8sError::Repo(RepoError::SnapshotNotFound(format!(
            "latest (no manifest snapshot of host {host})"
        )))),
        (0, None) => Err(K8sError::Repo(RepoError::SnapshotNotFound(
            "latest (the repository holds no manifest snapshot)".to_owned(),
        ))),
        (1, _) => Ok(()),
        _ => Err(K8sError::InvalidOption(format!(
            "latest: the repository holds manifest snapshots of {} clusters ({}): pick one with --host",
            hosts.len(),
            hosts.into_iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn snapshot(host: &str, tags: &[&str], paths: &[&str]) -> Snapshot {
        Snapshot {
            time_ns: 0,
            tree: crate::id::TreeId::from_bytes([0; crate::id::ID_LEN]),
            paths: paths.iter().map(PathBuf::from).collect(),
            hostname: host.to_owned(),
            username: String::new(),
            uid: 0,
            gid: 0,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            parent: None,
            original: None,
            excludes: Vec::new(),
            program_version: String::new(),
            partial: false,
            summary: Default::default(),
        }
    }

    #[test]
    fn latest_is_of_manifest_snapshots_of_one_host() {
        let one = [
            snapshot("prod", &["k8s", "cluster=prod"], &["/resources", "/cairn"]),
            snapshot("prod", &["backup=x", "pvc=data"], &["/data"]),
            snapshot("laptop", &["k8s"], &["/home"]),
        ];
        assert!(check_latest(&one, None).is_ok());
        assert!(check_latest(&one, Some("prod")).is_ok());
        let e = check_latest(&one, Some("laptop")).unwrap_err().to_string();
        assert!(e.contains("no manifest snapshot of host laptop"), "{e}");
        let e = check_latest(&one[1..], None).unwrap_err().to_string();
        assert!(e.contains("no manifest snapshot"), "{e}");
        let two = [
            snapshot("prod", &["k8s"], &["/resources"]),
            snapshot("staging", &["k8s"], &["/resources"]),
        ];
        let e = check_latest(&two, None).unwrap_err().to_string();
        assert!(e.contains("2 clusters (prod, staging): pick one with --host"), "{e}");
        assert!(check_latest(&two, Some("staging")).is_ok());
        assert!(is_latest("latest") && is_latest("latest:/resources/apps"));
        assert!(!is_latest("1a2b3c") && !is_latest("latestx"));
    }
}
