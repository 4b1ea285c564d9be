//! `cairn k8s controller`: runs the reconcilers of cairn's resources.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::cmd_k8s::AccessArgs;
use super::{CliError, Context};
use crate::k8s::controller::{run, ControllerOptions, Settings};
use crate::k8s::crd::duration;
use crate::k8s::install::{default_image, DEFAULT_NAMESPACE};
use crate::k8s::K8sError;

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub access: AccessArgs,
    /// The controller's own namespace: maintenance Jobs run here.
    #[arg(long, default_value = DEFAULT_NAMESPACE, value_name = "NS")]
    pub namespace: String,
    /// The cluster's name, the host of every snapshot (default: the
    /// kubeconfig's cluster name).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// How often each BackupRepository is synced with its repository
    /// (a Kubernetes duration: 30s, 1m, 1h).
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = parse_duration)]
    pub sync_period: Duration,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// The image of maintenance Jobs (the controller's own).
    #[arg(long, env = "CAIRN_IMAGE", value_name = "IMAGE")]
    pub image: Option<String>,
    /// The nodes' directory of hostPath PersistentVolumes that the agents
    /// read (their `--host-path-root`): claims on such PVs are planned
    /// for backup; without it they are skipped with the reason.
    #[arg(long, value_name = "DIR")]
    pub host_path_root: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match duration::parse(text) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

pub fn run_controller(ctx: &Context, args: &ControllerArgs) -> Result<i32, CliError> {
    let image = args.image.clone().unwrap_or_else(default_image);
    let host_path_root = match &args.host_path_root {
        Some(dir) if !dir.starts_with('/') => {
            return Err(K8sError::InvalidOption(format!("--host-path-root {dir}: must be an absolute path")).into())
        }
        Some(dir) => Some(dir.trim_end_matches('/').to_owned()).filter(|d| !d.is_empty()),
        None => None,
    };
    let mut settings = settings(ctx, &args.access, &args.namespace, args.sync_period, image);
    settings.host_path_root = host_path_root;
    let opts = ControllerOptions {
        settings,
        listen: args.listen,
        cluster_name: args.cluster_name.clone(),
    };
    serve(run(opts))
}

/// What the controller and the agent share of the command line: how to
/// reach the cluster, their namespace, the cache of object store indexes.
pub(super) fn settings(
    ctx: &Context,
    access: &AccessArgs,
    namespace: &str,
    sync_period: Duration,
    image: String,
) -> Settings {
    let cache_dir: Option<PathBuf> = if ctx.global.no_cache {
        None
    } else {
        ctx.global
            .cache_dir
            .clone()
            .or_else(crate::storage::cache::default_root)
    };
    Settings {
        access: access.access(),
        namespace: namespace.to_owned(),
        cluster_name: String::new(),
        sync_period,
        image,
        cache_dir,
        host_path_root: None,
    }
}

/// Runs a long-lived service (the controller, the agent) on a runtime of
/// its own until it stops.
pub(super) fn serve(service: impl std::future::Future<Output = Result<(), K8sError>>) -> Result<i32, CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(K8sError::Runtime)?;
    rt.block_on(service)?;
    Ok(0)
}
