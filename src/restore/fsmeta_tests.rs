use super::*;
use crate::format::tree::Xattr;
use crate::source::meta::{node_from_metadata, OwnerNames};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn capture(path: &Path) -> Node {
    let md = fs::symlink_metadata(path).unwrap();
    let name = path.file_name().unwrap().as_bytes().to_vec();
    node_from_metadata(name, path, &md, &mut OwnerNames::new()).unwrap()
}

fn set_times(path: &Path, atime_ns: i64, mtime_ns: i64) {
    utimensat(
        None,
        path,
        &timespec(atime_ns),
        &timespec(mtime_ns),
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

fn user_xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"").unwrap();
    let ok = xattr::set(&probe, "user.probe", b"1").is_ok();
    fs::remove_file(&probe).unwrap();
    ok
}

#[test]
fn symlink_with_raw_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let mut node = Node::new(b"l".to_vec(), NodeKind::Symlink);
    node.link_target = Some(b"../some\xfftarget".to_vec());
    create_special(&path, &node).unwrap();
    let target = fs::read_link(&path).unwrap();
    assert_eq!(target.as_os_str().as_bytes(), b"../some\xfftarget");
    assert_eq!(capture(&path).link_target, node.link_target);
}

#[test]
fn symlink_without_target_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let err = create_special(&path, &Node::new(b"l".to_vec(), NodeKind::Symlink)).unwrap_err();
    assert!(
        matches!(&err, RestoreFsError::MissingTarget { path: p } if *p == path),
        "{err:?}"
    );
    assert!(fs::symlink_metadata(&path).is_err());
}

#[test]
fn fifo_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let mut node = Node::new(b"p".to_vec(), NodeKind::Fifo);
    node.mode = 0o640;
    create_special(&path, &node).unwrap();
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_fifo());
}

#[test]
fn existing_path_error_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    fs::write(&path, b"").unwrap();
    let err = create_special(&path, &Node::new(b"p".to_vec(), NodeKind::Fifo)).unwrap_err();
    assert!(matches!(&err, RestoreFsError::Create { source, .. } if source.kind() == io::ErrorKind::AlreadyExists));
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn devices_when_permitted() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("null", NodeKind::CharDevice, nix::sys::stat::makedev(1, 3)),
        ("loop", NodeKind::BlockDevice, nix::sys::stat::makedev(7, 0)),
    ];
    for (name, kind, rdev) in cases {
        let path = dir.path().join(name);
        let mut node = Node::new(name.as_bytes().to_vec(), kind);
        node.mode = 0o600;
        node.rdev = rdev;
        match create_special(&path, &node) {
            Ok(()) => {
                let md = fs::symlink_metadata(&path).unwrap();
                assert_eq!(md.rdev(), rdev);
                let ft = md.file_type();
                assert!(if kind == NodeKind::CharDevice {
                    ft.is_char_device()
                } else {
                    ft.is_block_device()
                });
                assert_eq!(capture(&path).kind, kind);
            }
            Err(err) => {
                // Only an unprivileged process (or a root without CAP_MKNOD) may fail, and clearly.
                assert!(
                    matches!(&err, RestoreFsError::DeviceNotPermitted { path: p } if *p == path),
                    "{err:?}"
                );
                assert!(fs::symlink_metadata(&path).is_err());
            }
        }
    }
    if !is_root() {
        // Not 0:0, which Linux lets anyone create (an overlayfs whiteout).
        let mut node = Node::new(b"x".to_vec(), NodeKind::CharDevice);
        node.rdev = nix::sys::stat::makedev(1, 3);
        let err = create_special(&dir.path().join("x"), &node);
        assert!(matches!(err, Err(RestoreFsError::DeviceNotPermitted { .. })), "{err:?}");
    }
}

#[test]
fn socket_creates_nothing_and_regular_kinds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    create_special(&path, &Node::new(b"s".to_vec(), NodeKind::Socket)).unwrap();
    assert!(fs::symlink_metadata(&path).is_err());
    for kind in [NodeKind::File, NodeKind::Dir] {
        let err = create_special(&path, &Node::new(b"s".to_vec(), kind)).unwrap_err();
        assert!(matches!(err, RestoreFsError::NotSpecial { kind: k, .. } if k == kind));
    }
}

#[test]
fn metadata_round_trip_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let xattrs = user_xattrs_supported(dir.path());
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    fs::write(&src, b"content").unwrap();
    fs::write(&dst, b"content").unwrap();
    if is_root() {
        std::os::unix::fs::lchown(&src, Some(4321), Some(8765)).unwrap();
    }
    // setuid survives only if the mode is set after the owner.
    fs::set_permissions(&src, fs::Permissions::from_mode(0o4751)).unwrap();
    if xattrs {
        xattr::set(&src, "user.b", b"two").unwrap();
        xattr::set(&src, "user.a", b"\x00one").unwrap();
    }
    set_times(&src, 1_234_567_890_123_456_789, 987_654_321_012_345_678);
    let want = capture(&src);

    apply_metadata(&dst, &want, &MetaOptions::new(true, false)).unwrap();
    let got = capture(&dst);
    assert_eq!(got.mode, 0o4751);
    assert_eq!(got.mtime_ns, 987_654_321_012_345_678);
    assert_eq!(got.atime_ns, 1_234_567_890_123_456_789);
    assert_eq!(got.xattrs, want.xattrs);
    if xattrs {
        assert_eq!(got.xattrs.len(), 2);
    }
    if is_root() {
        assert_eq!((got.uid, got.gid), (4321, 8765));
    } else {
        assert_eq!(got.uid, nix::unistd::geteuid().as_raw());
    }
}

