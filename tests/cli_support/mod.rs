//! Helpers for the end-to-end tests of the `cairn` binary.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub const PASSWORD: &str = "correct horse";

/// `cairn -r REPO` with the password in the environment.
pub fn cairn(repo: &Path) -> Command {
    let mut cmd = Command::cargo_bin("cairn").unwrap();
    cmd.env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_REPOSITORY")
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_PASSWORD_COMMAND")
        .env_remove("CAIRN_FROM_REPOSITORY")
        .env_remove("CAIRN_FROM_PASSWORD")
        .env_remove("CAIRN_FROM_PASSWORD_FILE")
        .env_remove("CAIRN_FROM_PASSWORD_COMMAND")
        .env("XDG_CACHE_HOME", cache_of(repo))
        .arg("-r")
        .arg(repo);
    cmd
}

/// The cache root of the tests' commands on `repo` (its local index table
/// lives there): beside the repository, so that it goes with it.
pub fn cache_of(repo: &Path) -> PathBuf {
    let mut name = repo.file_name().unwrap_or_default().to_owned();
    name.push(".cache");
    repo.with_file_name(name)
}

/// Creates a repository at `repo` with the given extra `init` arguments.
pub fn init(repo: &Path, extra: &[&str]) {
    cairn(repo).arg("init").args(extra).assert().success();
}

/// Runs a `--json` command and returns its last line (the summary) parsed.
pub fn json_summary(output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let value: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("summary {last:?} is not JSON: {e}; stdout {stdout}"));
    assert_eq!(value["message_type"], "summary", "{value}");
    value
}

/// Argon2id parameters cheap enough for tests.
pub fn small_kdf() -> cairn::format::keyfile::KdfParams {
    cairn::format::keyfile::KdfParams {
        memory_kib: 8192,
        iterations: 1,
        parallelism: 1,
    }
}

/// Repository options for fast tests: cheap Argon2id, 16 KiB chunks, 1 MiB packs.
/// `init` options for a small, uncompressed repository that tests fill
/// quickly: 64 KiB chunks, 1 MiB packs, cheap Argon2id.
pub const SMALL_UNCOMPRESSED: [&str; 8] = [
    "--chunk-size",
    "64K",
    "--pack-size",
    "1M",
    "--compression",
    "off",
    "--kdf-memory",
    "8192",
];

pub fn small_repo_options() -> cairn::repo::InitOptions {
    cairn::repo::InitOptions {
        kdf: small_kdf(),
        chunker: cairn::format::config::ChunkerParams::from_avg(16 << 10).unwrap(),
        pack_size: 1 << 20,
        ..cairn::repo::InitOptions::default()
    }
}

/// Deterministic pseudo-random bytes (xorshift).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sets a path's mtime (and atime) to `ns` nanoseconds since the epoch,
/// without following a symlink.
pub fn set_mtime_ns(path: &Path, ns: i64) {
    let ts = nix::sys::time::TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    nix::sys::stat::utimensat(None, path, &ts, &ts, nix::sys::stat::UtimensatFlags::NoFollowSymlink).unwrap();
}

/// Everything a test compares about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    /// File content, or a symlink's target.
    pub data: Vec<u8>,
    /// `user.*` extended attributes.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// Describes every entry below `root` (not `root` itself), keyed by the
/// path relative to it.
pub fn describe(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for path in names {
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let (kind, data) = if ft.is_dir() {
            walk(root, &path, out);
            ("dir", Vec::new())
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            ("symlink", target.into_os_string().into_encoded_bytes())
        } else if ft.is_fifo() {
            ("fifo", Vec::new())
        } else if ft.is_file() {
            ("file", fs::read(&path).unwrap())
        } else {
            ("other", Vec::new())
        };
        let mut xattrs = BTreeMap::new();
        if !ft.is_symlink() {
            for name in xattr::list(&path).unwrap() {
                let name = name.to_string_lossy().into_owned();
                if name.starts_with("user.") {
                    xattrs.insert(name.clone(), xattr::get(&path, &name).unwrap().unwrap_or_default());
                }
            }
        }
        let entry = Entry {
            kind,
            mode: md.mode() & 0o7777,
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            uid: md.uid(),
            gid: md.gid(),
            data,
            xattrs,
        };
        out.insert(path.strip_prefix(root).unwrap().to_owned(), entry);
    }
}

