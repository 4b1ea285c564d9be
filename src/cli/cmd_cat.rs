//! `cairn cat KIND [ID]`: print one repository object, decoded.
//!
//! Structures are printed as pretty JSON; `cat blob` writes the blob's raw
//! plaintext. Every object is verified as it is read, so a damaged one is
//! reported by kind and id.

use std::io::Write;

use serde_json::{json, Value};

use super::cmd_ls::node_json;
use super::cmd_snapshots::snapshot_json;
use super::{output, CliError, Context};
use crate::format::index::IndexFile;
use crate::format::keyfile::KeyFile;
use crate::format::pack::{self, PackEntry, PackHeader};
use crate::format::{envelope, BlobKind};
use crate::id::{BlobId, TreeId};
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::{RepoError, Repository};
use crate::storage::{FileKind, StorageError};

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// The repository config.
    Config,
    /// A key file (without the wrapped master key).
    Key,
    /// A snapshot (an id, a unique prefix or `latest`).
    Snapshot,
    /// An index file.
    Index,
    /// A pack's header (read from the end of the pack only).
    Pack,
    /// A tree blob.
    Tree,
    /// A blob's raw plaintext (data blobs first, then tree blobs).
    Blob,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kind of object.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The object's id (every kind but config); files also accept a unique prefix.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let id = match (args.kind, args.id.as_deref()) {
        (Kind::Config, None) => "",
        (Kind::Config, Some(_)) => return Err(CliError::Usage("cat config takes no id".into())),
        (kind, None) => {
            return Err(CliError::Usage(format!(
                "cat {}: an id is required",
                format!("{kind:?}").to_lowercase()
            )))
        }
        (_, Some(id)) => id,
    };
    let value = match args.kind {
        Kind::Config => config_json(&ctx.open()?),
        Kind::Key => key_json(&ctx.open()?, id)?,
        Kind::Snapshot => {
            let repo = ctx.open()?;
            let (sid, snap) = repo.find_snapshot(id, &SnapshotFilter::default())?;
            snapshot_json(&sid, &snap)
        }
        Kind::Index => index_json(&ctx.open()?, id)?,
        Kind::Pack => pack_json(&ctx.open()?, id)?,
        Kind::Tree => {
            let repo = ctx.open_indexed()?;
            let tree_id: TreeId = id.parse().map_err(|e| CliError::Usage(format!("cat tree: {e}")))?;
            let tree = repo.load_tree(&tree_id)?;
            let nodes: Vec<Value> = tree.nodes.iter().map(|n| node_json(n, None)).collect();
            json!({ "id": tree_id.to_hex(), "nodes": nodes })
        }
        Kind::Blob => {
            let repo = ctx.open_indexed()?;
            let blob_id: BlobId = id.parse().map_err(|e| CliError::Usage(format!("cat blob: {e}")))?;
            let kind = [BlobKind::Data, BlobKind::Tree]
                .into_iter()
                .find(|k| repo.index().contains(*k, &blob_id))
                .ok_or_else(|| CliError::Other(format!("blob {blob_id} is not in the index")))?;
            let bytes = repo.read_blob(kind, &blob_id)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
            return Ok(0);
        }
    };
    print_pretty(&value)?;
    Ok(0)
}

fn print_pretty(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Other(format!("encoding JSON: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// The full name of the object of `kind` whose name is `spec` or starts with it.
fn resolve(repo: &Repository, kind: FileKind, spec: &str) -> Result<String, CliError> {
    if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::Usage(format!("{kind} id {spec:?} is not hexadecimal")));
    }
    let spec = spec.to_ascii_lowercase();
    if spec.len() == 64 {
        return Ok(spec);
    }
    let names = repo.block_on(repo.storage().list(kind)).map_err(RepoError::from)?;
    let matches: Vec<String> = names
        .into_iter()
        .map(|info| info.name)
        .filter(|n| n.starts_with(&spec))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(RepoError::Storage(StorageError::NotFound { kind, name: spec }).into()),
        more => Err(CliError::Usage(format!(
            "{kind} prefix {spec:?} is ambiguous: it matches {} objects",
            more.len()
        ))),
    }
}

fn config_json(repo: &Repository) -> Value {
    let c = repo.config();
    json!({
        "id": c.id.to_hex(),
        "version": crate::format::FORMAT_VERSION,
        "created": output::rfc3339(c.created_ns),
        "chunker": {
            "min_size": c.chunker.min_size,
            "avg_size": c.chunker.avg_size,
            "max_size": c.chunker.max_size,
        },
        "pack_size": c.pack_size,
        "compression": c.compression,
    })
}

