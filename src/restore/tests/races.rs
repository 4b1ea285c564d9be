//! Entries of the target swapped between the phases of a restore (for a
//! symlink to a directory or file outside it, or for another directory):
//! nothing outside the target is created or changed, and the restore
//! stops naming the entry.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::support::{bytes, Fixture, Item, Piece};
use super::{names_under, opts};
use crate::restore::restorer::test_hook::{self, Stage};
use crate::restore::{restore, RestoreError, RestoreOptions};

/// Exchanges two names atomically (`renameat2` with `RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) {
    let a_c = CString::new(a.as_os_str().as_bytes()).unwrap();
    let b_c = CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: both pointers are to NUL-terminated strings that outlive the
    // call; the syscall reads them and keeps no reference.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a_c.as_ptr(),
            libc::AT_FDCWD,
            b_c.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
}

/// `d/` with ten files and a subdirectory, and a file `f` at the top.
fn swap_tree(fx: &mut Fixture) -> crate::id::TreeId {
    let files = (0..10)
        .map(|n| Item::File(NAMES[n], vec![Piece::Data(bytes(n as u64, 5_000))]))
        .collect();
    fx.tree(&[
        Item::Dir("d", vec![Item::Dir("e", files)]),
        Item::File("f", vec![Piece::Data(bytes(99, 3_000))]),
    ])
}

const NAMES: [&str; 10] = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9"];

/// A target and a directory beside it that the restore must not touch.
struct Scene {
    _dir: tempfile::TempDir,
    target: PathBuf,
    outside: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let outside = dir.path().join("outside");
        fs::create_dir(&target).unwrap();
        fs::create_dir(&outside).unwrap();
        Self {
            _dir: dir,
            target,
            outside,
        }
    }

    /// Runs a restore with `hook` called at `stage`; returns its error.
    fn restore_with(
        &self,
        fx: &Fixture,
        tree: crate::id::TreeId,
        at: Stage,
        hook: impl Fn() + Send + 'static,
    ) -> RestoreError {
        test_hook::set(&self.target, move |stage| {
            if stage == at {
                hook();
            }
        });
        let o = RestoreOptions {
            verify: true,
            ..opts(&self.target)
        };
        let result = restore(&fx.repo, tree, &o, None);
        test_hook::clear(&self.target);
        match result {
            Ok(summary) => panic!("the restore went on: {summary:?}"),
            Err(e) => e,
        }
    }

    /// Puts a symlink to `to` in place of `name` in the target (the entry
    /// moves to `name.moved`, still inside the target).
    fn swap_for_symlink(&self, name: &str, to: &Path) -> impl Fn() + Send + 'static {
        let (entry, moved, to) = (
            self.target.join(name),
            self.target.join(format!("{name}.moved")),
            to.to_owned(),
        );
        move || {
            symlink(&to, &moved).unwrap();
            exchange(&entry, &moved);
        }
    }
}

fn assert_names(err: &RestoreError, path: &Path, what: &str) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(what), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn existing_directory_swapped_for_symlink_before_creation() {
    let mut fx = Fixture::new();
    let tree = swap_tree(&mut fx);
    let s = Scene::new();
    // `d` exists: the restore decides to restore into it.
    fs::create_dir(s.target.join("d")).unwrap();
    let err = s.restore_with(&fx, tree, Stage::Planned, s.swap_for_symlink("d", &s.outside));
    assert!(names_under(&s.outside).is_empty(), "{:?}", names_under(&s.outside));
    assert_names(&err, &s.target.join("d"), "symlink");
}

#[test]
fn created_directory_swapped_for_symlink_before_writes() {
    let mut fx = Fixture::new();
    let tree = swap_tree(&mut fx);
    let s = Scene::new();
    // Files outside with the names the restore writes below d/e.
    let victims = s.outside.join("e");
    fs::create_dir(&victims).unwrap();
    for name in NAMES {
        fs::write(victims.join(name), b"victim").unwrap();
        fs::set_permissions(victims.join(name), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let err = s.restore_with(&fx, tree, Stage::Created, s.swap_for_symlink("d", &s.outside));
    for name in NAMES {
        let md = fs::metadata(victims.join(name)).unwrap();
        assert_eq!(fs::read(victims.join(name)).unwrap(), b"victim", "{name} was written");
        assert_eq!(md.mode() & 0o7777, 0o600, "{name}");
    }
    assert_eq!(names_under(&s.outside).len(), 1 + NAMES.len());
    assert_names(&err, &s.target.join("d"), "symlink");
}

#[test]
fn directory_replaced_by_another_before_writes() {
    let mut fx = Fixture::new();
    let tree = swap_tree(&mut fx);
    let s = Scene::new();
    let (d, moved) = (s.target.join("d"), s.target.join("d.moved"));
    let err = s.restore_with(&fx, tree, Stage::Created, move || {
        fs::rename(&d, &moved).unwrap();
        fs::create_dir_all(d.join("e")).unwrap();
    });
    assert_names(&err, &s.target.join("d"), "replaced during the restore");
    assert!(
        names_under(&s.target.join("d")) == ["e"],
        "nothing written in the new one"
    );
}

#[test]
fn file_swapped_for_symlink_before_metadata() {
    let mut fx = Fixture::new();
    let tree = swap_tree(&mut fx);
    let s = Scene::new();
    let secret = s.outside.join("secret");
    fs::write(&secret, b"secret").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let before = fs::metadata(&secret).unwrap();
    let err = s.restore_with(&fx, tree, Stage::Linked, s.swap_for_symlink("f", &secret));
    let after = fs::metadata(&secret).unwrap();
    assert_eq!(after.mode() & 0o7777, 0o600, "mode changed through the symlink");
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (before.mtime(), before.mtime_nsec())
    );
    assert_eq!(fs::read(&secret).unwrap(), b"secret");
    assert_names(&err, &s.target.join("f"), "symlink");
}

#[test]
fn directory_swapped_for_symlink_before_metadata() {
    let mut fx = Fixture::new();
    let tree = fx.tree(&[Item::Dir("d", vec![])]);
    let s = Scene::new();
    fs::set_permissions(&s.outside, fs::Permissions::from_mode(0o700)).unwrap();
    let before = fs::metadata(&s.outside).unwrap();
    let err = s.restore_with(&fx, tree, Stage::Linked, s.swap_for_symlink("d", &s.outside));
    let after = fs::metadata(&s.outside).unwrap();
    assert_eq!(after.mode() & 0o7777, 0o700, "mode changed through the symlink");
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (before.mtime(), before.mtime_nsec())
    );
    assert_names(&err, &s.target.join("d"), "symlink");
}

#[test]
fn file_swapped_for_symlink_before_verification() {
    let mut fx = Fixture::new();
    let tree = swap_tree(&mut fx);
    let s = Scene::new();
    // A copy of f's bytes outside: verification must not accept it either.
    let copy = s.outside.join("copy");
    fs::write(&copy, bytes(99, 3_000)).unwrap();
    let err = s.restore_with(&fx, tree, Stage::Applied, s.swap_for_symlink("f", &copy));
    let RestoreError::Verify { failures } = &err else {
        panic!("{err}")
    };
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].path, s.target.join("f"));
    assert!(failures[0].reason.contains("symlink"), "{}", failures[0].reason);
}
