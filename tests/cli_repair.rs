//! `cairn repair index` and `cairn repair snapshots` through the binary.

mod cli_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn::format::tree::{Content, NodeKind};
use cairn::format::BlobKind;
use cairn::id::{BlobId, PackId, TreeId};
use cairn::repo::snapshots::SnapshotFilter;
use cairn::repo::{IndexedRepository, Repository};
use cairn::storage::local::LocalStorage;
use cli_support::{
    cairn, describe, fails_with, json_summary, pseudo_random, restore_described, snapshot_ids, snapshots_json,
    succeeds, PASSWORD,
};

struct Fixture {
    dir: tempfile::TempDir,
    repo: PathBuf,
    src: PathBuf,
}

/// A repository with one snapshot of a tree of large files (spread over
/// several packs), small files (one blob each) and an empty file.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    for i in 0..4u64 {
        fs::write(src.join(format!("big{i}.bin")), pseudo_random(400_000, 10 + i)).unwrap();
    }
    for i in 0..12u64 {
        let dir = if i % 2 == 0 {
            src.join("sub")
        } else {
            src.join("sub/deeper")
        };
        fs::write(
            dir.join(format!("small{i}.bin")),
            pseudo_random(8_000 + i as usize * 100, 30 + i),
        )
        .unwrap();
    }
    fs::write(src.join("empty"), b"").unwrap();
    cairn(&repo)
        .args([
            "init",
            "--chunk-size",
            "64K",
            "--pack-size",
            "1M",
            "--kdf-memory",
            "8192",
        ])
        .assert()
        .success();
    succeeds(cairn(&repo).arg("backup").arg(&src));
    Fixture { dir, repo, src }
}

fn indexed(repo: &Path) -> IndexedRepository {
    let storage = Arc::new(LocalStorage::new(repo.to_path_buf()));
    Repository::open(storage, PASSWORD.as_bytes())
        .unwrap()
        .load_index()
        .unwrap()
}

fn pack_path(repo: &Path, pack: &PackId) -> PathBuf {
    let name = pack.to_hex();
    repo.join("data").join(&name[..2]).join(name)
}

/// Every file below `tree` (paths relative to `prefix`) with its data blobs.
fn files(repo: &IndexedRepository, tree: TreeId, prefix: &Path, out: &mut BTreeMap<PathBuf, Vec<BlobId>>) {
    for node in repo.load_tree(&tree).unwrap().nodes {
        let path = prefix.join(node.name_lossy().as_ref());
        match node.kind {
            NodeKind::File => {
                let blobs = node
                    .content
                    .iter()
                    .filter_map(|c| match c {
                        Content::Blob(b) => Some(*b),
                        Content::Hole(_) => None,
                    })
                    .collect();
                out.insert(path, blobs);
            }
            NodeKind::Dir => files(repo, node.subtree.unwrap(), &path, out),
            _ => {}
        }
    }
}

/// The latest snapshot's files, by absolute path.
fn snapshot_files(repo: &IndexedRepository) -> BTreeMap<PathBuf, Vec<BlobId>> {
    let (_, snap) = repo.find_snapshot("latest", &SnapshotFilter::default()).unwrap();
    let mut out = BTreeMap::new();
    files(repo, snap.tree, Path::new("/"), &mut out);
    out
}

