//! `cairn k8s backup` and `cairn k8s restore`: Kubernetes objects through
//! the API, stored as JSON files in snapshots.

use std::path::PathBuf;
use std::time::Duration;

use super::error::exit;
use super::{output, CliError, Context};
use crate::format::escape;
use crate::k8s::client::ClusterAccess;
use crate::k8s::manifests::filter::{split_list, ClusterResources, Filters};
use crate::k8s::manifests::modifiers::{parse_image_mapping, parse_storage_class_mapping, Modifiers};
use crate::k8s::manifests::order::Order;
use crate::k8s::manifests::restore::{ExistingPolicy, Outcome, Report};
use crate::k8s::manifests::run::{backup_manifests, restore_manifests, ManifestBackupOptions, ManifestRestoreOptions};
use crate::k8s::manifests::transform::parse_mapping;
use crate::k8s::K8sError;

#[derive(Debug, clap::Subcommand)]
pub enum K8sCommand {
    /// Back up the cluster's objects into a snapshot (one JSON file per object).
    Backup(BackupArgs),
    /// Create the objects of a manifest snapshot in a cluster.
    Restore(RestoreArgs),
    /// Print cairn's CustomResourceDefinitions.
    Crds(super::cmd_k8s_install::CrdsArgs),
    /// Install cairn in a cluster (definitions, RBAC, controller, agent), or print it.
    Install(super::cmd_k8s_install::InstallArgs),
    /// Create a Backup, Restore or Schedule resource.
    #[command(subcommand)]
    Create(super::cmd_k8s_resources::CreateCommand),
    /// List backups, restores, schedules or repositories.
    Get(super::cmd_k8s_resources::GetArgs),
    /// Show a backup or restore in detail.
    Describe(super::cmd_k8s_resources::DescribeArgs),
    /// Delete a backup (its snapshots are forgotten by the controller) or a restore.
    Delete(super::cmd_k8s_resources::DeleteArgs),
    /// Run the controller: reconcile BackupRepositories, Backups, Restores and Schedules.
    Controller(super::cmd_k8s_controller::ControllerArgs),
    /// Run the node agent: back up and restore the pod volumes of this node.
    Agent(super::cmd_k8s_agent::AgentArgs),
    /// Keep a volume mounted for the node agent (the command of backup helper pods).
    Hold(super::cmd_k8s_hold::HoldArgs),
    /// Wait for a restore's marker in a directory, remove it and exit (the
    /// command of a restore's helper pod).
    RestoreWait(RestoreWaitArgs),
}

