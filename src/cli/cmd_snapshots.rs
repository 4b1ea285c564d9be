//! `cairn snapshots`: list snapshots as a table or as JSON.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{output, CliError, Context};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::Repository;

/// Options that narrow which snapshots a command sees (and which one `latest` is).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags; `a,b` needs both, repeating means either (repeatable).
    #[arg(long = "tag", value_name = "TAGS")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable; all must match).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show only these snapshots (ids, unique prefixes or `latest`).
    #[arg(value_name = "SNAPSHOT")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show only the last N snapshots of each host and set of paths.
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Leave out the paths and size columns.
    #[arg(short, long)]
    pub compact: bool,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let repo = ctx.open()?;
    let filter = args.filter.filter();
    let mut list = select(&repo, &args.ids, &filter)?;
    if let Some(n) = args.latest {
        list = latest_per_group(list, n);
    }
    if ctx.global.json {
        let items: Vec<Value> = list.iter().map(|(id, s)| snapshot_json(id, s)).collect();
        output::print_json(&items)?;
    } else {
        print_table(&list, args.compact)?;
    }
    Ok(0)
}

/// The snapshots named by `ids` (all when empty) that pass `filter`, oldest first.
pub fn select(
    repo: &Repository,
    ids: &[String],
    filter: &SnapshotFilter,
) -> Result<Vec<(SnapshotId, Snapshot)>, CliError> {
    if ids.is_empty() {
        let mut all = repo.list_snapshots()?;
        all.retain(|(_, s)| filter.matches(s));
        return Ok(all);
    }
    let mut out: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for spec in ids {
        let found = repo.find_snapshot(spec, filter)?;
        if !out.iter().any(|(id, _)| *id == found.0) {
            out.push(found);
        }
    }
    out.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Keeps the newest `n` snapshots of each (host, paths) group, oldest first.
pub fn latest_per_group(list: Vec<(SnapshotId, Snapshot)>, n: usize) -> Vec<(SnapshotId, Snapshot)> {
    let mut seen: HashMap<(String, Vec<String>), usize> = HashMap::new();
    let mut kept: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for (id, snap) in list.into_iter().rev() {
        let mut paths = snap.path_strings();
        paths.sort();
        let count = seen.entry((snap.hostname.clone(), paths)).or_insert(0);
        if *count < n {
            *count += 1;
            kept.push((id, snap));
        }
    }
    kept.reverse();
    kept
}

/// A snapshot as JSON, shared by `snapshots --json`, `ls --json` and `cat snapshot`.
pub fn snapshot_json(id: &SnapshotId, s: &Snapshot) -> Value {
    let m = &s.summary;
    json!({
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": output::rfc3339(s.time_ns),
        "tree": s.tree.to_hex(),
        "paths": s.path_strings(),
        "host": s.hostname,
        "username": s.username,
        "uid": s.uid,
        "gid": s.gid,
        "tags": s.tags,
        "parent": s.parent.map(|p| p.to_hex()),
        "original": s.original.map(|p| p.to_hex()),
        "excludes": s.excludes,
        "program_version": s.program_version,
        "partial": s.partial,
        "summary": {
            "backup_start": output::rfc3339(m.backup_start_ns),
            "backup_end": output::rfc3339(m.backup_end_ns),
            "files_new": m.files_new,
            "files_changed": m.files_changed,
            "files_unchanged": m.files_unchanged,
            "dirs_new": m.dirs_new,
            "dirs_changed": m.dirs_changed,
            "dirs_unchanged": m.dirs_unchanged,
            "errors": m.errors,
            "data_blobs": m.data_blobs,
            "tree_blobs": m.tree_blobs,
            "data_added": m.data_added,
            "data_added_packed": m.data_added_packed,
            "total_files_processed": m.total_files_processed,
            "total_bytes_processed": m.total_bytes_processed,
        },
    })
}

fn print_table(list: &[(SnapshotId, Snapshot)], compact: bool) -> Result<(), CliError> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let header: Vec<String> = if compact {
        vec!["ID", "Time", "Host", "Tags"]
    } else {
        vec!["ID", "Time", "Host", "Tags", "Paths", "Size"]
    }
    .into_iter()
    .map(str::to_owned)
    .collect();
    for (id, s) in list {
        let mut short = id.short();
        if s.partial {
            short.push_str(" (partial)");
        }
        let mut row = vec![
            short,
            output::local_time(s.time_ns),
            s.hostname.clone(),
            s.tags.join(","),
        ];
        if !compact {
            row.push(s.path_strings().first().cloned().unwrap_or_default());
            row.push(output::bytes(s.summary.total_bytes_processed));
        }
        rows.push(row);
        if !compact {
            for path in s.path_strings().iter().skip(1) {
                rows.push(vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    path.clone(),
                ]);
            }
        }
    }
    output::table(&header, &rows)?;
    let n = list.len();
    output::line(format_args!("{n} snapshot{}", if n == 1 { "" } else { "s" }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;
    use crate::id::TreeId;

    fn snap(time_ns: i64, host: &str, paths: &[&str]) -> Snapshot {
        Snapshot {
            time_ns,
            tree: TreeId::default(),
            paths: paths.iter().map(|p| p.into()).collect(),
            hostname: host.into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: vec![],
            parent: None,
            original: None,
            excludes: vec![],
            program_version: "t".into(),
            partial: false,
            summary: Summary::default(),
        }
    }

    #[test]
    fn latest_keeps_newest_per_host_and_paths() {
        let list: Vec<_> = [
            (1, "a", vec!["/x"]),
            (2, "b", vec!["/x"]),
            (3, "a", vec!["/x"]),
            (4, "a", vec!["/y"]),
            (5, "a", vec!["/x"]),
        ]
        .into_iter()
        .map(|(t, h, p)| (SnapshotId::from_bytes([t as u8; 32]), snap(t, h, &p)))
        .collect();
        let kept = latest_per_group(list, 1);
        let times: Vec<i64> = kept.iter().map(|(_, s)| s.time_ns).collect();
        assert_eq!(times, vec![2, 4, 5]);
    }
}
