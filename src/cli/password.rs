//! Where a password comes from: `--password-file` or `--password-command`
//! (at most one of them), else `CAIRN_PASSWORD`, else a prompt on a
//! terminal. A password that is given is always used: the prompt is only
//! for when none is.

use std::io::IsTerminal;

use zeroize::Zeroizing;

use super::{CliError, GlobalArgs};

/// The environment variables that hold a password or say where one is.
/// Children that cairn runs for data (`--stdin-from-command`) do not see them.
pub const PASSWORD_ENV: [&str; 7] = [
    "CAIRN_PASSWORD",
    "CAIRN_PASSWORD_FILE",
    "CAIRN_PASSWORD_COMMAND",
    "CAIRN_NEW_PASSWORD",
    "CAIRN_FROM_PASSWORD",
    "CAIRN_FROM_PASSWORD_FILE",
    "CAIRN_FROM_PASSWORD_COMMAND",
];

/// The repository's password sources (`-r`).
pub fn source(global: &GlobalArgs) -> Source<'_> {
    Source {
        env: "CAIRN_PASSWORD",
        file: global.password_file.as_deref(),
        file_option: "--password-file",
        command: global.password_command.as_deref(),
        command_option: "--password-command",
        options: "use --password-file or --password-command, or set CAIRN_PASSWORD",
    }
}

pub fn read(global: &GlobalArgs, prompt: &str) -> Result<Zeroizing<String>, CliError> {
    read_from(&source(global), prompt)
}

/// Where one repository's password may come from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The environment variable that holds the password itself.
    pub env: &'static str,
    pub file: Option<&'a std::path::Path>,
    /// The option that names `file`, for messages.
    pub file_option: &'static str,
    pub command: Option<&'a str>,
    /// The option that gives `command`, for messages (which never show the
    /// command itself: it may hold a secret).
    pub command_option: &'static str,
    /// How to give it, for the message when none is given.
    pub options: &'static str,
}

/// Reads a password from `source`: its file or its command, else its
/// environment variable, else a prompt on a terminal.
pub fn read_from(source: &Source<'_>, prompt: &str) -> Result<Zeroizing<String>, CliError> {
    if let Some(p) = given(source)? {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let p =
            rpassword::prompt_password(prompt).map_err(|e| CliError::Password(format!("cannot read password: {e}")))?;
        return Ok(Zeroizing::new(p));
    }
    Err(none_given(source))
}

fn none_given(source: &Source<'_>) -> CliError {
    CliError::Password(format!("no password given: {}, or run on a terminal", source.options))
}

/// The password of the first source that is given, or `None` when none is.
/// A file and a command together are refused: which one is meant is not clear.
pub fn given(source: &Source<'_>) -> Result<Option<Zeroizing<String>>, CliError> {
    if source.file.is_some() && source.command.is_some() {
        return Err(CliError::Usage(format!(
            "{} and {} cannot both be given (check the environment too): use one",
            source.file_option, source.command_option
        )));
    }
    if let Some(path) = source.file {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                CliError::Password(format!("cannot read {} {}: {e}", source.file_option, path.display()))
            })?);
        return Ok(Some(Zeroizing::new(first_line(&text))));
    }
    if let Some(command) = source.command {
        return run_command(source.command_option, command).map(Some);
    }
    Ok(std::env::var(source.env).ok().map(Zeroizing::new))
}

/// Runs a password command through `sh -c`. Errors name the option, never
/// the command line.
fn run_command(option: &str, command: &str) -> Result<Zeroizing<String>, CliError> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| CliError::Password(format!("{option} could not be started: {e}")))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(CliError::Password(format!("{option} failed: {}", out.status)));
    }
    let text = Zeroizing::new(String::from_utf8_lossy(&stdout).into_owned());
    Ok(Zeroizing::new(first_line(&text)))
}

/// The password for a new repository: from a given source, else asked
/// twice on a terminal.
pub fn read_new(global: &GlobalArgs) -> Result<Zeroizing<String>, CliError> {
    let source = source(global);
    if let Some(p) = given(&source)? {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(none_given(&source));
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
