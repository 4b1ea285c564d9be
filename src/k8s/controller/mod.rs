//! `cairn k8s controller`: the reconcilers of cairn's custom resources, in
//! one process (one replica; a Deployment with strategy Recreate).
//!
//! How each kind is reconciled (every step is idempotent, so the process
//! can be killed anywhere and resumes from what the API server and the
//! repository hold):
//!
//! - **BackupRepository**: reads the password and credentials Secrets,
//!   opens the repository (initializing it when `initialize: IfMissing`),
//!   reports `Ready` or `NotReady` with the reason, and every sync period
//!   creates a Backup object for each backup recorded in the repository
//!   that has none, so a new cluster sees an old one's backups. On the
//!   maintenance schedules it starts Jobs running `cairn prune` and
//!   `cairn check --read-data-subset`, records their results, and keeps the
//!   last `keepJobs` of them.
//! - **Backup**: writes `InProgress` first; then adopts the manifest
//!   snapshot tagged with its uid if a killed run left one (forgetting any
//!   extra), or runs the manifest backup; finishes the status; carries a
//!   finalizer so that deleting it, or its expiry, forgets its snapshots
//!   before the object goes.
//! - **Restore**: restores the manifests of its Backup's snapshot and
//!   reports the counts per object.
//! - **Schedule**: creates Backups on its cron ([`schedule`]), one at a time.
//!
//! Repository work blocks and owns a runtime of its own, so it runs on
//! tokio's blocking pool, never inside a reconciler's future.

pub mod access;
pub mod backup_run;
mod backup_steps;
pub mod backups;
pub mod context;
pub mod hooks;
mod hooks_run;
pub mod http;
pub mod log;
pub mod maintenance;
pub mod metrics;
pub mod record;
pub mod repositories;
mod restore_modifiers;
pub mod restore_volumes;
pub mod restores;
pub mod retry;
pub mod schedule;
pub mod schedules;
pub mod status;
pub mod sync;
pub mod volume_backups;
pub mod volume_helpers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::controller::Action;
use kube::{Api, Resource};

pub use context::{Context, Settings};

use crate::k8s::client::connect;
use crate::k8s::K8sError;

/// What a reconciliation can fail with. Failures are retried with backoff
/// ([`error_policy`]); what a user must fix is written into the object's
/// status instead, so that it does not crash-loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    K8s(#[from] K8sError),
    #[error("Kubernetes API: {}", crate::k8s::client::describe(.0))]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Access(#[from] access::AccessError),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A short, stable label for the reconcile error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::K8s(e) => e.metric_label(),
            Self::Kube(_) => "api",
            Self::Access(_) => "access",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// How `cairn k8s controller` runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub settings: Settings,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
    /// `--cluster-name` (None: the kubeconfig's cluster name).
    pub cluster_name: Option<String>,
}

/// The kinds whose definitions must be installed before the controller
/// can watch them.
const REQUIRED_CRDS: [&str; 6] = [
    "backuprepositories.backup.cairn.io",
    "backups.backup.cairn.io",
    "restores.backup.cairn.io",
    "schedules.backup.cairn.io",
    "volumebackups.backup.cairn.io",
    "volumerestores.backup.cairn.io",
];

/// Runs every reconciler until the process is told to stop (SIGTERM or
/// Ctrl-C). Fails first, with one line, when the cluster cannot be reached
/// or cairn's definitions are not installed.
pub async fn run(mut opts: ControllerOptions) -> Result<(), K8sError> {
    let cluster = connect(&opts.settings.access).await?;
    check_definitions(&cluster.client, &cluster.server).await?;
    opts.settings.cluster_name = opts.cluster_name.clone().unwrap_or_else(|| cluster.name.clone());
    let (health, bound, serve) = http::start(opts.listen).await?;
    log::info(&format!(
        "cairn controller for cluster {} ({}, Kubernetes {}), namespace {}, serving /metrics on {bound}",
        opts.settings.cluster_name, cluster.server, cluster.version, opts.settings.namespace
    ));
    let ctx = Arc::new(Context::new(
        cluster.client,
        cluster.server,
        opts.settings,
        health.clone(),
    ));
    let reconcilers: Vec<BoxFuture<'static, ()>> = vec![
        repositories::run(ctx.clone()),
        backups::run(ctx.clone()),
        restores::run(ctx.clone()),
        schedules::run(ctx.clone()),
        maintenance::run(ctx.clone()),
    ];
    health.set_ready();
    tokio::select! {
        _ = futures::future::join_all(reconcilers) => {}
        () = serve => {}
    }
    log::info("stopped");
    Ok(())
}

/// Fails naming the first of cairn's definitions that is missing or not
/// yet Established.
async fn check_definitions(client: &kube::Client, server: &str) -> Result<(), K8sError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in REQUIRED_CRDS {
        let crd = api
            .get_opt(name)
            .await
            .map_err(|e| K8sError::request(server, &format!("GET CustomResourceDefinition {name}"), e))?;
        let established = crd.as_ref().is_some_and(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
        });
        if !established {
            let state = if crd.is_some() {
                "not Established yet"
            } else {
                "not installed"
            };
            return Err(K8sError::InvalidOption(format!(
                "CustomResourceDefinition {name} is {state}: run `cairn k8s install` first"
            )));
        }
    }
    Ok(())
}

/// How long a failed reconciliation waits before the next try: short for
/// a busy or unreachable API server, longer for the rest.
pub fn retry_after(error: &Error) -> Duration {
    let transient = match error {
        Error::K8s(e) => retry::transient(e),
        Error::Access(e) => e.is_transient(),
        Error::Kube(_) => true,
        Error::Invalid(_) => false,
    };
    if transient {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(30)
    }
}

/// The error policy of every reconciler: log, count, retry later.
pub fn error_policy<K>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&());
    let namespace = obj.meta().namespace.clone().unwrap_or_default();
    let name = obj.meta().name.clone().unwrap_or_default();
    log::warn(&format!("{kind} {namespace}/{name}: {error}"));
    ctx.metrics().add(
        metrics::names::RECONCILE_ERRORS,
        &[("kind", kind.as_ref()), ("error", error.metric_label())],
        1.0,
    );
    Action::requeue(retry_after(error))
}

/// A kube-runtime controller over `api` whose cache keeps objects without
/// their `managedFields` and last-applied annotation: the reconcilers read
/// neither, and on thousands of objects they are most of the memory.
pub fn slim_controller<K>(api: Api<K>, config: kube::runtime::watcher::Config) -> kube::runtime::Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    use kube::runtime::{reflector, watcher, WatchStreamExt};
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|obj| {
            let meta = obj.meta_mut();
            meta.managed_fields = None;
            if let Some(annotations) = meta.annotations.as_mut() {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        })
        .reflect(writer)
        .applied_objects();
    kube::runtime::Controller::for_stream(stream, reader)
}

/// Drives a kube-runtime controller's output stream to its end, logging
/// watch failures (failed reconciliations are logged by [`error_policy`]).
pub async fn drain<S, T>(kind: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, kube::runtime::controller::Error<Error, kube::runtime::watcher::Error>>>,
{
    stream
        .for_each(|result| async move {
            match result {
                Ok(_) | Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => log::warn(&format!("{kind}: {e}")),
            }
        })
        .await;
}
