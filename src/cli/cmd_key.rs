//! `cairn key` (pending).

use super::{CliError, Context};

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// List key files.
    List,
}

pub fn run(_ctx: &Context, _cmd: &KeyCommand) -> Result<i32, CliError> {
    Err(CliError::Other("`key` is not implemented yet".into()))
}
