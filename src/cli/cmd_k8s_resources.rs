//! `cairn k8s create|get|describe|delete`: the custom resources from the
//! command line, in kubectl's shape (works from a laptop against a cluster
//! where cairn is installed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cmd_k8s::FilterArgs;
use super::error::exit;
use super::{output, CliError, Context};
use crate::k8s::client::{connect, describe as describe_error, Cluster, ClusterAccess};
use crate::k8s::crd::{
    Backup, BackupRepository, BackupSpec, ObjectFilters, Restore, RestoreSpec, Schedule, ScheduleSpec,
};
use crate::k8s::manifests::filter::{split_list, ClusterResources, Filters};
use crate::k8s::manifests::modifiers::{parse_image_mapping, parse_storage_class_mapping};
use crate::k8s::manifests::transform::parse_mapping;
use crate::k8s::{crd, install, runtime, K8sError};

/// Cluster and namespace, taken after the words.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Namespace of the cairn resources.
    #[arg(long, value_name = "NS", default_value = install::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum CreateCommand {
    /// Create a Backup.
    Backup(CreateBackupArgs),
    /// Create a Restore of a Backup.
    Restore(CreateRestoreArgs),
    /// Create a Schedule of Backups.
    Schedule(CreateScheduleArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateBackupArgs {
    pub name: String,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// The BackupRepository (default: `default`).
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    /// How long the backup is kept (`720h`, `1h30m`).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Wait until the backup ends; exit non-zero unless it Completed.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub wait_timeout: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct CreateRestoreArgs {
    pub name: String,
    /// The Backup to restore.
    #[arg(long, value_name = "BACKUP")]
    pub from_backup: String,
    /// Restore namespace OLD as NEW (`old:new,...`).
    #[arg(long, value_name = "OLD:NEW,...")]
    pub namespace_mapping: Vec<String>,
    /// Keep every node port of the backed-up Services (by default only the
    /// explicit ones, those in the last-applied configuration).
    #[arg(long)]
    pub preserve_nodeports: bool,
    /// Storage class OLD restored as NEW (`old:new,...`).
    #[arg(long, value_name = "OLD:NEW,...")]
    pub storage_class_mapping: Vec<String>,
    /// Image OLD (a whole reference or a registry or repository prefix)
    /// restored as NEW (`old:new`, or `old=new` when the names hold ':').
    #[arg(long, value_name = "OLD=NEW,...")]
    pub image_mapping: Vec<String>,
    /// A ConfigMap in the Restore's namespace whose one data key holds
    /// resource modifier rules.
    #[arg(long, value_name = "CONFIGMAP")]
    pub resource_modifiers: Option<String>,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Wait until the restore ends; exit non-zero unless it Completed.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub wait_timeout: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct CreateScheduleArgs {
    pub name: String,
    /// Cron (`0 */1 * * *`, `@daily`, `CRON_TZ=Europe/Berlin 0 3 * * *`).
    #[arg(long, value_name = "CRON")]
    pub schedule: String,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// The BackupRepository (default: `default`).
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    /// How long each backup is kept.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

/// What `get` lists.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Listed {
    Backups,
    Restores,
    Schedules,
    Repositories,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    pub what: Listed,
    #[command(flatten)]
    pub target: Target,
}

/// What `describe` and `delete` take.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Backup,
    Restore,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    pub kind: Kind,
    pub name: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    pub kind: Kind,
    pub name: String,
    #[command(flatten)]
    pub target: Target,
}

fn filters(args: &FilterArgs) -> Result<ObjectFilters, K8sError> {
    // Refused here as `cairn k8s backup` refuses them.
    Filters::new(
        &args.include_namespaces,
        &args.exclude_namespaces,
        &args.include_resources,
        &args.exclude_resources,
        args.selector.as_deref(),
        args.include_cluster_resources,
    )?;
    Ok(ObjectFilters {
        included_namespaces: split_list(&args.include_namespaces),
        excluded_namespaces: split_list(&args.exclude_namespaces),
        included_resources: split_list(&args.include_resources),
        excluded_resources: split_list(&args.exclude_resources),
        label_selector: args.selector.clone(),
        include_cluster_resources: match args.include_cluster_resources {
            ClusterResources::Auto => None,
            ClusterResources::True => Some(true),
            ClusterResources::False => Some(false),
        },
    })
}

fn backup_spec(f: &FilterArgs, repository: &Option<String>, ttl: &Option<String>) -> Result<BackupSpec, K8sError> {
    let mut spec = BackupSpec {
        filters: filters(f)?,
        repository: repository.clone(),
        ..BackupSpec::default()
    };
    if let Some(ttl) = ttl {
        crd::duration::parse(ttl).map_err(|e| K8sError::InvalidOption(format!("--ttl: {e}")))?;
        spec.ttl = ttl.clone();
    }
    Ok(spec)
}

fn wait_timeout(text: &str) -> Result<Duration, K8sError> {
    crd::duration::parse(text).map_err(|e| K8sError::InvalidOption(format!("--wait-timeout: {e}")))
}

fn with_cluster<T>(target: &Target, f: impl AsyncFnOnce(Cluster) -> Result<T, K8sError>) -> Result<T, CliError> {
    let access = ClusterAccess {
        kubeconfig: target.kubeconfig.clone(),
        context: target.context.clone(),
    };
    let rt = runtime()?;
    let out = rt.block_on(async {
        let cluster = connect(&access).await?;
        f(cluster).await
    })?;
    Ok(out)
}

fn api_error(cluster: &Cluster, what: String, e: kube::Error) -> K8sError {
    K8sError::Api {
        server: cluster.server.clone(),
        what,
        reason: describe_error(&e),
        source: Box::new(e),
    }
}

async fn create<K>(cluster: &Cluster, ns: &str, obj: &K) -> Result<(), K8sError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    api.create(&PostParams::default(), obj).await.map_err(|e| {
        api_error(
            cluster,
            format!("creating {} {name} in namespace {ns}", K::kind(&())),
            e,
        )
    })?;
    Ok(())
}

