//! `cairn k8s crds` and `cairn k8s install`: the custom resource
//! definitions and everything cairn runs in a cluster, printed or applied.

use std::path::PathBuf;
use std::time::Duration;

use super::error::exit;
use super::{output, CliError, Context};
use crate::k8s::client::{connect, ClusterAccess};
use crate::k8s::install::{self, apply, manifests, render, Format, Options};
use crate::k8s::{runtime, K8sError};

/// How the manifests are printed.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Print as yaml (documents separated by `---`) or json (a List).
    /// `-o yaml` and `-o json` work too.
    #[arg(long, value_name = "yaml|json")]
    pub output: Option<String>,
}

impl OutputArgs {
    /// The format from `--output`, or from a global `-o` value without `=`
    /// (`-o` is also the object store option `-o KEY=VALUE`).
    fn format(&self, ctx: &Context) -> Result<Option<Format>, K8sError> {
        let bare: Vec<&String> = ctx.global.options.iter().filter(|o| !o.contains('=')).collect();
        let given = match (&self.output, bare.as_slice()) {
            (Some(o), []) => Some(o.as_str()),
            (None, [o]) => Some(o.as_str()),
            (None, []) => None,
            _ => {
                return Err(K8sError::InvalidOption(
                    "-o/--output: give one output format (yaml or json)".into(),
                ))
            }
        };
        given.map(str::parse).transpose()
    }
}

#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Namespace of the controller, the agent and the cairn resources.
    #[arg(long, value_name = "NS", default_value = install::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Container image of the controller and the agent.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// The kubelet's root directory on the nodes (k3s:
    /// /var/lib/rancher/k3s/agent/kubelet, k0s: /var/lib/k0s/kubelet,
    /// microk8s: /var/snap/microk8s/common/var/lib/kubelet).
    #[arg(long, value_name = "DIR", default_value = install::DEFAULT_KUBELET_ROOT)]
    pub kubelet_root_dir: String,
    /// The host name of this cluster's snapshots (default when installing:
    /// the kubeconfig's cluster name; with --dry-run: left to the controller).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// The nodes' directory of hostPath PersistentVolumes (k3s and kind's
    /// local-path provisioner: /opt/local-path-provisioner; k3s:
    /// /var/lib/rancher/k3s/storage), mounted into the agent so that their
    /// claims are backed up.
    #[arg(long, value_name = "DIR")]
    pub host_path_root: Option<String>,
    /// The agents' read-rate limit, each agent all its volumes together
    /// (e.g. 50MiB; default: none).
    #[arg(long, value_name = "BYTES", value_parser = super::cmd_k8s_agent::parse_rate)]
    pub agent_read_rate_limit: Option<u64>,
    /// Print the objects; change nothing (yaml unless -o json).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seconds to wait for the definitions to be established.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub crd_timeout: u64,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

pub fn run_crds(ctx: &Context, args: &CrdsArgs) -> Result<i32, CliError> {
    let format = args.output.format(ctx)?.unwrap_or_default();
    let text = render(&install::definitions()?, format)?;
    output::line(text.trim_end_matches('\n'))?;
    Ok(exit::OK)
}

pub fn run_install(ctx: &Context, args: &InstallArgs) -> Result<i32, CliError> {
    let format = args.output.format(ctx)?;
    let mut opts = Options {
        namespace: args.namespace.clone(),
        image: args.image.clone().unwrap_or_else(install::default_image),
        kubelet_root_dir: args.kubelet_root_dir.clone(),
        cluster_name: args.cluster_name.clone(),
        host_path_root: args.host_path_root.clone(),
        agent_read_rate_limit: args.agent_read_rate_limit,
    };
    opts.validate()?;
    if args.dry_run {
        let text = render(&manifests(&opts)?, format.unwrap_or_default())?;
        output::line(text.trim_end_matches('\n'))?;
        return Ok(exit::OK);
    }
    if format.is_some() {
        return Err(K8sError::InvalidOption("-o/--output: only with --dry-run".into()).into());
    }
    let access = ClusterAccess {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let rt = runtime()?;
    let applied = rt.block_on(async {
        let cluster = connect(&access).await?;
        if opts.cluster_name.is_none() {
            opts.cluster_name = Some(cluster.name.clone());
        }
        let objects = manifests(&opts)?;
        apply(&cluster, &objects, Duration::from_secs(args.crd_timeout)).await
    })?;
    drop(rt);
    if ctx.global.json {
        let items: Vec<_> = applied
            .iter()
            .map(|a| serde_json::json!({"object": a.object, "namespace": a.namespace, "change": a.change.to_string()}))
            .collect();
        output::print_json(&serde_json::json!({"message_type": "summary", "objects": items}))?;
    } else if !ctx.global.quiet {
        for a in &applied {
            output::line(format!("{} {}", a.object, a.change))?;
        }
    }
    Ok(exit::OK)
}