/// `--json` output lines of a command.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn repair_index_after_losing_every_index_file_restores_every_snapshot() {
    let fx = fixture();
    let other = fx.dir.path().join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("x.bin"), pseudo_random(300_000, 99)).unwrap();
    succeeds(cairn(&fx.repo).arg("backup").arg(&other));
    let ids = snapshot_ids(&fx.repo, PASSWORD);
    assert_eq!(ids.len(), 2);
    let old_index: Vec<_> = fs::read_dir(fx.repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for path in &old_index {
        fs::remove_file(path).unwrap();
    }
    fails_with(
        cairn(&fx.repo)
            .args(["restore", &ids[0], "--target"])
            .arg(fx.dir.path().join("t")),
        1,
    );

    let dry = json_summary(
        &cairn(&fx.repo)
            .args(["--json", "repair", "index", "--dry-run"])
            .output()
            .unwrap(),
    );
    assert!(dry["written"].as_array().unwrap().is_empty(), "{dry}");
    assert_eq!(cli_support::object_count(&fx.repo.join("index")), 0);

    let out = cairn(&fx.repo).args(["--json", "repair", "index"]).output().unwrap();
    let summary = json_summary(&out);
    assert!(summary["problems"].as_array().unwrap().is_empty(), "{summary}");
    assert_eq!(summary["packs_indexed"], summary["packs"], "{summary}");
    assert!(summary["blobs"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(
        cli_support::object_count(&fx.repo.join("index")),
        summary["written"].as_array().unwrap().len()
    );
    succeeds(cairn(&fx.repo).arg("check"));
    for (id, source) in ids.iter().zip([&fx.src, &other]) {
        let restored = restore_described(&fx.repo, PASSWORD, id, fx.dir.path(), source);
        cli_support::assert_same_tree(&describe(source), &restored);
    }

    // A second repair replaces the index files it wrote.
    let before: BTreeSet<_> = fs::read_dir(fx.repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let again = json_summary(&cairn(&fx.repo).args(["--json", "repair", "index"]).output().unwrap());
    assert_eq!(again["deleted"], before.len(), "{again}");
    let after: BTreeSet<_> = fs::read_dir(fx.repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(before.is_disjoint(&after));
    succeeds(cairn(&fx.repo).arg("check"));
}

#[test]
fn repair_index_names_a_pack_with_a_damaged_header_and_leaves_it() {
    let fx = fixture();
    let repo = indexed(&fx.repo);
    let (pack, _) = repo.index().packs().max().unwrap();
    let packs = repo.index().packs().count();
    drop(repo);
    let path = pack_path(&fx.repo, &pack);
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 6] ^= 0x40; // inside the sealed header's tag
    fs::remove_file(&path).unwrap();
    fs::write(&path, &bytes).unwrap();

    let out = succeeds(cairn(&fx.repo).args(["repair", "index"]));
    let lines: Vec<_> = out.lines().filter(|l| l.contains(&pack.to_hex())).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("header"), "{out}");
    assert!(path.exists(), "the damaged pack must be left alone");
    assert_eq!(fs::read(&path).unwrap(), bytes);
    let repo = indexed(&fx.repo);
    assert_eq!(repo.index().packs().count(), packs - 1);
    assert!(repo.index().packs().all(|(p, _)| p != pack));
}

#[test]
fn repair_snapshots_drops_exactly_the_files_of_a_lost_pack() {
    let fx = fixture();
    let repo = indexed(&fx.repo);
    let (old_id, _) = repo.find_snapshot("latest", &SnapshotFilter::default()).unwrap();
    let all = snapshot_files(&repo);
    // A pack of data blobs only, and the files with a blob in it.
    let mut by_pack: BTreeMap<PackId, Vec<BlobKind>> = BTreeMap::new();
    for (_, loc) in repo.index().locations().map(|r| r.unwrap()) {
        by_pack.entry(loc.pack).or_default().push(loc.kind);
    }
    let (pack, _) = by_pack
        .iter()
        .filter(|(_, kinds)| kinds.iter().all(|k| *k == BlobKind::Data))
        .max_by_key(|(_, kinds)| kinds.len())
        .unwrap();
    let affected: BTreeSet<PathBuf> = all
        .iter()
        .filter(|(_, blobs)| {
            blobs
                .iter()
                .any(|b| repo.index().get(BlobKind::Data, b).unwrap().pack == *pack)
        })
        .map(|(p, _)| p.clone())
        .collect();
    assert!(!affected.is_empty());
    assert!(affected.len() < all.len() - 1, "some files with data must survive");
    drop(repo);
    fs::remove_file(pack_path(&fx.repo, pack)).unwrap();

    // The index still promises the lost pack: repair it first.
    let err = fails_with(cairn(&fx.repo).args(["repair", "snapshots"]), 1);
    assert!(err.contains("repair index") && err.contains(&pack.to_hex()), "{err}");
    succeeds(cairn(&fx.repo).args(["repair", "index"]));

    let dry = succeeds(cairn(&fx.repo).args(["repair", "snapshots", "--dry-run"]));
    assert_eq!(dry.matches("  dropped ").count(), affected.len(), "{dry}");
    assert_eq!(snapshot_ids(&fx.repo, PASSWORD), vec![old_id.to_hex()]);

    let out = succeeds(cairn(&fx.repo).args(["--json", "repair", "snapshots", "--forget"]));
    let lines = json_lines(&out);
    let report = lines.iter().find(|l| l["message_type"] == "snapshot").unwrap();
    assert_eq!(report["snapshot"], old_id.to_hex());
    let dropped: BTreeSet<PathBuf> = report["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["what"], "file", "{d}");
            PathBuf::from(d["path"].as_str().unwrap())
        })
        .collect();
    assert_eq!(dropped, affected);
    let new_id = report["new_snapshot"].as_str().unwrap().to_owned();

    // Only the new snapshot is left: partial, tagged, naming the old one.
    let snaps = snapshots_json(&fx.repo, PASSWORD);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], new_id.as_str());
    assert_eq!(snaps[0]["partial"], true);
    assert_eq!(snaps[0]["original"], old_id.to_hex());
    assert!(snaps[0]["tags"].as_array().unwrap().iter().any(|t| t == "repaired"));

    // Everything else restores exactly.
    let mut want = describe(&fx.src);
    for path in &affected {
        want.remove(path.strip_prefix(&fx.src).unwrap());
    }
    let got = restore_described(&fx.repo, PASSWORD, &new_id, fx.dir.path(), &fx.src);
    cli_support::assert_same_tree(&want, &got);
    succeeds(cairn(&fx.repo).arg("check"));

    // The repaired snapshot needs no further repair and is left alone.
    let again = succeeds(cairn(&fx.repo).args(["repair", "snapshots", &new_id]));
    assert!(again.contains("nothing to repair"), "{again}");
    assert_eq!(snapshot_ids(&fx.repo, PASSWORD), vec![new_id]);
}

