//! Cluster access: a kube client from a kubeconfig, `KUBECONFIG`, or the
//! in-cluster service account.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{install_crypto_provider, K8sError};

/// Where the cluster's credentials come from.
#[derive(Debug, Clone, Default)]
pub struct ClusterAccess {
    /// A kubeconfig file; without it `KUBECONFIG`, `~/.kube/config`, then
    /// the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig other than its current one.
    pub context: Option<String>,
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The kubeconfig's cluster name (or `in-cluster`).
    pub name: String,
    /// The API server's URL.
    pub server: String,
    /// The API server's version (`v1.33.0`).
    pub version: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("server", &self.server)
            .finish()
    }
}

pub use super::error::{chain, describe, status_code};

fn cluster_name(kc: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let wanted = context.map(str::to_owned).or_else(|| kc.current_context.clone())?;
    kc.contexts
        .iter()
        .find(|c| c.name == wanted)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
}

async fn config(access: &ClusterAccess) -> Result<(Config, String), K8sError> {
    let opts = KubeConfigOptions {
        context: access.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kubeconfig = match &access.kubeconfig {
        Some(path) => Some(
            Kubeconfig::read_from(path)
                .map_err(|e| K8sError::Kubeconfig(format!("{}: {}", path.display(), chain(&e))))?,
        ),
        None => {
            let default = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"));
            if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) || default.is_some_and(|p| p.exists()) {
                Some(Kubeconfig::read().map_err(|e| K8sError::Kubeconfig(chain(&e)))?)
            } else {
                None
            }
        }
    };
    match kubeconfig {
        Some(kc) => {
            let name = cluster_name(&kc, access.context.as_deref()).unwrap_or_else(|| "kubernetes".into());
            let config = Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| K8sError::Kubeconfig(chain(&e)))?;
            Ok((config, name))
        }
        None if access.context.is_some() => Err(K8sError::Kubeconfig(
            "--context was given but there is no kubeconfig (use --kubeconfig or KUBECONFIG)".into(),
        )),
        None => {
            let config = Config::incluster().map_err(|e| {
                K8sError::Kubeconfig(format!(
                    "no kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) and not running in a cluster: {}",
                    chain(&e)
                ))
            })?;
            Ok((config, "in-cluster".into()))
        }
    }
}

/// A client for `config` with cairn's retry policy ([`super::retry`])
/// instead of kube's.
fn client(mut config: Config) -> Result<Client, K8sError> {
    config.default_retry = false;
    let policy = super::retry::Transient::default();
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| K8sError::Kubeconfig(chain(&e)))?;
    // Retrying needs a service it can clone: the buffer makes one.
    Ok(builder
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(policy))
        .build())
}

/// Connects to the cluster and asks for its version, so that an unreachable
/// server or refused credentials are reported before any work starts.
pub async fn connect(access: &ClusterAccess) -> Result<Cluster, K8sError> {
    install_crypto_provider();
    let (mut config, name) = config(access).await?;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(120));
    let server = config.cluster_url.to_string().trim_end_matches('/').to_owned();
    let client = client(config)?;
    let info = client.apiserver_version().await.map_err(|e| match e {
        kube::Error::Api(_) => K8sError::Api {
            server: server.clone(),
            what: "GET /version".into(),
            reason: describe(&e),
            source: Box::new(e),
        },
        other => K8sError::Unreachable {
            server: server.clone(),
            reason: chain(&other),
            source: Box::new(other),
        },
    })?;
    Ok(Cluster {
        client,
        name,
        server,
        version: info.git_version,
    })
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug)]
    struct Layered(&'static str, Option<Box<Layered>>);

    impl std::fmt::Display for Layered {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layered {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn chain_is_one_line_without_repeats() {
        let inner = Layered("did not find expected node content\n  at line 1 column 38\n", None);
        let outer = Layered("kubeconfig", Some(Box::new(inner)));
        assert_eq!(
            chain(&outer),
            "kubeconfig: did not find expected node content at line 1 column 38"
        );
        let repeated = Layered("read failed: gone", Some(Box::new(Layered("gone", None))));
        assert_eq!(chain(&repeated), "read failed: gone");
    }
}
