//! The one boundary between async code (reconcilers, the node agent) and
//! repository work. A [`Repository`] owns a runtime and blocks on it, so
//! using or dropping one on an async worker thread panics. Here the
//! repository is opened, used and dropped inside
//! `tokio::task::spawn_blocking`, and the async caller only awaits the
//! result.

use std::fmt;

use zeroize::Zeroizing;

use super::manifests::run as manifests;
use super::manifests::run::{
    ManifestBackupOptions, ManifestBackupReport, ManifestRestoreOptions, ManifestRestoreReport,
};
use super::K8sError;
use crate::repo::Repository;
use crate::storage::open::{open, OpenOptions};

/// Where a repository is and how to open it: everything crosses into the
/// blocking thread, the repository never crosses back.
#[derive(Clone)]
pub struct RepositoryAccess {
    /// A local directory or an object store URL.
    pub location: String,
    pub options: OpenOptions,
    pub password: Zeroizing<String>,
}

impl fmt::Debug for RepositoryAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryAccess")
            .field("location", &self.location)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RepositoryAccess {
    /// Opens the repository (its index read through a local table when a
    /// cache directory is given). Blocks: call it inside [`run`] or
    /// [`with_repository`].
    pub fn open(&self) -> Result<Repository, K8sError> {
        let storage = open(&self.location, &self.options)?;
        let repo = Repository::open(storage, self.password.as_bytes())?;
        // The local index table lives beside the cache, for local
        // repositories too.
        Ok(match &self.options.cache {
            Some(root) => repo.with_index_cache(root),
            None => repo,
        })
    }
}

/// Runs blocking repository work off the async worker threads and awaits
/// it. A panic in the work comes back as an error.
pub async fn run<T, F>(work: F) -> Result<T, K8sError>
where
    F: FnOnce() -> Result<T, K8sError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(K8sError::Job(e.to_string())),
    }
}

/// Opens the repository inside the blocking thread, hands it to `work`
/// and drops it there.
pub async fn with_repository<T, F>(access: RepositoryAccess, work: F) -> Result<T, K8sError>
where
    F: FnOnce(Repository) -> Result<T, K8sError> + Send + 'static,
    T: Send + 'static,
{
    run(move || work(access.open()?)).await
}

/// [`manifests::backup_manifests`] from async code.
pub async fn backup_manifests(
    access: RepositoryAccess,
    opts: ManifestBackupOptions,
) -> Result<ManifestBackupReport, K8sError> {
    with_repository(access, move |repo| manifests::backup_manifests(repo, &opts)).await
}

/// [`manifests::restore_manifests`] from async code.
pub async fn restore_manifests(
    access: RepositoryAccess,
    opts: ManifestRestoreOptions,
) -> Result<ManifestRestoreReport, K8sError> {
    with_repository(access, move |repo| {
        let repo = repo.load_index()?;
        manifests::restore_manifests(&repo, &opts)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backup::progress::Progress;
    use crate::backup::{backup_files, BackupError, BackupOptions, MemoryFile};
    use crate::storage::local::LocalStorage;

    /// A new repository, made on a thread of its own (this is async code).
    fn init(dir: &std::path::Path) -> RepositoryAccess {
        let path = dir.join("repo");
        let storage = Arc::new(LocalStorage::new(path.clone()));
        std::thread::spawn(move || {
            Repository::init(storage, b"pw", crate::repo::test_options()).unwrap();
        })
        .join()
        .unwrap();
        RepositoryAccess {
            location: path.to_str().unwrap().to_owned(),
            options: OpenOptions::default(),
            password: Zeroizing::new("pw".to_owned()),
        }
    }

    fn files() -> Vec<MemoryFile> {
        vec![MemoryFile {
            path: "resources/core/configmaps/namespaces/a/b.json".into(),
            data: b"{}".to_vec(),
        }]
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn repository_work_runs_and_drops_inside_an_async_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let access = init(dir.path());
        let id = with_repository(access.clone(), |repo| {
            let repo = repo.load_index()?;
            let outcome = backup_files(
                &repo,
                &files(),
                vec!["/resources".into()],
                0,
                &BackupOptions::default(),
                &Progress::default(),
            )?;
            Ok(outcome.id)
        })
        .await
        .unwrap();
        assert!(id.is_some());
        let listed = with_repository(access, |repo| Ok(repo.list_snapshots()?))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(Some(listed[0].0), id);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn errors_and_panics_come_back_as_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut access = init(dir.path());
        access.password = Zeroizing::new("wrong".to_owned());
        let err = with_repository(access, |_| Ok(())).await.unwrap_err();
        assert!(matches!(err, K8sError::Repo(_)), "{err}");
        let err = run(|| -> Result<(), K8sError> { panic!("boom") }).await.unwrap_err();
        assert!(matches!(err, K8sError::Job(_)), "{err}");
        let err = run(|| -> Result<(), K8sError> { Err(BackupError::Canceled.into()) })
            .await
            .unwrap_err();
        assert!(matches!(err, K8sError::Backup(BackupError::Canceled)), "{err}");
    }
}