/// The phase and a progress line of a Backup or Restore.
fn progress_of_backup(b: &Backup) -> (Option<crd::Phase>, String) {
    let s = b.status.clone().unwrap_or_default();
    let vols = s.volume_backups.unwrap_or_default();
    let p = s.progress.unwrap_or_default();
    let phase = s.phase.map_or("New".to_owned(), |p| p.to_string());
    (
        s.phase,
        format!(
            "{phase}: volumes {}/{} ({} failed), {} of {}",
            vols.completed,
            vols.total,
            vols.failed,
            output::bytes(p.bytes_done),
            output::bytes(p.total_bytes)
        ),
    )
}

fn progress_of_restore(r: &Restore) -> (Option<crd::Phase>, String) {
    let s = r.status.clone().unwrap_or_default();
    let o = s.objects.unwrap_or_default();
    let v = s.volume_restores.unwrap_or_default();
    let phase = s.phase.map_or("New".to_owned(), |p| p.to_string());
    (
        s.phase,
        format!(
            "{phase}: objects {} created, {} updated, {} skipped, {} failed; volumes {}/{}",
            o.created, o.updated, o.skipped, o.failed, v.completed, v.total
        ),
    )
}

/// Polls until the phase is final; prints each new progress line.
async fn wait_for<K>(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    timeout: Duration,
    quiet: bool,
    progress: fn(&K) -> (Option<crd::Phase>, String),
) -> Result<crd::Phase, K8sError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), ns);
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let obj = api
            .get(name)
            .await
            .map_err(|e| api_error(cluster, format!("reading {} {name}", K::kind(&())), e))?;
        let (phase, line) = progress(&obj);
        if line != last && !quiet {
            eprintln!("{} {name}: {line}", K::kind(&()));
            last = line;
        }
        if let Some(p) = phase.filter(|p| p.is_final()) {
            return Ok(p);
        }
        if Instant::now() >= deadline {
            return Err(K8sError::Timeout {
                server: cluster.server.clone(),
                what: format!("{} {name}", K::kind(&())),
                reason: format!("not finished within {}s", timeout.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ended(kind: &str, name: &str, phase: crd::Phase) -> Result<i32, CliError> {
    if phase == crd::Phase::Completed {
        return Ok(exit::OK);
    }
    eprintln!("{kind} {name} ended {phase}");
    Ok(exit::ERROR)
}

/// Creates `obj` in the target namespace and, with `--wait`, follows it
/// until it ends; exits non-zero unless it ends Completed.
fn create_and_wait<K>(
    target: &Target,
    mut obj: K,
    wait: bool,
    timeout_text: &str,
    quiet: bool,
    progress: fn(&K) -> (Option<crd::Phase>, String),
) -> Result<i32, CliError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let timeout = wait_timeout(timeout_text)?;
    let ns = target.namespace.clone();
    let name = obj.meta().name.clone().unwrap_or_default();
    let kind = K::kind(&()).to_ascii_lowercase();
    obj.meta_mut().namespace = Some(ns.clone());
    let phase = with_cluster(target, async |c| {
        create(&c, &ns, &obj).await?;
        if !quiet {
            output::line(format!("{kind}.backup.cairn.io/{name} created")).ok();
        }
        match wait {
            true => wait_for(&c, &ns, &name, timeout, quiet, progress).await.map(Some),
            false => Ok(None),
        }
    })?;
    phase.map_or(Ok(exit::OK), |p| ended(&kind, &name, p))
}

pub fn run_create(ctx: &Context, cmd: &CreateCommand) -> Result<i32, CliError> {
    let quiet = ctx.global.quiet;
    match cmd {
        CreateCommand::Backup(a) => {
            let spec = backup_spec(&a.filters, &a.repository, &a.ttl)?;
            let obj = Backup::new(&a.name, spec);
            create_and_wait(&a.target, obj, a.wait, &a.wait_timeout, quiet, progress_of_backup)
        }
        CreateCommand::Restore(a) => {
            let spec = RestoreSpec {
                backup_name: a.from_backup.clone(),
                filters: filters(&a.filters)?,
                namespace_mapping: parse_mapping(&a.namespace_mapping)?,
                storage_class_mapping: parse_storage_class_mapping(&a.storage_class_mapping)?,
                image_mapping: parse_image_mapping(&a.image_mapping)?,
                resource_modifiers: a.resource_modifiers.clone(),
                restore_volumes: true,
                preserve_node_ports: a.preserve_nodeports,
                ..RestoreSpec::default()
            };
            let obj = Restore::new(&a.name, spec);
            create_and_wait(&a.target, obj, a.wait, &a.wait_timeout, quiet, progress_of_restore)
        }
        CreateCommand::Schedule(a) => {
            crate::k8s::cron::Cron::parse(&a.schedule, None)
                .map_err(|e| K8sError::InvalidOption(format!("--schedule: {e}")))?;
            let spec = ScheduleSpec {
                schedule: a.schedule.clone(),
                template: backup_spec(&a.filters, &a.repository, &a.ttl)?,
                ..ScheduleSpec::default()
            };
            let ns = a.target.namespace.clone();
            let mut obj = Schedule::new(&a.name, spec);
            obj.metadata.namespace = Some(ns.clone());
            with_cluster(&a.target, async |c| create(&c, &ns, &obj).await)?;
            if !quiet {
                output::line(format!("schedule.backup.cairn.io/{} created", a.name))?;
            }
            Ok(exit::OK)
        }
    }
}

async fn list<K>(cluster: &Cluster, ns: &str) -> Result<Vec<K>, K8sError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), ns);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(cluster, format!("listing {} in namespace {ns}", K::plural(&())), e))?;
    Ok(list.items)
}

