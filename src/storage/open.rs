//! Opening the storage of a repository location: a local directory, or an
//! object store checked first (bucket, credentials, endpoint), its requests
//! retried with backoff, its index files and snapshots cached locally.

use std::path::PathBuf;
use std::sync::Arc;

use super::cache::CacheStorage;
use super::decorators::RetryStorage;
use super::local::LocalStorage;
use super::object::ObjectStorage;
pub use super::open_error::OpenError;
use super::url::{parse_location, Location, StorageOptions};
use super::{DynStorage, FileKind, Storage};

/// How to open a location.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The `-o` options.
    pub storage: StorageOptions,
    /// Where an object store's index files and snapshots are cached (none:
    /// no cache). Local repositories are never cached.
    pub cache: Option<PathBuf>,
}

/// The storage of a repository location (a local path or an object store
/// URL). An object store is checked first (bucket, credentials, endpoint),
/// so that a caller fails before any work with one line naming what is
/// wrong; its requests are then retried with backoff when they fail
/// transiently, and cached below `options.cache` when given.
///
/// Blocks: async code calls it through `tokio::task::spawn_blocking`.
pub fn open(location: &str, options: &OpenOptions) -> Result<DynStorage, OpenError> {
    if location.is_empty() {
        return Err(OpenError::NoLocation);
    }
    match parse_location(location)? {
        Location::Local(path) => {
            options.storage.validate(None)?;
            Ok(Arc::new(LocalStorage::new(path)))
        }
        Location::Object(loc) => {
            // The check runs on a runtime of its own and a store of its own:
            // HTTP connections stay with the runtime that opened them.
            let probe = ObjectStorage::open(&loc, &options.storage)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| OpenError::Runtime {
                    location: location.to_owned(),
                    source,
                })?;
            rt.block_on(probe.probe())?;
            let storage = RetryStorage::new(ObjectStorage::open(&loc, &options.storage)?);
            Ok(match &options.cache {
                Some(root) => {
                    // The cache is the repository's, whatever URL reached it:
                    // its directory is named by the (write-once) config.
                    let config = rt.block_on(probe.get(FileKind::Config, "config")).ok();
                    Arc::new(CacheStorage::for_repository(storage, root, config))
                }
                None => Arc::new(storage),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_location_is_named() {
        let err = open("", &OpenOptions::default()).unwrap_err();
        assert!(matches!(err, OpenError::NoLocation), "{err}");
    }

    #[test]
    fn a_local_directory_opens_and_refuses_object_store_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let storage = open(path.to_str().unwrap(), &OpenOptions::default()).unwrap();
        assert!(storage.location().contains("repo"), "{}", storage.location());
        let options = OpenOptions {
            storage: StorageOptions::parse(&["s3.region=eu-west-1".to_owned()]).unwrap(),
            cache: None,
        };
        let err = open(path.to_str().unwrap(), &options).unwrap_err();
        assert!(matches!(err, OpenError::Url(_) | OpenError::Config { .. }), "{err}");
    }

    #[test]
    fn a_bad_url_is_named() {
        let err = open("s3://", &OpenOptions::default()).unwrap_err();
        assert!(matches!(err, OpenError::Url(_)), "{err}");
        assert!(err.to_string().contains("s3://"), "{err}");
    }
}
