//! `wait_for_marker`, the helper pod's wait for a volume's restored data:
//! the marker is removed once it appears, a symlink is never taken for
//! it, and a missing marker or directory ends the wait with one line.

#![cfg(feature = "k8s")]

use std::time::Duration;

use cairn::k8s::restore_wait::{marker_name, valid_marker, wait_for_marker, RestoreWaitError, POLL};

#[test]
fn markers_are_single_cairn_names() {
    assert!(valid_marker(".cairn-restore-1234"));
    assert!(valid_marker(&marker_name("abc")));
    assert_eq!(marker_name("abc"), ".cairn-restore-abc");
    for bad in ["restore", ".cairn/x", "../.cairn", ".cair"] {
        assert!(!valid_marker(bad), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = wait_for_marker(dir.path(), "x", None, POLL).unwrap_err();
    assert!(err.to_string().contains("must start with"), "{err}");
}

#[test]
fn the_marker_is_removed_once_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    // Written while the wait runs (or before its first look: both end
    // the same way).
    let writer = std::thread::spawn(move || std::fs::write(path.join(".cairn-restore-u1"), b"").unwrap());
    wait_for_marker(
        dir.path(),
        ".cairn-restore-u1",
        Some(Duration::from_secs(30)),
        Duration::from_millis(10),
    )
    .unwrap();
    writer.join().unwrap();
    assert!(!dir.path().join(".cairn-restore-u1").exists());
}

#[test]
fn a_symlink_is_not_a_marker_and_a_missing_one_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"keep").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(".cairn-restore-u2")).unwrap();
    let err = wait_for_marker(dir.path(), ".cairn-restore-u2", None, POLL).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(target.exists());
    let err = wait_for_marker(
        dir.path(),
        ".cairn-restore-none",
        Some(Duration::from_millis(30)),
        Duration::from_millis(10),
    )
    .unwrap_err();
    assert!(matches!(err, RestoreWaitError::Timeout { .. }), "{err}");
    let err = wait_for_marker(&dir.path().join("nope"), ".cairn-x", None, POLL).unwrap_err();
    assert!(err.to_string().starts_with("--dir "), "{err}");
}
