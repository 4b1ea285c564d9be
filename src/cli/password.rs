//! Where the password comes from, in order: `CAIRN_PASSWORD`,
//! `--password-file`, `--password-command`, a prompt on a terminal.

use std::io::IsTerminal;

use zeroize::Zeroizing;

use super::{CliError, GlobalArgs};

pub fn read(global: &GlobalArgs, prompt: &str) -> Result<Zeroizing<String>, CliError> {
    read_from(
        &Source {
            env: "CAIRN_PASSWORD",
            file: global.password_file.as_deref(),
            command: global.password_command.as_deref(),
            options: "set CAIRN_PASSWORD, --password-file or --password-command",
        },
        prompt,
    )
}

/// Where one repository's password may come from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The environment variable that holds the password itself.
    pub env: &'static str,
    pub file: Option<&'a std::path::Path>,
    pub command: Option<&'a str>,
    /// How to give it, for the message when none is given.
    pub options: &'static str,
}

/// Reads a password from `source`, in order: its environment variable, its
/// file, its command, a prompt on a terminal.
pub fn read_from(source: &Source<'_>, prompt: &str) -> Result<Zeroizing<String>, CliError> {
    if let Ok(p) = std::env::var(source.env) {
        return Ok(Zeroizing::new(p));
    }
    if let Some(path) = source.file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Password(format!("cannot read password file {}: {e}", path.display())))?,
        );
        return Ok(Zeroizing::new(first_line(&text)));
    }
    if let Some(command) = source.command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| CliError::Password(format!("password command {command:?} failed to start: {e}")))?;
        if !out.status.success() {
            return Err(CliError::Password(format!(
                "password command {command:?} {}",
                out.status
            )));
        }
        let text = Zeroizing::new(String::from_utf8_lossy(&out.stdout).into_owned());
        return Ok(Zeroizing::new(first_line(&text)));
    }
    if std::io::stdin().is_terminal() {
        let p =
            rpassword::prompt_password(prompt).map_err(|e| CliError::Password(format!("cannot read password: {e}")))?;
        return Ok(Zeroizing::new(p));
    }
    Err(CliError::Password(format!(
        "no password given: {}, or run on a terminal",
        source.options
    )))
}

/// Asks for a new password twice on a terminal, or takes it from the usual
/// sources (`--new-password-file` is handled by the caller).
pub fn read_new(global: &GlobalArgs) -> Result<Zeroizing<String>, CliError> {
    if !std::io::stdin().is_terminal() {
        return read(global, "");
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("enter new password: ").map_err(|e| CliError::Password(e.to_string()))?,
    );
    let second = Zeroizing::new(
        rpassword::prompt_password("enter the password again: ").map_err(|e| CliError::Password(e.to_string()))?,
    );
    if first != second {
        return Err(CliError::Password("the passwords do not match".into()));
    }
    Ok(first)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_owned()
}
