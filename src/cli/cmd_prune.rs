//! `cairn prune`: remove data that no snapshot needs, while backups go on.

use std::time::Duration;

use super::{output, CliError, Context};
use crate::prune::safety;
use crate::prune::{self, MaxUnused, PruneError, PruneOptions, PruneReport};
use crate::repo::{IndexedRepository, LockKind};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub prune: PruneArgs,
    /// Show what would be done and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// Prune's settings, shared with `forget --prune`.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Unused space to tolerate in kept packs: a share of the used data
    /// (`5%`), a size (`100M`) or `unlimited`; packs are repacked to get under it.
    #[arg(long, default_value = "5%", value_name = "LIMIT", value_parser = parse_max_unused)]
    pub max_unused: MaxUnused,
    /// Download at most this much of packs for repacking (e.g. `10G`).
    #[arg(long, value_name = "SIZE", value_parser = super::cmd_init::parse_size)]
    pub max_repack_size: Option<u64>,
    /// Leave small packs alone instead of combining them.
    #[arg(long)]
    pub no_repack_small: bool,
    /// How long a pack found unused stays marked before a later prune
    /// deletes it (e.g. `12h`, `2d`; at least the lock lifetime, 30m).
    #[arg(long, default_value = "12h", value_name = "DURATION", value_parser = super::cmd_unlock::parse_duration)]
    pub grace: Duration,
    /// Delete what no snapshot needs in this run instead of marking it for a
    /// later one. Takes an exclusive lock: fails while a backup or any other
    /// command holds a lock, and a restore running meanwhile may fail.
    #[arg(long)]
    pub instant_delete: bool,
}

impl PruneArgs {
    /// The library's options for a run (`dry_run`: change nothing).
    pub fn options(&self, ctx: &Context, dry_run: bool) -> PruneOptions {
        PruneOptions {
            max_unused: self.max_unused,
            max_repack_bytes: self.max_repack_size,
            repack_small: !self.no_repack_small,
            grace: self.grace,
            dry_run,
            instant_delete: self.instant_delete,
            connections: ctx.global.connections.max(1),
        }
    }

    /// Refuses settings that would break the rules prune relies on.
    pub fn check(&self) -> Result<(), CliError> {
        let opts = PruneOptions {
            grace: self.grace,
            instant_delete: self.instant_delete,
            ..PruneOptions::default()
        };
        safety::check_options(&opts).map_err(|e| match e {
            PruneError::GraceTooShort { grace, lock_ttl } => CliError::Usage(format!(
                "--grace {grace} is shorter than the lock lifetime ({lock_ttl}): a process whose lock was lost \
                 must have the time to notice it before its packs go; give at least {lock_ttl}, or \
                 --instant-delete to delete at once under an exclusive lock"
            )),
            other => CliError::Prune(other),
        })
    }

    /// The lock a run that changes the repository takes.
    pub fn lock_kind(&self) -> LockKind {
        safety::lock_kind(&PruneOptions {
            instant_delete: self.instant_delete,
            ..PruneOptions::default()
        })
    }
}

fn parse_max_unused(s: &str) -> Result<MaxUnused, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Ok(MaxUnused::Unlimited);
    }
    if let Some(p) = t.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a percentage such as 5%"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{s:?} is not between 0% and 100%"));
        }
        return Ok(MaxUnused::Percent(p));
    }
    super::cmd_init::parse_size(t).map(MaxUnused::Bytes)
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    args.prune.check()?;
    let repo = ctx.open()?;
    let opts = args.prune.options(ctx, args.dry_run);
    if ctx.interactive {
        eprintln!("pruning {}", repo.storage().location());
    }
    let report = prune::prune_repository(repo, &opts, ctx.retry_lock())?;
    print_report(ctx, &report)
}

/// Prunes an opened repository under a lock held by the caller: a prune
/// lock, or an exclusive one for `--instant-delete` (`forget --prune`).
pub fn run_on(
    ctx: &Context,
    repo: &IndexedRepository,
    args: &PruneArgs,
    dry_run: bool,
    lock_times: &[i64],
    lock: &dyn prune::LockCheck,
) -> Result<i32, CliError> {
    if ctx.interactive {
        eprintln!("pruning {}", repo.storage().location());
    }
    let report = safety::prune_locked(repo, &args.options(ctx, dry_run), lock_times, lock)?;
    print_report(ctx, &report)
}

fn print_report(ctx: &Context, report: &PruneReport) -> Result<i32, CliError> {
    if ctx.global.json {
        output::print_json(report)?;
    } else if !ctx.global.quiet {
        print_human(report)?;
    }
    Ok(0)
}

fn print_human(r: &PruneReport) -> Result<(), CliError> {
    let p = &r.plan;
    let b = output::bytes;
    output::line(format_args!(
        "{} snapshots, {} trees; {} packs ({}): {} used in {} blobs, {} unused",
        r.snapshots,
        r.trees,
        p.packs,
        b(p.bytes),
        b(p.used_bytes),
        p.used_blobs,
        b(p.unused_bytes)
    ))?;
    let verb = |now: &'static str, later: &'static str| if r.dry_run { later } else { now };
    output::line(format_args!(
        "{} {} packs ({}) to delete on a later run",
        verb("marked", "would mark"),
        p.mark_packs,
        b(p.mark_bytes)
    ))?;
    output::line(format_args!(
        "{} {} packs ({}), copying {} of used data",
        verb("repacked", "would repack"),
        p.repack_packs,
        b(p.repack_bytes),
        b(p.repack_used_bytes)
    ))?;
    output::line(format_args!(
        "{} {} packs ({}) {}",
        verb("deleted", "would delete"),
        p.delete_packs,
        b(p.delete_bytes),
        if r.instant_delete { "at once" } else { "marked earlier" }
    ))?;
    if p.wait_packs > 0 {
        output::line(format_args!(
            "{} marked packs ({}) wait for the grace period or an older lock",
            p.wait_packs,
            b(p.wait_bytes)
        ))?;
    }
    if p.wait_locked_packs > 0 {
        output::line(format_args!(
            "{} of them are under object lock and are deleted once it ends",
            p.wait_locked_packs
        ))?;
    }
    if p.unmark_packs > 0 {
        output::line(format_args!(
            "{} marked packs are needed again and were unmarked",
            p.unmark_packs
        ))?;
    }
    output::line(format_args!(
        "remaining: {} in live packs, {} of it unused",
        b(p.remaining_bytes),
        b(p.remaining_unused_bytes)
    ))?;
    if !r.dry_run {
        output::line(format_args!(
            "wrote {} packs and {} index files; deleted {} index files and {} packs",
            r.new_packs, r.index_files_written, r.index_files_deleted, r.packs_deleted
        ))?;
        if r.locks_extended > 0 {
            output::line(format_args!("extended the object lock of {} objects", r.locks_extended))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unused() {
        assert_eq!(parse_max_unused("5%"), Ok(MaxUnused::Percent(5.0)));
        assert_eq!(parse_max_unused("unlimited"), Ok(MaxUnused::Unlimited));
        assert_eq!(parse_max_unused("10M"), Ok(MaxUnused::Bytes(10 << 20)));
        assert!(parse_max_unused("150%").is_err());
        assert!(parse_max_unused("x%").is_err());
        assert!(parse_max_unused("lots").is_err());
    }
}
