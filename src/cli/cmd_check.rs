//! `cairn check`: verify the repository's structure and, optionally, its data.

use super::{output, CliError, Context};
use crate::check::{self, CheckOptions, CheckReport, ReadData, Severity, Subset};
use crate::repo::LockKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also download every pack and verify every blob against its id.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Download and verify only some packs: N/M reads the packs whose id
    /// (first 8 bytes, big-endian) is N-1 modulo M, so runs 1/M to M/M cover
    /// every pack once; P% reads a random P percent, a different choice on
    /// every run.
    #[arg(long, value_name = "N/M|P%", value_parser = parse_subset)]
    pub read_data_subset: Option<Subset>,
}

fn parse_subset(s: &str) -> Result<Subset, String> {
    s.parse()
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let read_data = match (args.read_data, args.read_data_subset) {
        (_, Some(subset)) => ReadData::Subset(subset),
        (true, None) => ReadData::All,
        (false, None) => ReadData::None,
    };
    let connections = ctx.global.connections.max(1);
    let opts = CheckOptions {
        read_data,
        connections,
        small_reads: connections * 4,
        ..CheckOptions::default()
    };
    let repo = ctx.open()?;
    let _lock = repo.lock(LockKind::Shared, ctx.retry_lock())?;
    if ctx.interactive {
        eprintln!("checking {}", repo.storage().location());
    }
    let report = check::check(&repo, &opts).map_err(|e| CliError::Other(e.to_string()))?;
    if ctx.global.json {
        output::print_json(&report)?;
    } else {
        print_human(&report, ctx.global.quiet)?;
    }
    Ok(if report.has_errors() { 1 } else { 0 })
}

fn print_human(report: &CheckReport, quiet: bool) -> Result<(), CliError> {
    for p in &report.problems {
        if !quiet || p.severity == Severity::Error {
            output::line(p)?;
        }
    }
    if !quiet {
        let c = &report.counters;
        output::line(format_args!(
            "checked {} snapshots, {} trees, {} index files, {} packs ({} headers, {} read in full), {} blobs ({} used, {} verified); read {}",
            c.snapshots,
            c.trees,
            c.index_files,
            c.packs,
            c.pack_headers,
            c.packs_read,
            c.blobs,
            c.blobs_referenced,
            c.blobs_verified,
            output::bytes(c.bytes_read)
        ))?;
    }
    match report.errors {
        0 if quiet => Ok(()),
        0 => output::line("no errors were found"),
        1 => output::line("1 error found"),
        n => output::line(format_args!("{n} errors found")),
    }
}
