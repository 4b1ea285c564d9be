//! `cairn ls SNAPSHOT[:PATH]`: list the entries of a snapshot.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use super::cmd_snapshots::{snapshot_json, FilterArgs};
use super::{output, CliError, Context};
use crate::format::escape;
use crate::format::tree::{Content, Node, NodeKind, Tree};
use crate::id::TreeId;
use crate::repo::{IndexedRepository, TreeBudget};
use crate::restore::{subtree, RestoreError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot (`latest`, an id or a unique prefix), optionally with a path inside it: `ID:/etc`.
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    pub snapshot: std::ffi::OsString,
    /// Show mode, owner, group, size and modification time.
    #[arg(short, long)]
    pub long: bool,
    /// Descend into directories: on by default for the whole snapshot, off
    /// for `SNAPSHOT:PATH` (`--recursive` or `--recursive=false` decide).
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub recursive: Option<bool>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let repo = ctx.open_indexed()?;
    let (spec, path) = crate::restore::split_spec(&args.snapshot);
    let (id, snap) = repo.find_snapshot(&spec, &args.filter.filter())?;
    let target = locate(&repo, snap.tree, path)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if ctx.global.json {
        let mut first = snapshot_json(&id, &snap);
        first["struct_type"] = json!("snapshot");
        writeln!(out, "{first}")?;
    }
    let mut lister = Lister {
        repo: &repo,
        json: ctx.global.json,
        long: args.long,
        recursive: args
            .recursive
            .unwrap_or(matches!(&target, Target::Dir(_, base) if base == Path::new("/"))),
        out: &mut out,
    };
    match target {
        Target::Dir(tree, base) => lister.list(tree, &base)?,
        Target::Entry(node, path) => lister.print(&node, &path)?,
    }
    out.flush()?;
    Ok(0)
}

/// What `SNAPSHOT:PATH` names.
enum Target {
    /// A directory's tree and its path in the snapshot.
    Dir(TreeId, PathBuf),
    /// A single non-directory entry and its path.
    Entry(Box<Node>, PathBuf),
}

/// Finds the tree or entry at `path` below the root tree `root`.
fn locate(repo: &IndexedRepository, root: TreeId, path: &Path) -> Result<Target, CliError> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => names.push(name),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(RestoreError::InvalidSubpath(path.display().to_string()).into())
            }
        }
    }
    let Some((last, parents)) = names.split_last() else {
        return Ok(Target::Dir(root, PathBuf::from("/")));
    };
    let parent_path: PathBuf = std::iter::once(OsStr::new("/"))
        .chain(parents.iter().copied())
        .collect();
    let parent = subtree(repo, root, &parent_path)?;
    let full = parent_path.join(last);
    let listing = repo.load_tree(&parent)?;
    let node = listing
        .find(last.as_bytes())
        .ok_or_else(|| RestoreError::PathNotFound {
            path: full.display().to_string(),
            component: last.to_string_lossy().into_owned(),
        })?;
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(tree)) => Ok(Target::Dir(tree, full)),
        _ => Ok(Target::Entry(Box::new(node.clone()), full)),
    }
}

struct Lister<'a, W: Write> {
    repo: &'a IndexedRepository,
    json: bool,
    long: bool,
    recursive: bool,
    out: &'a mut W,
}

