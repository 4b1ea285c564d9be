//! Names that are not UTF-8: given on the command line, stored exactly in
//! the snapshot's paths and trees, and named again to `ls` and `restore`.

mod cli_support;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use cli_support::*;

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// `SNAPSHOT:PATH` with a path of any bytes.
fn spec(id: &str, path: &Path) -> OsString {
    let mut bytes = format!("{id}:").into_bytes();
    bytes.extend_from_slice(path.as_os_str().as_bytes());
    OsString::from_vec(bytes)
}

#[test]
fn non_utf8_roots_are_stored_exactly_and_can_be_named_again() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, &[]);
    // Two roots whose names differ only in a byte that is not UTF-8: as text
    // both would read "caf\u{fffd}".
    let e9 = tmp.path().join(os(b"caf\xe9"));
    let e8 = tmp.path().join(os(b"caf\xe8"));
    for (dir, content) in [(&e9, &b"e9"[..]), (&e8, &b"e8"[..])] {
        fs::create_dir(dir).unwrap();
        fs::write(dir.join(os(b"\xff.txt")), content).unwrap();
    }
    let first = json_summary(&cairn(&repo).args(["--json", "backup"]).arg(&e9).output().unwrap());
    let id = first["snapshot_id"].as_str().unwrap().to_owned();
    // The other root is other paths: no parent.
    let second = json_summary(&cairn(&repo).args(["--json", "backup"]).arg(&e8).output().unwrap());
    assert_eq!(second["parent"], serde_json::Value::Null, "{second}");
    assert_eq!(second["files_new"], 1);
    // The same root again: the first snapshot is its parent.
    let third = json_summary(&cairn(&repo).args(["--json", "backup"]).arg(&e9).output().unwrap());
    assert_eq!(third["parent"].as_str(), Some(id.as_str()), "{third}");
    assert_eq!(third["files_unmodified"], 1);

    let listed = succeeds(cairn(&repo).arg("ls").arg(spec(&id, &e9)).arg("--recursive"));
    assert!(listed.contains("\\xff.txt"), "{listed}");
    let target = tmp.path().join("restore");
    succeeds(
        cairn(&repo)
            .arg("restore")
            .arg(spec(&id, &e9))
            .arg("--target")
            .arg(&target),
    );
    assert_eq!(fs::read(target.join(os(b"\xff.txt"))).unwrap(), b"e9");
    succeeds(cairn(&repo).args(["check", "--read-data"]));
}
