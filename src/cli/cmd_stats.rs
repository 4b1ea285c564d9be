//! `cairn stats [SNAPSHOT...]`: sizes of snapshots or of the repository.
//!
//! Modes:
//! - `restore-size`: what a restore would write: files and their sizes,
//!   summed over the snapshots (a hard-linked file counts its size once).
//! - `raw-data`: the blobs the snapshots reference, each once: count,
//!   plaintext bytes, stored bytes, compression.
//! - `files-by-contents`: files with distinct contents, each once.
//!
//! Without snapshot arguments every snapshot (after `--host`/`--tag`/`--path`)
//! is counted; without filters either, the repository's pack count and
//! stored bytes are added.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::cmd_snapshots::{select, FilterArgs};
use super::{output, CliError, Context};
use crate::format::tree::{Content, NodeKind};
use crate::format::BlobKind;
use crate::id::{BlobId, TreeId};
use crate::repo::treewalk::check_depth;
use crate::repo::{IndexedRepository, RepoError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Size of the files as restored.
    RestoreSize,
    /// Unique blobs referenced: plaintext and stored bytes.
    RawData,
    /// Files with distinct contents.
    FilesByContents,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to count (ids, prefixes or `latest`); all when none given.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// What to count.
    #[arg(long, value_enum, default_value = "restore-size")]
    pub mode: Mode,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// The numbers `stats` prints; fields a mode does not compute are left out.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub mode: Option<Mode>,
    pub snapshots_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_file_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_dir_count: Option<u64>,
    /// Restore size, the size of distinct files, or the plaintext of unique blobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_blob_count: Option<u64>,
    /// Stored (compressed and sealed) bytes of the unique blobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_stored_size: Option<u64>,
    /// Plaintext bytes per stored byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_ratio: Option<f64>,
    /// Percentage of plaintext bytes saved by compression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_space_saving: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_pack_size: Option<u64>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let repo = ctx.open_indexed()?;
    let snapshots = select(&repo, &args.snapshots, &args.filter.filter())?;
    let roots: Vec<TreeId> = snapshots.iter().map(|(_, s)| s.tree).collect();
    let mut report = match args.mode {
        Mode::RestoreSize => restore_size(&repo, &roots)?,
        Mode::RawData => raw_data(&repo, &roots)?,
        Mode::FilesByContents => files_by_contents(&repo, &roots)?,
    };
    report.mode = Some(args.mode);
    report.snapshots_count = roots.len() as u64;
    let filtered = !(args.filter.hosts.is_empty() && args.filter.tags.is_empty() && args.filter.paths.is_empty());
    if args.snapshots.is_empty() && !filtered {
        let (count, size) = repo
            .index()
            .packs()
            .fold((0u64, 0u64), |(n, total), (_, size)| (n + 1, total + size));
        report.pack_count = Some(count);
        report.total_pack_size = Some(size);
    }
    if ctx.global.json {
        output::print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(0)
}

fn print_report(r: &Report) {
    let mode = match r.mode {
        Some(Mode::RawData) => "raw-data",
        Some(Mode::FilesByContents) => "files-by-contents",
        _ => "restore-size",
    };
    println!("Stats in {mode} mode:");
    let row = |label: &str, value: String| println!("{label:>26}:  {value}");
    row("Snapshots processed", r.snapshots_count.to_string());
    if let Some(n) = r.total_file_count {
        row("Total File Count", n.to_string());
    }
    if let Some(n) = r.total_dir_count {
        row("Total Directory Count", n.to_string());
    }
    if let Some(n) = r.total_blob_count {
        row("Total Blob Count", n.to_string());
    }
    if let Some(n) = r.total_size {
        let label = if r.mode == Some(Mode::RawData) {
            "Total Uncompressed Size"
        } else {
            "Total Size"
        };
        row(label, output::bytes(n));
    }
    if let Some(n) = r.total_stored_size {
        row("Total Stored Size", output::bytes(n));
    }
    if let Some(x) = r.compression_ratio {
        row("Compression Ratio", format!("{x:.2}x"));
    }
    if let Some(x) = r.compression_space_saving {
        row("Compression Space Saving", format!("{x:.2} %"));
    }
    if let Some(n) = r.pack_count {
        row("Pack Files", n.to_string());
    }
    if let Some(n) = r.total_pack_size {
        row("Repository Size", output::bytes(n));
    }
}

/// Files, directories and bytes below one tree. Hard-linked files are kept
/// apart by (device, inode) so each counts its size once.
#[derive(Debug, Default)]
struct Sizes {
    files: u64,
    dirs: u64,
    bytes: u64,
    linked: BTreeMap<(u64, u64), u64>,
}

impl Sizes {
    /// Adds a subdirectory and everything below it.
    fn add_dir(&mut self, below: &Sizes) {
        self.dirs += 1 + below.dirs;
        self.files += below.files;
        self.bytes += below.bytes;
        self.linked.extend(below.linked.iter().map(|(k, v)| (*k, *v)));
    }
}

/// A directory whose sizes are being added up.
struct SizeFrame {
    id: TreeId,
    listing: crate::format::tree::Tree,
    next: usize,
    depth: usize,
    sizes: Sizes,
}

/// Sizes below `root`. Each distinct tree is read once (`memo`), depth
/// first without recursion, within the depth limit of format.md §14.
fn tree_sizes(
    repo: &IndexedRepository,
    root: TreeId,
    memo: &mut HashMap<TreeId, Arc<Sizes>>,
) -> Result<Arc<Sizes>, CliError> {
    if let Some(s) = memo.get(&root) {
        return Ok(s.clone());
    }
    let open = |id: TreeId, depth: usize| -> Result<SizeFrame, CliError> {
        let listing = repo.load_tree(&id)?;
        check_depth(&id, depth, listing.nodes.len())?;
        Ok(SizeFrame {
            id,
            listing,
            next: 0,
            depth,
            sizes: Sizes::default(),
        })
    };
    let mut stack = vec![open(root, 1)?];
    while let Some(top) = stack.last_mut() {
        let Some(node) = top.listing.nodes.get(top.next) else {
            let Some(done) = stack.pop() else { break };
            let sizes = Arc::new(done.sizes);
            memo.insert(done.id, sizes.clone());
            match stack.last_mut() {
                Some(parent) => parent.sizes.add_dir(&sizes),
                None => return Ok(sizes),
            }
            continue;
        };
        top.next += 1;
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => match memo.get(&sub) {
                Some(below) => top.sizes.add_dir(below),
                None => {
                    let depth = top.depth + 1;
                    stack.push(open(sub, depth)?);
                }
            },
            (NodeKind::File, _) => {
                top.sizes.files += 1;
                if node.links > 1 {
                    top.sizes.linked.insert((node.device, node.inode), node.size);
                } else {
                    top.sizes.bytes += node.size;
                }
            }
            _ => top.sizes.files += 1,
        }
    }
    Err(CliError::Other(format!("tree {root}: sizes were not added up")))
}

