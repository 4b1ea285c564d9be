//! Property tests: every encode/decode pair round-trips, and every decoder
//! rejects the malformed inputs the spec says it must.

use proptest::collection::vec;
use proptest::prelude::*;

use super::config::{ChunkerParams, Config, ObjectLockConfig};
use super::envelope::{self, COMPRESSION_NONE, COMPRESSION_ZSTD, OVERHEAD};
use super::index::{IndexFile, IndexPack, MarkedPack};
use super::keyfile::{
    KdfParams, KeyFile, MAX_KDF_ITERATIONS, MAX_KDF_MEMORY_KIB, MAX_KDF_WORK_KIB, MIN_KDF_MEMORY_KIB,
};
use super::lock::{Lock, LockKind};
use super::pack::{self, PackEntry, PackHeader, TRAILER_LEN};
use super::snapshot::{Snapshot, Summary};
use super::tree::{Content, Node, NodeKind, Tree, Xattr};
use super::{limits, BlobKind, FormatError, ObjectKind, FORMAT_VERSION};
use crate::id::{BlobId, IndexId, PackId, RepoId, SnapshotId, TreeId};

const ALL_KINDS: [ObjectKind; 8] = [
    ObjectKind::Data,
    ObjectKind::Tree,
    ObjectKind::PackHeader,
    ObjectKind::Index,
    ObjectKind::Snapshot,
    ObjectKind::Config,
    ObjectKind::Lock,
    ObjectKind::Key,
];

fn id32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn object_kind() -> impl Strategy<Value = ObjectKind> {
    prop::sample::select(ALL_KINDS.to_vec())
}

fn blob_kind() -> impl Strategy<Value = BlobKind> {
    prop_oneof![Just(BlobKind::Data), Just(BlobKind::Tree)]
}

/// Entries laid out the way a packer writes them: contiguous from offset 0.
fn pack_entries() -> impl Strategy<Value = Vec<PackEntry>> {
    vec(
        (blob_kind(), id32(), (OVERHEAD as u32 + 1)..100_000u32, any::<u32>()),
        0..8,
    )
    .prop_map(|raw| {
        let mut offset = 0u32;
        raw.into_iter()
            .map(|(kind, id, length, raw_length)| {
                let e = PackEntry {
                    kind,
                    id: BlobId(id),
                    offset,
                    length,
                    raw_length: raw_length % (limits::MAX_OBJECT as u32 + 1),
                };
                offset += length;
                e
            })
            .collect()
    })
}

fn index_file() -> impl Strategy<Value = IndexFile> {
    let pack = (id32(), any::<u64>(), pack_entries()).prop_map(|(id, size, blobs)| IndexPack {
        id: PackId(id),
        size,
        blobs,
    });
    let marked = (id32(), any::<i64>()).prop_map(|(id, marked_ns)| MarkedPack {
        id: PackId(id),
        marked_ns,
    });
    (vec(id32(), 0..4), vec(pack, 0..4), vec(marked, 0..4)).prop_map(|(sup, packs, marked)| IndexFile {
        supersedes: sup.into_iter().map(IndexId).collect(),
        packs,
        marked,
    })
}

fn node_kind() -> impl Strategy<Value = NodeKind> {
    prop::sample::select(vec![
        NodeKind::File,
        NodeKind::Dir,
        NodeKind::Symlink,
        NodeKind::Fifo,
        NodeKind::CharDevice,
        NodeKind::BlockDevice,
        NodeKind::Socket,
    ])
}

/// A valid entry name: 1..=64 bytes, no '/' or NUL, not "." or "..".
fn good_name() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..64)
        .prop_filter("no dot entries", |n| n != b"." && n != b"..")
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        id32().prop_map(|b| Content::Blob(BlobId(b))),
        any::<u64>().prop_map(Content::Hole),
    ]
}

