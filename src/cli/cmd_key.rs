//! `cairn key`: list, add, remove key files and change the password.
//!
//! Each key file wraps the same master key under a different password.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{output, CliError, Context};
use crate::format::keyfile::{KdfParams, MAX_KDF_MEMORY_KIB, MIN_KDF_MEMORY_KIB};
use crate::repo::LockKind;

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// List key files; `*` marks the one that opened the repository.
    List,
    /// Add a key file for a new password; prints its id.
    Add(NewKeyArgs),
    /// Remove a key file (not the one in use).
    Remove {
        /// The key's id or a unique prefix.
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change the password of the key in use (the new key is written before the old one is removed).
    Passwd(NewKeyArgs),
}

#[derive(Debug, clap::Args)]
pub struct NewKeyArgs {
    /// Read the new password from this file (first line); otherwise
    /// CAIRN_NEW_PASSWORD, or a prompt on a terminal.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Argon2id memory in KiB (for tests; the default is the safe choice).
    #[arg(long, value_name = "KIB", hide = true)]
    pub kdf_memory: Option<u32>,
}

impl NewKeyArgs {
    fn kdf(&self) -> Result<KdfParams, CliError> {
        kdf_params(self.kdf_memory)
    }
}

/// Argon2id parameters: the defaults, with the memory cost optionally
/// replaced, within the format's bounds (so no key is weaker than the floor).
pub fn kdf_params(memory_kib: Option<u32>) -> Result<KdfParams, CliError> {
    let mut kdf = KdfParams::default();
    if let Some(m) = memory_kib {
        if !(MIN_KDF_MEMORY_KIB..=MAX_KDF_MEMORY_KIB).contains(&m) {
            return Err(CliError::Usage(format!(
                "--kdf-memory {m}: expected {MIN_KDF_MEMORY_KIB} to {MAX_KDF_MEMORY_KIB} KiB"
            )));
        }
        kdf.memory_kib = m;
    }
    Ok(kdf)
}

pub fn run(ctx: &Context, cmd: &KeyCommand) -> Result<i32, CliError> {
    match cmd {
        KeyCommand::List => list(ctx),
        KeyCommand::Add(args) => {
            let kdf = args.kdf()?;
            let repo = ctx.open()?;
            let password = new_password(args.new_password_file.as_deref())?;
            let lock = repo.lock(LockKind::Shared, ctx.retry_lock())?;
            lock.ensure_held()?;
            let name = repo.write_key(password.as_bytes(), kdf)?;
            if ctx.global.json {
                output::print_json(&json!({ "message_type": "key_added", "id": name }))?;
            } else if !ctx.global.quiet {
                println!("saved new key {name}");
            }
            Ok(0)
        }
        KeyCommand::Remove { id } => {
            let repo = ctx.open()?;
            let lock = repo.lock(LockKind::Exclusive, ctx.retry_lock())?;
            let name = repo.resolve_key(id)?;
            lock.ensure_held()?;
            repo.remove_key(&name)?;
            if ctx.global.json {
                output::print_json(&json!({ "message_type": "key_removed", "id": name }))?;
            } else if !ctx.global.quiet {
                println!("removed key {name}");
            }
            Ok(0)
        }
        KeyCommand::Passwd(args) => {
            let kdf = args.kdf()?;
            let mut repo = ctx.open()?;
            let old = repo.key_name().to_owned();
            let password = new_password(args.new_password_file.as_deref())?;
            let lock = repo.lock(LockKind::Exclusive, ctx.retry_lock())?;
            lock.ensure_held()?;
            let name = repo.change_password(password.as_bytes(), kdf)?;
            if ctx.global.json {
                output::print_json(&json!({ "message_type": "password_changed", "id": name, "removed": old }))?;
            } else if !ctx.global.quiet {
                println!("saved new key {name}; removed old key {old}");
            }
            Ok(0)
        }
    }
}

fn list(ctx: &Context) -> Result<i32, CliError> {
    let repo = ctx.open()?;
    let keys = repo.list_keys()?;
    if ctx.global.json {
        let items: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({
                    "current": k.current,
                    "id": k.id,
                    "user": k.username,
                    "host": k.hostname,
                    "created": output::rfc3339(k.created_ns),
                    "problem": k.problem,
                })
            })
            .collect();
        output::print_json(&items)?;
        return Ok(0);
    }
    let rows: Vec<[String; 5]> = keys
        .iter()
        .map(|k| {
            [
                if k.current { "*" } else { " " }.to_owned(),
                k.id.get(..8).unwrap_or(&k.id).to_owned(),
                k.username.clone(),
                k.hostname.clone(),
                output::local_time(k.created_ns),
            ]
        })
        .collect();
    let header = [" ", "ID", "User", "Host", "Created"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 5]| {
        let parts: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(&header);
    println!("{}", "-".repeat(widths.iter().sum::<usize>() + 8));
    for row in &rows {
        line(row);
    }
    for k in keys.iter().filter(|k| k.problem.is_some()) {
        eprintln!(
            "warning: key {} cannot be used: {}",
            k.id,
            k.problem.as_deref().unwrap_or_default()
        );
    }
    Ok(0)
}

/// The new password: from `file`, `CAIRN_NEW_PASSWORD`, or asked twice on a terminal.
fn new_password(file: Option<&Path>) -> Result<Zeroizing<String>, CliError> {
    let password = if let Some(path) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Password(format!("cannot read new password file {}: {e}", path.display())))?,
        );
        Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
    } else if let Ok(p) = std::env::var("CAIRN_NEW_PASSWORD") {
        Zeroizing::new(p)
    } else if std::io::stdin().is_terminal() {
        ask_twice()?
    } else {
        return Err(CliError::Password(
            "no new password given: use --new-password-file or CAIRN_NEW_PASSWORD, or run on a terminal".into(),
        ));
    };
    if password.is_empty() {
        return Err(CliError::Password("an empty password is not allowed".into()));
    }
    Ok(password)
}

fn ask_twice() -> Result<Zeroizing<String>, CliError> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| CliError::Password(format!("cannot read the new password: {e}")))
    };
    let first = ask("enter new password: ")?;
    let second = ask("enter the new password again: ")?;
    if first != second {
        return Err(CliError::Password("the new passwords do not match".into()));
    }
    Ok(first)
}
