//! How a BackupRepository is opened: its Secrets are read through the API
//! (never from the controller's own environment), and turned into a
//! [`RepositoryAccess`] that crosses into blocking repository work.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use zeroize::Zeroizing;

use super::Context;
use crate::k8s::crd::repository::BackupRepository;
use crate::k8s::jobs::RepositoryAccess;
use crate::k8s::K8sError;
use crate::storage::open::OpenOptions;
use crate::storage::url::{Environment, StorageOptions};

/// Why a BackupRepository cannot be opened, before any storage is touched.
/// Each names the object at fault.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("BackupRepository {namespace}/{name} does not exist")]
    NoRepository { namespace: String, name: String },
    #[error("Secret {namespace}/{name} does not exist")]
    NoSecret { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key}")]
    NoKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("Secret {namespace}/{name}: key {key} is not UTF-8 text")]
    NotText {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("BackupRepository {namespace}/{name}: {reason}")]
    Options {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Api(#[from] K8sError),
}

impl AccessError {
    /// Whether trying again later may succeed without anyone changing an
    /// object (the API server was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Api(e) if e.is_transient())
    }
}

/// The BackupRepository `name` in `namespace`, or why not.
pub async fn get_repository(ctx: &Context, namespace: &str, name: &str) -> Result<BackupRepository, AccessError> {
    let api: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(repo)) => Ok(repo),
        Ok(None) => Err(AccessError::NoRepository {
            namespace: namespace.into(),
            name: name.into(),
        }),
        Err(e) => Err(K8sError::request(&ctx.server, &format!("GET BackupRepository {namespace}/{name}"), e).into()),
    }
}

/// How to open `repo`: its URL, its `-o` options with the credentials
/// Secret as their environment, and the password from its Secret.
///
/// Without `credentialsSecretRef` the storage reads the controller's own
/// environment, which is how cloud workload identities (IRSA, GKE Workload
/// Identity) reach it.
pub async fn repository_access(ctx: &Context, repo: &BackupRepository) -> Result<RepositoryAccess, AccessError> {
    let namespace = repo.metadata.namespace.clone().unwrap_or_default();
    let name = repo.metadata.name.clone().unwrap_or_default();
    let pairs: Vec<String> = repo.spec.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut storage = StorageOptions::parse(&pairs).map_err(|e| AccessError::Options {
        namespace: namespace.clone(),
        name: name.clone(),
        reason: e.to_string(),
    })?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    if let Some(creds) = &repo.spec.credentials_secret_ref {
        let data = secret_data(&ctx.server, &secrets, &namespace, &creds.name).await?;
        let mut vars = BTreeMap::new();
        for (key, value) in data {
            let text = String::from_utf8(value).map_err(|_| AccessError::NotText {
                namespace: namespace.clone(),
                name: creds.name.clone(),
                key: key.clone(),
            })?;
            vars.insert(key, text);
        }
        storage = storage.with_environment(Environment::new(vars));
    }
    let reference = &repo.spec.password_secret_ref;
    let mut data = secret_data(&ctx.server, &secrets, &namespace, &reference.name).await?;
    let Some(password) = data.remove(&reference.key) else {
        return Err(AccessError::NoKey {
            namespace,
            name: reference.name.clone(),
            key: reference.key.clone(),
        });
    };
    let password = String::from_utf8(password).map_err(|_| AccessError::NotText {
        namespace: namespace.clone(),
        name: reference.name.clone(),
        key: reference.key.clone(),
    })?;
    // Taken exactly as stored, newline and all: maintenance Jobs get the
    // same bytes as CAIRN_PASSWORD, so one Secret is one password everywhere.
    let password = Zeroizing::new(password);
    let cache = ctx.settings.cache_dir.clone();
    Ok(RepositoryAccess {
        location: repo.spec.url.clone(),
        options: OpenOptions { storage, cache },
        password,
    })
}

/// A Secret's data (and stringData, which some fakes keep), decoded.
async fn secret_data(
    server: &str,
    secrets: &Api<Secret>,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, AccessError> {
    let secret = match secrets.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(AccessError::NoSecret {
                namespace: namespace.into(),
                name: name.into(),
            })
        }
        Err(e) => return Err(K8sError::request(server, &format!("GET Secret {namespace}/{name}"), e).into()),
    };
    let mut out: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in secret.string_data.unwrap_or_default() {
        out.entry(k).or_insert_with(|| v.into_bytes());
    }
    Ok(out)
}