fn node(name: Vec<u8>) -> impl Strategy<Value = Node> {
    (
        node_kind(),
        (any::<u32>(), any::<u32>(), any::<u32>(), ".{0,8}", ".{0,8}"),
        (any::<i64>(), any::<i64>(), any::<i64>()),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        vec(content(), 0..4),
        proptest::option::of(id32()),
        proptest::option::of(vec(any::<u8>(), 0..16)),
        vec((vec(any::<u8>(), 0..8), vec(any::<u8>(), 0..8)), 0..3),
    )
        .prop_map(
            move |(
                kind,
                (mode, uid, gid, user, group),
                (mt, at, ct),
                (dev, ino, links, size, rdev),
                content,
                sub,
                target,
                xattrs,
            )| {
                let mut n = Node::new(name.clone(), kind);
                n.mode = mode;
                n.uid = uid;
                n.gid = gid;
                n.user = user;
                n.group = group;
                n.mtime_ns = mt;
                n.atime_ns = at;
                n.ctime_ns = ct;
                n.device = dev;
                n.inode = ino;
                n.links = links;
                n.size = size;
                n.rdev = rdev;
                n.content = content;
                // Directories always name their subtree.
                n.subtree = match (kind, sub) {
                    (NodeKind::Dir, None) => Some(TreeId([7; 32])),
                    (_, s) => s.map(TreeId),
                };
                n.link_target = target;
                n.xattrs = xattrs.into_iter().map(|(name, value)| Xattr { name, value }).collect();
                n
            },
        )
}

/// A valid tree: unique names, sorted.
fn tree() -> impl Strategy<Value = Tree> {
    prop::collection::btree_set(good_name(), 0..6)
        .prop_flat_map(|names| names.into_iter().map(node).collect::<Vec<_>>())
        .prop_map(|nodes| Tree { nodes })
}

fn summary() -> impl Strategy<Value = Summary> {
    (vec(any::<u64>(), 13), any::<i64>(), any::<i64>()).prop_map(|(v, start, end)| Summary {
        backup_start_ns: start,
        backup_end_ns: end,
        files_new: v[0],
        files_changed: v[1],
        files_unchanged: v[2],
        dirs_new: v[3],
        dirs_changed: v[4],
        dirs_unchanged: v[5],
        errors: v[6],
        data_blobs: v[7],
        tree_blobs: v[8],
        data_added: v[9],
        data_added_packed: v[10],
        total_files_processed: v[11],
        total_bytes_processed: v[12],
    })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        (
            any::<i64>(),
            id32(),
            vec(vec(any::<u8>(), 0..12), 0..3),
            ".{0,12}",
            ".{0,12}",
        ),
        (
            any::<u32>(),
            any::<u32>(),
            vec(".{0,6}", 0..3),
            proptest::option::of(id32()),
            proptest::option::of(id32()),
        ),
        (vec(".{0,6}", 0..3), ".{0,8}", any::<bool>(), summary()),
    )
        .prop_map(
            |(
                (time_ns, tree, paths, hostname, username),
                (uid, gid, tags, parent, original),
                (excludes, pv, partial, summary),
            )| {
                Snapshot {
                    time_ns,
                    tree: TreeId(tree),
                    // Any bytes, UTF-8 or not.
                    paths: paths
                        .into_iter()
                        .map(|p| <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(p).into())
                        .collect(),
                    hostname,
                    username,
                    uid,
                    gid,
                    tags,
                    parent: parent.map(SnapshotId),
                    original: original.map(SnapshotId),
                    excludes,
                    program_version: pv,
                    partial,
                    summary,
                }
            },
        )
}

fn chunker_params() -> impl Strategy<Value = ChunkerParams> {
    (11u32..=26, any::<u32>(), any::<u32>()).prop_map(|(log_avg, a, b)| {
        let avg = 1u32 << log_avg;
        let lo = limits::MIN_CHUNK / 2;
        let min = lo + a % (avg - lo + 1);
        let max = avg + b % (limits::MAX_CHUNK - avg + 1);
        ChunkerParams {
            min_size: min,
            avg_size: avg,
            max_size: max,
        }
    })
}

