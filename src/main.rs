//! The `cairn` binary: parse, run, map errors to exit codes.

use clap::Parser;

fn main() {
    tune_allocator();
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

/// glibc's malloc, tuned (README, Benchmarks: the allocator): two arenas
/// rather than eight per core, so freed buffers are not kept once per
/// thread, and a fixed threshold of 4 MiB above which a buffer is its own
/// mapping, given back to the system when freed (glibc otherwise raises the
/// threshold after the first large buffer is freed and keeps later ones in
/// its heap). A `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` in the
/// environment is left to decide.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets parameters of glibc's allocator; it is
        // called before any other thread exists.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
            }
        }
    }
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
