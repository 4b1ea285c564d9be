//! The `cairn` binary: parse, run, map errors to exit codes.

use clap::Parser;

fn main() {
    let cli = cairn::cli::Cli::parse();
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