fn config() -> impl Strategy<Value = Config> {
    (
        id32(),
        any::<i64>(),
        chunker_params(),
        any::<u32>(),
        proptest::option::of(any::<i32>()),
        proptest::option::of((1..=ObjectLockConfig::MAX_DAYS, any::<bool>())),
    )
        .prop_map(|(id, created_ns, chunker, pack_size, compression, lock)| Config {
            id: RepoId(id),
            created_ns,
            chunker,
            pack_size,
            compression,
            object_lock: lock.map(|(days, compliance)| ObjectLockConfig { days, compliance }),
        })
}

fn key_file() -> impl Strategy<Value = KeyFile> {
    (
        any::<i64>(),
        ".{0,12}",
        ".{0,12}",
        (
            MIN_KDF_MEMORY_KIB..=MAX_KDF_MEMORY_KIB,
            1u32..=MAX_KDF_ITERATIONS,
            1u32..=64,
        ),
        id32(),
        vec(any::<u8>(), 0..200),
    )
        .prop_filter("within the work bound", |(_, _, _, (m, i, _), _, _)| {
            u64::from(*m) * u64::from(*i) <= MAX_KDF_WORK_KIB
        })
        .prop_map(|(created_ns, hostname, username, (m, i, p), salt, wrapped)| KeyFile {
            created_ns,
            hostname,
            username,
            kdf: KdfParams {
                memory_kib: m,
                iterations: i,
                parallelism: p,
            },
            salt,
            wrapped,
        })
}

fn lock() -> impl Strategy<Value = Lock> {
    (
        any::<i64>(),
        any::<i64>(),
        ".{0,12}",
        ".{0,12}",
        any::<u32>(),
        prop_oneof![
            Just(LockKind::Shared),
            Just(LockKind::Exclusive),
            Just(LockKind::Prune),
            Just(LockKind::Forget)
        ],
        ".{0,36}",
        any::<u64>(),
    )
        .prop_map(
            |(time_ns, expires_ns, hostname, username, pid, kind, boot_id, pid_ns)| Lock {
                time_ns,
                expires_ns,
                hostname,
                username,
                pid,
                kind,
                boot_id,
                pid_ns,
            },
        )
}

fn tree_with(names: &[&[u8]]) -> Tree {
    Tree {
        nodes: names.iter().map(|n| Node::new(n.to_vec(), NodeKind::File)).collect(),
    }
}

