//! `cairn k8s hold`: the command of the helper pods that mount a claim no
//! running pod mounts, so that the node agent can read it. It checks that
//! the volume is there, then waits until the pod is deleted.

use std::path::PathBuf;

use super::{CliError, Context};
use crate::k8s::K8sError;

#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// The mounted volume.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run_hold(_ctx: &Context, args: &HoldArgs) -> Result<i32, CliError> {
    // Opened once, by path given on the command line: a wrong mount says
    // so at once instead of leaving the agent to find nothing.
    let _dir = crate::source::open::open_dir_path(&args.dir)
        .map_err(|e| K8sError::InvalidOption(format!("--dir {}: {e}", args.dir.display())))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(K8sError::Runtime)?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        println!(
            "holding {} mounted for the cairn agent until this pod is deleted",
            args.dir.display()
        );
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r?,
        }
        Ok::<(), std::io::Error>(())
    })
    .map_err(K8sError::Runtime)?;
    Ok(0)
}
