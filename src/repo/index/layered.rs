//! An index read through a local table: finding, opening, merging and
//! writing tables.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::disk::{self, HeadLists, MacKey, TableError, TableFile, TableWriter};
use super::spill::Built;
use super::table::{Entry, BUCKETS};
use super::{Base, Index, IndexBuilder};
use crate::format::index::MarkedPack;
use crate::format::BlobKind;
use crate::id::{IndexId, PackId};
use crate::repo::{RepoError, Repository, Result};

/// Below this many blobs in the overlay a table is never rewritten.
const MIN_MERGE: usize = 4096;
/// Above this many blobs in the overlay a table is always rewritten.
const MAX_OVERLAY: usize = 1 << 20;

/// Blobs the overlay of a table of `base` blobs may hold before the two
/// are merged into a new table: an eighth of the table, at most
/// [`MAX_OVERLAY`], at least [`MIN_MERGE`].
pub(super) fn merge_threshold(base: usize) -> usize {
    (base / 8).clamp(MIN_MERGE, MAX_OVERLAY)
}

/// A table just opened, with its lists.
pub(super) struct BaseParts {
    table: Arc<TableFile>,
    path: PathBuf,
    lists: HeadLists,
}

fn union(a: &[IndexId], b: &[IndexId]) -> Vec<IndexId> {
    let mut v: Vec<IndexId> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

pub(super) fn marked_bits(packs: &[PackId], marked: &[MarkedPack]) -> Vec<u64> {
    let mut bits = Vec::new();
    if !marked.is_empty() {
        bits = vec![0u64; packs.len().div_ceil(64)];
        for m in marked {
            if let Ok(o) = packs.binary_search(&m.id) {
                bits[o / 64] |= 1 << (o % 64);
            }
        }
    }
    bits
}

fn table_error(path: &Path, e: TableError) -> RepoError {
    RepoError::IndexTable {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Joins a table and an overlay (an in-memory index of the files written
/// since) into one index.
pub(super) fn compose(parts: BaseParts, overlay: Index) -> Result<Index> {
    let BaseParts { table, path, lists } = parts;
    let HeadLists {
        files,
        passed_over,
        marked,
        packs,
        pack_sizes,
        duplicates,
    } = lists;
    let Index {
        mut data,
        mut tree,
        packs: overlay_packs,
        pack_sizes: overlay_sizes,
        files: overlay_files,
        passed_over: overlay_passed,
        marked: overlay_marked,
        duplicates: overlay_duplicates,
        ..
    } = overlay;
    let (all_packs, all_sizes, base_map) = if overlay_packs.is_empty() {
        (packs, pack_sizes, Vec::new())
    } else {
        // Both lists are sorted: merge them, a pack in both once.
        let total = packs.len() + overlay_packs.len();
        let (mut all, mut sizes) = (Vec::with_capacity(total), Vec::with_capacity(total));
        let mut base_map = Vec::with_capacity(packs.len());
        let mut overlay_map = Vec::with_capacity(overlay_packs.len());
        let (mut i, mut j) = (0, 0);
        while i < packs.len() || j < overlay_packs.len() {
            let next = all.len() as u32;
            let take_base = j >= overlay_packs.len() || (i < packs.len() && packs[i] <= overlay_packs[j]);
            if take_base {
                if j < overlay_packs.len() && packs[i] == overlay_packs[j] {
                    overlay_map.push(next);
                    j += 1;
                }
                all.push(packs[i]);
                sizes.push(pack_sizes[i]);
                base_map.push(next);
                i += 1;
            } else {
                all.push(overlay_packs[j]);
                sizes.push(overlay_sizes[j]);
                overlay_map.push(next);
                j += 1;
            }
        }
        data.map_packs(&overlay_map);
        tree.map_packs(&overlay_map);
        (all, sizes, base_map)
    };
    let mut all_marked: Vec<MarkedPack> = marked.iter().chain(&overlay_marked).copied().collect();
    all_marked.sort_unstable_by_key(|m| (m.id, m.marked_ns));
    all_marked.dedup();
    let bits = marked_bits(&all_packs, &all_marked);
    let mut cross = 0u64;
    for (kind, overlay) in [(BlobKind::Data, &data), (BlobKind::Tree, &tree)] {
        if table.len(kind) == 0 || overlay.len() == 0 {
            continue;
        }
        let mut mine = Vec::new();
        for b in 0..BUCKETS {
            if overlay.bucket_is_empty(b) || table.bucket_start(kind, b) == table.bucket_start(kind, b + 1) {
                continue;
            }
            let theirs = table.bucket_entries(kind, b).map_err(|e| table_error(&path, e))?;
            mine.clear();
            overlay.bucket_into(b, &mut mine);
            cross += mine
                .iter()
                .filter(|e| theirs.binary_search_by(|t| t.key.cmp(&e.key)).is_ok())
                .count() as u64;
        }
    }
    Ok(Index {
        data,
        tree,
        packs: all_packs,
        pack_sizes: all_sizes,
        marked_bits: bits,
        files: union(&files, &overlay_files),
        passed_over: union(&passed_over, &overlay_passed),
        marked: all_marked,
        duplicates: duplicates + overlay_duplicates + cross,
        base: Some(Base {
            table,
            path,
            pack_map: base_map,
            files,
            passed_over,
            marked,
            duplicates,
            cross,
            failed: AtomicBool::new(false),
        }),
    })
}

/// The table of `index` with its lists, to compose again with a new
/// overlay.
pub(super) fn base_parts(index: &Index) -> Option<BaseParts> {
    let base = index.base.as_ref()?;
    let (packs, pack_sizes) = if base.pack_map.is_empty() {
        (index.packs.clone(), index.pack_sizes.clone())
    } else {
        base.pack_map
            .iter()
            .map(|&o| (index.packs[o as usize], index.pack_sizes[o as usize]))
            .unzip()
    };
    Some(BaseParts {
        table: base.table.clone(),
        path: base.path.clone(),
        lists: HeadLists {
            files: base.files.clone(),
            passed_over: base.passed_over.clone(),
            marked: base.marked.clone(),
            packs,
            pack_sizes,
            duplicates: base.duplicates,
        },
    })
}

/// Opens the table at `dir/name`.
fn open_table(dir: &Path, name: &str, key: &MacKey) -> std::result::Result<BaseParts, TableError> {
    let file = disk::open_file(dir, name)?;
    let (table, lists) = TableFile::open(Box::new(file), key.clone())?;
    if disk::file_name(table.state()) != name {
        return Err(TableError::Corrupt("its name does not match its state".into()));
    }
    Ok(BaseParts {
        table: Arc::new(table),
        path: dir.join(name),
        lists,
    })
}

/// The index read through the table `dir/name`, with no overlay.
pub(super) fn open_as_index(dir: &Path, name: &str, key: &MacKey) -> Result<Index> {
    let parts = open_table(dir, name, key).map_err(|e| table_error(&dir.join(name), e))?;
    compose(parts, Index::default())
}

fn warn_unusable(path: &Path, e: &TableError) {
    eprintln!(
        "warning: the local index table {} is unusable ({e}); it is rebuilt from the index files",
        path.display()
    );
}

/// The table in `dir` that holds the most files, all of them in `listed`;
/// tables that fail to verify are removed with a warning.
fn find_table(dir: &Path, key: &MacKey, listed: &HashSet<IndexId>) -> Option<BaseParts> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut best: Option<BaseParts> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(disk::SUFFIX) {
            continue;
        }
        match open_table(dir, name, key) {
            Ok(parts) => {
                let usable = parts.lists.files.iter().all(|f| listed.contains(f));
                if usable
                    && best
                        .as_ref()
                        .is_none_or(|b| parts.lists.files.len() > b.lists.files.len())
                {
                    best = Some(parts);
                }
            }
            Err(TableError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let path = dir.join(name);
                warn_unusable(&path, &e);
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    best
}

/// Temporary files and partition directories older than this were left
/// by a process that did not finish; younger ones may be in use.
const STALE_SECS: u64 = 24 * 3600;

/// Removes every table in `dir` but `keep`, and temporary files and
/// partition directories left behind a day ago or earlier.
fn remove_others(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(disk::SUFFIX) {
            if path != keep {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > STALE_SECS);
        if stale && name.starts_with(".tmp-") {
            let _ = std::fs::remove_file(&path);
        } else if stale && name.starts_with(".spill-") {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Sorted merge of a bucket's table entries and overlay entries (both
/// sorted, each key once); a key in both keeps the entry the in-memory
/// index would: the first in entry order not in a marked pack, else the
/// first.
fn merge_bucket(theirs: &[Entry], mine: &[Entry], is_marked: &impl Fn(u32) -> bool, out: &mut Vec<Entry>) {
    let (mut i, mut j) = (0, 0);
    while i < theirs.len() || j < mine.len() {
        match (theirs.get(i), mine.get(j)) {
            (Some(a), Some(b)) if a.key == b.key => {
                let (first, second) = if a <= b { (a, b) } else { (b, a) };
                out.push(if is_marked(first.pack) && !is_marked(second.pack) {
                    *second
                } else {
                    *first
                });
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.key < b.key => {
                out.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                out.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                out.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
}

/// Writes the table of all of `index` (its table and overlay merged) to
/// `dir`; returns its file name.
pub(super) fn write_table(dir: &Path, key: &MacKey, index: &Index) -> std::io::Result<String> {
    let lists = HeadLists {
        files: index.files.clone(),
        passed_over: index.passed_over.clone(),
        marked: index.marked.clone(),
        packs: index.packs.clone(),
        pack_sizes: index.pack_sizes.clone(),
        duplicates: index.duplicates,
    };
    let mut writer = TableWriter::create(dir, key.clone(), &lists)?;
    let is_marked = |p: u32| index.is_marked_ordinal(p);
    let (mut theirs, mut mine, mut merged) = (Vec::new(), Vec::new(), Vec::new());
    for kind in [BlobKind::Data, BlobKind::Tree] {
        for b in 0..BUCKETS {
            theirs.clear();
            if let Some(base) = &index.base {
                if base.table.bucket_start(kind, b) != base.table.bucket_start(kind, b + 1) {
                    let entries = base.table.bucket_entries(kind, b).map_err(std::io::Error::other)?;
                    theirs.extend(entries.into_iter().map(|mut e| {
                        e.pack = base.pack(e.pack);
                        e
                    }));
                }
            }
            mine.clear();
            index.table(kind).bucket_into(b, &mut mine);
            merged.clear();
            merge_bucket(&theirs, &mine, &is_marked, &mut merged);
            writer.push_bucket(&merged)?;
        }
    }
    let path = writer.finish(&lists)?;
    Ok(path
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .unwrap_or_default())
}

impl Repository {
    fn table_key(&self) -> MacKey {
        MacKey::new(self.key().index_table_key())
    }

    /// Writes the table of `index` to `dir` and returns the index read
    /// through it, or `index` itself when the table cannot be written.
    fn index_through_table(&self, dir: &Path, index: Index) -> Index {
        let key = self.table_key();
        let opened = write_table(dir, &key, &index)
            .map_err(TableError::from)
            .and_then(|name| open_table(dir, &name, &key));
        match opened {
            Ok(parts) => {
                remove_others(dir, &parts.path);
                compose(parts, Index::default()).unwrap_or(index)
            }
            Err(_) => index,
        }
    }

    /// Merges a large overlay into a new table.
    pub(super) fn settle(&self, dir: &Path, index: Index) -> Index {
        match &index.base {
            Some(base)
                if index.in_memory_len()
                    > merge_threshold(base.table.len(BlobKind::Data) + base.table.len(BlobKind::Tree)) =>
            {
                self.index_through_table(dir, index)
            }
            _ => index,
        }
    }

    /// Loads the index of the files `names` through a table in `dir`: the
    /// table holding the most of them, and the files written since in
    /// memory; a new table when none fits or a file supersedes or marks.
    pub(super) fn load_through_table(&self, dir: &Path, names: Vec<String>) -> Result<Index> {
        let listed: HashSet<IndexId> = names.iter().filter_map(|n| n.parse().ok()).collect();
        let key = self.table_key();
        if let Some(parts) = find_table(dir, &key, &listed) {
            let new: Vec<String> = names
                .iter()
                .filter(|n| {
                    n.parse::<IndexId>().map_or(true, |id| {
                        parts.lists.files.binary_search(&id).is_err()
                            && parts.lists.passed_over.binary_search(&id).is_err()
                    })
                })
                .cloned()
                .collect();
            let mut builder = IndexBuilder::new();
            let complete = self.read_index_files(new, |id, file| {
                if !file.supersedes.is_empty() || !file.marked.is_empty() {
                    return Ok(false);
                }
                builder.add_file(id, file)?;
                Ok(true)
            })?;
            if complete {
                let index = compose(parts, builder.finish())?;
                return Ok(self.settle(dir, index));
            }
        }
        // A new table, built without holding the index; in memory when
        // the directory cannot take it.
        match self.build_spilled(dir, &key, names.clone()) {
            Ok(Built::Table(name)) => {
                let index = open_as_index(dir, &name, &key)?;
                remove_others(dir, &dir.join(&name));
                return Ok(index);
            }
            Ok(Built::NoRoom) | Err(RepoError::IndexTable { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut builder = IndexBuilder::new();
        self.read_index_files(names, |id, file| {
            builder.add_file(id, file)?;
            Ok(true)
        })?;
        Ok(builder.finish())
    }
}
