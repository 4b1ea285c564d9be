//! Command-line interface: argument parsing, password handling, output.
//!
//! Each command lives in its own file with its `Args` and a `run` function.
//! Human output goes to stdout; with `--json` every command prints JSON
//! instead (listings as one array or object, progress as JSON lines).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::repo::{IndexedRepository, Repository};
use crate::storage::open::{open, OpenError, OpenOptions};
use crate::storage::url::StorageOptions;
use crate::storage::DynStorage;

pub mod error;
pub mod from_repo;
pub mod output;
pub mod progress;

pub mod cmd_backup;
pub mod cmd_cat;
pub mod cmd_check;
pub mod cmd_copy;
pub mod cmd_diff;
pub mod cmd_forget;
pub mod cmd_init;
#[cfg(feature = "k8s")]
pub mod cmd_k8s;
#[cfg(feature = "k8s")]
pub mod cmd_k8s_agent;
#[cfg(feature = "k8s")]
pub mod cmd_k8s_controller;
#[cfg(feature = "k8s")]
mod cmd_k8s_hold;
#[cfg(feature = "k8s")]
mod cmd_k8s_install;
#[cfg(feature = "k8s")]
pub mod cmd_k8s_resources;
pub mod cmd_key;
pub mod cmd_ls;
pub mod cmd_prune;
pub mod cmd_repair;
pub mod cmd_restore;
pub mod cmd_snapshots;
pub mod cmd_stats;
pub mod cmd_unlock;

pub use error::CliError;

/// cairn: encrypted, deduplicating backups.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Repository location: a local directory, s3://bucket/prefix, gs://bucket/prefix or
    /// azblob://container/prefix.
    #[arg(
        short = 'r',
        long = "repo",
        env = "CAIRN_REPOSITORY",
        global = true,
        value_name = "REPOSITORY"
    )]
    pub repo: Option<String>,
    /// Read the password from this file (first line); wins over CAIRN_PASSWORD.
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its first output line as the password;
    /// wins over CAIRN_PASSWORD (not with --password-file).
    #[arg(long, env = "CAIRN_PASSWORD_COMMAND", global = true, value_name = "COMMAND")]
    pub password_command: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Concurrent storage operations.
    #[arg(long, global = true, default_value_t = 2, value_name = "N")]
    pub connections: usize,
    /// Object store option, repeatable: s3.endpoint=URL, s3.region=NAME, s3.path-style=true|false,
    /// s3.storage-class=CLASS (packs only), gs.credentials-file=PATH, gs.storage-class=CLASS,
    /// azblob.account=NAME, azblob.endpoint=URL, timeout=DURATION.
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Where to cache an object store repository's index files and snapshots
    /// (default: $XDG_CACHE_HOME/cairn or ~/.cache/cairn).
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not use or fill the local cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Wait up to this long for a conflicting lock to go away (e.g. 30s, 5m,
    /// 1h30m); 0 fails at once.
    #[arg(long, global = true, default_value = "0", value_name = "DURATION", value_parser = cmd_unlock::parse_duration)]
    pub retry_lock: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init(cmd_init::Args),
    /// Back up files, directories, standard input or a command's output.
    Backup(cmd_backup::Args),
    /// List snapshots.
    Snapshots(cmd_snapshots::Args),
    /// List the files in a snapshot.
    Ls(cmd_ls::Args),
    /// Restore a snapshot or part of it.
    Restore(cmd_restore::Args),
    /// Print a repository object as JSON (config, key, snapshot, index, pack, tree, blob).
    Cat(cmd_cat::Args),
    /// Show what changed between two snapshots.
    Diff(cmd_diff::Args),
    /// Show repository or snapshot statistics.
    Stats(cmd_stats::Args),
    /// Check the repository's integrity.
    Check(cmd_check::Args),
    /// Remove snapshots by id or by a retention policy (--keep-*).
    Forget(Box<cmd_forget::Args>),
    /// Manage passwords (key files).
    #[command(subcommand)]
    Key(cmd_key::KeyCommand),
    /// Remove data that no snapshot needs (in two phases, safe beside backups).
    Prune(cmd_prune::Args),
    /// Copy snapshots from another repository (--from-repo) into this one.
    Copy(cmd_copy::Args),
    /// Rebuild the index from pack headers, or rewrite snapshots whose data is lost.
    #[command(subcommand)]
    Repair(cmd_repair::RepairCommand),
    /// Remove stale locks (`--remove-all`: every lock).
    Unlock(cmd_unlock::Args),
    /// Back up and restore Kubernetes objects through the API.
    #[cfg(feature = "k8s")]
    #[command(subcommand)]
    K8s(cmd_k8s::K8sCommand),
}

