//! `cairn diff SNAP1 SNAP2`: what changed between two snapshots.
//!
//! Both trees are walked side by side in name order. Subtrees with the same
//! id are identical and skipped without being read. Each change is one line:
//! `+` added, `-` removed, `M` content changed, `U` metadata changed only,
//! `T` type changed. Directories end in `/`. Directory times are ignored
//! (they change whenever an entry does).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::json;

use super::cmd_snapshots::FilterArgs;
use super::{output, CliError, Context};
use crate::format::tree::{Content, Node, NodeKind, Tree};
use crate::format::BlobKind;
use crate::id::{BlobId, TreeId};
use crate::repo::IndexedRepository;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The older snapshot (`latest`, an id or a unique prefix).
    #[arg(value_name = "SNAPSHOT1")]
    pub old: String,
    /// The newer snapshot.
    #[arg(value_name = "SNAPSHOT2")]
    pub new: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Counts of what changed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffStats {
    pub files_added: u64,
    pub files_removed: u64,
    pub files_changed: u64,
    pub dirs_added: u64,
    pub dirs_removed: u64,
    pub dirs_changed: u64,
    pub blobs_added: u64,
    pub blobs_removed: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let repo = ctx.open_indexed()?;
    let filter = args.filter.filter();
    let (old_id, old) = repo.find_snapshot(&args.old, &filter)?;
    let (new_id, new) = repo.find_snapshot(&args.new, &filter)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !ctx.global.json && !ctx.global.quiet {
        writeln!(out, "comparing snapshot {} to {}:", old_id.short(), new_id.short())?;
    }
    let mut differ = Differ {
        repo: &repo,
        json: ctx.global.json,
        quiet: ctx.global.quiet,
        out: &mut out,
        stats: DiffStats::default(),
        old_blobs: HashSet::new(),
        new_blobs: HashSet::new(),
    };
    differ.trees(Some(old.tree), Some(new.tree), Path::new("/"))?;
    let stats = differ.finish();
    if ctx.global.json {
        let mut v = serde_json::to_value(&stats).map_err(|e| CliError::Other(format!("encoding JSON: {e}")))?;
        v["message_type"] = json!("statistics");
        v["source_snapshot"] = json!(old_id.to_hex());
        v["target_snapshot"] = json!(new_id.to_hex());
        writeln!(out, "{v}")?;
    } else {
        writeln!(out)?;
        writeln!(out, "{}", totals_line(&stats))?;
    }
    out.flush()?;
    Ok(0)
}

/// The human summary of a diff.
pub fn totals_line(s: &DiffStats) -> String {
    format!(
        "files: {} added, {} removed, {} changed; dirs: {} added, {} removed, {} changed; \
         data: {} added in {}, {} removed in {}",
        s.files_added,
        s.files_removed,
        s.files_changed,
        s.dirs_added,
        s.dirs_removed,
        s.dirs_changed,
        output::bytes(s.bytes_added),
        blobs(s.blobs_added),
        output::bytes(s.bytes_removed),
        blobs(s.blobs_removed)
    )
}

fn blobs(n: u64) -> String {
    format!("{n} blob{}", if n == 1 { "" } else { "s" })
}

struct Differ<'a, W: Write> {
    repo: &'a IndexedRepository,
    json: bool,
    quiet: bool,
    out: &'a mut W,
    stats: DiffStats,
    /// Data blobs of removed and changed entries on the old side.
    old_blobs: HashSet<BlobId>,
    /// Data blobs of added and changed entries on the new side.
    new_blobs: HashSet<BlobId>,
}

#[derive(Clone, Copy)]
enum Side {
    Old,
    New,
}

