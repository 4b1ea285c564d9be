//! The repositories the agent keeps open between volumes: one per
//! BackupRepository (by uid), opened with the access its spec and Secrets
//! give (a changed URL, option, credential or password opens it again),
//! so the master key is unwrapped (Argon2id) once. Before each volume the
//! index is brought up to date, after the caller's lock is taken, as a
//! fresh open would read it. Repositories unused for [`IDLE`] are closed.
//!
//! Everything here blocks, and a repository must be dropped off the async
//! threads: call it inside `jobs::run`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::k8s::controller::log;
use crate::k8s::jobs::RepositoryAccess;
use crate::k8s::K8sError;
use crate::repo::{IndexedRepository, Refresh, Repository};

/// How long an unused repository stays open.
pub const IDLE: Duration = Duration::from_secs(600);

struct Open {
    access: RepositoryAccess,
    repo: Repository,
    /// The index as last brought up to date.
    indexed: Option<IndexedRepository>,
    last_used: Instant,
}

/// See the module's documentation.
#[derive(Default)]
pub struct OpenRepositories {
    open: Mutex<HashMap<String, Open>>,
}

fn same_access(a: &RepositoryAccess, b: &RepositoryAccess) -> bool {
    a.location == b.location
        && a.options.storage == b.options.storage
        && a.options.cache == b.options.cache
        && *a.password == *b.password
}

impl OpenRepositories {
    /// The repository of BackupRepository `uid` (`name` for the log),
    /// open; `locked` runs on it (to take the lock the work runs under)
    /// before its index is brought up to date.
    pub fn indexed<L>(
        &self,
        uid: &str,
        name: &str,
        access: &RepositoryAccess,
        locked: impl FnOnce(&Repository) -> Result<L, K8sError>,
    ) -> Result<(IndexedRepository, L), K8sError> {
        let now = Instant::now();
        let (found, idle) = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let idle: Vec<Open> = take_idle(&mut open, now);
            let current = open.get(uid).filter(|o| same_access(&o.access, access));
            (current.map(|o| (o.repo.clone(), o.indexed.clone())), idle)
        };
        // Closed here, on this blocking thread, with the map unlocked.
        drop(idle);
        let (repo, held) = match found {
            Some(found) => found,
            None => {
                // Opened without the map locked: unwrapping the key takes a
                // while, and jobs of other repositories need not wait.
                let repo = access.open()?;
                let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
                match open.get(uid).filter(|o| same_access(&o.access, access)) {
                    // Another job opened it meanwhile: that one is kept.
                    Some(o) => (o.repo.clone(), o.indexed.clone()),
                    None => {
                        let reason = if open.contains_key(uid) {
                            " again: its access changed"
                        } else {
                            ""
                        };
                        log::info(&format!("repository {name} opened{reason}"));
                        open.insert(
                            uid.to_owned(),
                            Open {
                                access: access.clone(),
                                repo: repo.clone(),
                                indexed: None,
                                last_used: now,
                            },
                        );
                        (repo, None)
                    }
                }
            }
        };
        let guard = locked(&repo)?;
        let indexed = match held {
            Some(held) => {
                let (indexed, how) = held.refresh()?;
                if how == Refresh::Reloaded {
                    log::info(&format!(
                        "repository {name}: index files replaced (a prune); index read again"
                    ));
                }
                indexed
            }
            None => repo.load_index()?,
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(o) = open.get_mut(uid).filter(|o| same_access(&o.access, access)) {
            o.indexed = Some(indexed.clone());
            o.last_used = Instant::now();
        }
        Ok((indexed, guard))
    }

    /// Closes the repositories unused for [`IDLE`]; returns how many.
    pub fn close_idle(&self) -> usize {
        let idle = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            take_idle(&mut open, Instant::now())
        };
        idle.len()
    }

    /// Closes every repository (when the agent stops).
    pub fn close_all(&self) {
        let all: Vec<Open> = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.drain().map(|(_, o)| o).collect()
        };
        drop(all);
    }
}

fn take_idle(open: &mut HashMap<String, Open>, now: Instant) -> Vec<Open> {
    let idle: Vec<String> = open
        .iter()
        .filter(|(_, o)| now.saturating_duration_since(o.last_used) >= IDLE)
        .map(|(k, _)| k.clone())
        .collect();
    idle.into_iter().filter_map(|k| open.remove(&k)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use zeroize::Zeroizing;

    use super::*;
    use crate::storage::local::LocalStorage;
    use crate::storage::open::OpenOptions;

    fn access(path: &std::path::Path, password: &str) -> RepositoryAccess {
        RepositoryAccess {
            location: path.to_str().unwrap().to_owned(),
            options: OpenOptions::default(),
            password: Zeroizing::new(password.to_owned()),
        }
    }

    #[test]
    fn one_open_per_access_a_changed_one_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let repo = Repository::init(
            Arc::new(LocalStorage::new(path.clone())),
            b"pw",
            crate::repo::test_options(),
        )
        .unwrap();
        let repos = OpenRepositories::default();
        let (a, ()) = repos.indexed("uid", "ns/r", &access(&path, "pw"), |_| Ok(())).unwrap();
        let (b, ()) = repos.indexed("uid", "ns/r", &access(&path, "pw"), |_| Ok(())).unwrap();
        assert!(Arc::ptr_eq(&a.key_arc(), &b.key_arc()), "the key was unwrapped again");
        // Another password (a key added for it) is another open.
        repo.write_key(b"new", crate::repo::test_options().kdf).unwrap();
        let (c, ()) = repos.indexed("uid", "ns/r", &access(&path, "new"), |_| Ok(())).unwrap();
        assert!(!Arc::ptr_eq(&a.key_arc(), &c.key_arc()));
        let err = repos
            .indexed("uid", "ns/r", &access(&path, "wrong"), |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, K8sError::Repo(_)), "{err}");
        assert_eq!(repos.close_idle(), 0, "in use a moment ago");
        repos.close_all();
        assert!(repos.open.lock().unwrap().is_empty());
    }
}
