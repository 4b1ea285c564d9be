//! `cairn restore`: write a snapshot, or a directory inside one, to disk.

use std::path::PathBuf;
use std::time::Instant;

use super::cmd_backup::clock;
use super::progress::RestoreBar;
use super::{output, CliError, Context};
use crate::repo::snapshots::SnapshotFilter;
use crate::restore::{resolve_source, restore, MetaOptions, Overwrite, RestoreOptions, RestoreProgress};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot (id, prefix or `latest`), optionally with a path inside
    /// it: `latest:/home/me/docs`.
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    pub snapshot: std::ffi::OsString,
    /// Directory to restore into (created if missing).
    #[arg(short = 't', long, value_name = "DIR")]
    pub target: PathBuf,
    /// Restore only entries matching this pattern (repeatable).
    #[arg(short = 'i', long = "include", value_name = "PATTERN")]
    pub includes: Vec<String>,
    /// Leave out entries matching this pattern (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// What to do with files that exist in the target: always, if-changed, never.
    #[arg(long, value_name = "WHEN", default_value = "if-changed", value_parser = parse_overwrite)]
    pub overwrite: Overwrite,
    /// Re-read every restored file and check its content.
    #[arg(long)]
    pub verify: bool,
    /// Show what would be restored; write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// For `latest`: only snapshots of this host (repeatable).
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// For `latest`: only snapshots with these tags (repeatable; TAG,TAG needs all).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// For `latest`: only snapshots of this path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Restore owners by their recorded ids, not by their names.
    #[arg(long)]
    pub numeric_owner: bool,
    /// Do not restore owners (they are restored only when running as root).
    #[arg(long)]
    pub no_owner: bool,
}

/// Parses `--overwrite`.
pub fn parse_overwrite(s: &str) -> Result<Overwrite, String> {
    match s {
        "always" => Ok(Overwrite::Always),
        "if-changed" => Ok(Overwrite::IfChanged),
        "never" => Ok(Overwrite::Never),
        _ => Err(format!("{s:?}: expected always, if-changed or never")),
    }
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let started = Instant::now();
    let repo = ctx.open_indexed()?;
    let filter = SnapshotFilter {
        hosts: args.hosts.clone(),
        tags: args.tags.clone(),
        paths: args.paths.clone(),
    };
    let source = resolve_source(&repo, &args.snapshot, &filter)?;
    let opts = RestoreOptions {
        target: args.target.clone(),
        subpath: source.subpath.clone(),
        include: args.includes.clone(),
        exclude: args.excludes.clone(),
        overwrite: args.overwrite,
        verify: args.verify,
        dry_run: args.dry_run,
        meta: MetaOptions::new(!args.no_owner, args.numeric_owner),
        connections: ctx.global.connections.max(1),
        cancel: None,
        target_dir: None,
    };
    let human = !ctx.global.json && !ctx.global.quiet;
    if human {
        println!(
            "restoring snapshot {}:{} to {}",
            source.snapshot.short(),
            source.subpath.display(),
            args.target.display()
        );
    }
    let bar = (ctx.interactive && !args.dry_run).then(RestoreBar::new);
    let update = |p: &RestoreProgress| {
        if let Some(bar) = &bar {
            bar.update(p);
        }
    };
    let result = restore(&repo, source.tree, &opts, Some(&update));
    if let Some(bar) = &bar {
        bar.finish();
    }
    let summary = result?;
    let seconds = started.elapsed().as_secs_f64();
    if ctx.global.json {
        let mut value = serde_json::to_value(&summary)
            .map_err(|e| CliError::Other(format!("encoding the restore summary: {e}")))?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("message_type".into(), "summary".into());
            map.insert("snapshot_id".into(), source.snapshot.to_hex().into());
            map.insert("subpath".into(), source.subpath.display().to_string().into());
            map.insert("target".into(), args.target.display().to_string().into());
            map.insert("total_duration".into(), seconds.into());
        }
        output::print_json(&value)?;
    } else if human {
        let s = &summary;
        let verb = if s.dry_run { "would restore" } else { "restored" };
        println!(
            "{verb} {} files ({}), skipped {}, {} dirs, {} special, {} hard links in {}",
            s.files_restored,
            output::bytes(s.bytes_written),
            s.files_skipped,
            s.dirs,
            s.specials,
            s.hard_links,
            clock(seconds)
        );
        if args.verify && !s.dry_run {
            println!("verified {} files", s.files_verified);
        }
        if s.dry_run {
            println!("(dry run: nothing written)");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_overwrite() {
        assert_eq!(parse_overwrite("always").unwrap(), Overwrite::Always);
        assert_eq!(parse_overwrite("if-changed").unwrap(), Overwrite::IfChanged);
        assert_eq!(parse_overwrite("never").unwrap(), Overwrite::Never);
        assert!(parse_overwrite("sometimes").unwrap_err().contains("sometimes"));
    }
}
