//! The structure check: keys, config, index files, the pack list and pack
//! headers. Reads no pack data beyond the headers.

use std::collections::HashSet;

use bytes::Bytes;

use super::concurrent::for_each_bounded;
use super::report::ObjectType;
use super::{CheckError, CheckReport};
use crate::format::config::Config;
use crate::format::index::IndexFile;
use crate::format::keyfile::KeyFile;
use crate::format::pack::{header_location, PackEntry, PackHeader, TRAILER_LEN};
use crate::id::{BlobId, IndexId, PackId};
use crate::repo::{verify_name, Bitmap, Index, IndexBuilder, Repository};
use crate::storage::{DynStorage, FileKind, ObjectInfo, StorageError};

/// A pack as the first live index file (by id) that names it lists it.
#[derive(Debug, Clone, Copy)]
pub(super) struct PackView<'a> {
    pub blobs: &'a [PackEntry],
    pub index_file: IndexId,
}

/// The packs found in storage, by their position in the index.
#[derive(Debug, Default)]
pub(super) struct StoredPacks {
    /// One bit per indexed pack: found in storage.
    pub present: Bitmap,
    /// Indexed packs whose size in storage differs from the index's, sorted
    /// by position, with the size in storage.
    pub wrong_size: Vec<(usize, u64)>,
}

impl StoredPacks {
    /// The size of the indexed pack at `position` in storage, if stored.
    pub fn size(&self, index: &Index, position: usize) -> Option<u64> {
        if !self.present.get(position) {
            return None;
        }
        match self.wrong_size.binary_search_by_key(&position, |(p, _)| *p) {
            Ok(i) => Some(self.wrong_size[i].1),
            Err(_) => index.pack_at(position).map(|(_, size)| size),
        }
    }
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

/// Loads every index file, one at a time into the index builder; a bad one
/// is reported and skipped. The live index is the union of the files no
/// other loaded file supersedes. Holds the growing index, the files being
/// fetched and one decoded file.
pub(super) fn load_index(repo: &Repository, connections: usize, report: &mut CheckReport) -> Result<Index, CheckError> {
    let names = list(repo, FileKind::Index)?;
    let storage = repo.storage().clone();
    let mut builder = IndexBuilder::new();
    let mut too_large = false;
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
        |(name, got): (String, Result<Bytes, StorageError>)| {
            let Ok(id) = name.parse::<IndexId>() else {
                report.warning(ObjectType::Index, &name, "is not named by a file id; ignored");
                return;
            };
            let bytes = match got {
                Ok(b) => b,
                Err(e) => {
                    report.error(ObjectType::Index, &name, format!("cannot be read: {e}"));
                    return;
                }
            };
            report.counters.bytes_read += bytes.len() as u64;
            match decode_index(repo, &name, &bytes) {
                Ok(file) => {
                    report.counters.index_files += 1;
                    if too_large {
                        return;
                    }
                    if let Err(e) = builder.add_file(id, file) {
                        too_large = true;
                        report.error(ObjectType::Repository, "index", e.to_string());
                    }
                }
                Err(msg) => report.error(ObjectType::Index, &name, msg),
            }
        },
    )?;
    let index = if too_large { Index::default() } else { builder.finish() };
    report.counters.packs = index.pack_count() as u64;
    report.counters.blobs = index.len() as u64;
    Ok(index)
}

/// Opens and decodes the stored bytes of index file `name`.
pub(super) fn decode_index(repo: &Repository, name: &str, bytes: &[u8]) -> Result<IndexFile, String> {
    let plain = repo
        .open_file(FileKind::Index, name, bytes)
        .map_err(|e| e.to_string())?;
    IndexFile::decode(&plain).map_err(|e| format!("cannot be decoded: {e}"))
}

/// Compares the packs in storage with the index: records which indexed
/// packs are stored and with what size, and reports stored packs no live
/// index file names. Indexed packs missing from storage are reported when
/// their index file is read again (the message names it).
pub(super) fn compare_pack_lists(
    repo: &Repository,
    index: &Index,
    report: &mut CheckReport,
) -> Result<StoredPacks, CheckError> {
    let listed = list(repo, FileKind::Pack)?;
    let mut stored = StoredPacks {
        present: Bitmap::new(index.pack_count()),
        wrong_size: Vec::new(),
    };
    let mut in_storage = 0u64;
    for info in listed {
        let Ok(id) = info.name.parse::<PackId>() else {
            report.warning(ObjectType::Pack, &info.name, "is not named by a pack id; ignored");
            continue;
        };
        let Some(position) = index.pack_position(&id) else {
            in_storage += 1;
            if index.is_marked(&id) {
                report.info(ObjectType::Pack, id, "is marked for deletion by prune");
            } else {
                report.warning(
                    ObjectType::Pack,
                    id,
                    "is in storage but no index names it (left by an interrupted backup?); prune removes it",
                );
            }
            continue;
        };
        if stored.present.set(position) {
            continue;
        }
        in_storage += 1;
        if index.pack_at(position).is_some_and(|(_, size)| size != info.size) {
            stored.wrong_size.push((position, info.size));
        }
    }
    stored.wrong_size.sort_unstable();
    report.counters.packs_in_storage = in_storage;
    Ok(stored)
}

/// Why a pack header could not be read.
pub(super) fn read_header_error(e: &StorageError) -> String {
    format!("cannot read its header: {e}")
}

/// Reads the sealed header of pack `id` of `size` bytes with two ranged
/// reads; returns where it starts and its bytes.
pub(super) async fn fetch_header(storage: &DynStorage, id: &PackId, size: u64) -> Result<(u64, Bytes), String> {
    let name = id.to_hex();
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

pub(super) use crate::repo::packer::open_header;

/// Compares a pack's header with its index entries.
pub(super) fn compare_header(id: &PackId, header: &PackHeader, pack: &PackView<'_>, report: &mut CheckReport) {
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
