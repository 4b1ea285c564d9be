//! The `cairn` binary: parse, run, map errors to exit codes.

use clap::Parser;

fn main() {
    // Before any TLS client exists: one crypto provider for all of them.
    cairn::install_crypto_provider();
    let cli = match cairn::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    let code = match cairn::cli::run(cli) {
        Ok(code) => code,
        // The reader of our output went away (`cairn ls | head`): not an error.
        Err(e) if cairn::cli::output::is_broken_pipe(&e) => 0,
        Err(e) => {
            // Every error message names the object, path or option at fault.
            eprintln!("cairn: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Help and version go to stdout as clap prints them; a usage error becomes
/// one line on stderr (clap's message, without its hint) and exit code 2.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // clap's message runs to the first blank line (a missing argument is
    // named on the line after the sentence); it is joined into one line.
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = message.join(" ");
    let line = joined.strip_prefix("error: ").unwrap_or(&joined);
    let line = if line.is_empty() { "invalid arguments" } else { line };
    eprintln!("cairn: {line}");
    std::process::exit(2);
}
