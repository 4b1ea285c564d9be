//! The second repository of `copy` and `init --copy-chunker-params`:
//! `--from-repo` and its password options, mirroring the global ones.

use std::path::PathBuf;

use super::password::{self, Source};
use super::{open_storage, CliError};
use crate::repo::{RepoError, Repository};

/// Where the source repository is and how to open it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FromRepoArgs {
    /// The source repository (a local directory or an object store URL).
    #[arg(long = "from-repo", env = "CAIRN_FROM_REPOSITORY", value_name = "REPOSITORY")]
    pub from_repo: Option<String>,
    /// Read the source repository's password from this file (first line).
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE", value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Run this shell command and use its first output line as the source
    /// repository's password.
    #[arg(long, env = "CAIRN_FROM_PASSWORD_COMMAND", value_name = "COMMAND")]
    pub from_password_command: Option<String>,
}

impl FromRepoArgs {
    /// Opens the source repository; every error names it as the source.
    pub fn open(&self) -> Result<Repository, CliError> {
        let location = self.from_repo.as_deref().filter(|l| !l.is_empty()).ok_or_else(|| {
            CliError::Usage("no source repository given: use --from-repo or set CAIRN_FROM_REPOSITORY".into())
        })?;
        let storage = open_storage(location).map_err(|e| match e {
            CliError::Usage(msg) => CliError::Usage(format!("--from-repo: {msg}")),
            other => other,
        })?;
        let password = password::read_from(
            &Source {
                env: "CAIRN_FROM_PASSWORD",
                file: self.from_password_file.as_deref(),
                file_option: "--from-password-file",
                command: self.from_password_command.as_deref(),
                command_option: "--from-password-command",
                options: "use --from-password-file or --from-password-command, or set CAIRN_FROM_PASSWORD",
            },
            "enter password of the source repository: ",
        )
        .map_err(|e| match e {
            CliError::Password(msg) => CliError::Password(format!("source repository {location}: {msg}")),
            other => other,
        })?;
        let repo = Repository::open(storage, password.as_bytes()).map_err(from_error)?;
        for skipped in repo.skipped_keys() {
            eprintln!("warning: source repository: {skipped}");
        }
        Ok(repo)
    }
}

/// Marks an error of the source repository as such.
pub fn from_error(e: RepoError) -> CliError {
    CliError::FromRepo(e)
}
