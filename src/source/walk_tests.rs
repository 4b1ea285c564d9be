use super::*;
use std::fs;
use std::os::unix::fs::symlink;

/// An event reduced to a comparable string: `>` enter, `.` item, `<` leave,
/// `!` error; paths relative to `base`.
fn describe(event: &WalkEvent, base: &Path) -> String {
    let rel = |p: &Path| {
        let rel = p.strip_prefix(base).unwrap_or(p);
        String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned()
    };
    match event {
        WalkEvent::Enter(e) => format!("> {}", rel(&e.path)),
        WalkEvent::Item(e) => format!(". {}", rel(&e.path)),
        WalkEvent::Leave { path } => format!("< {}", rel(path)),
        WalkEvent::Error { path, .. } => format!("! {}", rel(path)),
    }
}

fn walk(roots: &[PathBuf], opts: &WalkOptions, base: &Path) -> Vec<String> {
    Walker::new(roots, opts).unwrap().map(|e| describe(&e, base)).collect()
}

/// A fixture: `root/{B, a, c/{y, z/}, link -> c}`.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("c/z")).unwrap();
    fs::write(root.join("a"), b"a").unwrap();
    fs::write(root.join("B"), b"b").unwrap();
    fs::write(root.join("c/y"), b"y").unwrap();
    symlink("c", root.join("link")).unwrap();
    (dir, root)
}

#[test]
fn depth_first_sorted_by_bytes_without_following_symlinks() {
    let (dir, root) = fixture();
    let events = walk(&[root], &WalkOptions::default(), dir.path());
    let expected = [
        "> root",
        ". root/B",
        ". root/a",
        "> root/c",
        ". root/c/y",
        "> root/c/z",
        "< root/c/z",
        "< root/c",
        ". root/link",
        "< root",
    ];
    assert_eq!(events, expected);
}

#[test]
fn entries_carry_names_depths_and_lstat_metadata() {
    let (_dir, root) = fixture();
    let mut seen = Vec::new();
    for event in Walker::new(std::slice::from_ref(&root), &WalkOptions::default()).unwrap() {
        if let WalkEvent::Enter(e) | WalkEvent::Item(e) = event {
            seen.push((e.name.clone(), e.depth, e.metadata.is_symlink()));
        }
    }
    assert_eq!(seen[0], (b"root".to_vec(), 0, false));
    assert!(seen.contains(&(b"y".to_vec(), 2, false)));
    assert!(seen.contains(&(b"link".to_vec(), 1, true)));
}

#[test]
fn non_utf8_names_sort_by_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let names: [&[u8]; 3] = [b"\xffz", b"a\xe9", b"Z"];
    for name in names {
        fs::write(dir.path().join(std::ffi::OsStr::from_bytes(name)), b"").unwrap();
    }
    let walker = Walker::new(&[dir.path().to_owned()], &WalkOptions::default()).unwrap();
    let got: Vec<Vec<u8>> = walker
        .filter_map(|e| match e {
            WalkEvent::Item(e) => Some(e.name),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![b"Z".to_vec(), b"a\xe9".to_vec(), b"\xffz".to_vec()]);
}