fn text<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn name_of<K: Resource>(k: &K) -> String {
    k.meta().name.clone().unwrap_or_default()
}

pub fn run_get(ctx: &Context, args: &GetArgs) -> Result<i32, CliError> {
    let ns = args.target.namespace.clone();
    let (items, header, rows): (Vec<serde_json::Value>, Vec<&str>, Vec<Vec<String>>) =
        with_cluster(&args.target, async |c| {
            Ok(match args.what {
                Listed::Backups => {
                    let l: Vec<Backup> = list(&c, &ns).await?;
                    let rows = l
                        .iter()
                        .map(|b| {
                            let s = b.status.clone().unwrap_or_default();
                            vec![
                                name_of(b),
                                text(s.phase),
                                b.spec.repository_name().to_owned(),
                                text(s.manifest_snapshot),
                                text(s.expiration),
                            ]
                        })
                        .collect();
                    (
                        l.iter().map(to_json).collect(),
                        vec!["NAME", "PHASE", "REPOSITORY", "SNAPSHOT", "EXPIRES"],
                        rows,
                    )
                }
                Listed::Restores => {
                    let l: Vec<Restore> = list(&c, &ns).await?;
                    let rows = l
                        .iter()
                        .map(|r| {
                            let s = r.status.clone().unwrap_or_default();
                            vec![name_of(r), r.spec.backup_name.clone(), text(s.phase), text(s.message)]
                        })
                        .collect();
                    (
                        l.iter().map(to_json).collect(),
                        vec!["NAME", "BACKUP", "PHASE", "MESSAGE"],
                        rows,
                    )
                }
                Listed::Schedules => {
                    let l: Vec<Schedule> = list(&c, &ns).await?;
                    let rows = l
                        .iter()
                        .map(|s| {
                            let st = s.status.clone().unwrap_or_default();
                            vec![
                                name_of(s),
                                s.spec.schedule.clone(),
                                text(st.phase.map(|p| format!("{p:?}"))),
                                s.spec.paused.to_string(),
                                text(st.last_backup),
                            ]
                        })
                        .collect();
                    (
                        l.iter().map(to_json).collect(),
                        vec!["NAME", "SCHEDULE", "PHASE", "PAUSED", "LAST BACKUP"],
                        rows,
                    )
                }
                Listed::Repositories => {
                    let l: Vec<BackupRepository> = list(&c, &ns).await?;
                    let rows = l
                        .iter()
                        .map(|r| {
                            let s = r.status.clone().unwrap_or_default();
                            vec![
                                name_of(r),
                                r.spec.url.clone(),
                                text(s.phase.map(|p| format!("{p:?}"))),
                                text(s.message),
                            ]
                        })
                        .collect();
                    (
                        l.iter().map(to_json).collect(),
                        vec!["NAME", "URL", "PHASE", "MESSAGE"],
                        rows,
                    )
                }
            })
        })?;
    if ctx.global.json {
        output::print_json(&items)?;
    } else if !ctx.global.quiet {
        let header: Vec<String> = header.into_iter().map(str::to_owned).collect();
        output::table(&header, &rows)?;
    }
    Ok(exit::OK)
}