/// Asserts two descriptions are equal, naming the first difference.
pub fn assert_same_tree(want: &BTreeMap<PathBuf, Entry>, got: &BTreeMap<PathBuf, Entry>) {
    let want_paths: Vec<_> = want.keys().collect();
    let got_paths: Vec<_> = got.keys().collect();
    assert_eq!(want_paths, got_paths, "different entries");
    for (path, w) in want {
        let g = &got[path];
        assert_eq!(w.kind, g.kind, "{}: kind", path.display());
        assert_eq!(w.mode, g.mode, "{}: mode {:o} vs {:o}", path.display(), w.mode, g.mode);
        assert_eq!(w.mtime_ns, g.mtime_ns, "{}: mtime", path.display());
        assert_eq!(w.uid, g.uid, "{}: uid", path.display());
        assert_eq!(w.gid, g.gid, "{}: gid", path.display());
        assert!(w.data == g.data, "{}: content differs", path.display());
        assert_eq!(w.xattrs, g.xattrs, "{}: xattrs", path.display());
    }
}

/// Where an absolute source path lands in a restore of the whole snapshot.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

/// Number of files directly or indirectly below `dir`, and their total size.
pub fn files_and_size(dir: &Path) -> (usize, u64) {
    let mut count = 0;
    let mut size = 0;
    let Ok(read) = fs::read_dir(dir) else {
        return (0, 0);
    };
    for entry in read {
        let entry = entry.unwrap();
        let md = entry.metadata().unwrap();
        if md.is_dir() {
            let (c, s) = files_and_size(&entry.path());
            count += c;
            size += s;
        } else {
            count += 1;
            size += md.len();
        }
    }
    (count, size)
}

/// Number of stored objects below `dir`: files, without the temporary
/// files (`.tmp-*`) a write in progress or a killed writer leaves.
pub fn object_count(dir: &Path) -> usize {
    let Ok(read) = fs::read_dir(dir) else {
        return 0;
    };
    let mut count = 0;
    // A live writer may remove a temporary file between the listing and a
    // look at it: entries that vanish are skipped.
    for entry in read.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            count += object_count(&entry.path());
        } else if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            count += 1;
        }
    }
    count
}

/// Number of snapshots in a local repository.
pub fn snapshot_count(repo: &Path) -> usize {
    object_count(&repo.join("snapshots"))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `cairn -r REPO` opened with `password` instead of [`PASSWORD`] (for tests
/// with two repositories).
pub fn cairn_pw(repo: &Path, password: &str) -> Command {
    let mut cmd = cairn(repo);
    cmd.env("CAIRN_PASSWORD", password);
    cmd
}

/// Runs a command that must fail with exit code `code` and exactly one line
/// on stderr; returns that line.
pub fn fails_with(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    err
}

/// Runs a command that must succeed; returns its stdout.
pub fn succeeds(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Restores snapshot `spec` of `repo` (opened with `password`) into a new
/// directory below `scratch` and describes what landed where `source` was.
pub fn restore_described(
    repo: &Path,
    password: &str,
    spec: &str,
    scratch: &Path,
    source: &Path,
) -> BTreeMap<PathBuf, Entry> {
    let target = tempfile::tempdir_in(scratch).unwrap().keep();
    succeeds(
        cairn_pw(repo, password)
            .args(["restore", spec, "--target"])
            .arg(&target),
    );
    describe(&restored(&target, source))
}

/// The ids of a repository's snapshots, oldest first.
pub fn snapshot_ids(repo: &Path, password: &str) -> Vec<String> {
    snapshots_json(repo, password)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `snapshots --json` of a repository.
pub fn snapshots_json(repo: &Path, password: &str) -> Vec<serde_json::Value> {
    let out = succeeds(cairn_pw(repo, password).args(["--json", "snapshots"]));
    serde_json::from_str::<Vec<serde_json::Value>>(out.trim()).unwrap()
}

/// Every blob the live index files of `repo` list, with its full id and
/// location, sorted by id then kind (the in-memory index keeps no full ids).
pub fn indexed_blobs(repo: &cairn::repo::IndexedRepository) -> Vec<(cairn::id::BlobId, cairn::repo::BlobLocation)> {
    let mut out = Vec::new();
    for file in repo.index().files() {
        let plain = repo.load_file(cairn::storage::FileKind::Index, &file.to_hex()).unwrap();
        for pack in cairn::format::index::IndexFile::decode(&plain).unwrap().packs {
            out.extend(pack.blobs.iter().map(|b| {
                let loc = cairn::repo::BlobLocation {
                    kind: b.kind,
                    pack: pack.id,
                    offset: b.offset,
                    length: b.length,
                    raw_length: b.raw_length,
                };
                (b.id, loc)
            }));
        }
    }
    out.sort_by_key(|(id, loc)| (*id, loc.kind));
    out
}