#[test]
fn repair_snapshots_empties_a_directory_whose_tree_is_lost() {
    let fx = fixture();
    let repo = indexed(&fx.repo);
    let (_, snap) = repo.find_snapshot("latest", &SnapshotFilter::default()).unwrap();
    // Walk down to the tree of `sub/deeper`.
    let mut tree = snap.tree;
    let deeper = fx.src.join("sub/deeper");
    for part in deeper.components().skip(1) {
        let name = part.as_os_str().to_string_lossy().into_owned();
        tree = repo
            .load_tree(&tree)
            .unwrap()
            .find(name.as_bytes())
            .unwrap()
            .subtree
            .unwrap();
    }
    let loc = repo.index().get(BlobKind::Tree, &BlobId::from(tree)).unwrap();
    drop(repo);
    let path = pack_path(&fx.repo, &loc.pack);
    let mut bytes = fs::read(&path).unwrap();
    bytes[(loc.offset + loc.length / 2) as usize] ^= 1;
    fs::remove_file(&path).unwrap();
    fs::write(&path, &bytes).unwrap();

    let out = succeeds(cairn(&fx.repo).args(["repair", "snapshots"]));
    let emptied: Vec<_> = out.lines().filter(|l| l.contains("emptied")).collect();
    assert_eq!(emptied.len(), 1, "{out}");
    assert!(emptied[0].contains(&format!("emptied {}:", deeper.display())), "{out}");
    assert!(!out.contains("dropped"), "{out}");
    let new_id = snapshots_json(&fx.repo, PASSWORD)
        .into_iter()
        .find(|s| s["partial"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = restore_described(&fx.repo, PASSWORD, &new_id, fx.dir.path(), &fx.src);
    let mut want = describe(&fx.src);
    want.retain(|p, _| !p.starts_with("sub/deeper") || p == Path::new("sub/deeper"));
    // The emptied directory keeps its own metadata.
    cli_support::assert_same_tree(&want, &got);
}

#[test]
fn repair_snapshots_with_read_data_drops_a_file_whose_blob_is_corrupt() {
    let fx = fixture();
    let repo = indexed(&fx.repo);
    let all = snapshot_files(&repo);
    let victim = fx.src.join("sub/small0.bin");
    let blobs = &all[&victim];
    assert_eq!(blobs.len(), 1);
    let loc = repo.index().get(BlobKind::Data, &blobs[0]).unwrap();
    drop(repo);
    let path = pack_path(&fx.repo, &loc.pack);
    let mut bytes = fs::read(&path).unwrap();
    bytes[(loc.offset + loc.length / 2) as usize] ^= 1;
    fs::remove_file(&path).unwrap();
    fs::write(&path, &bytes).unwrap();

    // The index still lists the blob: only reading it finds the damage.
    let out = succeeds(cairn(&fx.repo).args(["repair", "snapshots"]));
    assert!(out.contains("nothing to repair"), "{out}");
    assert_eq!(snapshot_ids(&fx.repo, PASSWORD).len(), 1);

    let out = succeeds(cairn(&fx.repo).args(["repair", "snapshots", "--read-data"]));
    let dropped: Vec<_> = out.lines().filter(|l| l.contains("dropped")).collect();
    assert_eq!(dropped.len(), 1, "{out}");
    assert!(dropped[0].contains(&format!("dropped {}:", victim.display())), "{out}");
    assert!(dropped[0].contains(&blobs[0].to_hex()), "{out}");
    let new_id = snapshots_json(&fx.repo, PASSWORD)
        .into_iter()
        .find(|s| s["partial"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut want = describe(&fx.src);
    want.remove(Path::new("sub/small0.bin"));
    let got = restore_described(&fx.repo, PASSWORD, &new_id, fx.dir.path(), &fx.src);
    cli_support::assert_same_tree(&want, &got);
}