#[test]
fn owners_by_name_unless_numeric() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"").unwrap();
    let mut node = capture(&path);
    node.uid = 4242;
    node.gid = 4343;
    node.user = "root".into();
    node.group = "root".into();
    apply_metadata(&path, &node, &MetaOptions::new(true, false)).unwrap();
    let by_name = capture(&path);
    apply_metadata(&path, &node, &MetaOptions::new(true, true)).unwrap();
    let numeric = capture(&path);
    node.user = "no-such-user-cairn".into();
    node.group = "no-such-group-cairn".into();
    apply_metadata(&path, &node, &MetaOptions::new(true, false)).unwrap();
    let unknown = capture(&path);
    if is_root() {
        assert_eq!((by_name.uid, by_name.gid), (0, 0));
        assert_eq!((numeric.uid, numeric.gid), (4242, 4343));
        assert_eq!((unknown.uid, unknown.gid), (4242, 4343));
    } else {
        let me = nix::unistd::geteuid().as_raw();
        assert!([by_name.uid, numeric.uid, unknown.uid].iter().all(|&u| u == me));
    }
    // Owners off: nothing changes.
    node.uid = 5555;
    apply_metadata(&path, &node, &MetaOptions::new(false, true)).unwrap();
    assert_eq!(capture(&path).uid, unknown.uid);
}

#[test]
fn symlink_times_without_touching_target() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    fs::write(&target, b"").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    let before = capture(&target);
    let link = dir.path().join("l");
    let mut node = Node::new(b"l".to_vec(), NodeKind::Symlink);
    node.link_target = Some(b"t".to_vec());
    node.mode = 0o777;
    node.mtime_ns = 1_000_000_007;
    node.atime_ns = -1_500_000_000;
    create_special(&link, &node).unwrap();
    apply_metadata(&link, &node, &MetaOptions::default()).unwrap();
    let got = capture(&link);
    assert_eq!(got.mtime_ns, 1_000_000_007);
    assert_eq!(got.atime_ns, -1_500_000_000);
    let after = capture(&target);
    assert_eq!(after.mode, 0o600);
    assert_eq!(after.mtime_ns, before.mtime_ns);
}

#[test]
fn directory_mode_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    fs::create_dir(&path).unwrap();
    let mut node = Node::new(b"d".to_vec(), NodeKind::Dir);
    node.mode = 0o1750;
    node.mtime_ns = 42;
    node.atime_ns = 43;
    apply_metadata(&path, &node, &MetaOptions::default()).unwrap();
    let got = capture(&path);
    assert_eq!((got.mode, got.mtime_ns, got.atime_ns), (0o1750, 42, 43));
}

#[test]
fn xattr_failure_is_non_fatal_and_the_rest_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"").unwrap();
    let mut node = capture(&path);
    node.mode = 0o604;
    node.mtime_ns = 7_000_000_000;
    // No such namespace: every file system refuses it.
    node.xattrs = vec![Xattr {
        name: b"bogus.name".to_vec(),
        value: b"v".to_vec(),
    }];
    let err = apply_metadata(&path, &node, &MetaOptions::default()).unwrap_err();
    assert!(!err.is_fatal());
    assert!(
        matches!(&err, RestoreFsError::Xattr { names, .. } if names == &["bogus.name"]),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));
    let got = capture(&path);
    assert_eq!((got.mode, got.mtime_ns), (0o604, 7_000_000_000));
}

#[test]
fn missing_path_is_a_fatal_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone");
    let mut node = Node::new(b"gone".to_vec(), NodeKind::File);
    node.mode = 0o644;
    let err = apply_metadata(&path, &node, &MetaOptions::default()).unwrap_err();
    assert!(err.is_fatal());
    assert!(err.to_string().contains("gone"), "{err}");
}

#[test]
fn matches_on_disk_compares_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"12345").unwrap();
    set_times(&path, 0, 1_600_000_000_000_000_001);
    let node = capture(&path);
    assert!(matches_on_disk(&path, &node));
    let mut other = node.clone();
    other.mtime_ns += 1;
    assert!(!matches_on_disk(&path, &other));
    other = node.clone();
    other.size = 4;
    assert!(!matches_on_disk(&path, &other));
    assert!(!matches_on_disk(&dir.path().join("missing"), &node));
    // A symlink to the right file does not count.
    let link = dir.path().join("l");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(!matches_on_disk(&link, &node));
    let mut dir_node = node.clone();
    dir_node.kind = NodeKind::Dir;
    assert!(!matches_on_disk(&path, &dir_node));
}
