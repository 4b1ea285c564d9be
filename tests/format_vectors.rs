//! Golden vectors of format v1 (`format-spec/vectors/`).
//!
//! Every vector is rebuilt from fixed inputs (master key, nonces, salt, KDF
//! parameters) and compared byte for byte with the stored file; then the
//! stored bytes are decoded and the decoded values are checked.
//!
//! `CAIRN_WRITE_VECTORS=1 cargo test --test format_vectors` rewrites the
//! vectors, their manifest and the fuzz seed corpus instead of comparing.
//! Only do that for a deliberate format change, and record it in the spec's
//! changes section.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn::crypto::{self, MasterKey, MASTER_KEY_LEN};
use cairn::format::config::{ChunkerParams, Config, ObjectLockConfig};
use cairn::format::envelope::{self, NONCE_LEN};
use cairn::format::index::{IndexFile, IndexPack, MarkedPack};
use cairn::format::keyfile::{KdfParams, KeyFile};
use cairn::format::limits;
use cairn::format::lock::{Lock, LockKind};
use cairn::format::pack::{self, PackEntry, PackHeader, TRAILER_LEN};
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::format::tree::{Content, Node, NodeKind, Tree, Xattr};
use cairn::format::{BlobKind, ObjectKind};
use cairn::id::{BlobId, IndexId, PackId, RepoId, SnapshotId, TreeId};
use cairn::storage::FileKind;
use serde_json::{json, Value};

// ---- fixed inputs ----------------------------------------------------------

fn master_key_bytes() -> [u8; MASTER_KEY_LEN] {
    std::array::from_fn(|i| i as u8)
}

fn master() -> MasterKey {
    MasterKey::from_bytes(&master_key_bytes())
}

fn encryption_key() -> [u8; 32] {
    master_key_bytes()[..32].try_into().unwrap()
}

/// The nonce of vector `n`: 24 bytes of value `n`.
fn nonce(n: u8) -> [u8; NONCE_LEN] {
    [n; NONCE_LEN]
}

const PASSWORD: &[u8] = b"correct horse battery staple";
const ZSTD_LEVEL: i32 = 3;
const BLOB_ID_INPUT: &[u8] = b"cairn";
const TIME_NS: i64 = 1_700_000_000_123_456_789;

fn salt() -> [u8; 32] {
    std::array::from_fn(|i| 0xa0 + i as u8)
}

fn kdf() -> KdfParams {
    KdfParams {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    }
}

fn data_stored_plain() -> Vec<u8> {
    b"cairn format v1: a data blob stored without compression\n".to_vec()
}

fn data_zstd_plain() -> Vec<u8> {
    b"cairn ".repeat(64)
}

