//! `cairn backup`: back up paths, standard input or a command's output.

use std::path::PathBuf;

use super::error::exit;
use super::progress::{self, Mode, Scan};
use super::{output, CliError, Context};
use crate::backup::progress::Progress;
use crate::backup::{
    backup_command_without_env, backup_paths, backup_reader, BackupOptions, BackupOutcome, ParentChoice,
};
use crate::repo::saver::SaverOptions;
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::{IndexedRepository, LockKind, RepoError};
use crate::source::walk::WalkOptions;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files read at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub read_concurrency: u16,
    /// Files and directories to back up.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Leave out entries matching this pattern (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Like --exclude, ignoring case (repeatable).
    #[arg(long = "iexclude", value_name = "PATTERN")]
    pub iexcludes: Vec<String>,
    /// Read exclude patterns from a file, one per line (repeatable).
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Like --exclude-file, ignoring case (repeatable).
    #[arg(long = "iexclude-file", value_name = "FILE")]
    pub iexclude_files: Vec<PathBuf>,
    /// Leave out directories that contain a file of this name (repeatable).
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Stay on the file system of each path given.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Tag the snapshot (repeatable; TAG,TAG gives several).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot (default: this machine's).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Compare with this snapshot (id, prefix or `latest`) instead of the
    /// latest one of the same host and paths.
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the parent snapshot.
    #[arg(long)]
    pub force: bool,
    /// Do everything except storing data and the snapshot.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Back up standard input as one file.
    #[arg(long)]
    pub stdin: bool,
    /// File name for --stdin and --stdin-from-command.
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    pub stdin_filename: String,
    /// Back up the output of the command given after `--`; fail if it fails.
    #[arg(long)]
    pub stdin_from_command: bool,
    /// Snapshot time: RFC 3339 or "YYYY-MM-DD HH:MM:SS" (local time).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub time: Option<i64>,
    /// The command for --stdin-from-command.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Parses `--time` into nanoseconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    use chrono::TimeZone;
    let t = s.trim();
    let parsed = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(t) {
        t.timestamp_nanos_opt()
    } else if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S") {
        chrono::Local
            .from_local_datetime(&naive)
            .earliest()
            .and_then(|t| t.timestamp_nanos_opt())
    } else {
        return Err(format!(
            "{s:?} is not a time: use RFC 3339 (2024-05-01T12:00:00Z) or \"YYYY-MM-DD HH:MM:SS\""
        ));
    };
    parsed.ok_or_else(|| format!("{s:?} is out of range"))
}

/// What is backed up.
enum Source<'a> {
    Paths(&'a [PathBuf]),
    Stdin,
    Command(&'a [String]),
}

fn source(args: &Args) -> Result<Source<'_>, CliError> {
    let usage = |m: &str| Err(CliError::Usage(m.to_owned()));
    if args.stdin && args.stdin_from_command {
        return usage("--stdin and --stdin-from-command cannot be used together");
    }
    if !args.command.is_empty() && !args.stdin_from_command {
        return usage("a command after `--` needs --stdin-from-command");
    }
    if args.stdin_from_command {
        if args.command.is_empty() {
            return usage("--stdin-from-command needs a command after `--`, e.g. -- pg_dump mydb");
        }
        if !args.paths.is_empty() {
            return usage("paths cannot be given with --stdin-from-command");
        }
        return Ok(Source::Command(&args.command));
    }
    if args.stdin {
        if !args.paths.is_empty() {
            return usage("paths cannot be given with --stdin");
        }
        return Ok(Source::Stdin);
    }
    if args.paths.is_empty() {
        return usage("nothing to back up: give at least one PATH, or --stdin, or --stdin-from-command");
    }
    Ok(Source::Paths(&args.paths))
}

fn walk_options(args: &Args) -> Result<WalkOptions, CliError> {
    let mut walk = WalkOptions::from_exclude_files(&args.exclude_files, &args.iexclude_files)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    walk.excludes.extend(args.excludes.iter().cloned());
    walk.iexcludes.extend(args.iexcludes.iter().cloned());
    walk.exclude_if_present = args.exclude_if_present.clone();
    walk.one_file_system = args.one_file_system;
    Ok(walk)
}