#[test]
fn missing_root_is_an_error_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Walker::new(&[dir.path().to_owned(), missing.clone()], &WalkOptions::default()).unwrap_err();
    assert!(
        matches!(&err, SourceError::NotFound { path } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope"));
}

#[test]
fn roots_are_normalised_sorted_and_nested_roots_dropped() {
    let (dir, root) = fixture();
    let roots = [root.join("c/z"), root.join("c/../a"), root.join("./c"), root.join("c")];
    let walker = Walker::new(&roots, &WalkOptions::default()).unwrap();
    assert_eq!(walker.roots(), &[root.join("a"), root.join("c")]);
    let events: Vec<String> = walker.map(|e| describe(&e, dir.path())).collect();
    assert_eq!(events[0], ". root/a");
    assert_eq!(events[1], "> root/c");
    assert_eq!(events.last().map(String::as_str), Some("< root/c"));
}

#[test]
fn basename_patterns_match_at_any_depth() {
    let (dir, root) = fixture();
    fs::write(root.join("c/z/x.log"), b"").unwrap();
    fs::write(root.join("keep.txt"), b"").unwrap();
    let opts = WalkOptions {
        excludes: vec!["*.log".into(), "B".into(), "link".into()],
        ..Default::default()
    };
    let events = walk(&[root], &opts, dir.path());
    assert!(!events
        .iter()
        .any(|e| e.contains("x.log") || e.contains("root/B") || e.contains("link")));
    assert!(events.contains(&". root/keep.txt".to_owned()));
    assert!(events.contains(&"> root/c/z".to_owned()));
}

#[test]
fn excluded_directory_is_not_descended() {
    let (dir, root) = fixture();
    let opts = WalkOptions {
        excludes: vec!["c/".into()],
        ..Default::default()
    };
    let events = walk(&[root], &opts, dir.path());
    assert_eq!(events, ["> root", ". root/B", ". root/a", ". root/link", "< root"]);
}

#[test]
fn path_patterns_absolute_relative_and_double_star() {
    let (dir, root) = fixture();
    let abs = format!("{}/c/y", root.display());
    let opts = WalkOptions {
        excludes: vec![abs],
        ..Default::default()
    };
    let events = walk(std::slice::from_ref(&root), &opts, dir.path());
    assert!(!events.contains(&". root/c/y".to_owned()));
    assert!(events.contains(&"> root/c/z".to_owned()));

    // Relative with a slash: matches at any depth, but only whole components.
    let opts = WalkOptions {
        excludes: vec!["c/z".into(), "oot/a".into()],
        ..Default::default()
    };
    let events = walk(std::slice::from_ref(&root), &opts, dir.path());
    assert!(!events.iter().any(|e| e.contains("root/c/z")));
    assert!(events.contains(&". root/a".to_owned()));

    // `**` spans directories, `*` does not cross `/`.
    let opts = WalkOptions {
        excludes: vec![
            format!("{}/**/z", dir.path().display()),
            format!("{}/*/y", dir.path().display()),
        ],
        ..Default::default()
    };
    let events = walk(std::slice::from_ref(&root), &opts, dir.path());
    assert!(!events.iter().any(|e| e.contains("root/c/z")));
    assert!(events.contains(&". root/c/y".to_owned()));
}

#[test]
fn case_insensitive_patterns() {
    let (dir, root) = fixture();
    fs::write(root.join("photo.JPG"), b"").unwrap();
    fs::write(root.join("photo.jpg"), b"").unwrap();
    let sensitive = WalkOptions {
        excludes: vec!["*.jpg".into()],
        ..Default::default()
    };
    let events = walk(std::slice::from_ref(&root), &sensitive, dir.path());
    assert!(events.contains(&". root/photo.JPG".to_owned()));
    assert!(!events.contains(&". root/photo.jpg".to_owned()));
    let insensitive = WalkOptions {
        iexcludes: vec!["*.jpg".into()],
        ..Default::default()
    };
    let events = walk(&[root], &insensitive, dir.path());
    assert!(!events.iter().any(|e| e.contains("photo")));
}

#[test]
fn excluded_root_yields_nothing() {
    let (_dir, root) = fixture();
    let opts = WalkOptions {
        excludes: vec!["c".into()],
        ..Default::default()
    };
    let walker = Walker::new(&[root.join("c/z")], &opts).unwrap();
    assert_eq!(walker.count(), 0);
}

#[test]
fn exclude_if_present_leaves_directory_out() {
    let (dir, root) = fixture();
    fs::write(root.join("c/.nobackup"), b"").unwrap();
    let opts = WalkOptions {
        exclude_if_present: vec![".nobackup".into()],
        ..Default::default()
    };
    let events = walk(&[root], &opts, dir.path());
    assert_eq!(events, ["> root", ". root/B", ". root/a", ". root/link", "< root"]);
}

#[test]
fn invalid_pattern_names_the_pattern() {
    let opts = WalkOptions {
        excludes: vec!["a[".into()],
        ..Default::default()
    };
    let err = Walker::new(&[], &opts).unwrap_err();
    assert!(
        matches!(&err, SourceError::Pattern { pattern, .. } if pattern == "a["),
        "{err:?}"
    );
}

#[test]
fn exclude_files_skip_comments_and_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("excludes");
    fs::write(&file, "# comment\n\n  *.tmp  \n/abs/path\n   \n#another\ncache\n").unwrap();
    let ifile = dir.path().join("iexcludes");
    fs::write(&ifile, "*.JPG\n").unwrap();
    let opts = WalkOptions::from_exclude_files(std::slice::from_ref(&file), &[ifile]).unwrap();
    assert_eq!(opts.excludes, ["*.tmp", "/abs/path", "cache"]);
    assert_eq!(opts.iexcludes, ["*.JPG"]);
    let missing = dir.path().join("missing");
    let err = WalkOptions::from_exclude_files(std::slice::from_ref(&missing), &[]).unwrap_err();
    assert!(matches!(&err, SourceError::ExcludeFile { path, .. } if *path == missing));
}