/// What a command needs from the outside world.
pub struct Context {
    pub global: GlobalArgs,
    /// Whether stderr is a terminal (progress bars are drawn only then).
    pub interactive: bool,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Self {
        let interactive = std::io::stderr().is_terminal() && !global.json && !global.quiet;
        Self { global, interactive }
    }

    /// The storage named by `-r`.
    pub fn storage(&self) -> Result<DynStorage, CliError> {
        let location = self.global.repo.as_deref().ok_or(CliError::NoRepository)?;
        let options = StorageOptions::parse(&self.global.options).map_err(OpenError::from)?;
        open_storage_with(location, &options, self.cache_root().as_deref())
    }

    /// The password from the environment, a file, a command or a prompt.
    pub fn password(&self, prompt: &str) -> Result<zeroize::Zeroizing<String>, CliError> {
        password::read(&self.global, prompt)
    }

    /// The cache root, unless `--no-cache`.
    fn cache_root(&self) -> Option<std::path::PathBuf> {
        if self.global.no_cache {
            return None;
        }
        self.global
            .cache_dir
            .clone()
            .or_else(crate::storage::cache::default_root)
    }

    /// Opens the repository; its index is read through a local index table
    /// in the cache unless `--no-cache`.
    pub fn open(&self) -> Result<Repository, CliError> {
        let storage = self.storage()?;
        let password = self.password("enter repository password: ")?;
        let mut repo = Repository::open(storage, password.as_bytes())?;
        if let Some(root) = self.cache_root() {
            repo = repo.with_index_cache(&root);
        }
        warn_skipped_keys(&repo);
        Ok(repo)
    }

    /// How long to wait for a conflicting lock (`--retry-lock`).
    pub fn retry_lock(&self) -> std::time::Duration {
        self.global.retry_lock
    }

    /// Opens the repository and loads its index.
    pub fn open_indexed(&self) -> Result<IndexedRepository, CliError> {
        Ok(self.open()?.load_index()?)
    }
}

/// Warns, one line each, of key files passed over while opening `repo`.
pub fn warn_skipped_keys(repo: &Repository) {
    for skipped in repo.skipped_keys() {
        eprintln!("warning: {skipped}");
    }
}

/// Storage for a repository location (a local path or an object store URL)
/// with no `-o` options.
pub fn open_storage(location: &str) -> Result<DynStorage, CliError> {
    open_storage_with(location, &StorageOptions::default(), None)
}

/// Storage for a repository location with `-o` options (see
/// [`crate::storage::open::open`]).
pub fn open_storage_with(
    location: &str,
    options: &StorageOptions,
    cache: Option<&std::path::Path>,
) -> Result<DynStorage, CliError> {
    if location.is_empty() {
        return Err(CliError::NoRepository);
    }
    let options = OpenOptions {
        storage: options.clone(),
        cache: cache.map(std::path::Path::to_path_buf),
    };
    Ok(open(location, &options)?)
}

pub mod password;

/// Parses arguments and runs the command; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Init(args) => cmd_init::run(&ctx, &args),
        Command::Backup(args) => cmd_backup::run(&ctx, &args),
        Command::Snapshots(args) => cmd_snapshots::run(&ctx, &args),
        Command::Ls(args) => cmd_ls::run(&ctx, &args),
        Command::Restore(args) => cmd_restore::run(&ctx, &args),
        Command::Cat(args) => cmd_cat::run(&ctx, &args),
        Command::Diff(args) => cmd_diff::run(&ctx, &args),
        Command::Stats(args) => cmd_stats::run(&ctx, &args),
        Command::Check(args) => cmd_check::run(&ctx, &args),
        Command::Forget(args) => cmd_forget::run(&ctx, &args),
        Command::Key(cmd) => cmd_key::run(&ctx, &cmd),
        Command::Prune(args) => cmd_prune::run(&ctx, &args),
        Command::Copy(args) => cmd_copy::run(&ctx, &args),
        Command::Repair(cmd) => cmd_repair::run(&ctx, &cmd),
        Command::Unlock(args) => cmd_unlock::run(&ctx, &args),
        #[cfg(feature = "k8s")]
        Command::K8s(cmd) => cmd_k8s::run(&ctx, &cmd),
    }
}