fn tags(args: &Args) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in args.tags.iter().flat_map(|t| t.split(',')).map(str::trim) {
        if !tag.is_empty() && !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    tags
}

fn parent(repo: &IndexedRepository, args: &Args) -> Result<ParentChoice, CliError> {
    match args.parent.as_deref() {
        None | Some("latest") => Ok(ParentChoice::Latest),
        Some(spec) => {
            let (id, _) = repo
                .find_snapshot(spec, &SnapshotFilter::default())
                .map_err(|e| match e {
                    RepoError::SnapshotNotFound(_) | RepoError::AmbiguousSnapshot { .. } => {
                        CliError::Usage(format!("--parent: {e}"))
                    }
                    e => CliError::Repo(e),
                })?;
            Ok(ParentChoice::Id(id))
        }
    }
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let source = source(args)?;
    let walk = walk_options(args)?;
    let repo = ctx.open()?;
    // Taken before the index is read, so that the index reflects whatever
    // a conflicting operation that just finished wrote.
    let lock = repo.lock(LockKind::Shared, ctx.retry_lock())?;
    let repo = repo.load_index()?;
    let mut excludes = walk.excludes.clone();
    excludes.extend(walk.iexcludes.iter().cloned());
    let opts = BackupOptions {
        walk: walk.clone(),
        tags: tags(args),
        hostname: args.host.clone(),
        parent: parent(&repo, args)?,
        force: args.force,
        dry_run: args.dry_run,
        saver: SaverOptions {
            connections: ctx.global.connections.max(1),
            ..SaverOptions::default()
        },
        time_ns: args.time,
        excludes,
        readers: usize::from(args.read_concurrency),
        lock: Some(lock.watch()),
        ..BackupOptions::default()
    };
    let mode = if ctx.global.json {
        Mode::Json {
            status: !ctx.global.quiet,
        }
    } else {
        Mode::Human {
            bar: ctx.interactive,
            warnings: !ctx.global.quiet,
        }
    };
    let show_totals = ctx.interactive || matches!(mode, Mode::Json { status: true });
    let progress = Progress::default();
    let outcome = match source {
        Source::Paths(paths) => {
            raise_open_file_limit();
            let scan = show_totals.then(|| Scan {
                paths: paths.to_vec(),
                walk,
            });
            progress::with_backup_progress(&progress, mode, scan, || backup_paths(&repo, paths, &opts, &progress))
        }
        Source::Stdin => progress::with_backup_progress(&progress, mode, None, || {
            backup_reader(&repo, std::io::stdin().lock(), &args.stdin_filename, &opts, &progress)
        }),
        Source::Command(command) => progress::with_backup_progress(&progress, mode, None, || {
            let hidden = super::password::PASSWORD_ENV;
            backup_command_without_env(&repo, command, &hidden, &args.stdin_filename, &opts, &progress)
        }),
    }?;
    print_summary(ctx, &outcome)?;
    Ok(if outcome.snapshot.partial {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// Raises the soft limit of open files to the hard limit, as far as the
/// system allows: the walk holds one directory open per level of the tree
/// (plus those of the files being read), and a deep tree must not run out
/// under a low default soft limit. Failure leaves the limit as it was.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    // An unlimited hard limit is more than the kernel takes; ask for less
    // if the first try fails.
    for want in [hard, hard.min(1 << 16)] {
        if want > soft && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
            return;
        }
    }
}

fn print_summary(ctx: &Context, outcome: &BackupOutcome) -> Result<(), CliError> {
    let snap = &outcome.snapshot;
    let s = &snap.summary;
    let seconds = (s.backup_end_ns - s.backup_start_ns).max(0) as f64 / 1e9;
    if ctx.global.json {
        return output::print_json(&serde_json::json!({
            "message_type": "summary",
            "snapshot_id": outcome.id.map(|id| id.to_hex()),
            "dry_run": outcome.id.is_none(),
            "parent": snap.parent.map(|id| id.to_hex()),
            "time": output::rfc3339(snap.time_ns),
            "partial": snap.partial,
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unmodified": s.files_unchanged,
            "dirs_new": s.dirs_new,
            "dirs_changed": s.dirs_changed,
            "dirs_unmodified": s.dirs_unchanged,
            "errors": s.errors,
            "files_changed_while_read": outcome.changed_while_read,
            "data_blobs": s.data_blobs,
            "tree_blobs": s.tree_blobs,
            "data_added": s.data_added,
            "data_added_packed": s.data_added_packed,
            "total_files_processed": s.total_files_processed,
            "total_bytes_processed": s.total_bytes_processed,
            "backup_start": output::rfc3339(s.backup_start_ns),
            "backup_end": output::rfc3339(s.backup_end_ns),
            "total_duration": seconds,
        }));
    }
    if snap.partial {
        eprintln!(
            "warning: {} entr{} could not be read; the snapshot is partial",
            s.errors,
            if s.errors == 1 { "y" } else { "ies" }
        );
    }
    if outcome.changed_while_read > 0 {
        let n = outcome.changed_while_read;
        eprintln!(
            "warning: {n} file{} changed while {} read; stored as read",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it was" } else { "they were" }
        );
    }
    if ctx.global.quiet {
        return Ok(());
    }
    if let Some(parent) = snap.parent {
        println!("using parent snapshot {}", parent.short());
    }
    println!();
    println!(
        "Files:  {:>8} new, {:>8} changed, {:>8} unmodified",
        s.files_new, s.files_changed, s.files_unchanged
    );
    println!(
        "Dirs:   {:>8} new, {:>8} changed, {:>8} unmodified",
        s.dirs_new, s.dirs_changed, s.dirs_unchanged
    );
    if outcome.changed_while_read > 0 {
        println!("        {:>8} changed while read", outcome.changed_while_read);
    }
    println!(
        "Added to the repository: {} ({} stored)",
        output::bytes(s.data_added),
        output::bytes(s.data_added_packed)
    );
    println!();
    println!(
        "processed {} files, {} in {}",
        s.total_files_processed,
        output::bytes(s.total_bytes_processed),
        clock(seconds)
    );
    match outcome.id {
        Some(id) => println!("snapshot {} saved", id.short()),
        None => println!("(dry run: no snapshot saved)"),
    }
    Ok(())
}

/// Seconds as `M:SS` or `H:MM:SS`.
pub fn clock(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Args {
        let cli = crate::cli::Cli::try_parse_from(["cairn", "backup"].iter().chain(args)).unwrap();
        match cli.command {
            crate::cli::Command::Backup(a) => a,
            _ => panic!("not a backup command"),
        }
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z").unwrap(), 1_500_000_000);
        assert_eq!(
            parse_time("2024-01-01T00:00:00+01:00").unwrap(),
            1_704_063_600 * 1_000_000_000
        );
        assert!(parse_time("2024-01-01 12:00:00").is_ok());
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn splits_tags_and_dedups() {
        let args = parse(&["--tag", "a,b", "--tag", "c", "--tag", "a", "/x"]);
        assert_eq!(tags(&args), ["a", "b", "c"]);
    }

    #[test]
    fn command_goes_after_double_dash() {
        let args = parse(&[
            "--stdin-from-command",
            "--stdin-filename",
            "db.sql",
            "--",
            "pg_dump",
            "-x",
            "mydb",
        ]);
        assert!(matches!(source(&args), Ok(Source::Command(c)) if c == ["pg_dump", "-x", "mydb"]));
        assert_eq!(args.stdin_filename, "db.sql");
    }

    #[test]
    fn missing_source_is_a_usage_error() {
        let err = source(&parse(&[])).err().unwrap();
        assert_eq!(err.exit_code(), exit::USAGE);
        assert!(err.to_string().contains("PATH"));
        assert!(source(&parse(&["--stdin-from-command"])).is_err());
        assert!(source(&parse(&["--stdin", "/x"])).is_err());
        assert!(matches!(source(&parse(&["--stdin"])), Ok(Source::Stdin)));
    }

    #[test]
    fn formats_durations() {
        assert_eq!(clock(2.4), "0:02");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