#[test]
fn vanished_entry_is_an_error_event_and_the_walk_goes_on() {
    let (dir, root) = fixture();
    let mut events = Vec::new();
    for event in Walker::new(std::slice::from_ref(&root), &WalkOptions::default()).unwrap() {
        if let WalkEvent::Enter(e) = &event {
            if e.path == root.join("c") {
                // The listing of `c` is taken; `y` disappears before its stat.
                fs::remove_file(root.join("c/y")).unwrap();
            }
        }
        if let WalkEvent::Error { error, .. } = &event {
            assert_eq!(error.kind(), io::ErrorKind::NotFound);
        }
        events.push(describe(&event, dir.path()));
    }
    let at = events.iter().position(|e| e == "> root/c").unwrap();
    assert_eq!(events[at + 1], "! root/c/y");
    assert_eq!(events[at + 2], "> root/c/z");
    assert_eq!(events.last().map(String::as_str), Some("< root"));
}

#[test]
fn unreadable_directory_is_entered_with_an_error() {
    let (dir, root) = fixture();
    let c = root.join("c");
    fs::set_permissions(&c, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let events = walk(std::slice::from_ref(&root), &WalkOptions::default(), dir.path());
    fs::set_permissions(&c, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let at = events.iter().position(|e| e == "> root/c").unwrap();
    if nix::unistd::geteuid().is_root() {
        // Permission bits do not stop root: the listing succeeds.
        assert_eq!(events[at + 1], ". root/c/y");
    } else {
        assert_eq!(&events[at + 1..at + 3], ["! root/c", "< root/c"]);
    }
}

/// A tmpfs mounted for a test, unmounted on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path) -> Option<Mount> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "cairn-test", &at.to_string_lossy()])
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| Mount(at.to_owned()))
}

#[test]
fn one_file_system_keeps_mount_point_empty() {
    let (dir, root) = fixture();
    let mnt = root.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let same = WalkOptions {
        one_file_system: true,
        ..Default::default()
    };
    let Some(_mount) = mount_tmpfs(&mnt) else {
        // No second file system to cross: the option must change nothing.
        let plain = walk(std::slice::from_ref(&root), &WalkOptions::default(), dir.path());
        assert!(plain.contains(&"> root/mnt".to_owned()));
        assert_eq!(walk(&[root], &same, dir.path()), plain);
        return;
    };
    fs::write(mnt.join("inside"), b"x").unwrap();
    let crossing = walk(std::slice::from_ref(&root), &WalkOptions::default(), dir.path());
    assert!(crossing.contains(&". root/mnt/inside".to_owned()));
    let events = walk(std::slice::from_ref(&root), &same, dir.path());
    let at = events.iter().position(|e| e == "> root/mnt").unwrap();
    assert_eq!(events[at + 1], "< root/mnt");
    assert!(!events.iter().any(|e| e.contains("inside")));
    // Walking the mount itself as a root is fine: its device is the root's.
    let inner = walk(&[mnt], &same, dir.path());
    assert!(inner.contains(&". root/mnt/inside".to_owned()));
}

