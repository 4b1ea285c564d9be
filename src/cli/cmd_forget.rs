//! `cairn forget`: remove snapshots by id or by a retention policy.
//!
//! The planning and the removal live in [`crate::forget`]; this file parses
//! the options, prints the plan and asks the library to carry it out.

use serde_json::{json, Value};

use super::cmd_snapshots::{self, FilterArgs};
use super::{output, CliError, Context};
use crate::forget::{self, CalendarDuration, Decision, ForgetError, GroupBy, GroupPlan, Plan, Policy, SnapshotInfo};
use crate::repo::{LockGuard, LockKind};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to remove (ids, unique prefixes or `latest`); without any,
    /// the --keep-* policy decides.
    #[arg(value_name = "SNAPSHOT")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Keep the N newest snapshots (-1 or `unlimited`: all).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub keep_last: Option<String>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub keep_hourly: Option<String>,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub keep_daily: Option<String>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub keep_weekly: Option<String>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub keep_monthly: Option<String>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub keep_yearly: Option<String>,
    /// Keep snapshots newer than DURATION (e.g. 1y2m3d4h) before the newest one.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub keep_within: Option<String>,
    /// Keep the newest snapshot of each hour within DURATION of the newest one.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub keep_within_hourly: Option<String>,
    /// Keep the newest snapshot of each day within DURATION of the newest one.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub keep_within_daily: Option<String>,
    /// Keep the newest snapshot of each ISO week within DURATION of the newest one.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub keep_within_weekly: Option<String>,
    /// Keep the newest snapshot of each month within DURATION of the newest one.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub keep_within_monthly: Option<String>,
    /// Keep the newest snapshot of each year within DURATION of the newest one.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub keep_within_yearly: Option<String>,
    /// Keep snapshots with these tags; `a,b` needs both (repeatable: either).
    #[arg(long = "keep-tag", value_name = "TAGS")]
    pub keep_tags: Vec<String>,
    /// Apply the policy per group of host, paths and/or tags ('' for one group).
    #[arg(short = 'g', long, value_name = "FIELDS", default_value = "host,paths")]
    pub group_by: String,
    /// Show what would be removed; remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Run prune afterwards (with the prune options below).
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_args: super::cmd_prune::PruneArgs,
}

/// A `--keep-*` count: a number, or -1 / `unlimited` for no limit.
fn count(option: &str, value: Option<&str>) -> Result<i32, CliError> {
    let Some(text) = value.map(str::trim) else {
        return Ok(0);
    };
    let n = match text {
        "unlimited" => forget::UNLIMITED,
        _ => text.parse::<i32>().map_err(|_| {
            CliError::Usage(format!(
                "{option} {text:?}: not a count (give a number, or -1 or unlimited for no limit)"
            ))
        })?,
    };
    if n < forget::UNLIMITED {
        return Err(ForgetError::BadCount {
            option: option.to_owned(),
            value: n,
        }
        .into());
    }
    Ok(n)
}

/// A `--keep-within*` duration.
fn duration(option: &str, value: Option<&str>) -> Result<CalendarDuration, CliError> {
    match value {
        None => Ok(CalendarDuration::default()),
        Some(text) => text
            .parse()
            .map_err(|e: ForgetError| CliError::Usage(format!("{option}: {e}"))),
    }
}