/// A resource as JSON, for `get --json`.
fn to_json<T: Serialize>(obj: &T) -> serde_json::Value {
    serde_json::to_value(obj).unwrap_or_default()
}

pub fn run_describe(ctx: &Context, args: &DescribeArgs) -> Result<i32, CliError> {
    let ns = args.target.namespace.clone();
    let name = args.name.clone();
    let value: serde_json::Value = with_cluster(&args.target, async |c| {
        let what = |k: &str| format!("reading {k} {name} in namespace {ns}");
        Ok(match args.kind {
            Kind::Backup => {
                let api: Api<Backup> = Api::namespaced(c.client.clone(), &ns);
                let b = api.get(&name).await.map_err(|e| api_error(&c, what("backup"), e))?;
                serde_json::to_value(&b).unwrap_or_default()
            }
            Kind::Restore => {
                let api: Api<Restore> = Api::namespaced(c.client.clone(), &ns);
                let r = api.get(&name).await.map_err(|e| api_error(&c, what("restore"), e))?;
                serde_json::to_value(&r).unwrap_or_default()
            }
        })
    })?;
    if ctx.global.json {
        output::print_json(&value)?;
        return Ok(exit::OK);
    }
    let st = &value["status"];
    let field = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    output::line(format!("Name:       {name}"))?;
    output::line(format!("Namespace:  {ns}"))?;
    output::line(format!("Phase:      {}", field(&st["phase"])))?;
    match args.kind {
        Kind::Backup => output::line(format!("Repository: {}", field(&value["spec"]["repository"])))?,
        Kind::Restore => output::line(format!("Backup:     {}", field(&value["spec"]["backupName"])))?,
    }
    output::line(format!("Manifest snapshot: {}", field(&st["manifestSnapshot"])))?;
    output::line(format!("Started:    {}", field(&st["startTimestamp"])))?;
    output::line(format!("Completed:  {}", field(&st["completionTimestamp"])))?;
    if let Kind::Backup = args.kind {
        output::line(format!("Expires:    {}", field(&st["expiration"])))?;
    }
    let volumes = match args.kind {
        Kind::Backup => &st["volumeBackups"],
        Kind::Restore => &st["volumeRestores"],
    };
    output::line(format!(
        "Volumes:    {} total, {} completed, {} failed",
        volumes["total"].as_u64().unwrap_or(0),
        volumes["completed"].as_u64().unwrap_or(0),
        volumes["failed"].as_u64().unwrap_or(0)
    ))?;
    if let Kind::Restore = args.kind {
        let o = &st["objects"];
        output::line(format!(
            "Objects:    {} created, {} updated, {} skipped, {} failed",
            o["created"].as_u64().unwrap_or(0),
            o["updated"].as_u64().unwrap_or(0),
            o["skipped"].as_u64().unwrap_or(0),
            o["failed"].as_u64().unwrap_or(0)
        ))?;
    }
    if !st["message"].is_null() {
        output::line(format!("Message:    {}", field(&st["message"])))?;
    }
    for (title, key) in [("Warnings", "warnings"), ("Errors", "errors")] {
        let list = st[key].as_array().cloned().unwrap_or_default();
        output::line(format!("{title}:   {}", list.len()))?;
        for item in list {
            output::line(format!("  {}", field(&item)))?;
        }
    }
    if let Kind::Backup = args.kind {
        let hooks = st["hooks"].as_array().cloned().unwrap_or_default();
        if !hooks.is_empty() {
            output::line(format!("Hooks:      {}", hooks.len()))?;
            for hook in &hooks {
                for line in hook_lines(hook) {
                    output::line(line)?;
                }
            }
        }
    }
    Ok(exit::OK)
}