fn restore_size(repo: &IndexedRepository, roots: &[TreeId]) -> Result<Report, CliError> {
    let mut memo = HashMap::new();
    let (mut files, mut dirs, mut bytes) = (0, 0, 0);
    for root in roots {
        let s = tree_sizes(repo, *root, &mut memo)?;
        files += s.files;
        dirs += s.dirs;
        bytes += s.bytes + s.linked.values().sum::<u64>();
    }
    Ok(Report {
        total_file_count: Some(files),
        total_dir_count: Some(dirs),
        total_size: Some(bytes),
        ..Report::default()
    })
}

/// Visits every distinct tree below `roots` once, calling `visit` on each.
fn each_unique_tree(
    repo: &IndexedRepository,
    roots: &[TreeId],
    mut visit: impl FnMut(TreeId, &crate::format::tree::Tree),
) -> Result<(), CliError> {
    let mut seen: HashSet<TreeId> = HashSet::new();
    let mut stack: Vec<TreeId> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let tree = repo.load_tree(&id)?;
        visit(id, &tree);
        stack.extend(
            tree.nodes
                .iter()
                .filter(|n| n.kind == NodeKind::Dir)
                .filter_map(|n| n.subtree),
        );
    }
    Ok(())
}

fn raw_data(repo: &IndexedRepository, roots: &[TreeId]) -> Result<Report, CliError> {
    let mut blobs: HashSet<(BlobKind, BlobId)> = HashSet::new();
    each_unique_tree(repo, roots, |id, tree| {
        blobs.insert((BlobKind::Tree, BlobId::from(id)));
        for node in &tree.nodes {
            for c in &node.content {
                if let Content::Blob(b) = c {
                    blobs.insert((BlobKind::Data, *b));
                }
            }
        }
    })?;
    let (mut raw, mut stored) = (0u64, 0u64);
    for (kind, id) in &blobs {
        let loc = repo
            .index()
            .get(*kind, id)
            .ok_or(RepoError::BlobNotFound { kind: *kind, id: *id })?;
        raw += u64::from(loc.raw_length);
        stored += u64::from(loc.length);
    }
    let (ratio, saving) = if stored == 0 || raw == 0 {
        (1.0, 0.0)
    } else {
        (raw as f64 / stored as f64, (1.0 - stored as f64 / raw as f64) * 100.0)
    };
    Ok(Report {
        total_blob_count: Some(blobs.len() as u64),
        total_size: Some(raw),
        total_stored_size: Some(stored),
        compression_ratio: Some(ratio),
        compression_space_saving: Some(saving),
        ..Report::default()
    })
}

fn files_by_contents(repo: &IndexedRepository, roots: &[TreeId]) -> Result<Report, CliError> {
    let mut files: HashMap<[u8; 32], u64> = HashMap::new();
    each_unique_tree(repo, roots, |_, tree| {
        for node in tree.nodes.iter().filter(|n| n.kind == NodeKind::File) {
            let mut h = blake3::Hasher::new();
            for c in &node.content {
                match c {
                    Content::Blob(b) => h.update(&[0]).update(b.as_bytes()),
                    Content::Hole(n) => h.update(&[1]).update(&n.to_le_bytes()),
                };
            }
            files.insert(*h.finalize().as_bytes(), node.size);
        }
    })?;
    Ok(Report {
        total_file_count: Some(files.len() as u64),
        total_size: Some(files.values().sum()),
        ..Report::default()
    })
}
