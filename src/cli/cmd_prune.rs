//! `cairn prune`: remove data that no snapshot needs, while backups go on.

use std::time::Duration;

use super::{output, CliError, Context};
use crate::prune::{self, MaxUnused, PruneOptions, PruneReport};
use crate::repo::lock::{is_stale, LOCK_TTL};
use crate::repo::{IndexedRepository, LockGuard, LockKind, LockWatch, Repository};

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
    /// Refuses settings that would break the rules prune relies on.
    pub fn check(&self) -> Result<(), CliError> {
        if !self.instant_delete && self.grace < LOCK_TTL {
            return Err(CliError::Usage(format!(
                "--grace {} is shorter than the lock lifetime ({}): a process whose lock was lost \
                 must have the time to notice it before its packs go; give at least {}, or \
                 --instant-delete to delete at once under an exclusive lock",
                humantime(self.grace),
                humantime(LOCK_TTL),
                humantime(LOCK_TTL)
            )));
        }
        Ok(())
    }

    /// The lock a run that changes the repository takes.
    pub fn lock_kind(&self) -> LockKind {
        if self.instant_delete {
            LockKind::Exclusive
        } else {
            LockKind::Prune
        }
    }
}

/// `90s`, `30m`, `12h`: the largest unit that divides the duration.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0".to_owned(),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
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
    // A dry run changes nothing: the prune lock keeps it beside backups.
    let kind = if args.dry_run {
        LockKind::Prune
    } else {
        args.prune.lock_kind()
    };
    let lock = repo.lock(kind, ctx.retry_lock())?;
    let lock_times = other_lock_times(&repo, &[&lock])?;
    let repo = repo.load_index()?;
    run_on(ctx, &repo, &args.prune, args.dry_run, &lock_times, &Held(lock.watch()))
}

/// The start times of the other live locks, listed before the index is
/// loaded: a backup that took its lock before a pack's mark was durable
/// holds off its deletion.
pub fn other_lock_times(repo: &Repository, mine: &[&LockGuard]) -> Result<Vec<i64>, CliError> {
    let now = crate::repo::now_ns();
    Ok(repo
        .list_locks()?
        .into_iter()
        .filter(|(_, l)| !mine.iter().any(|g| g.is_mine(l)) && !is_stale(l, now))
        .map(|(_, l)| l.time_ns)
        .collect())
}

/// A lock held by the caller, checked before each step that changes the
/// repository.
pub struct Held(pub LockWatch);

impl prune::LockCheck for Held {
    fn still_held(&self) -> Result<(), String> {
        self.0.ensure_held().map_err(|e| e.to_string())
    }
}

/// Prunes an opened repository under a lock held by the caller: a prune
/// lock, or an exclusive one for `--instant-delete` (also used by
/// `forget --prune`).
pub fn run_on(
    ctx: &Context,
    repo: &IndexedRepository,
    args: &PruneArgs,
    dry_run: bool,
    lock_times: &[i64],
    lock: &dyn prune::LockCheck,
) -> Result<i32, CliError> {
    let opts = PruneOptions {
        max_unused: args.max_unused,
        max_repack_bytes: args.max_repack_size,
        repack_small: !args.no_repack_small,
        grace: args.grace,
        dry_run,
        instant_delete: args.instant_delete,
        connections: ctx.global.connections.max(1),
    };
    if ctx.interactive {
        eprintln!("pruning {}", repo.storage().location());
    }
    let report = prune::prune(repo, &opts, lock_times, prune::SystemClock, lock)?;
    if ctx.global.json {
        output::print_json(&report)?;
    } else if !ctx.global.quiet {
        print_human(&report)?;
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