#[derive(Debug, clap::Args)]
pub struct RestoreWaitArgs {
    /// The directory (the restored volume's mount) the marker appears in.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The marker's name: starts with `.cairn`, no `/`.
    #[arg(long, value_name = "NAME")]
    pub marker: String,
    /// Give up after this long (`90s`, `1h`; default: wait for ever).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

/// How to reach the cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct AccessArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl AccessArgs {
    pub fn access(&self) -> ClusterAccess {
        ClusterAccess {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

/// Which objects (comma-separated lists, repeatable).
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Namespaces to take (globs; `*` for all, the default).
    #[arg(long, value_name = "NS,...")]
    pub include_namespaces: Vec<String>,
    /// Namespaces to leave out (globs).
    #[arg(long, value_name = "NS,...")]
    pub exclude_namespaces: Vec<String>,
    /// Resources to take: `deployments.apps`, `configmaps`, kinds, short
    /// names, `*`. Events, leases, nodes and component statuses are taken only
    /// when named.
    #[arg(long, value_name = "RESOURCE,...")]
    pub include_resources: Vec<String>,
    /// Resources to leave out.
    #[arg(long, value_name = "RESOURCE,...")]
    pub exclude_resources: Vec<String>,
    /// Only objects whose labels match (`app=web,tier in (front,back)`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Cluster-scoped objects: auto (all when every namespace is taken
    /// without a selector, else those the taken objects need), true, false.
    #[arg(long, value_name = "auto|true|false", default_value = "auto")]
    pub include_cluster_resources: ClusterResources,
}

impl FilterArgs {
    fn filters(&self) -> Result<Filters, K8sError> {
        Filters::new(
            &self.include_namespaces,
            &self.exclude_namespaces,
            &self.include_resources,
            &self.exclude_resources,
            self.selector.as_deref(),
            self.include_cluster_resources,
        )
    }
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Tag the snapshot (repeatable; TAG,TAG gives several).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot (default: the cluster's name).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Read everything, store nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The snapshot (id, prefix or `latest`; `ID:/resources/...` for part
    /// of it). `latest` is the latest manifest snapshot (never one of
    /// volumes or files), refused when the repository holds manifests of
    /// several clusters and `--host` does not pick one.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Restore namespace OLD as NEW (`old:new,...`).
    #[arg(long, value_name = "OLD:NEW,...")]
    pub namespace_mapping: Vec<String>,
    /// What to do with objects that exist: none (leave them) or update
    /// (put the backed-up object in their place, fields added since
    /// removed). Service accounts are merged either way.
    #[arg(long, value_name = "none|update", default_value = "none")]
    pub existing_resource_policy: ExistingPolicy,
    /// Resources restored first, in this order, before the default
    /// priority list (CRDs, namespaces, storage classes, PVs, PVCs,
    /// priority classes, service accounts, secrets, RBAC, config maps, ...,
    /// workloads).
    #[arg(long, value_name = "RESOURCE,...")]
    pub order: Vec<String>,
    /// Print the plan; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// With `latest`: the latest manifest snapshot of this host (cluster).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Seconds to wait for a restored CustomResourceDefinition to be established.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub crd_timeout: u64,
    /// How long to wait for a namespace being deleted to go before it is
    /// created again (a duration: `10m`, `90s`); its objects fail if it
    /// does not.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub namespace_timeout: Duration,
    /// Keep every node port of the backed-up Services (by default only the
    /// explicit ones, those in the last-applied configuration, are kept).
    #[arg(long)]
    pub preserve_nodeports: bool,
    #[command(flatten)]
    pub modifiers: ModifierArgs,
}

/// What a restore changes in the objects it creates.
#[derive(Debug, Clone, clap::Args)]
pub struct ModifierArgs {
    /// Storage class OLD restored as NEW in claims, volumes and
    /// StatefulSets' claim templates (`old:new,...`).
    #[arg(long, value_name = "OLD:NEW,...")]
    pub storage_class_mapping: Vec<String>,
    /// Image OLD (a whole reference, or a registry or repository prefix)
    /// restored as NEW in every pod and pod template (`old:new`, or
    /// `old=new` when the names hold ':').
    #[arg(long, value_name = "OLD=NEW,...")]
    pub image_mapping: Vec<String>,
    /// JSON-patch rules selected by resource, namespace, name and labels
    /// (a YAML or JSON file in the layout of Velero's resource modifiers).
    #[arg(long, value_name = "FILE")]
    pub resource_modifiers: Option<PathBuf>,
}

impl ModifierArgs {
    /// The checked modifiers: a bad mapping or rules file is reported
    /// before anything is read or created.
    pub fn modifiers(&self) -> Result<Modifiers, CliError> {
        let text = match &self.resource_modifiers {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| K8sError::InvalidOption(format!("--resource-modifiers {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let source = self
            .resource_modifiers
            .as_ref()
            .map(|p| format!("--resource-modifiers {}", p.display()))
            .unwrap_or_default();
        Ok(Modifiers::new(
            parse_storage_class_mapping(&self.storage_class_mapping)?,
            parse_image_mapping(&self.image_mapping)?,
            text.as_deref().map(|t| (source.as_str(), t)),
        )?)
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::k8s::crd::duration::parse(text).map_err(|e| e.to_string())
}

pub fn run(ctx: &Context, cmd: &K8sCommand) -> Result<i32, CliError> {
    crate::k8s::install_crypto_provider();
    match cmd {
        K8sCommand::Backup(args) => run_backup(ctx, args),
        K8sCommand::Restore(args) => run_restore(ctx, args),
        K8sCommand::Crds(args) => super::cmd_k8s_install::run_crds(ctx, args),
        K8sCommand::Install(args) => super::cmd_k8s_install::run_install(ctx, args),
        K8sCommand::Create(cmd) => super::cmd_k8s_resources::run_create(ctx, cmd),
        K8sCommand::Get(args) => super::cmd_k8s_resources::run_get(ctx, args),
        K8sCommand::Describe(args) => super::cmd_k8s_resources::run_describe(ctx, args),
        K8sCommand::Delete(args) => super::cmd_k8s_resources::run_delete(ctx, args),
        K8sCommand::Controller(args) => super::cmd_k8s_controller::run_controller(ctx, args),
        K8sCommand::Agent(args) => super::cmd_k8s_agent::run_agent(ctx, args),
        K8sCommand::Hold(args) => super::cmd_k8s_hold::run_hold(ctx, args),
        K8sCommand::RestoreWait(args) => run_restore_wait(args),
    }
}

fn run_backup(ctx: &Context, args: &BackupArgs) -> Result<i32, CliError> {
    let opts = ManifestBackupOptions {
        access: args.access.access(),
        filters: args.filters.filters()?,
        tags: args.tags.clone(),
        host: args.host.clone(),
        dry_run: args.dry_run,
        connections: ctx.global.connections,
        retry_lock: ctx.retry_lock(),
        cancel: None,
        extra_files: Vec::new(),
    };
    let repo = ctx.open()?;
    let r = backup_manifests(repo, &opts)?;
    for e in r.warnings.iter().chain(&r.errors) {
        eprintln!("warning: {e}");
    }
    let snap = &r.snapshot;
    if ctx.global.json {
        output::print_json(&serde_json::json!({
            "message_type": "summary",
            "snapshot_id": r.snapshot_id.map(|id| id.to_hex()),
            "dry_run": r.snapshot_id.is_none(),
            "cluster": r.cluster.name,
            "server": r.cluster.server,
            "partial": snap.partial,
            "errors": r.errors,
            "warnings": r.warnings,
            "objects": r.objects,
            "resources": r.counts,
            "dependencies": r.dependencies,
            "restarted_lists": r.restarted_lists,
            "objects_new": snap.summary.files_new,
            "objects_changed": snap.summary.files_changed,
            "objects_unmodified": snap.summary.files_unchanged,
            "data_added": snap.summary.data_added,
        }))?;
    } else if !ctx.global.quiet {
        output::line(format!(
            "cluster {} ({}, {}): {} objects",
            r.cluster.name, r.cluster.server, r.cluster.version, r.objects
        ))?;
        for (resource, n) in &r.counts {
            output::line(format!("  {resource:<48} {n:>7}"))?;
        }
        let dependencies: usize = r.dependencies.values().sum();
        if dependencies > 0 {
            output::line(format!(
                "  of which {dependencies} taken because selected objects need them ({})",
                r.dependencies
                    .iter()
                    .map(|(resource, n)| format!("{resource} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?;
        }
        let s = &snap.summary;
        output::line(format!(
            "Objects: {} new, {} changed, {} unmodified; added to the repository: {}",
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            output::bytes(s.data_added)
        ))?;
        match r.snapshot_id {
            Some(id) => output::line(format!("snapshot {} saved", id.short()))?,
            None => output::line("(dry run: no snapshot saved)")?,
        }
    }
    if r.partial() {
        eprintln!(
            "warning: {} resource list{} could not be read; the snapshot is partial",
            r.errors.len(),
            if r.errors.len() == 1 { "" } else { "s" }
        );
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}

fn run_restore(ctx: &Context, args: &RestoreArgs) -> Result<i32, CliError> {
    let opts = ManifestRestoreOptions {
        access: args.access.access(),
        snapshot: args.snapshot.clone(),
        host: args.host.clone(),
        filters: args.filters.filters()?,
        namespace_mapping: parse_mapping(&args.namespace_mapping)?,
        policy: args.existing_resource_policy,
        order: Order::new(split_list(&args.order)),
        dry_run: args.dry_run,
        crd_timeout: Duration::from_secs(args.crd_timeout),
        namespace_timeout: args.namespace_timeout,
        name: None,
        preserve_node_ports: args.preserve_nodeports,
        modifiers: args.modifiers.modifiers()?,
        ..ManifestRestoreOptions::default()
    };
    let repo = ctx.open_indexed()?;
    let r = restore_manifests(&repo, &opts)?;
    let report = &r.report;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if ctx.global.json {
        output::print_json(&serde_json::json!({
            "message_type": "summary",
            "snapshot_id": r.snapshot_id.to_hex(),
            "restore": r.name,
            "cluster": r.cluster.name,
            "dry_run": args.dry_run,
            "resources": report.counts(),
            "objects": report.results,
            "warnings": report.warnings,
        }))?;
    } else if !ctx.global.quiet {
        print_report(report, args.dry_run, &r.cluster.name, &r.snapshot_id.short(), &r.name)?;
    }
    let failed = report.failed();
    if failed > 0 {
        eprintln!(
            "warning: {failed} object{} could not be restored",
            if failed == 1 { "" } else { "s" }
        );
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}

fn print_report(report: &Report, dry_run: bool, cluster: &str, snapshot: &str, name: &str) -> Result<(), CliError> {
    if dry_run {
        output::line(format!(
            "dry run: plan for restoring snapshot {snapshot} into cluster {cluster}"
        ))?;
    } else {
        output::line(format!(
            "restore {name}: snapshot {snapshot} into cluster {cluster} (objects labelled {}={snapshot}, {}={name})",
            crate::k8s::SNAPSHOT_LABEL,
            crate::k8s::RESTORE_LABEL
        ))?;
    }
    for r in &report.results {
        // Names come from the snapshot: shown escaped.
        let name = escape::name(r.name.as_bytes());
        let target = match &r.namespace {
            Some(ns) => format!("{} {}/{name}", r.resource, escape::name(ns.as_bytes())),
            None => format!("{} {name}", r.resource),
        };
        let text = match &r.outcome {
            Outcome::WouldCreate => format!("  create  {target}"),
            Outcome::WouldUpdate => format!("  update  {target}"),
            Outcome::WouldMerge => format!("  merge   {target}"),
            Outcome::Merged(what) => format!("  merged  {target}: {what}"),
            Outcome::Skipped(why) => format!("  skipped {target}: {why}"),
            Outcome::Failed(why) => format!("  FAILED  {target}: {why}"),
            Outcome::Created | Outcome::Updated => continue,
        };
        output::line(text)?;
    }
    let (created, updated, merged) = if dry_run {
        ("to create", "to update", "to merge")
    } else {
        ("created", "updated", "merged")
    };
    output::line(format!(
        "{:<48} {created:>9} {updated:>9} {merged:>8} {:>8} {:>7}",
        "resource", "skipped", "failed"
    ))?;
    for (resource, c) in report.counts() {
        output::line(format!(
            "{resource:<48} {:>9} {:>9} {:>8} {:>8} {:>7}",
            c.created, c.updated, c.merged, c.skipped, c.failed
        ))?;
    }
    if dry_run {
        output::line("(dry run: nothing was changed)")?;
    }
    Ok(())
}

fn run_restore_wait(args: &RestoreWaitArgs) -> Result<i32, CliError> {
    use crate::k8s::restore_wait::{wait_for_marker, POLL};
    let timeout = match &args.timeout {
        Some(text) => Some(
            crate::k8s::crd::duration::parse(text).map_err(|e| K8sError::InvalidOption(format!("--timeout: {e}")))?,
        ),
        None => None,
    };
    wait_for_marker(&args.dir, &args.marker, timeout, POLL).map_err(K8sError::from)?;
    output::line(format!(
        "{} found and removed in {}: the volume is restored",
        args.marker,
        args.dir.display()
    ))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<K8sCommand, clap::Error> {
        let cli = crate::cli::Cli::try_parse_from(["cairn", "k8s"].iter().chain(args))?;
        match cli.command {
            crate::cli::Command::K8s(cmd) => Ok(cmd),
            _ => panic!("not a k8s command"),
        }
    }

    #[test]
    fn restore_options_parse() {
        let cmd = parse(&[
            "restore",
            "latest",
            "--namespace-mapping",
            "a:b,c:d",
            "--existing-resource-policy",
            "update",
            "--order",
            "cm,secrets",
            "--include-cluster-resources",
            "false",
            "--dry-run",
            "--preserve-nodeports",
            "--namespace-timeout",
            "90s",
        ])
        .unwrap();
        let K8sCommand::Restore(args) = cmd else {
            panic!("not a restore")
        };
        assert!(args.preserve_nodeports);
        assert_eq!(args.snapshot, "latest");
        assert_eq!(parse_mapping(&args.namespace_mapping).unwrap().len(), 2);
        assert_eq!(args.existing_resource_policy, ExistingPolicy::Update);
        assert_eq!(Order::new(split_list(&args.order)).first()[..2], ["cm", "secrets"]);
        assert_eq!(args.filters.include_cluster_resources, ClusterResources::False);
        assert!(args.dry_run);
        assert_eq!(args.namespace_timeout, Duration::from_secs(90));
        let K8sCommand::Restore(args) = parse(&["restore", "latest"]).unwrap() else {
            panic!("not a restore")
        };
        assert_eq!(args.namespace_timeout, Duration::from_secs(600));
        assert!(parse(&["restore", "latest", "--namespace-timeout", "soon"]).is_err());
    }

    #[test]
    fn modifier_options_parse_and_are_checked_before_anything_runs() {
        let cmd = parse(&[
            "restore",
            "latest",
            "--storage-class-mapping",
            "gp2:gp3",
            "--image-mapping",
            "registry.old:5000=registry.new",
        ])
        .unwrap();
        let K8sCommand::Restore(args) = cmd else {
            panic!("not a restore")
        };
        assert!(!args.modifiers.modifiers().unwrap().is_empty());
        let cmd = parse(&["restore", "latest", "--image-mapping", "a:b:c"]).unwrap();
        let K8sCommand::Restore(args) = cmd else {
            panic!("not a restore")
        };
        let err = args.modifiers.modifiers().unwrap_err();
        assert_eq!(err.exit_code(), exit::USAGE);
        assert!(err.to_string().contains("--image-mapping"), "{err}");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        assert!(parse(&["restore", "latest", "--existing-resource-policy", "merge"]).is_err());
        assert!(parse(&["backup", "--include-cluster-resources", "yes"]).is_err());
        assert!(parse(&["restore"]).is_err());
        let cmd = parse(&["backup", "--include-namespaces", "["]).unwrap();
        let K8sCommand::Backup(args) = cmd else {
            panic!("not a backup")
        };
        let err = CliError::from(args.filters.filters().unwrap_err());
        assert_eq!(err.exit_code(), exit::USAGE);
        assert!(err.to_string().contains("--include-namespaces"), "{err}");
    }
}
