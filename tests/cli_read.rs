//! End-to-end tests of the read-only commands and `key` through the binary:
//! snapshots, ls, cat, diff, stats, key. Snapshots are made with the library.

mod cli_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use cairn::backup::progress::Progress;
use cairn::backup::{backup_paths, BackupOptions};
use cairn::format::config::ChunkerParams;
use cairn::id::SnapshotId;
use cairn::repo::{InitOptions, Repository};
use cairn::storage::local::LocalStorage;
use cli_support::{pseudo_random, small_kdf};
use serde_json::Value;

const PASSWORD: &str = "correct horse";

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    src: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub/deeper")).unwrap();
        fs::write(src.join("hello.txt"), b"hello world\n").unwrap();
        fs::write(src.join("sub/big.bin"), pseudo_random(200_000, 3)).unwrap();
        fs::write(src.join("sub/deeper/note"), b"note").unwrap();
        std::os::unix::fs::symlink("hello.txt", src.join("link")).unwrap();
        let opts = InitOptions {
            kdf: small_kdf(),
            chunker: ChunkerParams::from_avg(16 << 10).unwrap(),
            pack_size: 1 << 20,
            ..InitOptions::default()
        };
        Repository::init(Arc::new(LocalStorage::new(repo.clone())), PASSWORD.as_bytes(), opts).unwrap();
        Self { _dir: dir, repo, src }
    }

    /// Backs up the source directory; returns the snapshot id.
    fn backup(&self, host: &str, tags: &[&str]) -> SnapshotId {
        self.backup_paths(std::slice::from_ref(&self.src), host, tags)
    }

    fn backup_paths(&self, paths: &[PathBuf], host: &str, tags: &[&str]) -> SnapshotId {
        let storage = Arc::new(LocalStorage::new(self.repo.clone()));
        let indexed = Repository::open(storage, PASSWORD.as_bytes())
            .unwrap()
            .load_index()
            .unwrap();
        let opts = BackupOptions {
            hostname: Some(host.into()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..BackupOptions::default()
        };
        backup_paths(&indexed, paths, &opts, &Progress::default())
            .unwrap()
            .id
            .unwrap()
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("cairn").unwrap();
        cmd.env_clear()
            .env("CAIRN_PASSWORD", PASSWORD)
            .env("TZ", "UTC")
            .arg("-r")
            .arg(&self.repo);
        cmd
    }

    /// Runs a command that must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.cmd().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "cairn {args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one-line error expected: {stderr}"
        );
        stderr
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Path of a stored object, made writable.
    fn writable(&self, rel: &str) -> PathBuf {
        let path = self.repo.join(rel);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    fn src_str(&self) -> String {
        self.src.to_string_lossy().into_owned()
    }
}

