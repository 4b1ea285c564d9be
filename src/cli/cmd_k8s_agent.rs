//! `cairn k8s agent`: the node agent (a DaemonSet pod on every node).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::cmd_k8s::AccessArgs;
use super::cmd_k8s_controller::{serve, settings};
use super::{CliError, Context};
use crate::k8s::agent::{run, AgentOptions};
use crate::k8s::install::{default_image, DEFAULT_NAMESPACE};
use crate::k8s::K8sError;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub access: AccessArgs,
    /// cairn's namespace (the install's).
    #[arg(long, default_value = DEFAULT_NAMESPACE, value_name = "NS")]
    pub namespace: String,
    /// The cluster's name, the host of every snapshot (default: the
    /// kubeconfig's cluster name; the install passes the controller's).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// This node's name (the install sets NODE_NAME from spec.nodeName).
    #[arg(long, env = "NODE_NAME", value_name = "NODE")]
    pub node: Option<String>,
    /// The kubelet's pods directory as mounted in the agent.
    #[arg(long, default_value = crate::k8s::install::workloads::HOST_PODS, value_name = "DIR")]
    pub host_pods: PathBuf,
    /// The host directory of hostPath PersistentVolumes (local-path
    /// provisioners), mounted in the agent at the same path.
    #[arg(long, value_name = "DIR")]
    pub host_path_root: Option<PathBuf>,
    /// Volumes backed up or restored at once.
    #[arg(long, default_value = "2", value_name = "N")]
    pub concurrency: u16,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8081", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
}

pub fn run_agent(ctx: &Context, args: &AgentArgs) -> Result<i32, CliError> {
    let host_path_root = match &args.host_path_root {
        Some(p) => {
            let text = p.to_str().filter(|t| t.starts_with('/')).ok_or_else(|| {
                K8sError::InvalidOption(format!(
                    "--host-path-root {}: must be an absolute UTF-8 path",
                    p.display()
                ))
            })?;
            Some((p.clone(), text.trim_end_matches('/').to_owned()))
        }
        None => None,
    };
    let opts = AgentOptions {
        settings: settings(
            ctx,
            &args.access,
            &args.namespace,
            Duration::from_secs(60),
            default_image(),
        ),
        cluster_name: args.cluster_name.clone(),
        node: args.node.clone().unwrap_or_default(),
        host_pods: args.host_pods.clone(),
        host_path_root,
        concurrency: args.concurrency,
        listen: args.listen,
    };
    serve(run(opts))
}
