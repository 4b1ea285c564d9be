//! `cairn k8s agent`: the node agent that backs up and restores pod
//! volume files (one per node, a DaemonSet). [`volumes`] decides which
//! volumes and where their files are; [`locate`] opens them; [`backup`]
//! and [`restore`] run the VolumeBackups and VolumeRestores of this node.

pub mod backup;
pub mod ioprio;
pub mod locate;
pub mod repos;
pub mod restore;
pub mod volumes;
mod work;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, Resource};

use crate::backup::throttle::ReadLimit;
use crate::k8s::client::connect;
use crate::k8s::controller::{drain, http, log, metrics, retry_after, slim_controller, Context, Error, Settings};
use crate::k8s::crd::volume_backup::VolumeBackup;
use crate::k8s::crd::volume_restore::VolumeRestore;
use crate::k8s::{jobs, K8sError};
use ioprio::IoPriority;

/// How `cairn k8s agent` runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub settings: Settings,
    /// `--cluster-name` (None: the kubeconfig's cluster name).
    pub cluster_name: Option<String>,
    /// This node's name: only its VolumeBackups and VolumeRestores.
    pub node: String,
    /// The kubelet's pods directory as mounted in the agent.
    pub host_pods: PathBuf,
    /// Where hostPath PVs are read, as mounted in the agent, and the host
    /// directory it is (the PVs name host paths).
    pub host_path_root: Option<(PathBuf, String)>,
    /// Volumes worked on at once.
    pub concurrency: u16,
    /// Bytes a second read from volumes, all volumes together (none: no
    /// limit).
    pub read_rate_limit: Option<u64>,
    /// The I/O priority of the threads that read and write volumes.
    pub io_priority: IoPriority,
    pub listen: SocketAddr,
}

/// What the agent's reconcilers share.
pub struct Agent {
    pub ctx: Context,
    pub host_pods: OwnedFd,
    pub host_pods_name: String,
    pub host_path_root: Option<OwnedFd>,
    /// The host directory `host_path_root` is (as PVs name it).
    pub host_path_root_name: Option<String>,
    /// `--read-rate-limit`, shared by the volumes read at once.
    pub read_limit: Option<Arc<ReadLimit>>,
    pub io_priority: IoPriority,
    /// The repositories kept open between volumes.
    pub repos: Arc<repos::OpenRepositories>,
}

fn open_root(path: &Path, flag: &str) -> Result<OwnedFd, K8sError> {
    crate::source::open::open_dir_path(path)
        .map_err(|e| K8sError::InvalidOption(format!("{flag} {}: {e}", path.display())))
}

/// Runs the agent until it is told to stop (SIGTERM or Ctrl-C).
pub async fn run(mut opts: AgentOptions) -> Result<(), K8sError> {
    if opts.node.is_empty() {
        return Err(K8sError::InvalidOption(
            "no node name: set NODE_NAME (the install does, from spec.nodeName) or --node".into(),
        ));
    }
    // The roots an administrator gave are opened by path once; everything
    // below them is reached by descriptor.
    let host_pods = open_root(&opts.host_pods, "--host-pods")?;
    let host_path_root = match &opts.host_path_root {
        Some((mounted, _)) => Some(open_root(mounted, "--host-path-root")?),
        None => None,
    };
    let cluster = connect(&opts.settings.access).await?;
    opts.settings.cluster_name = opts.cluster_name.clone().unwrap_or_else(|| cluster.name.clone());
    let (health, bound, serve) = http::start(opts.listen).await?;
    log::info(&format!(
        "cairn agent on node {} of cluster {} ({}), pods at {}, serving /metrics on {bound}",
        opts.node,
        opts.settings.cluster_name,
        cluster.server,
        opts.host_pods.display()
    ));
    let agent = Arc::new(Agent {
        ctx: Context::new(cluster.client.clone(), cluster.server, opts.settings, health.clone()),
        host_pods,
        host_pods_name: opts.host_pods.display().to_string(),
        host_path_root,
        host_path_root_name: opts.host_path_root.as_ref().map(|(_, host)| host.clone()),
        read_limit: opts.read_rate_limit.map(|rate| Arc::new(ReadLimit::new(rate))),
        io_priority: opts.io_priority,
        repos: Arc::new(repos::OpenRepositories::default()),
    });
    let sweep = close_idle_repositories(agent.repos.clone());
    let selector = format!("spec.node={}", opts.node);
    let config = kube::runtime::controller::Config::default().concurrency(opts.concurrency.max(1));
    let backups = slim_controller(
        Api::<VolumeBackup>::all(cluster.client.clone()),
        watcher::Config::default().fields(&selector),
    )
    .with_config(config.clone())
    .shutdown_on_signal()
    .run(backup::reconcile, agent_error_policy, agent.clone());
    let restores = slim_controller(
        Api::<VolumeRestore>::all(cluster.client),
        watcher::Config::default().fields(&selector),
    )
    .with_config(config)
    .shutdown_on_signal()
    .run(restore::reconcile, agent_error_policy, agent.clone());
    let both = futures::future::join(drain("VolumeBackup", backups), drain("VolumeRestore", restores));
    health.set_ready();
    tokio::select! {
        _ = both => {}
        () = serve => {}
        () = sweep => {}
    }
    // Repositories are dropped on a blocking thread, never here.
    let repos = agent.repos.clone();
    if let Err(e) = jobs::run(move || {
        repos.close_all();
        Ok(())
    })
    .await
    {
        log::warn(&format!("closing repositories: {e}"));
    }
    log::info("stopped");
    Ok(())
}

/// Closes the repositories left unused for a while, forever.
async fn close_idle_repositories(repos: Arc<repos::OpenRepositories>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        let repos = repos.clone();
        if let Ok(closed @ 1..) = jobs::run(move || Ok(repos.close_idle())).await {
            log::info(&format!("{closed} unused repositories closed"));
        }
    }
}

/// Logs, counts and retries a failed reconciliation later.
fn agent_error_policy<K>(obj: Arc<K>, error: &Error, agent: Arc<Agent>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&());
    let namespace = obj.meta().namespace.clone().unwrap_or_default();
    let name = obj.meta().name.clone().unwrap_or_default();
    log::warn(&format!("{kind} {namespace}/{name}: {error}"));
    agent.ctx.metrics().add(
        metrics::names::RECONCILE_ERRORS,
        &[("kind", kind.as_ref()), ("error", error.metric_label())],
        1.0,
    );
    Action::requeue(retry_after(error))
}