fn key_json(repo: &Repository, spec: &str) -> Result<Value, CliError> {
    let name = resolve(repo, FileKind::Key, spec)?;
    let bytes = repo
        .block_on(repo.storage().get(FileKind::Key, &name))
        .map_err(RepoError::from)?;
    crate::repo::verify_name(FileKind::Key, &name, &bytes)?;
    let key = KeyFile::decode(&bytes).map_err(|source| RepoError::Format {
        kind: FileKind::Key,
        name: name.clone(),
        source,
    })?;
    Ok(json!({
        "id": name,
        "current": name == repo.key_name(),
        "created": output::rfc3339(key.created_ns),
        "host": key.hostname,
        "username": key.username,
        "kdf": {
            "algorithm": "argon2id",
            "memory_kib": key.kdf.memory_kib,
            "iterations": key.kdf.iterations,
            "parallelism": key.kdf.parallelism,
        },
        "salt": hex::encode(key.salt),
    }))
}

fn entry_json(e: &PackEntry) -> Value {
    json!({
        "type": match e.kind {
            BlobKind::Data => "data",
            BlobKind::Tree => "tree",
        },
        "id": e.id.to_hex(),
        "offset": e.offset,
        "length": e.length,
        "raw_length": e.raw_length,
    })
}

fn index_json(repo: &Repository, spec: &str) -> Result<Value, CliError> {
    let name = resolve(repo, FileKind::Index, spec)?;
    let plain = repo.load_file(FileKind::Index, &name)?;
    let file = IndexFile::decode(&plain).map_err(|source| RepoError::Format {
        kind: FileKind::Index,
        name: name.clone(),
        source,
    })?;
    let packs: Vec<Value> = file
        .packs
        .iter()
        .map(|p| {
            json!({
                "id": p.id.to_hex(),
                "size": p.size,
                "blobs": p.blobs.iter().map(entry_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let marked: Vec<Value> = file
        .marked
        .iter()
        .map(|m| json!({ "id": m.id.to_hex(), "marked": output::rfc3339(m.marked_ns) }))
        .collect();
    Ok(json!({
        "id": name,
        "supersedes": file.supersedes.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
        "packs": packs,
        "marked": marked,
    }))
}

/// Reads a pack's trailer and header only (two ranged reads) and decodes
/// the header; returns the pack size, the header's offset and the header.
pub fn read_pack_header(repo: &Repository, name: &str) -> Result<(u64, u64, PackHeader), RepoError> {
    let storage = repo.storage();
    let size = repo.block_on(storage.size(FileKind::Pack, name))?;
    let corrupt = |source| RepoError::Format {
        kind: FileKind::Pack,
        name: name.to_owned(),
        source,
    };
    let trailer_at = size.checked_sub(pack::TRAILER_LEN as u64).ok_or_else(|| {
        corrupt(crate::format::FormatError::Truncated {
            what: "pack",
            reason: format!("{size} bytes"),
        })
    })?;
    let trailer = repo.block_on(storage.get_range(FileKind::Pack, name, trailer_at, pack::TRAILER_LEN as u64))?;
    let trailer: [u8; pack::TRAILER_LEN] = trailer.as_ref().try_into().map_err(|_| {
        corrupt(crate::format::FormatError::Truncated {
            what: "pack trailer",
            reason: format!("{} bytes", trailer.len()),
        })
    })?;
    let (offset, len) = pack::header_location(size, trailer).map_err(corrupt)?;
    let sealed = repo.block_on(storage.get_range(FileKind::Pack, name, offset, u64::from(len)))?;
    let plain = repo
        .key()
        .open(
            crate::format::ObjectKind::PackHeader,
            &sealed,
            envelope::DEFAULT_LIMIT,
            None,
        )
        .map_err(|source| RepoError::Crypto {
            kind: FileKind::Pack,
            name: name.to_owned(),
            source,
        })?;
    let header = PackHeader::decode(&plain).map_err(corrupt)?;
    if header.data_end() > offset {
        return Err(corrupt(crate::format::FormatError::Decode {
            what: "pack header",
            reason: format!("blobs end at {} but the header starts at {offset}", header.data_end()),
        }));
    }
    Ok((size, offset, header))
}

fn pack_json(repo: &Repository, spec: &str) -> Result<Value, CliError> {
    let name = resolve(repo, FileKind::Pack, spec)?;
    let (size, header_offset, header) = read_pack_header(repo, &name)?;
    Ok(json!({
        "id": name,
        "size": size,
        "header_offset": header_offset,
        "header_length": size - header_offset - pack::TRAILER_LEN as u64,
        "blobs": header.entries.iter().map(entry_json).collect::<Vec<_>>(),
    }))
}
