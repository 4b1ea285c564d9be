//! `cairn k8s agent`: the node agent (a DaemonSet pod on every node).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::cmd_k8s::AccessArgs;
use super::cmd_k8s_controller::{serve, settings};
use super::{CliError, Context};
use crate::k8s::agent::ioprio::IoPriority;
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
    /// Most bytes a second read from volumes, all volumes together (e.g.
    /// 50MiB; default: no limit).
    #[arg(long, value_name = "BYTES", value_parser = parse_rate)]
    pub read_rate_limit: Option<u64>,
    /// The I/O priority of the threads reading and writing volumes
    /// (best-effort: the lowest level of the normal class, which always
    /// moves on; idle: only when the disk is otherwise unused).
    #[arg(long, value_enum, default_value = "best-effort", value_name = "CLASS")]
    pub io_priority: IoPriority,
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
        read_rate_limit: args.read_rate_limit,
        io_priority: args.io_priority,
        listen: args.listen,
    };
    serve(run(opts))
}

/// A rate in bytes a second: a size (`50MiB`, `1048576`) with an optional
/// `/s`; more than nothing.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let size = s.trim().strip_suffix("/s").unwrap_or(s);
    match super::cmd_init::parse_size(size)? {
        0 => Err(format!("{s:?}: a rate of 0 would never read anything")),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_are_sizes_a_second() {
        assert_eq!(super::parse_rate("50MiB"), Ok(50 << 20));
        assert_eq!(super::parse_rate("50MiB/s"), Ok(50 << 20));
        assert_eq!(super::parse_rate("4096"), Ok(4096));
        assert!(super::parse_rate("0").is_err());
        assert!(super::parse_rate("fast").is_err());
    }
}
