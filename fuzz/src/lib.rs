//! The bodies of cairn's fuzz targets, one function per decoder of stored
//! bytes. Each must return normally for every input: errors are fine,
//! panics, aborts and unbounded allocations are bugs.
//!
//! The fuzz targets in `fuzz_targets/` call these functions, and
//! `tests/fuzz_corpus.rs` replays the seed corpus through them on stable Rust.

use cairn::crypto::{MasterKey, MASTER_KEY_LEN};
use cairn::format::config::Config;
use cairn::format::envelope;
use cairn::format::index::IndexFile;
use cairn::format::keyfile::KeyFile;
use cairn::format::lock::Lock;
use cairn::format::pack::{self, PackHeader, TRAILER_LEN};
use cairn::format::snapshot::Snapshot;
use cairn::format::tree::Tree;
use cairn::format::{BlobKind, ObjectKind};
use cairn::id::{BlobId, IndexId, PackId};
use cairn::repo::{IndexBuilder, KEY_LEN};

/// Decompressed-size limit used by the targets, small enough to keep runs fast.
const LIMIT: usize = 1 << 24;

const KINDS: [ObjectKind; 8] = [
    ObjectKind::Data,
    ObjectKind::Tree,
    ObjectKind::PackHeader,
    ObjectKind::Index,
    ObjectKind::Snapshot,
    ObjectKind::Config,
    ObjectKind::Lock,
    ObjectKind::Key,
];

/// The body of one fuzz target.
pub type Target = fn(&[u8]);

/// Every target by name, as its corpus directory is named.
pub const TARGETS: [(&str, Target); 11] = [
    ("envelope", envelope),
    ("open", open),
    ("pack_header", pack_header),
    ("index", index),
    ("tree", tree),
    ("snapshot", snapshot),
    ("config", config),
    ("key_file", key_file),
    ("lock", lock),
    ("k8s_object", k8s_object),
    ("index_table", index_table),
];

/// The local index table's decoder: the head, its counts and lists, and
/// every bucket, under a fixed MAC key.
pub fn index_table(data: &[u8]) {
    if let Ok(n) = cairn::repo::index::read_table_bytes([7; 32], data.to_vec()) {
        // Entries are 36 bytes each.
        assert!(n <= data.len() / 36);
    }
}

/// Envelope splitting for every kind, and plaintext unframing of the input
/// itself and of the bytes after an envelope header and nonce.
pub fn envelope(data: &[u8]) {
    for kind in KINDS {
        if let Ok(parts) = envelope::split(data, kind) {
            assert_eq!(parts.kind, kind);
            assert!(parts.sealed.len() >= envelope::TAG_LEN);
        }
    }
    let _ = envelope::unframe(data, LIMIT, None);
    if let Some(body) = data.get(envelope::HEADER_LEN + envelope::NONCE_LEN..) {
        let _ = envelope::unframe(body, LIMIT, None);
    }
}

/// Opening an envelope under a fixed master key (bytes 0..96, the key of the
/// golden vectors): exercises the AEAD reject path.
pub fn open(data: &[u8]) {
    let bytes: [u8; MASTER_KEY_LEN] = std::array::from_fn(|i| i as u8);
    let key = MasterKey::from_bytes(&bytes);
    for kind in KINDS {
        let _ = key.open(kind, data, LIMIT, None);
    }
}

/// A pack header's plaintext, and the input taken as a whole pack's trailer.
pub fn pack_header(data: &[u8]) {
    if let Ok(h) = PackHeader::decode(data) {
        let mut end = 0;
        for e in &h.entries {
            assert!(u64::from(e.offset) >= end);
            end = e.end();
        }
        assert_eq!(h.data_end(), end);
    }
    if let Some(tail) = data.len().checked_sub(TRAILER_LEN).map(|s| &data[s..]) {
        let trailer: [u8; TRAILER_LEN] = tail.try_into().unwrap_or_default();
        if let Ok((offset, len)) = pack::header_location(data.len() as u64, trailer) {
            assert_eq!(offset + u64::from(len) + TRAILER_LEN as u64, data.len() as u64);
        }
    }
}

/// An index file that decodes, loaded into an in-memory index: every blob
/// it lists is found in a pack it lists, and each listing is counted once.
pub fn index(data: &[u8]) {
    let Ok(file) = IndexFile::decode(data) else { return };
    let id = IndexId::hash_of(data);
    let live = !file.supersedes.contains(&id);
    let listed: Vec<(BlobKind, BlobId, PackId)> = file
        .packs
        .iter()
        .flat_map(|p| p.blobs.iter().map(move |b| (b.kind, b.id, p.id)))
        .collect();
    let mut builder = IndexBuilder::new();
    if builder.add_file(id, file.clone()).is_err() {
        return;
    }
    let index = builder.finish();
    if !live {
        assert!(index.is_empty() && index.files().is_empty());
        return;
    }
    assert_eq!(index.len() as u64 + index.duplicates(), listed.len() as u64);
    for (kind, blob, _) in &listed {
        let loc = index.get(*kind, blob).expect("a listed blob is found");
        assert_eq!(loc.kind, *kind);
        assert!(listed
            .iter()
            .any(|(k, b, p)| k == kind && b.0[..KEY_LEN] == blob.0[..KEY_LEN] && *p == loc.pack));
        assert!(index.position(*kind, blob).is_some_and(|p| p < index.len()));
    }
    assert!(index.packs().all(|(p, _)| file.packs.iter().any(|l| l.id == p)));
}

/// A tree that decodes must have only safe, strictly increasing names.
pub fn tree(data: &[u8]) {
    if let Ok(t) = Tree::decode(data) {
        for pair in t.nodes.windows(2) {
            assert!(pair[0].name < pair[1].name);
        }
        for n in &t.nodes {
            assert!(!n.name.is_empty() && n.name != b"." && n.name != b"..");
            assert!(!n.name.contains(&b'/') && !n.name.contains(&0));
        }
    }
}

pub fn snapshot(data: &[u8]) {
    let _ = Snapshot::decode(data);
}

pub fn config(data: &[u8]) {
    let _ = Config::decode(data);
}

/// Key file decoding only: the Argon2id step is far too slow to fuzz.
pub fn key_file(data: &[u8]) {
    let _ = KeyFile::decode(data);
}

/// Lock decoding; whatever decodes must survive an encode and decode.
pub fn lock(data: &[u8]) {
    if let Ok(lock) = Lock::decode(data) {
        let again = Lock::decode(&lock.encode());
        assert!(again.ok().as_ref() == Some(&lock), "lock does not round-trip: {lock:?}");
    }
}

/// A stored Kubernetes object: the first line is its path in the snapshot,
/// the rest its bytes. What decodes is then rewritten as a restore would.
pub fn k8s_object(data: &[u8]) {
    use cairn::k8s::manifests::stored::decode_object;
    use cairn::k8s::manifests::transform::{skip_reason, transform, Rewrite};
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let path = String::from_utf8_lossy(&data[..split]);
    let bytes = data.get(split + 1..).unwrap_or_default();
    if let Ok(mut stored) = decode_object(&path, bytes) {
        let _ = skip_reason(&stored.at, &stored.object);
        let rewrite = Rewrite {
            mapping: [("web".to_owned(), "web-copy".to_owned())].into(),
            ..Rewrite::default()
        };
        transform(&stored.at, &mut stored.object, &rewrite);
        assert!(stored.object.is_object());
    }
}
