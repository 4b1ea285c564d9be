//! `cairn snapshots` (pending).

use super::{CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_ctx: &Context, _args: &Args) -> Result<i32, CliError> {
    Err(CliError::Other("`snapshots` is not implemented yet".into()))
}
