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
use std::path::{Path, PathBuf};

use serde_json::json;

use super::cmd_snapshots::FilterArgs;
use super::{output, CliError, Context};
use crate::format::tree::{Content, Node, NodeKind, Tree};
use crate::format::BlobKind;
use crate::id::{BlobId, TreeId};
use crate::repo::{IndexedRepository, TreeBudget};

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
        budget: TreeBudget::default(),
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
    /// Entries compared, against the limits of format.md §14.
    budget: TreeBudget,
}

/// Directories to compare below an entry (`None` on a side: absent).
type Descend = Option<(Option<TreeId>, Option<TreeId>)>;

/// Two directories being compared and the next entry of each.
struct Frame {
    old: Tree,
    new: Tree,
    base: PathBuf,
    i: usize,
    j: usize,
}

/// Which side's entry comes next in name order.
#[derive(Clone, Copy)]
enum Next {
    Both,
    Old,
    New,
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

    /// Compares two directories (`None`: absent on that side) at `base`,
    /// depth first without recursion, within the bounds of a
    /// [`TreeBudget`] (shared subtrees count each time they are compared).
    fn trees(&mut self, old: Option<TreeId>, new: Option<TreeId>, base: &Path) -> Result<(), CliError> {
        let mut stack: Vec<Frame> = Vec::new();
        if let Some(frame) = self.open(old, new, base.to_owned(), 1)? {
            stack.push(frame);
        }
        while let Some(top) = stack.last_mut() {
            let (i, j) = (top.i, top.j);
            let next = match (top.old.nodes.get(i), top.new.nodes.get(j)) {
                (Some(a), Some(b)) if a.name == b.name => Next::Both,
                (Some(a), b) if b.is_none_or(|b| a.name < b.name) => Next::Old,
                (_, Some(_)) => Next::New,
                (_, None) => {
                    stack.pop();
                    continue;
                }
            };
            match next {
                Next::Both => (top.i, top.j) = (i + 1, j + 1),
                Next::Old => top.i = i + 1,
                Next::New => top.j = j + 1,
            }
            let top = &stack[stack.len() - 1];
            let (descend, path) = match next {
                Next::Both => {
                    let (a, b) = (&top.old.nodes[i], &top.new.nodes[j]);
                    let path = top.base.join(OsStr::from_bytes(&a.name));
                    (self.pair(a, b, &path)?, path)
                }
                Next::Old => {
                    let a = &top.old.nodes[i];
                    let path = top.base.join(OsStr::from_bytes(&a.name));
                    (self.one(a, &path, Side::Old)?, path)
                }
                Next::New => {
                    let b = &top.new.nodes[j];
                    let path = top.base.join(OsStr::from_bytes(&b.name));
                    (self.one(b, &path, Side::New)?, path)
                }
            };
            if let Some((old, new)) = descend {
                let depth = stack.len() + 1;
                if let Some(frame) = self.open(old, new, path, depth)? {
                    stack.push(frame);
                }
            }
        }
        Ok(())
    }

    /// Reads two directories to compare, whose entries lie `depth` deep;
    /// `None` when they are the same tree.
    fn open(
        &mut self,
        old: Option<TreeId>,
        new: Option<TreeId>,
        base: PathBuf,
        depth: usize,
    ) -> Result<Option<Frame>, CliError> {
        if old.is_some() && old == new {
            return Ok(None);
        }
        let Some(named) = new.or(old) else { return Ok(None) };
        let old = self.load(old)?;
        let new = self.load(new)?;
        self.budget.visit(&named, depth, old.nodes.len() + new.nodes.len())?;
        Ok(Some(Frame {
            old,
            new,
            base,
            i: 0,
            j: 0,
        }))
    }

    /// An entry present on one side only; returns the directories to
    /// compare below it.
    fn one(&mut self, node: &Node, path: &Path, side: Side) -> Result<Descend, CliError> {
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
        Ok(match (is_dir, node.subtree, side) {
            (true, Some(sub), Side::Old) => Some((Some(sub), None)),
            (true, Some(sub), Side::New) => Some((None, Some(sub))),
            _ => None,
        })
    }

    /// An entry present on both sides; returns the directories to compare
    /// below it.
    fn pair(&mut self, a: &Node, b: &Node, path: &Path) -> Result<Descend, CliError> {
        let b_dir = b.kind == NodeKind::Dir;
        if a.kind != b.kind {
            self.count_changed(b_dir);
            self.report('T', path, b_dir)?;
            self.collect(a, Side::Old);
            self.collect(b, Side::New);
            let old_sub = a.subtree.filter(|_| a.kind == NodeKind::Dir);
            let new_sub = b.subtree.filter(|_| b_dir);
            return Ok(Some((old_sub, new_sub)));
        }
        if b_dir {
            if !same_meta(a, b, false) {
                self.count_changed(true);
                self.report('U', path, true)?;
            }
            return Ok(Some((a.subtree, b.subtree)));
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
        Ok(None)
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
        let slash = if dir { "/" } else { "" };
        if self.json {
            // JSON escapes control characters itself; names stay exact.
            let shown = format!("{}{slash}", path.to_string_lossy());
            let v = json!({ "message_type": "change", "path": shown, "modifier": modifier.to_string() });
            writeln!(self.out, "{v}")?;
        } else if !self.quiet {
            writeln!(self.out, "{modifier}    {}{slash}", crate::format::escape::path(path))?;
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
