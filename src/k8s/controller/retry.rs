//! Which failures of repository and cluster work a reconciler retries,
//! and which end a Backup or Restore as `Failed`.

use std::time::Duration;

use crate::backup::BackupError;
use crate::forget::ForgetError;
use crate::k8s::crd::common::Time;
use crate::k8s::K8sError;
use crate::repo::RepoError;
use crate::restore::RestoreError;

/// How long after its start a Backup or Restore keeps retrying transient
/// failures (an unreachable bucket, a locked repository) before it fails.
pub const RETRY_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Whether trying again later may succeed without anyone changing an
/// object: the API server or the storage was unreachable or busy, or the
/// repository was locked by a prune.
pub fn transient(e: &K8sError) -> bool {
    if e.is_transient() {
        return true;
    }
    match e {
        K8sError::Repo(r) => repo_transient(r),
        K8sError::Backup(BackupError::Repo(r)) => repo_transient(r),
        K8sError::Restore(RestoreError::Repo(r)) => repo_transient(r),
        K8sError::Forget(ForgetError::Repo(r)) => repo_transient(r),
        K8sError::Forget(ForgetError::Delete { source, .. }) => source.is_transient(),
        _ => false,
    }
}

/// The one-line message of a failure of repository work against the
/// BackupRepository `repository` (`namespace/name`): repository and
/// storage errors name the BackupRepository, the rest speak for themselves.
pub fn message(repository: &str, e: &K8sError) -> String {
    match e {
        K8sError::Repo(_)
        | K8sError::Open(_)
        | K8sError::Forget(_)
        | K8sError::Backup(BackupError::Repo(_))
        | K8sError::Restore(_) => format!("BackupRepository {repository}: {e}"),
        e => e.to_string(),
    }
}

/// Whether a Backup or Restore that started at `start` still retries
/// transient failures.
pub fn within_retry_window(start: Time) -> bool {
    let elapsed = jiff::Timestamp::now().duration_since(start);
    Duration::try_from(elapsed).map_or(true, |d| d < RETRY_WINDOW)
}

fn repo_transient(e: &RepoError) -> bool {
    match e {
        RepoError::Locked { .. } | RepoError::LockLost(_) | RepoError::Upload(_) => true,
        RepoError::Storage(s) => s.is_transient(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;

    #[test]
    fn locks_and_flaky_storage_are_retried_the_rest_is_not() {
        let locked = || RepoError::Locked {
            holder: "prune on host".into(),
        };
        assert!(transient(&K8sError::Repo(locked())));
        assert!(transient(&K8sError::Backup(BackupError::Repo(locked()))));
        assert!(transient(&K8sError::Forget(ForgetError::Repo(locked()))));
        let flaky = StorageError::Backend {
            message: "503".into(),
            transient: true,
        };
        assert!(transient(&K8sError::Repo(RepoError::Storage(flaky))));
        let wrong = RepoError::WrongPassword {
            location: "s3://b".into(),
            tried: 1,
            skipped: vec![],
        };
        assert!(!transient(&K8sError::Repo(wrong)));
        assert!(!transient(&K8sError::Backup(BackupError::Canceled)));
        assert!(!transient(&K8sError::InvalidOption("x".into())));
    }
}