fn tree_value() -> Tree {
    let key = master();
    let mut file = Node::new(b"hello.txt".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.uid = 1000;
    file.gid = 1000;
    file.user = "alice".into();
    file.group = "staff".into();
    file.mtime_ns = TIME_NS;
    file.atime_ns = TIME_NS + 1;
    file.ctime_ns = TIME_NS + 2;
    file.device = 2049;
    file.inode = 131_073;
    file.links = 1;
    file.size = data_stored_plain().len() as u64 + 4096 + data_zstd_plain().len() as u64;
    file.content = vec![
        Content::Blob(BlobId(key.blob_id(&data_stored_plain()))),
        Content::Hole(4096),
        Content::Blob(BlobId(key.blob_id(&data_zstd_plain()))),
    ];
    file.xattrs = vec![Xattr {
        name: b"user.comment".to_vec(),
        value: b"golden".to_vec(),
    }];

    let mut dir = Node::new(b"sub".to_vec(), NodeKind::Dir);
    dir.mode = 0o755;
    dir.mtime_ns = -1;
    dir.subtree = Some(TreeId([0x44; 32]));

    let mut link = Node::new(b"link".to_vec(), NodeKind::Symlink);
    link.mode = 0o777;
    link.link_target = Some(b"hello.txt".to_vec());

    let mut tree = Tree {
        nodes: vec![file, dir, link],
    };
    tree.sort();
    tree
}

fn summary() -> Summary {
    Summary {
        backup_start_ns: TIME_NS,
        backup_end_ns: TIME_NS + 1_500_000_000,
        files_new: 1,
        files_changed: 0,
        files_unchanged: 0,
        dirs_new: 2,
        dirs_changed: 0,
        dirs_unchanged: 0,
        errors: 0,
        data_blobs: 2,
        tree_blobs: 1,
        data_added: 440,
        data_added_packed: 180,
        total_files_processed: 1,
        total_bytes_processed: 4536,
    }
}

fn config_value() -> Config {
    Config {
        id: RepoId([0xc0; 32]),
        created_ns: TIME_NS,
        chunker: ChunkerParams::default(),
        pack_size: 16 << 20,
        compression: Some(ZSTD_LEVEL),
        object_lock: Some(ObjectLockConfig {
            days: 30,
            compliance: true,
        }),
    }
}

fn lock_value() -> Lock {
    Lock {
        time_ns: TIME_NS,
        expires_ns: TIME_NS + 1_800_000_000_000,
        hostname: "node-1".into(),
        username: "root".into(),
        pid: 4242,
        kind: LockKind::Exclusive,
        boot_id: "0f6d3c1e-2a4b-4c5d-8e9f-0a1b2c3d4e5f".into(),
        pid_ns: 4026531836,
    }
}

// ---- building --------------------------------------------------------------

fn seal(n: u8, kind: ObjectKind, level: Option<i32>, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crypto::seal_with_nonce(&encryption_key(), kind, level, plain, &nonce(n), &mut out).unwrap();
    out
}

/// One stored object of the vectors.
struct Vector {
    file: &'static str,
    bytes: Vec<u8>,
    describe: Value,
}

/// Derived values the decode checks need.
struct Built {
    vectors: Vec<Vector>,
    pack_header: PackHeader,
    pack_id: PackId,
    index: IndexFile,
    snapshot: Snapshot,
    tree_id: TreeId,
}

fn storage_path(kind: FileKind, bytes: &[u8]) -> String {
    match kind {
        FileKind::Config => kind.path(""),
        _ => kind.path(&PackId::hash_of(bytes).to_hex()),
    }
}

fn build() -> Built {
    let key = master();
    let mut vectors = Vec::new();
    let mut plain = |file, bytes: Vec<u8>, what: &str| {
        vectors.push(Vector {
            file,
            bytes,
            describe: json!({ "what": what }),
        });
    };

    // Blobs.
    let data_stored = seal(1, ObjectKind::Data, None, &data_stored_plain());
    let data_zstd = seal(2, ObjectKind::Data, Some(ZSTD_LEVEL), &data_zstd_plain());
    let tree = tree_value();
    let tree_plain = tree.encode();
    let tree_id = TreeId(key.blob_id(&tree_plain));
    let tree_sealed = seal(3, ObjectKind::Tree, None, &tree_plain);
    plain("tree.plain.hex", tree_plain.clone(), "postcard(Tree) of tree.hex");

    // Pack: the stored data blob and the tree blob, then the header.
    let entries = vec![
        PackEntry {
            kind: BlobKind::Data,
            id: BlobId(key.blob_id(&data_stored_plain())),
            offset: 0,
            length: data_stored.len() as u32,
            raw_length: data_stored_plain().len() as u32,
        },
        PackEntry {
            kind: BlobKind::Tree,
            id: tree_id.into(),
            offset: data_stored.len() as u32,
            length: tree_sealed.len() as u32,
            raw_length: tree_plain.len() as u32,
        },
    ];
    let pack_header = PackHeader { entries };
    let header_plain = pack_header.encode();
    let header_sealed = seal(4, ObjectKind::PackHeader, None, &header_plain);
    plain(
        "pack_header.plain.hex",
        header_plain,
        "postcard(PackHeader) of pack.hex",
    );
    let mut pack = Vec::new();
    pack.extend_from_slice(&data_stored);
    pack.extend_from_slice(&tree_sealed);
    pack.extend_from_slice(&header_sealed);
    pack.extend_from_slice(&(header_sealed.len() as u32).to_le_bytes());
    let pack_id = PackId::hash_of(&pack);

    let index = IndexFile {
        supersedes: vec![IndexId([0x11; 32])],
        packs: vec![IndexPack {
            id: pack_id,
            size: pack.len() as u64,
            blobs: pack_header.entries.clone(),
        }],
        marked: vec![MarkedPack {
            id: PackId([0x22; 32]),
            marked_ns: TIME_NS,
        }],
    };
    let index_plain = index.encode();
    let index_sealed = seal(5, ObjectKind::Index, None, &index_plain);
    plain("index.plain.hex", index_plain, "postcard(IndexFile) of index.hex");

    let snapshot = Snapshot {
        time_ns: TIME_NS,
        tree: tree_id,
        paths: vec!["/data".into()],
        hostname: "node-1".into(),
        username: "root".into(),
        uid: 0,
        gid: 0,
        tags: vec!["daily".into()],
        parent: Some(SnapshotId([0x33; 32])),
        original: Some(SnapshotId([0x44; 32])),
        excludes: vec!["*.tmp".into()],
        program_version: "cairn 0.1.0".into(),
        partial: false,
        summary: summary(),
    };
    let snapshot_plain = snapshot.encode();
    let snapshot_sealed = seal(6, ObjectKind::Snapshot, None, &snapshot_plain);
    plain(
        "snapshot.plain.hex",
        snapshot_plain,
        "postcard(Snapshot) of snapshot.hex",
    );

    let config_plain = config_value().encode();
    let config_sealed = seal(7, ObjectKind::Config, None, &config_plain);
    plain("config.plain.hex", config_plain, "postcard(Config) of config.hex");

    let lock_plain = lock_value().encode();
    let lock_sealed = seal(8, ObjectKind::Lock, None, &lock_plain);
    plain("lock.plain.hex", lock_plain, "postcard(Lock) of lock.hex");

    let mut key_file = crypto::wrap_master_key_with(&key, PASSWORD, kdf(), &salt(), &nonce(9)).unwrap();
    key_file.created_ns = TIME_NS;
    key_file.hostname = "node-1".into();
    key_file.username = "root".into();
    let key_bytes = key_file.encode();

    let mut framed_zstd = Vec::new();
    envelope::frame(Some(ZSTD_LEVEL), &data_zstd_plain(), &mut framed_zstd);
    plain(
        "data_zstd.framed.hex",
        framed_zstd,
        "the decrypted plaintext of data_zstd.hex: compression byte 1 and one zstd frame",
    );

    let stored = [
        (
            "data_stored.hex",
            data_stored,
            None,
            1,
            "data blob, stored (compression 0)",
        ),
        (
            "data_zstd.hex",
            data_zstd,
            None,
            2,
            "data blob, zstd level 3 (compression 1)",
        ),
        ("tree.hex", tree_sealed, None, 3, "tree blob, stored"),
        (
            "pack.hex",
            pack,
            Some(FileKind::Pack),
            4,
            "pack: data_stored.hex, tree.hex, sealed header (nonce 4), trailer",
        ),
        (
            "index.hex",
            index_sealed,
            Some(FileKind::Index),
            5,
            "index file naming pack.hex",
        ),
        (
            "snapshot.hex",
            snapshot_sealed,
            Some(FileKind::Snapshot),
            6,
            "snapshot naming tree.hex",
        ),
        ("config.hex", config_sealed, Some(FileKind::Config), 7, "config"),
        ("lock.hex", lock_sealed, Some(FileKind::Lock), 8, "exclusive lock"),
        (
            "key.hex",
            key_bytes,
            Some(FileKind::Key),
            9,
            "key file wrapping the master key",
        ),
    ];
    for (file, bytes, kind, n, what) in stored {
        let mut describe = json!({
            "what": what,
            "nonce": hex::encode(nonce(n)),
            "length": bytes.len(),
        });
        if let Some(kind) = kind {
            describe["path"] = json!(storage_path(kind, &bytes));
        }
        vectors.push(Vector { file, bytes, describe });
    }

    Built {
        vectors,
        pack_header,
        pack_id,
        index,
        snapshot,
        tree_id,
    }
}

fn manifest(built: &Built) -> String {
    let key = master();
    let gear = key.gear_table();
    let files: BTreeMap<&str, &Value> = built.vectors.iter().map(|v| (v.file, &v.describe)).collect();
    let m = json!({
        "format_version": 1,
        "master_key": hex::encode(master_key_bytes()),
        "master_key_note": "bytes 0x00..0x5f: encryption key 0..32, blob-id key 32..64, chunker key 64..96",
        "nonces": "vector n uses 24 bytes of value n (see each file)",
        "zstd_level": ZSTD_LEVEL,
        "key_file": {
            "password": String::from_utf8_lossy(PASSWORD),
            "salt": hex::encode(salt()),
            "kdf": { "algorithm": "Argon2id v0x13", "memory_kib": 8192, "iterations": 1, "parallelism": 1 },
        },
        "blob_id": {
            "input": String::from_utf8_lossy(BLOB_ID_INPUT),
            "id": hex::encode(key.blob_id(BLOB_ID_INPUT)),
        },
        "gear_table_first_8": gear[..8].iter().map(|g| format!("{g:016x}")).collect::<Vec<_>>(),
        "data_stored_plaintext": String::from_utf8_lossy(&data_stored_plain()),
        "data_zstd_plaintext": "\"cairn \" repeated 64 times (384 bytes)",
        "chunking": {
            "params": { "min_size": 2048, "avg_size": 4096, "max_size": 32768 },
            "input": "262144 bytes: the BLAKE3 XOF (unkeyed) of \"cairn chunker vector\"",
            "lengths": chunk_lengths(),
        },
        "tree_id": built.tree_id.to_hex(),
        "pack_id": built.pack_id.to_hex(),
        "files": files,
    });
    serde_json::to_string_pretty(&m).unwrap() + "\n"
}

/// The input of the chunking vector.
fn chunk_input() -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(b"cairn chunker vector");
    let mut data = vec![0u8; 262_144];
    h.finalize_xof().fill(&mut data);
    data
}

