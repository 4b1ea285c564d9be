//! The structure check: keys, config, index files, the pack list and pack
//! headers. Reads no pack data beyond the headers.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::concurrent::for_each_bounded;
use super::report::ObjectType;
use super::{CheckError, CheckReport};
use crate::format::config::Config;
use crate::format::index::IndexFile;
use crate::format::keyfile::KeyFile;
use crate::format::pack::{header_location, PackEntry, PackHeader, TRAILER_LEN};
use crate::format::{limits, ObjectKind};
use crate::id::{BlobId, IndexId, PackId};
use crate::repo::{verify_name, Index, Repository};
use crate::storage::{FileKind, ObjectInfo, StorageError};

/// A pack as the live index lists it.
#[derive(Debug, Clone)]
pub(super) struct IndexedPack {
    pub size: u64,
    pub blobs: Vec<PackEntry>,
    /// The index file that listed it first.
    pub index_file: IndexId,
}

/// What the index files say.
#[derive(Debug, Default)]
pub(super) struct LoadedIndex {
    /// Lookups by blob id, built from the live index files.
    pub index: Index,
    /// Every live pack with its entries.
    pub packs: HashMap<PackId, IndexedPack>,
    /// Packs marked for deletion and listed by no live index file.
    pub marked: HashSet<PackId>,
}

/// Lists the files of one kind or stops the check.
pub(super) fn list(repo: &Repository, kind: FileKind) -> Result<Vec<ObjectInfo>, CheckError> {
    repo.block_on(repo.storage().list(kind))
        .map_err(|source| CheckError::List {
            kind,
            location: repo.storage().location(),
            source,
        })
}

/// Checks that the config and every key file decode.
pub(super) fn check_keys_and_config(repo: &Repository, report: &mut CheckReport) -> Result<(), CheckError> {
    match repo.load_file(FileKind::Config, "config") {
        Ok(plain) => {
            report.counters.bytes_read += plain.len() as u64;
            match Config::decode(&plain).and_then(|c| c.chunker.validate().map(|()| c)) {
                Ok(_) => {}
                Err(e) => report.error(ObjectType::Config, "config", format!("cannot be decoded: {e}")),
            }
        }
        Err(e) => report.error(ObjectType::Config, "config", format!("cannot be read: {e}")),
    }
    let keys = list(repo, FileKind::Key)?;
    if keys.is_empty() {
        report.error(ObjectType::Repository, repo.storage().location(), "has no key files");
    }
    for info in keys {
        let bytes = match repo.block_on(repo.storage().get(FileKind::Key, &info.name)) {
            Ok(b) => b,
            Err(e) => {
                report.error(ObjectType::Key, &info.name, format!("cannot be read: {e}"));
                continue;
            }
        };
        report.counters.bytes_read += bytes.len() as u64;
        let checked = verify_name(FileKind::Key, &info.name, &bytes)
            .map_err(|e| e.to_string())
            .and_then(|()| KeyFile::decode(&bytes).map_err(|e| format!("cannot be decoded: {e}")));
        match checked {
            Ok(_) => report.counters.keys += 1,
            Err(msg) => report.error(ObjectType::Key, &info.name, msg),
        }
    }
    Ok(())
}

/// Loads every index file; a bad one is reported and skipped. Applies
/// `supersedes` to find the live index files and merges them.
pub(super) fn load_index(
    repo: &Repository,
    connections: usize,
    report: &mut CheckReport,
) -> Result<LoadedIndex, CheckError> {
    let names = list(repo, FileKind::Index)?;
    let storage = repo.storage().clone();
    let mut files: Vec<(IndexId, IndexFile)> = Vec::with_capacity(names.len());
    let mut fetched: Vec<(String, Result<Bytes, StorageError>)> = Vec::new();
    for_each_bounded(
        repo.runtime(),
        names,
        connections,
        move |info: ObjectInfo| {
            let storage = storage.clone();
            async move {
                let got = storage.get(FileKind::Index, &info.name).await;
                (info.name, got)
            }
        },
        |item| fetched.push(item),
    )?;
    for (name, got) in fetched {
        let Ok(id) = name.parse::<IndexId>() else {
            report.warning(ObjectType::Index, &name, "is not named by a file id; ignored");
            continue;
        };
        let bytes = match got {
            Ok(b) => b,
            Err(e) => {
                report.error(ObjectType::Index, &name, format!("cannot be read: {e}"));
                continue;
            }
        };
        report.counters.bytes_read += bytes.len() as u64;
        let decoded = repo
            .open_file(FileKind::Index, &name, &bytes)
            .map_err(|e| e.to_string())
            .and_then(|plain| IndexFile::decode(&plain).map_err(|e| format!("cannot be decoded: {e}")));
        match decoded {
            Ok(file) => files.push((id, file)),
            Err(msg) => report.error(ObjectType::Index, &name, msg),
        }
    }
    files.sort_by_key(|(id, _)| *id);
    report.counters.index_files = files.len() as u64;
    Ok(merge(files, report))
}