/// The policy the options describe (possibly empty).
pub fn policy(args: &Args) -> Result<Policy, CliError> {
    let tags = args
        .keep_tags
        .iter()
        .map(|set| {
            let mut tags: Vec<String> = Vec::new();
            for t in set.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.to_owned());
                }
            }
            tags
        })
        .filter(|set| !set.is_empty())
        .collect();
    Ok(Policy {
        last: count("--keep-last", args.keep_last.as_deref())?,
        hourly: count("--keep-hourly", args.keep_hourly.as_deref())?,
        daily: count("--keep-daily", args.keep_daily.as_deref())?,
        weekly: count("--keep-weekly", args.keep_weekly.as_deref())?,
        monthly: count("--keep-monthly", args.keep_monthly.as_deref())?,
        yearly: count("--keep-yearly", args.keep_yearly.as_deref())?,
        within: duration("--keep-within", args.keep_within.as_deref())?,
        within_hourly: duration("--keep-within-hourly", args.keep_within_hourly.as_deref())?,
        within_daily: duration("--keep-within-daily", args.keep_within_daily.as_deref())?,
        within_weekly: duration("--keep-within-weekly", args.keep_within_weekly.as_deref())?,
        within_monthly: duration("--keep-within-monthly", args.keep_within_monthly.as_deref())?,
        within_yearly: duration("--keep-within-yearly", args.keep_within_yearly.as_deref())?,
        tags,
    })
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    // Every option is checked before the repository is touched.
    let policy = policy(args)?;
    let group_by: GroupBy = args.group_by.parse()?;
    let by_ids = !args.ids.is_empty();
    if by_ids && !policy.is_empty() {
        return Err(CliError::Usage(
            "give snapshot ids or --keep-* options, not both".to_owned(),
        ));
    }
    if !by_ids && policy.is_empty() {
        return Err(ForgetError::NoPolicy.into());
    }
    if args.prune {
        args.prune_args.check()?;
    }
    let repo = ctx.open()?;
    let locks = take_locks(ctx, &repo, args)?;
    let filter = args.filter.filter();
    let plan = if by_ids {
        let list = cmd_snapshots::select(&repo, &args.ids, &filter)?;
        let infos = list.iter().map(|(id, s)| SnapshotInfo::from_snapshot(*id, s)).collect();
        Plan::by_ids(infos, group_by)
    } else {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        Plan::by_policy(forget::load(&repo, &filter)?, &policy, group_by, &chrono::Local, now)?
    };
    let human = !ctx.global.json && !ctx.global.quiet;
    if human {
        if !by_ids {
            output::line(format_args!("applying policy: {policy}"))?;
        }
        for group in &plan.groups {
            print_group(group)?;
        }
    }
    let removed = if args.dry_run {
        Vec::new()
    } else {
        for lock in &locks {
            lock.ensure_held()?;
        }
        forget::apply(&repo, &plan, ctx.global.connections)?
    };
    if ctx.global.json {
        print_json(&plan, (!by_ids).then_some(&policy), args.dry_run)?;
        return prune_after(ctx, repo, &locks, args);
    }
    if human {
        output::line("")?;
        if args.dry_run {
            output::line(format_args!(
                "dry run: would remove {}; nothing was removed",
                snapshots(plan.removed())
            ))?;
        } else {
            output::line(format_args!("removed {}", snapshots(removed.len())))?;
        }
    }
    prune_after(ctx, repo, &locks, args)
}

/// The locks forget runs under, all taken before anything changes: none for
/// a dry run; a forget lock, which lets backups and a prune run beside it;
/// with `--prune` also a prune lock, or with `--instant-delete` one
/// exclusive lock for both.
fn take_locks(ctx: &Context, repo: &crate::repo::Repository, args: &Args) -> Result<Vec<LockGuard>, CliError> {
    if args.dry_run {
        return Ok(Vec::new());
    }
    if args.prune && args.prune_args.instant_delete {
        return Ok(vec![repo.lock(LockKind::Exclusive, ctx.retry_lock())?]);
    }
    let mut locks = vec![repo.lock(LockKind::Forget, ctx.retry_lock())?];
    if args.prune {
        locks.push(repo.lock(LockKind::Prune, ctx.retry_lock())?);
    }
    Ok(locks)
}

/// `--prune`: prune the repository the snapshots were removed from, under
/// the last of the locks taken for it.
fn prune_after(
    ctx: &Context,
    repo: crate::repo::Repository,
    locks: &[LockGuard],
    args: &Args,
) -> Result<i32, CliError> {
    use super::cmd_prune::run_on;
    use crate::prune::safety::{other_lock_times, Held};
    if !args.prune {
        return Ok(0);
    }
    match locks.last() {
        Some(lock) => {
            let mine: Vec<&LockGuard> = locks.iter().collect();
            let times = other_lock_times(&repo, &mine)?;
            let repo = repo.load_index_in_memory()?;
            run_on(ctx, &repo, &args.prune_args, args.dry_run, &times, &Held(lock.watch()))
        }
        // A dry run: nothing changes, so nothing needs holding.
        None => {
            let repo = repo.load_index_in_memory()?;
            run_on(ctx, &repo, &args.prune_args, true, &[], &())
        }
    }
}

fn snapshots(n: usize) -> String {
    format!("{n} snapshot{}", if n == 1 { "" } else { "s" })
}