impl<W: Write> Lister<'_, W> {
    /// Prints the entries of `tree`, whose path is `base`, depth first,
    /// within the bounds of a [`TreeBudget`] (the repository may be hostile).
    fn list(&mut self, tree: TreeId, base: &Path) -> Result<(), CliError> {
        let mut budget = TreeBudget::default();
        // Directories being listed: their tree, their path, the next entry.
        let mut stack: Vec<(Tree, PathBuf, usize)> = Vec::new();
        let repo = self.repo;
        let open = |budget: &mut TreeBudget, id: TreeId, depth: usize| -> Result<Tree, CliError> {
            let listing = repo.load_tree(&id)?;
            budget.visit(&id, depth, listing.nodes.len())?;
            Ok(listing)
        };
        let root = open(&mut budget, tree, 1)?;
        stack.push((root, base.to_owned(), 0));
        while let Some((listing, dir, next)) = stack.last_mut() {
            let Some(node) = listing.nodes.get(*next) else {
                stack.pop();
                continue;
            };
            *next += 1;
            let path = dir.join(OsStr::from_bytes(&node.name));
            let sub = match (self.recursive, node.kind, node.subtree) {
                (true, NodeKind::Dir, Some(sub)) => Some(sub),
                _ => None,
            };
            self.print(node, &path)?;
            if let Some(sub) = sub {
                let depth = stack.len() + 1;
                let below = open(&mut budget, sub, depth)?;
                stack.push((below, path, 0));
            }
        }
        Ok(())
    }

    fn print(&mut self, node: &Node, path: &Path) -> Result<(), CliError> {
        if self.json {
            let mut v = node_json(node, Some(path));
            v["struct_type"] = json!("node");
            writeln!(self.out, "{v}")?;
        } else if self.long {
            writeln!(self.out, "{}", long_line(node, path))?;
        } else {
            writeln!(self.out, "{}", escape::path(path))?;
        }
        Ok(())
    }
}

/// One `ls -l` line: mode, owner, group, size, mtime, path (and link target).
fn long_line(node: &Node, path: &Path) -> String {
    let owner = if node.user.is_empty() {
        node.uid.to_string()
    } else {
        escape::name(node.user.as_bytes()).to_string()
    };
    let group = if node.group.is_empty() {
        node.gid.to_string()
    } else {
        escape::name(node.group.as_bytes()).to_string()
    };
    let mut line = format!(
        "{} {:>8} {:>8} {:>12} {} {}",
        mode_string(node.kind, node.mode),
        owner,
        group,
        node.size,
        output::local_time(node.mtime_ns),
        escape::path(path)
    );
    if let Some(target) = &node.link_target {
        line.push_str(" -> ");
        line.push_str(&escape::name(target).to_string());
    }
    line
}

/// `drwxr-xr-x` style mode string, with setuid, setgid and sticky bits.
pub fn mode_string(kind: NodeKind, mode: u32) -> String {
    let type_char = match kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
    };
    let mut s = String::with_capacity(10);
    s.push(type_char);
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, set_x, set_no_x)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (mode & bit != 0, x) {
            (true, true) => *set_x,
            (true, false) => *set_no_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// The name used for a node type in JSON.
pub fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "blockdev",
        NodeKind::Socket => "socket",
    }
}

/// A tree node as JSON, shared by `ls --json` and `cat tree`.
pub fn node_json(node: &Node, path: Option<&Path>) -> Value {
    let content: Vec<Value> = node
        .content
        .iter()
        .map(|c| match c {
            Content::Blob(id) => json!(id.to_hex()),
            Content::Hole(n) => json!({ "hole": n }),
        })
        .collect();
    let xattrs: Vec<Value> = node
        .xattrs
        .iter()
        .map(|x| {
            json!({
                "name": String::from_utf8_lossy(&x.name),
                "value": hex::encode(&x.value),
            })
        })
        .collect();
    let mut v = json!({
        "name": node.name_lossy(),
        "type": kind_name(node.kind),
        "mode": node.mode,
        "permissions": mode_string(node.kind, node.mode),
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "size": node.size,
        "mtime": output::rfc3339(node.mtime_ns),
        "atime": output::rfc3339(node.atime_ns),
        "ctime": output::rfc3339(node.ctime_ns),
        "device": node.device,
        "inode": node.inode,
        "links": node.links,
        "link_target": node.link_target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
        "rdev": node.rdev,
        "content": content,
        "subtree": node.subtree.map(|t| t.to_hex()),
        "xattrs": xattrs,
    });
    // JSON strings are Unicode: a name that is not UTF-8 is shown with
    // U+FFFD in `name`, and exactly, in hex, in `name_raw`.
    if std::str::from_utf8(&node.name).is_err() {
        v["name_raw"] = json!(hex::encode(&node.name));
    }
    if let Some(path) = path {
        v["path"] = json!(path.to_string_lossy());
        let bytes = path.as_os_str().as_bytes();
        if std::str::from_utf8(bytes).is_err() {
            v["path_raw"] = json!(hex::encode(bytes));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(NodeKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(NodeKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(NodeKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(NodeKind::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(NodeKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(NodeKind::Symlink, 0o777), "lrwxrwxrwx");
    }
}