fn is_rfc3339(s: &Value) -> bool {
    s.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

fn flip_byte(path: &Path, at_end: u64) {
    let mut bytes = fs::read(path).unwrap();
    let i = bytes.len() - at_end as usize;
    bytes[i] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

fn only_file(dir: &Path) -> String {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 1, "{names:?}");
    names.remove(0)
}

#[test]
fn snapshots_table_json_filters_and_latest() {
    let f = Fixture::new();
    let first = f.backup("alpha", &["daily"]);
    let second = f.backup("beta", &["weekly", "daily"]);
    let third = f.backup("alpha", &[]);

    let table = f.ok(&["snapshots"]);
    for id in [first, second, third] {
        assert!(table.contains(&id.short()), "{table}");
    }
    assert!(table.contains("alpha") && table.contains("beta"));
    assert!(table.contains(&f.src_str()));
    assert!(table.trim_end().ends_with("3 snapshots"), "{table}");

    let all = f.json(&["snapshots", "--json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    let s = &all[0];
    assert_eq!(s["id"], first.to_hex());
    assert_eq!(s["short_id"], first.short());
    assert!(is_rfc3339(&s["time"]), "{s}");
    assert_eq!(s["host"], "alpha");
    assert_eq!(s["tags"], serde_json::json!(["daily"]));
    assert_eq!(s["paths"], serde_json::json!([f.src_str()]));
    assert!(s["tree"].as_str().unwrap().len() == 64);
    assert_eq!(s["partial"], false);
    assert!(s["program_version"].as_str().unwrap().contains("cairn"), "{s}");
    assert!(s["username"].is_string());
    assert!(is_rfc3339(&s["summary"]["backup_start"]));
    assert!(is_rfc3339(&s["summary"]["backup_end"]));
    assert_eq!(s["summary"]["total_files_processed"], 3, "regular files: {s}");
    assert!(s["parent"].is_null());
    assert_eq!(
        all[2]["parent"],
        first.to_hex(),
        "same host and paths: the first is the parent"
    );

    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["short_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(f.json(&["snapshots", "--json", "--host", "beta"])),
        vec![second.short()]
    );
    assert_eq!(
        ids(f.json(&["snapshots", "--json", "--tag", "daily"])),
        vec![first.short(), second.short()]
    );
    assert_eq!(
        ids(f.json(&["snapshots", "--json", "--tag", "daily,weekly"])),
        vec![second.short()]
    );
    assert_eq!(
        ids(f.json(&["snapshots", "--json", "--path", "/nowhere"])),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(f.json(&["snapshots", "--json", "--latest", "1"])),
        vec![second.short(), third.short()]
    );
    assert_eq!(ids(f.json(&["snapshots", "--json", "latest"])), vec![third.short()]);
    let prefix = &first.to_hex()[..10];
    assert_eq!(ids(f.json(&["snapshots", "--json", prefix])), vec![first.short()]);
}

#[test]
fn ls_plain_long_json_and_subpath() {
    let f = Fixture::new();
    let id = f.backup("h", &[]);
    let src = f.src_str();

    let plain = f.ok(&["ls", &id.to_hex()]);
    let lines: Vec<&str> = plain.lines().collect();
    for rel in [
        "hello.txt",
        "link",
        "sub",
        "sub/big.bin",
        "sub/deeper",
        "sub/deeper/note",
    ] {
        let want = format!("{src}/{rel}");
        assert!(lines.contains(&want.as_str()), "{want} missing from {plain}");
    }
    assert!(lines.iter().position(|l| l.ends_with("/sub")) < lines.iter().position(|l| l.ends_with("/sub/big.bin")));

    let flat = f.ok(&["ls", "--recursive=false", &format!("latest:{src}")]);
    assert_eq!(
        flat.lines().collect::<Vec<_>>(),
        vec![format!("{src}/hello.txt"), format!("{src}/link"), format!("{src}/sub")]
    );

    let long = f.ok(&["ls", "-l", &id.short()]);
    let big = long.lines().find(|l| l.ends_with("sub/big.bin")).unwrap();
    assert!(big.starts_with("-rw"), "{big}");
    assert!(big.contains(" 200000 "), "{big}");
    let sub = long.lines().find(|l| l.ends_with(&format!("{src}/sub"))).unwrap();
    assert!(sub.starts_with("drwx"), "{sub}");
    let link = long.lines().find(|l| l.contains("/link")).unwrap();
    assert!(link.starts_with('l') && link.ends_with("-> hello.txt"), "{link}");

    let shallow = f.ok(&["ls", &format!("{}:{src}/sub", id.short())]);
    assert_eq!(
        shallow.lines().collect::<Vec<_>>(),
        vec![format!("{src}/sub/big.bin"), format!("{src}/sub/deeper")],
        "a path is listed one level deep by default"
    );
    let json = f.ok(&["ls", "--json", "--recursive", &format!("{}:{src}/sub", id.short())]);
    let items: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(items[0]["struct_type"], "snapshot");
    assert_eq!(items[0]["id"], id.to_hex());
    let paths: Vec<&str> = items[1..].iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        vec![
            format!("{src}/sub/big.bin"),
            format!("{src}/sub/deeper"),
            format!("{src}/sub/deeper/note")
        ]
    );
    let big = &items[1];
    assert_eq!(big["type"], "file");
    assert_eq!(big["name"], "big.bin");
    assert_eq!(big["size"], 200_000);
    assert!(is_rfc3339(&big["mtime"]) && is_rfc3339(&big["atime"]) && is_rfc3339(&big["ctime"]));
    assert!(big["content"].as_array().unwrap().len() > 1, "{big}");
    assert!(big["inode"].as_u64().unwrap() > 0);
    assert_eq!(items[2]["type"], "dir");
    assert_eq!(items[2]["subtree"].as_str().unwrap().len(), 64);

    let one = f.ok(&["ls", &format!("{}:{src}/hello.txt", id.short())]);
    assert_eq!(one.trim_end(), format!("{src}/hello.txt"));
    let err = f.fails(&["ls", &format!("{}:{src}/missing", id.short())], 1);
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn cat_every_kind() {
    let f = Fixture::new();
    let id = f.backup("h", &["t"]);

    let config = f.json(&["cat", "config"]);
    assert_eq!(config["chunker"]["avg_size"], 16 << 10);
    assert_eq!(config["pack_size"], 1 << 20);
    assert!(is_rfc3339(&config["created"]));
    assert_eq!(config["id"].as_str().unwrap().len(), 64);

    let key_name = only_file(&f.repo.join("keys"));
    let key = f.json(&["cat", "key", &key_name[..12]]);
    assert_eq!(key["id"], key_name);
    assert_eq!(key["kdf"]["memory_kib"], 8192);
    assert_eq!(key["salt"].as_str().unwrap().len(), 64);
    assert_eq!(key["current"], true);
    assert!(key.get("wrapped").is_none());

    let snap = f.json(&["cat", "snapshot", "latest"]);
    assert_eq!(snap["id"], id.to_hex());
    assert_eq!(snap["tags"], serde_json::json!(["t"]));
    assert!(is_rfc3339(&snap["summary"]["backup_end"]));

    let index_name = only_file(&f.repo.join("index"));
    let index = f.json(&["cat", "index", &index_name]);
    let packs = index["packs"].as_array().unwrap();
    assert!(!packs.is_empty());
    let blobs = packs[0]["blobs"].as_array().unwrap();
    assert!(blobs
        .iter()
        .all(|b| b["length"].as_u64().unwrap() > 0 && b["raw_length"].is_u64()));
    assert!(index["supersedes"].as_array().unwrap().is_empty());

    // The pack holding the big file's first blob, read from its header.
    let ls = f.ok(&["ls", "--json", &id.to_hex()]);
    let big: Value = ls
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["name"] == "big.bin")
        .unwrap();
    let first_blob = big["content"][0].as_str().unwrap().to_owned();
    let pack_of = packs
        .iter()
        .find(|p| {
            p["blobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["id"] == first_blob.as_str())
        })
        .unwrap();
    let pack_id = pack_of["id"].as_str().unwrap();
    let pack = f.json(&["cat", "pack", pack_id]);
    assert_eq!(pack["size"], pack_of["size"]);
    assert_eq!(
        pack["blobs"].as_array().unwrap().len(),
        pack_of["blobs"].as_array().unwrap().len()
    );
    assert!(pack["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["id"] == first_blob.as_str() && b["type"] == "data"));

    let tree = f.json(&["cat", "tree", snap["tree"].as_str().unwrap()]);
    assert_eq!(
        tree["nodes"].as_array().unwrap().len(),
        1,
        "the root holds the first path component"
    );
    assert_eq!(tree["nodes"][0]["type"], "dir");

    // cat blob writes the file's bytes: the concatenated blobs equal the file.
    let mut content = Vec::new();
    for blob in big["content"].as_array().unwrap() {
        let out = f.cmd().args(["cat", "blob", blob.as_str().unwrap()]).output().unwrap();
        assert!(out.status.success());
        content.extend(out.stdout);
    }
    assert_eq!(content, fs::read(f.src.join("sub/big.bin")).unwrap());
    // A tree blob is found too.
    let raw_tree = f
        .cmd()
        .args(["cat", "blob", snap["tree"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(raw_tree.status.success() && !raw_tree.stdout.is_empty());
}

#[test]
fn cat_reports_missing_and_corrupt_objects() {
    let f = Fixture::new();
    let id = f.backup("h", &[]);
    let missing = "ab".repeat(32);
    for kind in ["snapshot", "index", "pack", "tree", "blob", "key"] {
        let err = f.fails(&["cat", kind, &missing], 1);
        let named = err.contains(&missing) || err.contains(&missing[..10]);
        assert!(named, "cat {kind}: {err}");
    }
    f.fails(&["cat", "snapshot"], 2);
    f.fails(&["cat", "tree", "xyz"], 2);

    let snap = f.json(&["cat", "snapshot", &id.to_hex()]);
    let tree = snap["tree"].as_str().unwrap().to_owned();
    let index_name = only_file(&f.repo.join("index"));
    let index = f.json(&["cat", "index", &index_name]);
    let pack_with_tree = index["packs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["blobs"].as_array().unwrap().iter().any(|b| b["id"] == tree.as_str()))
        .unwrap()
        .clone();
    let pack_id = pack_with_tree["id"].as_str().unwrap().to_owned();
    let tree_entry = pack_with_tree["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == tree.as_str())
        .unwrap()
        .clone();

    // A flipped byte inside the tree blob: cat tree names the blob.
    let pack_path = f.writable(&format!("data/{}/{pack_id}", &pack_id[..2]));
    let mut bytes = fs::read(&pack_path).unwrap();
    let original = bytes.clone();
    let at = tree_entry["offset"].as_u64().unwrap() as usize + 30;
    bytes[at] ^= 1;
    fs::write(&pack_path, &bytes).unwrap();
    let err = f.fails(&["cat", "tree", &tree], 1);
    assert!(err.contains(&tree) && err.contains("corrupt"), "{err}");
    fs::write(&pack_path, &original).unwrap();

    // A flipped byte in the pack header: cat pack names the pack.
    flip_byte(&pack_path, 10);
    let err = f.fails(&["cat", "pack", &pack_id], 1);
    assert!(err.contains(&format!("pack {pack_id} is corrupt")), "{err}");

    // Snapshot and index files: their content no longer hashes to their name.
    let snap_path = f.writable(&format!("snapshots/{}", id.to_hex()));
    flip_byte(&snap_path, 5);
    let err = f.fails(&["cat", "snapshot", &id.to_hex()], 1);
    assert!(err.contains(&format!("snapshot {} is corrupt", id.to_hex())), "{err}");
    let index_path = f.writable(&format!("index/{index_name}"));
    flip_byte(&index_path, 5);
    let err = f.fails(&["cat", "index", &index_name], 1);
    assert!(err.contains(&format!("index {index_name} is corrupt")), "{err}");
}

#[test]
fn diff_shows_added_removed_and_modified() {
    let f = Fixture::new();
    let before = f.backup("h", &[]);
    fs::write(f.src.join("new.txt"), b"brand new").unwrap();
    fs::remove_file(f.src.join("sub/deeper/note")).unwrap();
    fs::write(f.src.join("hello.txt"), b"hello changed world\n").unwrap();
    fs::create_dir(f.src.join("newdir")).unwrap();
    fs::write(f.src.join("newdir/inside"), pseudo_random(50_000, 9)).unwrap();
    fs::set_permissions(f.src.join("sub/big.bin"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(f.src.join("link")).unwrap();
    fs::create_dir(f.src.join("link")).unwrap();
    fs::write(f.src.join("link/x"), b"x").unwrap();
    let after = f.backup("h", &[]);
    let src = f.src_str();

    let out = f.ok(&["diff", &before.to_hex(), &after.short()]);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        format!("+    {src}/new.txt"),
        format!("-    {src}/sub/deeper/note"),
        format!("M    {src}/hello.txt"),
        format!("+    {src}/newdir/"),
        format!("+    {src}/newdir/inside"),
        format!("U    {src}/sub/big.bin"),
        format!("T    {src}/link/"),
        format!("+    {src}/link/x"),
    ] {
        assert!(lines.contains(&want.as_str()), "{want:?} missing from\n{out}");
    }
    assert!(!out.contains("/sub/\n"), "unchanged entries are not listed:\n{out}");
    assert_eq!(
        lines.len(),
        1 + 8 + 2,
        "header, eight changes, blank line, totals:\n{out}"
    );
    let totals = lines.last().unwrap();
    assert!(
        totals.starts_with("files: 3 added, 1 removed, 2 changed; dirs: 1 added, 0 removed, 1 changed"),
        "{totals}"
    );

    let json = f.ok(&["diff", "--json", &before.to_hex(), &after.to_hex()]);
    let items: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let changes: Vec<(String, String)> = items
        .iter()
        .filter(|v| v["message_type"] == "change")
        .map(|v| {
            (
                v["modifier"].as_str().unwrap().into(),
                v["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(changes.contains(&("-".into(), format!("{src}/sub/deeper/note"))));
    let stats = items.last().unwrap();
    assert_eq!(stats["message_type"], "statistics");
    assert_eq!(stats["files_added"], 3);
    assert_eq!(stats["dirs_changed"], 1);
    assert_eq!(stats["files_removed"], 1);
    assert_eq!(stats["dirs_added"], 1);
    assert!(stats["bytes_added"].as_u64().unwrap() >= 50_000, "{stats}");
    assert_eq!(stats["bytes_removed"], 4 + 12, "the note and the old hello.txt");
    assert_eq!(stats["blobs_removed"], 2);

    let same = f.ok(&["diff", "--json", &after.to_hex(), &after.to_hex()]);
    assert_eq!(same.lines().count(), 1, "no changes, only statistics: {same}");
}

#[test]
fn stats_modes() {
    let f = Fixture::new();
    let first = f.backup("h", &[]);
    fs::write(f.src.join("copy.bin"), pseudo_random(200_000, 3)).unwrap();
    let second = f.backup("h", &[]);

    let one = f.json(&["--json", "stats", &first.to_hex()]);
    assert_eq!(one["snapshots_count"], 1);
    assert_eq!(one["total_file_count"], 4);
    assert_eq!(one["total_size"], 12 + 200_000 + 4);
    assert!(one.get("pack_count").is_none());

    let all = f.json(&["--json", "stats"]);
    assert_eq!(all["snapshots_count"], 2);
    assert_eq!(all["total_file_count"], 4 + 5);
    assert_eq!(all["total_size"], 2 * (12 + 200_000 + 4) + 200_000);
    assert!(all["pack_count"].as_u64().unwrap() >= 1);
    assert!(all["total_pack_size"].as_u64().unwrap() > 200_000 / 2);

    let by_host = f.json(&["--json", "stats", "--host", "h"]);
    assert_eq!(by_host["snapshots_count"], 2);
    assert!(
        by_host.get("pack_count").is_none(),
        "a filtered selection is not the whole repository"
    );
    assert_eq!(f.json(&["--json", "stats", "--host", "other"])["snapshots_count"], 0);

    let raw = f.json(&["--json", "stats", "--mode", "raw-data", &second.to_hex()]);
    let raw_size = raw["total_size"].as_u64().unwrap();
    assert!((200_000..260_000).contains(&raw_size), "the copy dedups: {raw}");
    assert!(raw["total_stored_size"].as_u64().unwrap() > 0);
    assert!(raw["compression_ratio"].as_f64().unwrap() > 0.5);
    assert!(raw["total_blob_count"].as_u64().unwrap() > 2);

    let by_contents = f.json(&["--json", "stats", "--mode", "files-by-contents"]);
    assert_eq!(
        by_contents["total_file_count"], 3,
        "copy.bin has the contents of big.bin"
    );
    assert_eq!(by_contents["total_size"], 12 + 200_000 + 4);

    let text = f.ok(&["stats", "--mode", "raw-data"]);
    assert!(
        text.contains("Stats in raw-data mode") && text.contains("Compression Ratio"),
        "{text}"
    );
}

#[test]
fn key_add_list_remove_and_passwd() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let new_pw = dir.path().join("new");
    fs::write(&new_pw, "second password\n").unwrap();

    let out = f.ok(&[
        "key",
        "add",
        "--kdf-memory",
        "8192",
        "--new-password-file",
        new_pw.to_str().unwrap(),
    ]);
    let added = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(added.len(), 64, "{out}");

    let keys = f.json(&["key", "list", "--json"]);
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k["current"] == true).count(), 1);
    assert!(keys.iter().all(|k| is_rfc3339(&k["created"])));
    let table = f.ok(&["key", "list"]);
    assert!(table.contains(&added[..8]), "{table}");

    // The new password opens the repository, and its key is the current one.
    let with_new = f
        .cmd()
        .env("CAIRN_PASSWORD", "second password")
        .args(["key", "list", "--json"])
        .output()
        .unwrap();
    assert!(with_new.status.success());
    let listed: Value = serde_json::from_slice(&with_new.stdout).unwrap();
    let current = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap();
    assert_eq!(current["id"], added.as_str());

    // The key in use cannot be removed; another one can.
    let original = keys.iter().find(|k| k["id"] != added.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = f.fails(&["key", "remove", &original[..10]], 1);
    assert!(err.contains(&original) && err.contains("in use"), "{err}");
    let err = f.fails(&["key", "remove", "ffffffffffff"], 1);
    assert!(err.contains("ffffffffffff"), "{err}");
    f.ok(&["key", "remove", &added]);
    assert_eq!(f.json(&["key", "list", "--json"]).as_array().unwrap().len(), 1);

    // passwd: the old password stops working, the new one works.
    let out = f
        .cmd()
        .env("CAIRN_NEW_PASSWORD", "third password")
        .args(["key", "passwd", "--kdf-memory", "8192"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = f.fails(&["snapshots"], 12);
    assert!(err.contains("wrong password"), "{err}");
    let ok = f
        .cmd()
        .env("CAIRN_PASSWORD", "third password")
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert_eq!(fs::read_dir(f.repo.join("keys")).unwrap().count(), 1);

    // Without a new password source and no terminal: a clear error.
    let mut cmd = f.cmd();
    let out = cmd
        .env("CAIRN_PASSWORD", "third password")
        .args(["key", "add"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("new password"), "{err}");
}