/// Merges the live index files (those no other loaded file supersedes).
fn merge(files: Vec<(IndexId, IndexFile)>, report: &mut CheckReport) -> LoadedIndex {
    let superseded: HashSet<IndexId> = files.iter().flat_map(|(_, f)| f.supersedes.iter().copied()).collect();
    let live: Vec<(IndexId, IndexFile)> = files.into_iter().filter(|(id, _)| !superseded.contains(id)).collect();
    let mut loaded = LoadedIndex::default();
    let mut marked = HashSet::new();
    for (file_id, file) in &live {
        marked.extend(file.marked.iter().map(|m| m.id));
        for pack in &file.packs {
            match loaded.packs.get(&pack.id) {
                None => {
                    loaded.packs.insert(
                        pack.id,
                        IndexedPack {
                            size: pack.size,
                            blobs: pack.blobs.clone(),
                            index_file: *file_id,
                        },
                    );
                }
                Some(first) if first.size != pack.size || first.blobs != pack.blobs => report.error(
                    ObjectType::Pack,
                    pack.id,
                    format!(
                        "index files {} and {file_id} list it differently ({} and {} bytes, {} and {} blobs)",
                        first.index_file,
                        first.size,
                        pack.size,
                        first.blobs.len(),
                        pack.blobs.len()
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    loaded.marked = marked.into_iter().filter(|id| !loaded.packs.contains_key(id)).collect();
    report_duplicates(&loaded.packs, report);
    loaded.index = Index::from_files(live).unwrap_or_else(|e| {
        report.error(ObjectType::Repository, "index", e.to_string());
        Index::default()
    });
    report.counters.packs = loaded.packs.len() as u64;
    report.counters.blobs = loaded.index.len() as u64;
    loaded
}

/// Reports blobs listed in more than one pack (info: any copy may be read).
fn report_duplicates(packs: &HashMap<PackId, IndexedPack>, report: &mut CheckReport) {
    let mut all: Vec<(BlobId, bool, PackId)> = packs
        .iter()
        .flat_map(|(pack, p)| {
            p.blobs
                .iter()
                .map(move |b| (b.id, b.kind == crate::format::BlobKind::Tree, *pack))
        })
        .collect();
    all.sort_unstable();
    for run in all.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        if run.len() < 2 {
            continue;
        }
        report.counters.duplicate_blobs += 1;
        let kind = if run[0].1 {
            ObjectType::Tree
        } else {
            ObjectType::DataBlob
        };
        let packs: Vec<String> = run.iter().map(|(_, _, p)| p.to_hex()).collect();
        report.info(
            kind,
            run[0].0,
            format!("is stored {} times, in packs {}", run.len(), packs.join(", ")),
        );
    }
}

/// Compares the packs in storage with the index; returns the storage sizes
/// of the packs found.
pub(super) fn compare_pack_lists(
    repo: &Repository,
    loaded: &LoadedIndex,
    report: &mut CheckReport,
) -> Result<HashMap<PackId, u64>, CheckError> {
    let mut stored = HashMap::new();
    for info in list(repo, FileKind::Pack)? {
        match info.name.parse::<PackId>() {
            Ok(id) => {
                stored.insert(id, info.size);
            }
            Err(_) => report.warning(ObjectType::Pack, &info.name, "is not named by a pack id; ignored"),
        }
    }
    report.counters.packs_in_storage = stored.len() as u64;
    let mut indexed: Vec<(&PackId, &IndexedPack)> = loaded.packs.iter().collect();
    indexed.sort_by_key(|(id, _)| **id);
    for (id, pack) in indexed {
        match stored.get(id) {
            None => report.error(
                ObjectType::Pack,
                id,
                format!("is listed in index {} but missing from storage", pack.index_file),
            ),
            Some(&size) if size != pack.size => report.error(
                ObjectType::Pack,
                id,
                format!(
                    "has {size} bytes in storage but index {} says {}",
                    pack.index_file, pack.size
                ),
            ),
            Some(_) => {}
        }
    }
    let mut extra: Vec<&PackId> = stored.keys().filter(|id| !loaded.packs.contains_key(id)).collect();
    extra.sort();
    for id in extra {
        if loaded.marked.contains(id) {
            report.info(ObjectType::Pack, id, "is marked for deletion by prune");
        } else {
            report.warning(
                ObjectType::Pack,
                id,
                "is in storage but no index names it (left by an interrupted backup?); prune removes it",
            );
        }
    }
    Ok(stored)
}

/// Why a pack header could not be read.
pub(super) fn read_header_error(e: &StorageError) -> String {
    format!("cannot read its header: {e}")
}

/// Reads the sealed header of every pack that is both indexed and stored,
/// with ranged reads, and compares it with the index.
pub(super) fn check_pack_headers(
    repo: &Repository,
    loaded: &LoadedIndex,
    stored: &HashMap<PackId, u64>,
    connections: usize,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    let mut todo: Vec<(PackId, u64)> = loaded
        .packs
        .keys()
        .filter_map(|id| stored.get(id).map(|size| (*id, *size)))
        .collect();
    todo.sort_unstable();
    let storage = repo.storage().clone();
    let key = repo.key_arc();
    for_each_bounded(
        repo.runtime(),
        todo,
        connections,
        move |(id, size): (PackId, u64)| {
            let storage = storage.clone();
            async move {
                let name = id.to_hex();
                let result: Result<(u64, Bytes), String> = async {
                    if size < TRAILER_LEN as u64 {
                        return Err(format!("is only {size} bytes long"));
                    }
                    let trailer = storage
                        .get_range(FileKind::Pack, &name, size - TRAILER_LEN as u64, TRAILER_LEN as u64)
                        .await
                        .map_err(|e| read_header_error(&e))?;
                    let trailer: [u8; TRAILER_LEN] = trailer
                        .as_ref()
                        .try_into()
                        .map_err(|_| format!("short read of its trailer: {} bytes", trailer.len()))?;
                    let (offset, len) = header_location(size, trailer).map_err(|e| e.to_string())?;
                    let sealed = storage
                        .get_range(FileKind::Pack, &name, offset, u64::from(len))
                        .await
                        .map_err(|e| read_header_error(&e))?;
                    Ok((offset, sealed))
                }
                .await;
                (id, result)
            }
        },
        |(id, result)| {
            let Some(pack) = loaded.packs.get(&id) else { return };
            match result {
                Ok((offset, sealed)) => {
                    report.counters.bytes_read += sealed.len() as u64 + TRAILER_LEN as u64;
                    report.counters.pack_headers += 1;
                    match open_header(&key, &sealed, offset) {
                        Ok(header) => compare_header(&id, &header, pack, report),
                        Err(msg) => report.error(ObjectType::Pack, id, msg),
                    }
                }
                Err(msg) => report.error(ObjectType::Pack, id, msg),
            }
        },
    )
}

/// Opens and decodes a sealed pack header found at `offset`.
pub(super) fn open_header(key: &crate::crypto::MasterKey, sealed: &[u8], offset: u64) -> Result<PackHeader, String> {
    let plain = key
        .open(ObjectKind::PackHeader, sealed, limits::MAX_OBJECT, None)
        .map_err(|e| format!("its header cannot be opened: {e}"))?;
    let header = PackHeader::decode(&plain).map_err(|e| format!("its header cannot be decoded: {e}"))?;
    if header.data_end() > offset {
        return Err(format!(
            "its header lists blobs up to offset {} but the header starts at {offset}",
            header.data_end()
        ));
    }
    if header.entries.is_empty() {
        return Err("its header lists no blobs".into());
    }
    Ok(header)
}

/// Compares a pack's header with its index entries.
pub(super) fn compare_header(id: &PackId, header: &PackHeader, pack: &IndexedPack, report: &mut CheckReport) {
    if header.entries == pack.blobs {
        return;
    }
    let in_header: HashSet<(BlobId, u32)> = header.entries.iter().map(|e| (e.id, e.offset)).collect();
    let in_index: HashSet<(BlobId, u32)> = pack.blobs.iter().map(|e| (e.id, e.offset)).collect();
    let only_index = pack
        .blobs
        .iter()
        .filter(|e| !in_header.contains(&(e.id, e.offset)))
        .count();
    let only_header = header
        .entries
        .iter()
        .filter(|e| !in_index.contains(&(e.id, e.offset)))
        .count();
    let detail = match pack.blobs.iter().zip(&header.entries).find(|(a, b)| a != b) {
        Some((a, b)) => format!(
            "; first difference: index has blob {} at {}, header has blob {} at {}",
            a.id, a.offset, b.id, b.offset
        ),
        None => String::new(),
    };
    report.error(
        ObjectType::Pack,
        id,
        format!(
            "its header does not match index {}: {} blobs in the header, {} in the index, {only_index} only in the index, {only_header} only in the header{detail}",
            pack.index_file,
            header.entries.len(),
            pack.blobs.len()
        ),
    );
}