impl<W: Write> Differ<'_, W> {
    fn load(&self, tree: Option<TreeId>) -> Result<Tree, CliError> {
        match tree {
            Some(id) => Ok(self.repo.load_tree(&id)?),
            None => Ok(Tree::default()),
        }
    }

    /// Compares two directories (`None`: absent on that side) at `base`.
    fn trees(&mut self, old: Option<TreeId>, new: Option<TreeId>, base: &Path) -> Result<(), CliError> {
        if old.is_some() && old == new {
            return Ok(());
        }
        let old = self.load(old)?;
        let new = self.load(new)?;
        let (mut i, mut j) = (0, 0);
        while i < old.nodes.len() || j < new.nodes.len() {
            let a = old.nodes.get(i);
            let b = new.nodes.get(j);
            match (a, b) {
                (Some(a), Some(b)) if a.name == b.name => {
                    self.pair(a, b, &base.join(OsStr::from_bytes(&a.name)))?;
                    i += 1;
                    j += 1;
                }
                (Some(a), b) if b.is_none_or(|b| a.name < b.name) => {
                    self.one(a, &base.join(OsStr::from_bytes(&a.name)), Side::Old)?;
                    i += 1;
                }
                (_, Some(b)) => {
                    self.one(b, &base.join(OsStr::from_bytes(&b.name)), Side::New)?;
                    j += 1;
                }
                (_, None) => break,
            }
        }
        Ok(())
    }

    /// An entry present on one side only, with everything below it.
    fn one(&mut self, node: &Node, path: &Path, side: Side) -> Result<(), CliError> {
        let is_dir = node.kind == NodeKind::Dir;
        let (modifier, counter) = match (side, is_dir) {
            (Side::Old, true) => ('-', &mut self.stats.dirs_removed),
            (Side::Old, false) => ('-', &mut self.stats.files_removed),
            (Side::New, true) => ('+', &mut self.stats.dirs_added),
            (Side::New, false) => ('+', &mut self.stats.files_added),
        };
        *counter += 1;
        self.report(modifier, path, is_dir)?;
        self.collect(node, side);
        if let (true, Some(sub)) = (is_dir, node.subtree) {
            match side {
                Side::Old => self.trees(Some(sub), None, path)?,
                Side::New => self.trees(None, Some(sub), path)?,
            }
        }
        Ok(())
    }

    /// An entry present on both sides.
    fn pair(&mut self, a: &Node, b: &Node, path: &Path) -> Result<(), CliError> {
        let b_dir = b.kind == NodeKind::Dir;
        if a.kind != b.kind {
            self.count_changed(b_dir);
            self.report('T', path, b_dir)?;
            self.collect(a, Side::Old);
            self.collect(b, Side::New);
            let old_sub = a.subtree.filter(|_| a.kind == NodeKind::Dir);
            let new_sub = b.subtree.filter(|_| b_dir);
            return self.trees(old_sub, new_sub, path);
        }
        if b_dir {
            if !same_meta(a, b, false) {
                self.count_changed(true);
                self.report('U', path, true)?;
            }
            return self.trees(a.subtree, b.subtree, path);
        }
        let content_changed = a.content != b.content || a.link_target != b.link_target || a.rdev != b.rdev;
        if content_changed {
            self.count_changed(false);
            self.report('M', path, false)?;
            self.collect(a, Side::Old);
            self.collect(b, Side::New);
        } else if !same_meta(a, b, true) {
            self.count_changed(false);
            self.report('U', path, false)?;
        }
        Ok(())
    }

    fn count_changed(&mut self, dir: bool) {
        if dir {
            self.stats.dirs_changed += 1;
        } else {
            self.stats.files_changed += 1;
        }
    }

    fn collect(&mut self, node: &Node, side: Side) {
        let set = match side {
            Side::Old => &mut self.old_blobs,
            Side::New => &mut self.new_blobs,
        };
        for c in &node.content {
            if let Content::Blob(id) = c {
                set.insert(*id);
            }
        }
    }

    fn report(&mut self, modifier: char, path: &Path, dir: bool) -> Result<(), CliError> {
        let mut shown = path.to_string_lossy().into_owned();
        if dir {
            shown.push('/');
        }
        if self.json {
            let v = json!({ "message_type": "change", "path": shown, "modifier": modifier.to_string() });
            writeln!(self.out, "{v}")?;
        } else if !self.quiet {
            writeln!(self.out, "{modifier}    {shown}")?;
        }
        Ok(())
    }

    /// Adds the sizes of blobs only one side references.
    fn finish(mut self) -> DiffStats {
        let index = self.repo.index();
        let size = |id: &BlobId| index.get(BlobKind::Data, id).map_or(0, |l| u64::from(l.raw_length));
        for id in self.new_blobs.difference(&self.old_blobs) {
            self.stats.blobs_added += 1;
            self.stats.bytes_added += size(id);
        }
        for id in self.old_blobs.difference(&self.new_blobs) {
            self.stats.blobs_removed += 1;
            self.stats.bytes_removed += size(id);
        }
        self.stats
    }
}

/// Whether two entries of the same type have the same metadata; times only
/// count when `with_mtime`.
fn same_meta(a: &Node, b: &Node, with_mtime: bool) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.user == b.user
        && a.group == b.group
        && a.xattrs == b.xattrs
        && (!with_mtime || (a.mtime_ns == b.mtime_ns && a.size == b.size))
}