fn print_group(group: &GroupPlan) -> Result<(), CliError> {
    let header: Vec<String> = ["ID", "Time", "Host", "Tags", "Paths", "Action", "Reasons"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    // Oldest first, as `cairn snapshots` lists them.
    for d in group.decisions.iter().rev() {
        let s = &d.snapshot;
        let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
        let lines = reasons.len().max(s.paths.len()).max(1);
        for i in 0..lines {
            let first = i == 0;
            rows.push(vec![
                if first { s.id.short() } else { String::new() },
                if first {
                    output::local_time(s.time_ns)
                } else {
                    String::new()
                },
                if first { s.hostname.clone() } else { String::new() },
                if first { s.tags.join(",") } else { String::new() },
                s.paths.get(i).cloned().unwrap_or_default(),
                match (first, d.keep) {
                    (false, _) => String::new(),
                    (true, true) => "keep".to_owned(),
                    (true, false) => "remove".to_owned(),
                },
                reasons.get(i).cloned().unwrap_or_default(),
            ]);
        }
    }
    output::line("")?;
    let key = &group.key;
    if key.hostname.is_none() && key.paths.is_none() && key.tags.is_none() {
        output::line("all snapshots:")?;
    } else {
        output::line(format_args!("snapshots of {key}:"))?;
    }
    output::table(&header, &rows)?;
    output::line(format_args!(
        "keep {}, remove {}",
        snapshots(group.kept()),
        snapshots(group.removed())
    ))
}

fn decision_json(d: &Decision) -> Value {
    let s = &d.snapshot;
    json!({
        "id": s.id.to_hex(),
        "short_id": s.id.short(),
        "time": output::rfc3339(s.time_ns),
        "host": s.hostname,
        "paths": s.paths,
        "tags": s.tags,
        "reasons": d.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn print_json(plan: &Plan, policy: Option<&Policy>, dry_run: bool) -> Result<i32, CliError> {
    let groups: Vec<Value> = plan
        .groups
        .iter()
        .map(|g| {
            let pick = |keep: bool| -> Vec<Value> {
                g.decisions
                    .iter()
                    .rev()
                    .filter(|d| d.keep == keep)
                    .map(decision_json)
                    .collect()
            };
            json!({
                "host": g.key.hostname,
                "paths": g.key.paths,
                "tags": g.key.tags,
                "keep": pick(true),
                "remove": pick(false),
            })
        })
        .collect();
    output::print_json(&json!({
        "dry_run": dry_run,
        "policy": policy.map(ToString::to_string),
        "groups": groups,
        "kept": plan.kept(),
        "removed": plan.removed(),
    }))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Args {
        let cli = crate::cli::Cli::try_parse_from(["cairn", "forget"].iter().chain(args)).unwrap();
        match cli.command {
            crate::cli::Command::Forget(a) => *a,
            _ => panic!("not a forget command"),
        }
    }

    #[test]
    fn options_make_a_policy() {
        let p = policy(&parse(&[
            "--keep-last",
            "-1",
            "--keep-daily",
            "7",
            "--keep-yearly",
            "unlimited",
            "--keep-within",
            "1y2m",
            "--keep-within-weekly",
            "30d",
            "--keep-tag",
            "a,b,a",
            "--keep-tag",
            "c",
        ]))
        .unwrap();
        assert_eq!(p.last, forget::UNLIMITED);
        assert_eq!(p.daily, 7);
        assert_eq!(p.yearly, forget::UNLIMITED);
        assert_eq!(p.weekly, 0);
        assert_eq!(p.within, CalendarDuration::new(1, 2, 0, 0));
        assert_eq!(p.within_weekly, CalendarDuration::new(0, 0, 30, 0));
        assert_eq!(
            p.tags,
            vec![vec!["a".to_string(), "b".to_string()], vec!["c".to_string()]]
        );
        assert!(policy(&parse(&[])).unwrap().is_empty());
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_option() {
        for (args, needle) in [
            (&["--keep-daily", "x"][..], "--keep-daily \"x\""),
            (&["--keep-weekly", "-2"][..], "--keep-weekly -2"),
            (&["--keep-within", "3w"][..], "--keep-within: duration \"3w\""),
            (&["--keep-within-daily", "5"][..], "--keep-within-daily"),
        ] {
            let err = policy(&parse(args)).unwrap_err();
            assert_eq!(err.exit_code(), super::super::error::exit::USAGE, "{args:?}");
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
    }
}
