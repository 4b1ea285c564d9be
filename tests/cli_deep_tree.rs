//! A tree deeper than the soft limit of open files: the walk holds one
//! directory open per level, and the backup raises the soft limit to the
//! hard one so it does not run out.

mod cli_support;

use std::fs;

use cli_support::*;

#[test]
fn a_tree_deeper_than_the_soft_open_file_limit_is_backed_up_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, &[]);
    let src = tmp.path().join("src");
    let mut deepest = src.clone();
    for _ in 0..300 {
        deepest.push("d");
    }
    fs::create_dir_all(&deepest).unwrap();
    fs::write(deepest.join("leaf"), b"at the bottom").unwrap();
    // The soft limit lowered to 128, below the tree's depth; the hard limit
    // stays where it is (at least 4096 on any system this runs on).
    let hard: u64 = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(u64::MAX);
    assert!(hard >= 1024, "hard limit {hard} too low for this test");
    let bin = assert_cmd::cargo::cargo_bin("cairn");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 128 && exec \"$0\" --json -r \"$1\" backup \"$2\"")
        .arg(&bin)
        .arg(&repo)
        .arg(&src)
        .env("CAIRN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary = json_summary(&out);
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["files_new"], 1, "{summary}");
    assert_eq!(summary["dirs_new"].as_u64(), Some(301), "{summary}");
}