/// Walks `root` replacing its directory `c` by `with` between `c`'s stat and
/// its opening; returns the events and the error reported for `c`.
fn walk_swapping_c(dir: &Path, root: &Path, with: impl Fn(&Path) + Send + Sync + 'static) -> (Vec<String>, String) {
    let c = root.join("c");
    let opts = WalkOptions {
        before_open_dir: Hook::new(move |path| {
            if path == c {
                fs::rename(&c, c.with_file_name("c.moved")).unwrap();
                with(&c);
            }
        }),
        ..Default::default()
    };
    let mut events = Vec::new();
    let mut error = String::new();
    for event in Walker::new(&[root.to_owned()], &opts).unwrap() {
        if let WalkEvent::Error { path, error: e } = &event {
            if path.ends_with("c") {
                error = e.to_string();
            }
        }
        events.push(describe(&event, dir));
    }
    (events, error)
}

#[test]
fn directory_replaced_by_a_symlink_is_reported_not_followed() {
    let (dir, root) = fixture();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"s").unwrap();
    let target = outside.clone();
    let (events, error) = walk_swapping_c(dir.path(), &root, move |c| symlink(&target, c).unwrap());
    assert!(events.contains(&"! root/c".to_owned()), "{events:?}");
    assert!(
        !events.iter().any(|e| e.contains("secret") || e.contains("root/c/")),
        "{events:?}"
    );
    assert!(!events.contains(&"> root/c".to_owned()));
    assert!(error.contains("replaced by a symbolic link"), "{error}");
    // The walk goes on after it.
    assert!(events.contains(&". root/link".to_owned()));
    assert_eq!(events.last().map(String::as_str), Some("< root"));
}

#[test]
fn directory_replaced_by_another_directory_is_reported_not_entered() {
    let (dir, root) = fixture();
    let (events, error) = walk_swapping_c(dir.path(), &root, |c| {
        fs::create_dir(c).unwrap();
        fs::write(c.join("planted"), b"p").unwrap();
    });
    assert!(events.contains(&"! root/c".to_owned()), "{events:?}");
    assert!(!events.iter().any(|e| e.contains("planted")), "{events:?}");
    assert!(error.contains("replaced by another directory"), "{error}");
}

#[test]
fn entries_are_stated_relative_to_their_open_directory() {
    let (dir, root) = fixture();
    let mut walker = Walker::new(std::slice::from_ref(&root), &WalkOptions::default()).unwrap();
    // Entering `root` opens it; moving it away afterwards changes nothing for
    // the entries still to come, which are reached through the descriptor.
    let first = walker.next();
    assert!(matches!(first, Some(WalkEvent::Enter(_))));
    fs::rename(&root, dir.path().join("elsewhere")).unwrap();
    let rest: Vec<String> = walker.map(|e| describe(&e, dir.path())).collect();
    assert!(rest.contains(&". root/a".to_owned()), "{rest:?}");
    assert!(rest.contains(&". root/c/y".to_owned()), "{rest:?}");
    assert!(!rest.iter().any(|e| e.starts_with('!')), "{rest:?}");
}

#[test]
fn symlink_targets_and_xattrs_are_read_through_the_open_directory() {
    use crate::source::meta::{node_from_entry, OwnerNames};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f"), b"f").unwrap();
    symlink("target", root.join("l")).unwrap();
    let xattrs = xattr::set(root.join("f"), "user.k", b"v").is_ok();
    let mut walker = Walker::new(std::slice::from_ref(&root), &WalkOptions::default()).unwrap();
    assert!(matches!(walker.next(), Some(WalkEvent::Enter(_))));
    // Moved away: the paths the entries carry no longer lead to them.
    fs::rename(&root, dir.path().join("elsewhere")).unwrap();
    let mut owners = OwnerNames::new();
    let mut seen = 0;
    for event in walker {
        if let WalkEvent::Item(entry) = event {
            let node = node_from_entry(&entry, &mut owners).unwrap();
            match entry.name.as_slice() {
                b"f" if xattrs => assert_eq!(node.xattrs.iter().find(|x| x.name == b"user.k").unwrap().value, b"v"),
                b"l" => assert_eq!(node.link_target.as_deref(), Some(&b"target"[..])),
                _ => {}
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 2);
}
