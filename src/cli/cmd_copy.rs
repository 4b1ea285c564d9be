//! `cairn copy`: copy snapshots from another repository into this one.

use serde_json::json;

use super::cmd_snapshots::{select, FilterArgs};
use super::from_repo::{from_error, FromRepoArgs};
use super::{output, CliError, Context};
use crate::format::snapshot::Snapshot;
use crate::maintenance::copy::{self, CopyEvent, CopyOptions};
use crate::repo::saver::SaverOptions;
use crate::repo::LockKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub from: FromRepoArgs,
    /// Copy only these snapshots of the source (ids, unique prefixes or
    /// `latest`); all that pass the filters when none is given.
    #[arg(value_name = "SNAPSHOT")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Read and name everything but store nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let src = args.from.open()?;
    let dst = ctx.open()?;
    // Copying adds files to the destination; the source is only read.
    let lock = dst.lock(LockKind::Shared, ctx.retry_lock())?;
    let selected = select(&src, &args.ids, &args.filter.filter()).map_err(|e| match e {
        CliError::Repo(e) => from_error(e),
        other => other,
    })?;
    let src = src.load_index().map_err(from_error)?;
    let dst = dst.load_index()?;
    let opts = CopyOptions {
        dry_run: args.dry_run,
        saver: SaverOptions {
            connections: ctx.global.connections.max(1),
            ..SaverOptions::default()
        },
        lock: Some(lock.watch()),
    };
    let json = ctx.global.json;
    let quiet = ctx.global.quiet;
    let mut out_err: Option<CliError> = None;
    let mut report = |event: CopyEvent<'_>| {
        if quiet && !json {
            return;
        }
        let printed = if json {
            output::print_json(&event_json(&event))
        } else {
            output::line(event_line(&event, args.dry_run))
        };
        if let Err(e) = printed {
            out_err.get_or_insert(e);
        }
    };
    let stats = copy::copy(&src, &dst, selected, &opts, &mut report)?;
    if let Some(e) = out_err {
        return Err(e);
    }
    if json {
        let mut value = serde_json::to_value(&stats).map_err(|e| CliError::Other(e.to_string()))?;
        value["message_type"] = json!("summary");
        value["dry_run"] = json!(args.dry_run);
        output::print_json(&value)?;
    } else if !quiet {
        output::line(format_args!(
            "{}{} snapshot(s) copied, {} skipped; {} new blob(s) ({} data, {} tree), {} added ({} stored)",
            if args.dry_run { "dry run: " } else { "" },
            stats.snapshots_copied,
            stats.snapshots_skipped,
            stats.data_blobs + stats.tree_blobs,
            stats.data_blobs,
            stats.tree_blobs,
            output::bytes(stats.data_added),
            output::bytes(stats.data_added_packed),
        ))?;
    }
    Ok(0)
}

/// A snapshot described in one line: short id, time, host, paths.
fn describe(id: &crate::id::SnapshotId, s: &Snapshot) -> String {
    format!(
        "{} ({}, {}, {})",
        id.short(),
        output::local_time(s.time_ns),
        s.hostname,
        s.path_strings().join(" ")
    )
}

fn event_line(event: &CopyEvent<'_>, dry_run: bool) -> String {
    match event {
        CopyEvent::Skipped {
            source,
            snapshot,
            existing,
        } => format!(
            "snapshot {} is already in the destination as {}; skipped",
            describe(source, snapshot),
            existing.short()
        ),
        CopyEvent::Copying { source, snapshot } => format!("copying snapshot {}", describe(source, snapshot)),
        CopyEvent::Copied { source, copy } => match copy {
            Some(copy) => format!("snapshot {} copied as {}", source.short(), copy.short()),
            None if dry_run => format!("snapshot {} would be copied", source.short()),
            None => format!("snapshot {} copied", source.short()),
        },
    }
}

fn event_json(event: &CopyEvent<'_>) -> serde_json::Value {
    match event {
        CopyEvent::Skipped { source, existing, .. } => json!({
            "message_type": "skipped",
            "snapshot": source.to_hex(),
            "existing": existing.to_hex(),
        }),
        CopyEvent::Copying { source, .. } => json!({
            "message_type": "copying",
            "snapshot": source.to_hex(),
        }),
        CopyEvent::Copied { source, copy } => json!({
            "message_type": "copied",
            "snapshot": source.to_hex(),
            "copy": copy.map(|c| c.to_hex()),
        }),
    }
}