proptest! {
    #[test]
    fn pack_header_round_trips(entries in pack_entries()) {
        let h = PackHeader { entries };
        prop_assert_eq!(PackHeader::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn index_round_trips(i in index_file()) {
        prop_assert_eq!(IndexFile::decode(&i.encode()).unwrap(), i);
    }

    #[test]
    fn tree_round_trips(t in tree()) {
        prop_assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn snapshot_round_trips(s in snapshot()) {
        prop_assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn config_round_trips(c in config()) {
        prop_assert_eq!(Config::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn key_file_round_trips(k in key_file()) {
        prop_assert_eq!(KeyFile::decode(&k.encode()).unwrap(), k);
    }

    #[test]
    fn lock_round_trips(l in lock()) {
        prop_assert_eq!(Lock::decode(&l.encode()).unwrap(), l);
    }

    #[test]
    fn decoders_reject_trailing_bytes(l in lock(), extra in vec(any::<u8>(), 1..8)) {
        let mut bytes = l.encode();
        bytes.extend_from_slice(&extra);
        prop_assert!(Lock::decode(&bytes).is_err());
    }

    #[test]
    fn decoders_never_panic_on_noise(bytes in vec(any::<u8>(), 0..256)) {
        let _ = PackHeader::decode(&bytes);
        let _ = IndexFile::decode(&bytes);
        let _ = Tree::decode(&bytes);
        let _ = Snapshot::decode(&bytes);
        let _ = Config::decode(&bytes);
        let _ = KeyFile::decode(&bytes);
        let _ = Lock::decode(&bytes);
        let _ = envelope::unframe(&bytes, 1 << 16, None);
        for kind in ALL_KINDS {
            let _ = envelope::split(&bytes, kind);
        }
    }

    #[test]
    fn tree_rejects_bad_names(
        bad in prop_oneof![
            Just(Vec::new()),
            Just(b".".to_vec()),
            Just(b"..".to_vec()),
            (good_name(), good_name()).prop_map(|(a, b)| [a, b"/".to_vec(), b].concat()),
            (good_name(), good_name()).prop_map(|(a, b)| [a, vec![0], b].concat()),
            Just(vec![b'a'; limits::MAX_NAME + 1]),
        ]
    ) {
        prop_assert!(Tree::decode(&tree_with(&[&bad]).encode()).is_err());
    }

    #[test]
    fn tree_rejects_unsorted_and_duplicate_names(a in good_name(), b in good_name()) {
        prop_assert!(Tree::decode(&tree_with(&[&a, &a]).encode()).is_err());
        if a != b {
            let (lo, hi) = if a < b { (&a, &b) } else { (&b, &a) };
            prop_assert!(Tree::decode(&tree_with(&[lo, hi]).encode()).is_ok());
            prop_assert!(Tree::decode(&tree_with(&[hi, lo]).encode()).is_err());
        }
    }

    #[test]
    fn envelope_split_checks_header(
        kind in object_kind(),
        other in object_kind(),
        version in any::<u8>(),
        body in vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = envelope::header(kind).to_vec();
        bytes.extend_from_slice(&[9u8; envelope::NONCE_LEN]);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&[1u8; envelope::TAG_LEN]);
        let parts = envelope::split(&bytes, kind).unwrap();
        prop_assert_eq!(parts.kind, kind);
        prop_assert_eq!(parts.nonce, &[9u8; envelope::NONCE_LEN]);
        prop_assert_eq!(parts.sealed.len(), body.len() + envelope::TAG_LEN);
        if other != kind {
            let is_wrong_kind = matches!(envelope::split(&bytes, other), Err(FormatError::WrongKind { .. }));
            prop_assert!(is_wrong_kind);
        }
        if version != FORMAT_VERSION {
            let mut v = bytes.clone();
            v[0] = version;
            let is_unsupported = matches!(envelope::split(&v, kind), Err(FormatError::UnsupportedVersion { .. }));
            prop_assert!(is_unsupported);
        }
        let mut unknown = bytes.clone();
        unknown[1] = 0;
        let is_unknown = matches!(envelope::split(&unknown, kind), Err(FormatError::UnknownKind(0)));
        prop_assert!(is_unknown);
        let cut = body.len().min(OVERHEAD - 1);
        let is_truncated = matches!(envelope::split(&bytes[..cut], kind), Err(FormatError::Truncated { .. }));
        prop_assert!(is_truncated);
    }

    #[test]
    fn frame_round_trips(data in vec(any::<u8>(), 0..4096), level in proptest::option::of(1i32..=5), repeat in any::<bool>()) {
        let data = if repeat { data.repeat(8) } else { data };
        let mut framed = Vec::new();
        envelope::frame(level, &data, &mut framed);
        let flag = framed[0];
        prop_assert!(flag == COMPRESSION_NONE || flag == COMPRESSION_ZSTD);
        if flag == COMPRESSION_ZSTD {
            prop_assert!(level.is_some());
            prop_assert!(framed.len() - 1 < data.len());
        } else {
            prop_assert_eq!(&framed[1..], &data[..]);
        }
        prop_assert_eq!(envelope::unframe(&framed, data.len(), Some(data.len())).unwrap(), data.clone());
        prop_assert_eq!(envelope::unframe_owned(framed.clone(), data.len(), Some(data.len())).unwrap(), data.clone());
        if !data.is_empty() {
            let is_limit = matches!(envelope::unframe(&framed, data.len() - 1, None), Err(FormatError::Limit { .. }));
            prop_assert!(is_limit);
            let owned_limit = matches!(envelope::unframe_owned(framed.clone(), data.len() - 1, None), Err(FormatError::Limit { .. }));
            prop_assert!(owned_limit);
            prop_assert!(envelope::unframe(&framed, data.len(), Some(data.len() - 1)).is_err());
            prop_assert!(envelope::unframe_owned(framed.clone(), data.len(), Some(data.len() - 1)).is_err());
        }
    }

    #[test]
    fn unframe_rejects_unknown_compression(flag in 2u8.., payload in vec(any::<u8>(), 0..32)) {
        let mut framed = vec![flag];
        framed.extend_from_slice(&payload);
        prop_assert!(envelope::unframe(&framed, 1 << 20, None).is_err());
    }

    #[test]
    fn header_location_accepts_only_fitting_lengths(pack_len in 0u64..(1 << 20), len in any::<u32>()) {
        let result = pack::header_location(pack_len, len.to_le_bytes());
        let fits = (len as usize) >= OVERHEAD && u64::from(len) + TRAILER_LEN as u64 <= pack_len;
        prop_assert_eq!(result.is_ok(), fits);
        if let Ok((offset, l)) = result {
            prop_assert_eq!(l, len);
            prop_assert_eq!(offset + u64::from(len) + TRAILER_LEN as u64, pack_len);
        }
    }
}

#[test]
fn header_location_rejects_oversized_pack() {
    assert!(matches!(
        pack::header_location(limits::MAX_PACK + 1, 100u32.to_le_bytes()),
        Err(FormatError::Limit { .. })
    ));
    assert!(pack::header_location(limits::MAX_PACK, 100u32.to_le_bytes()).is_ok());
    // A header larger than any header plaintext can need is refused before
    // it is read.
    let huge = (limits::MAX_PACK_HEADER + 1) as u32;
    assert!(matches!(
        pack::header_location(limits::MAX_PACK, huge.to_le_bytes()),
        Err(FormatError::Limit { .. })
    ));
    assert!(pack::header_location(limits::MAX_PACK, (huge - 1).to_le_bytes()).is_ok());
}

#[test]
fn unframe_rejects_trailing_and_skippable_frames() {
    let data = vec![5u8; 1000];
    let mut framed = Vec::new();
    envelope::frame(Some(3), &data, &mut framed);
    assert_eq!(framed[0], COMPRESSION_ZSTD);
    // A second, empty frame after the first.
    let mut doubled = framed.clone();
    doubled.extend_from_slice(&zstd::bulk::compress(&[], 3).unwrap());
    assert!(envelope::unframe(&doubled, 1 << 20, None).is_err());
    // One trailing byte.
    let mut trailing = framed.clone();
    trailing.push(0);
    assert!(envelope::unframe(&trailing, 1 << 20, None).is_err());
    // A skippable frame on its own.
    let skippable = [COMPRESSION_ZSTD, 0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0];
    assert!(envelope::unframe(&skippable, 1 << 20, None).is_err());
    // A truncated frame.
    assert!(envelope::unframe(&framed[..framed.len() - 1], 1 << 20, None).is_err());
    // A frame without a declared content size.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_contentsize(false).unwrap();
    std::io::Write::write_all(&mut enc, &data).unwrap();
    let mut no_size = vec![COMPRESSION_ZSTD];
    no_size.extend_from_slice(&enc.finish().unwrap());
    assert!(envelope::unframe(&no_size, 1 << 20, None).is_err());
}

#[test]
fn pack_header_rejects_overlap_and_short_entries() {
    let e = |offset, length| PackEntry {
        kind: BlobKind::Data,
        id: BlobId([1; 32]),
        offset,
        length,
        raw_length: 10,
    };
    let ok = PackHeader {
        entries: vec![e(0, 100), e(100, 50)],
    };
    assert!(PackHeader::decode(&ok.encode()).is_ok());
    assert_eq!(ok.data_end(), 150);
    let overlap = PackHeader {
        entries: vec![e(0, 100), e(99, 50)],
    };
    assert!(PackHeader::decode(&overlap.encode()).is_err());
    let short = PackHeader {
        entries: vec![e(0, OVERHEAD as u32)],
    };
    assert!(PackHeader::decode(&short.encode()).is_err());
    let mut huge = e(0, 100);
    huge.raw_length = limits::MAX_OBJECT as u32 + 1;
    assert!(PackHeader::decode(&PackHeader { entries: vec![huge] }.encode()).is_err());
}

#[test]
fn tree_rejects_directory_without_subtree() {
    let t = Tree {
        nodes: vec![Node::new(b"d".to_vec(), NodeKind::Dir)],
    };
    assert!(Tree::decode(&t.encode()).is_err());
}

fn plain_config(object_lock: Option<ObjectLockConfig>) -> Config {
    Config {
        id: RepoId([0; 32]),
        created_ns: 0,
        chunker: ChunkerParams::default(),
        pack_size: 16 << 20,
        compression: Some(3),
        object_lock,
    }
}

#[test]
fn config_rejects_bad_chunker_params() {
    let mut c = plain_config(None);
    assert!(Config::decode(&c.encode()).is_ok());
    for (min, avg, max) in [
        (1024, 4096, 8192),
        (512 << 10, 3 << 20, 8 << 20),
        (2 << 20, 1 << 20, 8 << 20),
        (512 << 10, 1 << 20, 128 << 20),
    ] {
        c.chunker = ChunkerParams {
            min_size: min,
            avg_size: avg,
            max_size: max,
        };
        assert!(Config::decode(&c.encode()).is_err(), "{min}/{avg}/{max}");
    }
}

#[test]
fn config_rejects_object_locks_outside_one_day_to_a_century() {
    let mut c = plain_config(Some(ObjectLockConfig {
        days: 1,
        compliance: false,
    }));
    assert_eq!(Config::decode(&c.encode()).unwrap(), c);
    for days in [0, ObjectLockConfig::MAX_DAYS + 1, u32::MAX] {
        c.object_lock = Some(ObjectLockConfig { days, compliance: true });
        let e = Config::decode(&c.encode()).unwrap_err().to_string();
        assert!(e.contains(&format!("object lock of {days} days")), "{e}");
    }
}

#[test]
fn key_file_rejects_bad_header_and_kdf() {
    let k = KeyFile {
        created_ns: 0,
        hostname: String::new(),
        username: String::new(),
        kdf: KdfParams::default(),
        salt: [0; 32],
        wrapped: vec![],
    };
    let good = k.encode();
    assert!(KeyFile::decode(&good).is_ok());
    let mut v = good.clone();
    v[0] = 2;
    assert!(KeyFile::decode(&v).is_err());
    let mut v = good.clone();
    v[1] = ObjectKind::Lock as u8;
    assert!(KeyFile::decode(&v).is_err());
    assert!(KeyFile::decode(&good[..1]).is_err());
    for kdf in [
        KdfParams {
            iterations: 0,
            ..KdfParams::default()
        },
        KdfParams {
            parallelism: 0,
            ..KdfParams::default()
        },
        KdfParams {
            memory_kib: MAX_KDF_MEMORY_KIB + 1,
            ..KdfParams::default()
        },
        KdfParams {
            memory_kib: 4 << 20,
            iterations: 64,
            parallelism: 64,
        },
        KdfParams {
            iterations: MAX_KDF_ITERATIONS + 1,
            ..KdfParams::default()
        },
        KdfParams {
            parallelism: 65,
            ..KdfParams::default()
        },
        // Below the floor: a key cheap to attack.
        KdfParams {
            memory_kib: 8,
            ..KdfParams::default()
        },
        KdfParams {
            memory_kib: MIN_KDF_MEMORY_KIB - 1,
            ..KdfParams::default()
        },
        // Each bound met, but too much work in all.
        KdfParams {
            memory_kib: MAX_KDF_MEMORY_KIB,
            iterations: 5,
            parallelism: 1,
        },
    ] {
        let err = KeyFile::decode(&KeyFile { kdf, ..k.clone() }.encode()).unwrap_err();
        assert!(
            matches!(&err, FormatError::Limit { reason, .. } if reason.contains("Argon2id")),
            "{kdf:?}: {err}"
        );
    }
    for kdf in [
        KdfParams {
            memory_kib: MIN_KDF_MEMORY_KIB,
            iterations: 1,
            parallelism: 1,
        },
        KdfParams {
            memory_kib: MAX_KDF_MEMORY_KIB,
            iterations: 4,
            parallelism: 1,
        },
    ] {
        assert!(
            KeyFile::decode(&KeyFile { kdf, ..k.clone() }.encode()).is_ok(),
            "{kdf:?}"
        );
    }
}

#[test]
fn lock_kind_follows_the_pid_and_unknown_kinds_are_rejected() {
    let lock = Lock {
        time_ns: 1,
        expires_ns: 2,
        hostname: "h".into(),
        username: "u".into(),
        pid: 7,
        kind: LockKind::Shared,
        boot_id: "b".into(),
        pid_ns: 9,
    };
    let mut bytes = lock.encode();
    // ... pid 07, kind, boot_id (01 62), pid_ns (09).
    let at = bytes.len() - 4;
    assert_eq!(&bytes[at - 1..], &[7, 0, 1, b'b', 9]);
    for (byte, kind) in [
        (0u8, LockKind::Shared),
        (1, LockKind::Exclusive),
        (2, LockKind::Prune),
        (3, LockKind::Forget),
    ] {
        bytes[at] = byte;
        assert_eq!(Lock::decode(&bytes).unwrap().kind, kind);
    }
    bytes[at] = 4;
    assert!(Lock::decode(&bytes).is_err(), "lock kind 4 must be rejected");
}

#[test]
fn a_lock_without_identity_is_read_with_an_unknown_one() {
    let lock = Lock {
        time_ns: 1,
        expires_ns: 2,
        hostname: "h".into(),
        username: "u".into(),
        pid: 7,
        kind: LockKind::Prune,
        boot_id: String::new(),
        pid_ns: 0,
    };
    let full = lock.encode();
    // Written before boot_id and pid_ns: the same bytes up to the kind.
    let old = &full[..full.len() - 2];
    assert_eq!(old.last(), Some(&2));
    assert_eq!(Lock::decode(old).unwrap(), lock);
    // Anything else that is cut short, or longer, is still an error.
    assert!(Lock::decode(&full[..full.len() - 1]).is_err());
    assert!(Lock::decode(&[full.clone(), vec![0]].concat()).is_err());
    assert!(Lock::decode(&old[..old.len() - 1]).is_err());
}

#[test]
fn lock_conflict_matrix() {
    use LockKind::*;
    let table = [
        (Shared, Shared, false),
        (Shared, Prune, false),
        (Shared, Exclusive, true),
        (Prune, Prune, true),
        (Prune, Exclusive, true),
        (Exclusive, Exclusive, true),
        (Forget, Shared, false),
        (Forget, Prune, false),
        (Forget, Forget, true),
        (Forget, Exclusive, true),
    ];
    for (a, b, conflict) in table {
        assert_eq!(a.conflicts_with(b), conflict, "{a} vs {b}");
        assert_eq!(b.conflicts_with(a), conflict, "{b} vs {a}");
    }
}
