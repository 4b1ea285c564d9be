//! `cairn repair index|snapshots`: rebuild a lost or damaged index, rewrite
//! snapshots whose data is lost.

use serde_json::json;

use super::cmd_snapshots::{select, FilterArgs};
use super::{output, CliError, Context};
use crate::maintenance::repair_index::{self, RepairIndexOptions};
use crate::maintenance::repair_snapshots::{self, RepairSnapshotsOptions};
use crate::repo::saver::SaverOptions;
use crate::repo::LockKind;

#[derive(Debug, clap::Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the headers of the packs in storage.
    Index(IndexArgs),
    /// Rewrite snapshots whose trees or data are lost, leaving out what cannot be read.
    Snapshots(SnapshotsArgs),
}

#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// Read every pack in full and index only the blobs that match their ids.
    #[arg(long)]
    pub read_all_packs: bool,
    /// Read the packs but write and delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct SnapshotsArgs {
    /// Repair only these snapshots (ids, unique prefixes or `latest`); all
    /// that pass the filters when none is given.
    #[arg(value_name = "SNAPSHOT")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Delete each repaired snapshot once its replacement is written.
    #[arg(long)]
    pub forget: bool,
    /// Show what would be left out; write and delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Also read every data blob and drop files whose data does not verify.
    #[arg(long)]
    pub read_data: bool,
}

pub fn run(ctx: &Context, cmd: &RepairCommand) -> Result<i32, CliError> {
    match cmd {
        RepairCommand::Index(args) => run_index(ctx, args),
        RepairCommand::Snapshots(args) => run_snapshots(ctx, args),
    }
}

fn run_index(ctx: &Context, args: &IndexArgs) -> Result<i32, CliError> {
    let repo = ctx.open()?;
    let lock = repo.lock(LockKind::Exclusive, ctx.retry_lock())?;
    let opts = RepairIndexOptions {
        connections: ctx.global.connections.max(1),
        read_all_packs: args.read_all_packs,
        dry_run: args.dry_run,
        lock: Some(lock.watch()),
    };
    let outcome = repair_index::repair_index(&repo, &opts)?;
    if ctx.global.json {
        output::print_json(&json!({
            "message_type": "summary",
            "dry_run": args.dry_run,
            "packs": outcome.packs,
            "packs_indexed": outcome.packs_indexed,
            "blobs": outcome.blobs,
            "bytes_read": outcome.bytes_read,
            "problems": outcome.problems,
            "written": outcome.written.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "deleted": outcome.deleted,
        }))?;
        return Ok(0);
    }
    // Problems are printed even with --quiet: they are what needs attention.
    for p in &outcome.problems {
        match &p.blob {
            Some(blob) => output::line(format_args!("pack {}: blob {blob}: {}", p.pack, p.message))?,
            None if p.message.starts_with("pack ") => output::line(&p.message)?,
            None => output::line(format_args!("pack {} {}", p.pack, p.message))?,
        }
    }
    if !ctx.global.quiet {
        output::line(format_args!(
            "{}{} of {} pack(s) indexed with {} blob(s), {} unusable; read {}; {} new index file(s), {} old one(s) {}",
            if args.dry_run { "dry run: " } else { "" },
            outcome.packs_indexed,
            outcome.packs,
            outcome.blobs,
            outcome.packs - outcome.packs_indexed,
            output::bytes(outcome.bytes_read),
            outcome.written.len(),
            outcome.deleted,
            if args.dry_run { "to delete" } else { "deleted" },
        ))?;
    }
    Ok(0)
}

fn run_snapshots(ctx: &Context, args: &SnapshotsArgs) -> Result<i32, CliError> {
    let repo = ctx.open()?;
    // A dry run changes nothing and needs no lock.
    let lock = if args.dry_run {
        None
    } else {
        Some(repo.lock(LockKind::Exclusive, ctx.retry_lock())?)
    };
    let selected = select(&repo, &args.ids, &args.filter.filter())?;
    let repo = repo.load_index()?;
    let opts = RepairSnapshotsOptions {
        dry_run: args.dry_run,
        forget: args.forget,
        read_data: args.read_data,
        saver: SaverOptions {
            connections: ctx.global.connections.max(1),
            ..SaverOptions::default()
        },
        lock: lock.as_ref().map(|l| l.watch()),
    };
    let results = repair_snapshots::repair_snapshots(&repo, selected, &opts)?;
    let repaired = results.iter().filter(|r| !r.dropped.is_empty()).count();
    if ctx.global.json {
        for r in &results {
            output::print_json(&json!({
                "message_type": "snapshot",
                "snapshot": r.snapshot.to_hex(),
                "dropped": r.dropped,
                "new_snapshot": r.new_snapshot.map(|id| id.to_hex()),
                "forgotten": r.forgotten,
            }))?;
        }
        output::print_json(&json!({
            "message_type": "summary",
            "dry_run": args.dry_run,
            "snapshots": results.len(),
            "repaired": repaired,
        }))?;
        return Ok(0);
    }
    for r in &results {
        if r.dropped.is_empty() {
            if !ctx.global.quiet {
                output::line(format_args!("snapshot {}: nothing to repair", r.snapshot.short()))?;
            }
            continue;
        }
        output::line(format_args!("snapshot {}:", r.snapshot.short()))?;
        for d in &r.dropped {
            let verb = if d.what == "dir" { "emptied" } else { "dropped" };
            output::line(format_args!("  {verb} {}: {}", d.path, d.reason))?;
        }
        match (r.new_snapshot, args.dry_run) {
            (Some(new), _) => output::line(format_args!(
                "  saved as {}{}",
                new.short(),
                if r.forgotten { ", old snapshot removed" } else { "" }
            ))?,
            (None, true) => output::line("  would be saved as a new snapshot (dry run)")?,
            (None, false) => {}
        }
    }
    if !ctx.global.quiet {
        output::line(format_args!(
            "{}{} of {} snapshot(s) {}",
            if args.dry_run { "dry run: " } else { "" },
            repaired,
            results.len(),
            if args.dry_run { "need repair" } else { "repaired" }
        ))?;
    }
    Ok(0)
}