/// How many lines of a hook's output `describe` shows (its last).
const HOOK_OUTPUT_LINES: usize = 5;

/// A recorded hook as `describe` shows it: what ran where and how it
/// ended, then the end of its output.
fn hook_lines(hook: &serde_json::Value) -> Vec<String> {
    let text = |key: &str| hook[key].as_str().unwrap_or("-").to_owned();
    let command = serde_json::to_string(&hook["command"]).unwrap_or_default();
    let outcome = match (hook["error"].as_str(), hook["exitCode"].as_i64()) {
        (Some(error), _) => format!("failed ({}): {error}", text("onError")),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) if hook["startTimestamp"].is_null() => "waiting for the pod's volumes".to_owned(),
        (None, None) => "running".to_owned(),
    };
    let mut lines = vec![format!(
        "  {:<4} {}/{} container {} {command}: {outcome}",
        text("phase"),
        text("namespace"),
        text("pod"),
        text("container"),
    )];
    let output = hook["output"].as_str().unwrap_or("");
    let all: Vec<&str> = output.lines().collect();
    let start = all.len().saturating_sub(HOOK_OUTPUT_LINES);
    lines.extend(all[start..].iter().map(|l| format!("      | {l}")));
    lines
}

pub fn run_delete(ctx: &Context, args: &DeleteArgs) -> Result<i32, CliError> {
    let ns = args.target.namespace.clone();
    let name = args.name.clone();
    let kind = with_cluster(&args.target, async |c| {
        let what = |k: &str| format!("deleting {k} {name} in namespace {ns}");
        match args.kind {
            Kind::Backup => {
                let api: Api<Backup> = Api::namespaced(c.client.clone(), &ns);
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map_err(|e| api_error(&c, what("backup"), e))?;
                Ok("backup")
            }
            Kind::Restore => {
                let api: Api<Restore> = Api::namespaced(c.client.clone(), &ns);
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map_err(|e| api_error(&c, what("restore"), e))?;
                Ok("restore")
            }
        }
    })?;
    if !ctx.global.quiet {
        output::line(format!("{kind}.backup.cairn.io/{name} deleted"))?;
    }
    Ok(exit::OK)
}