/// Chunk lengths of [`chunk_input`] under the vector's master key.
fn chunk_lengths() -> Vec<usize> {
    let params = cairn::format::config::ChunkerParams::from_avg(4096).unwrap();
    let chunker = cairn::chunker::Chunker::new(master().gear_table(), params);
    let data = chunk_input();
    chunker.chunks(&data).map(<[u8]>::len).collect()
}

// ---- files -----------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn vectors_dir() -> PathBuf {
    root().join("format-spec/vectors")
}

fn to_hex_lines(bytes: &[u8]) -> String {
    let mut s = String::new();
    for line in bytes.chunks(32) {
        s.push_str(&hex::encode(line));
        s.push('\n');
    }
    s
}

fn read_vector(file: &str) -> Vec<u8> {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn writing() -> bool {
    std::env::var_os("CAIRN_WRITE_VECTORS").is_some_and(|v| v == "1")
}

/// Seed corpus of each fuzz target, taken from the vectors.
fn corpus() -> Vec<(&'static str, &'static str)> {
    vec![
        ("envelope", "data_stored.hex"),
        ("envelope", "data_zstd.hex"),
        ("envelope", "data_zstd.framed.hex"),
        ("envelope", "tree.hex"),
        ("open", "data_stored.hex"),
        ("open", "data_zstd.hex"),
        ("open", "tree.hex"),
        ("open", "config.hex"),
        ("open", "snapshot.hex"),
        ("pack_header", "pack_header.plain.hex"),
        ("pack_header", "pack.hex"),
        ("index", "index.plain.hex"),
        ("tree", "tree.plain.hex"),
        ("snapshot", "snapshot.plain.hex"),
        ("config", "config.plain.hex"),
        ("key_file", "key.hex"),
        ("lock", "lock.plain.hex"),
    ]
}

#[test]
fn vectors_match_fixed_inputs() {
    let built = build();
    let manifest = manifest(&built);
    let dir = vectors_dir();
    if writing() {
        std::fs::create_dir_all(&dir).unwrap();
        for v in &built.vectors {
            std::fs::write(dir.join(v.file), to_hex_lines(&v.bytes)).unwrap();
        }
        std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
        let by_file: BTreeMap<&str, &[u8]> = built.vectors.iter().map(|v| (v.file, v.bytes.as_slice())).collect();
        for (target, file) in corpus() {
            let d = root().join("fuzz/corpus").join(target);
            std::fs::create_dir_all(&d).unwrap();
            let name = file.trim_end_matches(".hex");
            std::fs::write(d.join(format!("{name}.bin")), by_file[file]).unwrap();
        }
        return;
    }
    for v in &built.vectors {
        let stored = read_vector(v.file);
        assert!(
            stored == v.bytes,
            "{} differs from the bytes rebuilt from the fixed inputs\nstored:  {}\nrebuilt: {}",
            v.file,
            hex::encode(&stored),
            hex::encode(&v.bytes)
        );
    }
    let stored_manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert_eq!(stored_manifest, manifest, "manifest.json differs");
}

// ---- decoding the stored bytes ---------------------------------------------

fn open(kind: ObjectKind, file: &str) -> Vec<u8> {
    master()
        .open(kind, &read_vector(file), limits::MAX_OBJECT, None)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn stored_blobs_decode() {
    let key = master();
    let stored = read_vector("data_stored.hex");
    assert_eq!(&stored[..2], &[1, ObjectKind::Data as u8]);
    assert_eq!(&stored[2..26], &nonce(1));
    assert_eq!(stored[26..stored.len() - 16].len(), 1 + data_stored_plain().len());
    assert_eq!(open(ObjectKind::Data, "data_stored.hex"), data_stored_plain());

    let zstd = read_vector("data_zstd.hex");
    assert!(zstd.len() < data_stored_plain().len() + envelope::OVERHEAD + 1 + 384);
    assert_eq!(open(ObjectKind::Data, "data_zstd.hex"), data_zstd_plain());
    let framed = read_vector("data_zstd.framed.hex");
    assert_eq!(framed[0], envelope::COMPRESSION_ZSTD);
    assert_eq!(&framed[1..5], &envelope::ZSTD_MAGIC);
    assert_eq!(envelope::unframe(&framed, 384, Some(384)).unwrap(), data_zstd_plain());
    assert_eq!(zstd.len(), envelope::OVERHEAD + framed.len());

    let tree_plain = open(ObjectKind::Tree, "tree.hex");
    assert_eq!(tree_plain, read_vector("tree.plain.hex"));
    let tree = Tree::decode(&tree_plain).unwrap();
    assert_eq!(tree, tree_value());
    let names: Vec<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
    assert_eq!(names, [&b"hello.txt"[..], b"link", b"sub"]);
    assert_eq!(
        tree.find(b"hello.txt").unwrap().content[0],
        Content::Blob(BlobId(key.blob_id(&data_stored_plain())))
    );
    assert_eq!(TreeId(key.blob_id(&tree_plain)), build().tree_id);

    // A wrong key or a wrong kind is rejected.
    let other = MasterKey::from_bytes(&[0xff; MASTER_KEY_LEN]);
    assert!(other.open(ObjectKind::Data, &stored, 1 << 20, None).is_err());
    assert!(key.open(ObjectKind::Tree, &stored, 1 << 20, None).is_err());
}

#[test]
fn stored_pack_decodes() {
    let built = build();
    let pack = read_vector("pack.hex");
    assert_eq!(PackId::hash_of(&pack), built.pack_id);
    let trailer: [u8; TRAILER_LEN] = pack[pack.len() - TRAILER_LEN..].try_into().unwrap();
    let (offset, len) = pack::header_location(pack.len() as u64, trailer).unwrap();
    let sealed_header = &pack[offset as usize..offset as usize + len as usize];
    let header_plain = master()
        .open(ObjectKind::PackHeader, sealed_header, limits::MAX_OBJECT, None)
        .unwrap();
    assert_eq!(header_plain, read_vector("pack_header.plain.hex"));
    let header = PackHeader::decode(&header_plain).unwrap();
    assert_eq!(header, built.pack_header);
    assert_eq!(header.data_end(), offset);
    let expected = [
        (ObjectKind::Data, data_stored_plain(), "data_stored.hex"),
        (ObjectKind::Tree, tree_value().encode(), "tree.hex"),
    ];
    for (entry, (kind, plain, file)) in header.entries.iter().zip(expected) {
        let blob = &pack[entry.offset as usize..entry.end() as usize];
        assert_eq!(blob, read_vector(file).as_slice());
        let opened = master()
            .open(kind, blob, limits::MAX_BLOB, Some(entry.raw_length as usize))
            .unwrap();
        assert_eq!(opened, plain);
        assert_eq!(entry.id.0, master().blob_id(&opened));
    }
}

#[test]
fn stored_documents_decode() {
    let built = build();

    let index = IndexFile::decode(&open(ObjectKind::Index, "index.hex")).unwrap();
    assert_eq!(index, built.index);
    assert_eq!(index.packs[0].id, built.pack_id);
    assert_eq!(index.packs[0].size, read_vector("pack.hex").len() as u64);

    let snapshot = Snapshot::decode(&open(ObjectKind::Snapshot, "snapshot.hex")).unwrap();
    assert_eq!(snapshot, built.snapshot);
    assert_eq!(snapshot.tree, built.tree_id);

    let config = Config::decode(&open(ObjectKind::Config, "config.hex")).unwrap();
    assert_eq!(config, config_value());

    let lock = Lock::decode(&open(ObjectKind::Lock, "lock.hex")).unwrap();
    assert_eq!(lock, lock_value());

    for (file, plain) in [
        ("index.hex", "index.plain.hex"),
        ("snapshot.hex", "snapshot.plain.hex"),
        ("config.hex", "config.plain.hex"),
        ("lock.hex", "lock.plain.hex"),
    ] {
        let kind = match file {
            "index.hex" => ObjectKind::Index,
            "snapshot.hex" => ObjectKind::Snapshot,
            "config.hex" => ObjectKind::Config,
            _ => ObjectKind::Lock,
        };
        assert_eq!(open(kind, file), read_vector(plain), "{file}");
    }
}

#[test]
fn stored_key_file_decodes_and_unwraps() {
    let bytes = read_vector("key.hex");
    assert_eq!(&bytes[..2], &[1, ObjectKind::Key as u8]);
    let file = KeyFile::decode(&bytes).unwrap();
    assert_eq!(file.kdf, kdf());
    assert_eq!(file.salt, salt());
    assert_eq!(file.created_ns, TIME_NS);
    assert_eq!(file.hostname, "node-1");
    assert_eq!(&file.wrapped[2..26], &nonce(9));
    // version, kind, nonce, compression byte, 96 key bytes, tag.
    assert_eq!(file.wrapped.len(), 2 + 24 + 1 + MASTER_KEY_LEN + 16);
    let key = crypto::unwrap_master_key(&file, PASSWORD).unwrap();
    assert_eq!(key.to_bytes().as_ref(), &master_key_bytes());
    assert!(matches!(
        crypto::unwrap_master_key(&file, b"wrong"),
        Err(crypto::CryptoError::WrongPassword)
    ));
}

#[test]
fn gear_table_and_blob_id() {
    let text = std::fs::read_to_string(vectors_dir().join("manifest.json")).unwrap();
    let m: Value = serde_json::from_str(&text).unwrap();
    let key = master();
    let gear = key.gear_table();
    let stored: Vec<u64> = m["gear_table_first_8"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u64::from_str_radix(v.as_str().unwrap(), 16).unwrap())
        .collect();
    assert_eq!(stored, gear[..8]);
    // The table is BLAKE3's keyed XOF over the context string, read as
    // little-endian u64s.
    let mut h = blake3::Hasher::new_keyed(&master_key_bytes()[64..].try_into().unwrap());
    h.update(b"cairn v1 fastcdc gear table");
    let mut first = [0u8; 64];
    h.finalize_xof().fill(&mut first);
    for (i, w) in first.chunks_exact(8).enumerate() {
        assert_eq!(u64::from_le_bytes(w.try_into().unwrap()), gear[i]);
    }
    let id = hex::decode(m["blob_id"]["id"].as_str().unwrap()).unwrap();
    assert_eq!(id, key.blob_id(BLOB_ID_INPUT));
    assert_eq!(
        id,
        blake3::keyed_hash(&master_key_bytes()[32..64].try_into().unwrap(), BLOB_ID_INPUT).as_bytes()
    );
}

#[test]
fn chunk_boundaries() {
    let text = std::fs::read_to_string(vectors_dir().join("manifest.json")).unwrap();
    let m: Value = serde_json::from_str(&text).unwrap();
    let stored: Vec<usize> = m["chunking"]["lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(stored.iter().sum::<usize>(), chunk_input().len());
    assert!(
        stored.len() > 20,
        "a 256 KiB input with 4 KiB average chunks has many chunks"
    );
    assert_eq!(
        stored,
        chunk_lengths(),
        "chunk boundaries changed: this changes the format"
    );
}
