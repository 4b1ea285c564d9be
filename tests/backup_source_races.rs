//! Sources that change between the walk and the reading of a file: the
//! backup reads what it walked or reports it, never something else, never
//! hangs, never pads. Hooks in the backup options change the file system at
//! exactly the point under test.

mod cli_support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn::backup::progress::{Message, Progress};
use cairn::backup::{backup_paths, BackupOptions, BackupOutcome};
use cairn::check::{check, CheckOptions, ReadData};
use cairn::format::tree::{Content, Node, Tree};
use cairn::format::BlobKind;
use cairn::repo::{IndexedRepository, Repository};
use cairn::source::walk::WalkOptions;
use cairn::source::Hook;
use cairn::storage::memory::MemoryStorage;
use cairn::storage::DynStorage;
use cli_support::pseudo_random;

fn repo() -> Repository {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    Repository::init(storage, b"pw", cli_support::small_repo_options()).unwrap()
}

/// Runs a backup of `src` on another thread and waits for it to end; a
/// backup that does not end within a minute fails the test (it would hang
/// forever otherwise).
fn backup(repo: &Repository, src: &Path, opts: BackupOptions) -> (BackupOutcome, Vec<Message>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (repo, src) = (repo.clone(), src.to_owned());
    std::thread::spawn(move || {
        let indexed = repo.load_index().unwrap();
        let progress = Progress::default();
        let outcome = backup_paths(&indexed, std::slice::from_ref(&src), &opts, &progress);
        let _ = tx.send(outcome.map(|o| (o, progress.take_messages())));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the backup did not finish: it hangs");
    result.unwrap()
}

/// A hook that runs `f` once, for the file at `at`.
fn at(at: &Path, f: impl Fn(&Path) + Send + Sync + 'static) -> Hook {
    let at = at.to_owned();
    Hook::new(move |path| {
        if path == at {
            f(path);
        }
    })
}

/// The node of `path` (absolute) in the snapshot, if there is one.
fn node(repo: &IndexedRepository, outcome: &BackupOutcome, path: &Path) -> Option<Node> {
    let mut tree: Tree = repo.load_tree(&outcome.snapshot.tree).unwrap();
    let comps: Vec<_> = path.components().skip(1).collect();
    for (i, c) in comps.iter().enumerate() {
        let found = tree
            .find(std::os::unix::ffi::OsStrExt::as_bytes(c.as_os_str()))?
            .clone();
        if i + 1 == comps.len() {
            return Some(found);
        }
        tree = repo.load_tree(&found.subtree?).unwrap();
    }
    None
}

fn read_back(repo: &IndexedRepository, content: &[Content]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in content {
        match c {
            Content::Blob(id) => out.extend(repo.read_blob(BlobKind::Data, id).unwrap()),
            Content::Hole(n) => out.resize(out.len() + *n as usize, 0),
        }
    }
    out
}

fn assert_check_clean(repo: &Repository) {
    let opts = CheckOptions {
        read_data: ReadData::All,
        ..CheckOptions::default()
    };
    let report = check(repo, &opts).unwrap();
    assert_eq!((report.errors, report.warnings), (0, 0), "{:?}", report.problems);
}

/// `src/{victim, other}` and an `outside` file with secret bytes.
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("victim"), b"the victim's own bytes").unwrap();
    fs::write(src.join("other"), b"other").unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, b"SECRET outside the source").unwrap();
    let victim = src.join("victim");
    (dir, src, victim, outside)
}

fn error_for<'a>(messages: &'a [Message], path: &Path) -> &'a str {
    messages
        .iter()
        .find_map(|m| match m {
            Message::Error { path: p, error } if p == path => Some(error.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no error reported for {}: {messages:?}", path.display()))
}

#[test]
fn a_file_replaced_by_a_symlink_is_not_followed() {
    let (_dir, src, victim, outside) = fixture();
    let repo = repo();
    let opts = BackupOptions {
        before_read: at(&victim, move |p| {
            fs::remove_file(p).unwrap();
            symlink(&outside, p).unwrap();
        }),
        ..BackupOptions::default()
    };
    let (outcome, messages) = backup(&repo, &src, opts);
    assert!(outcome.snapshot.partial);
    assert_eq!(outcome.snapshot.summary.errors, 1);
    assert!(
        error_for(&messages, &victim).contains("replaced by a symbolic link"),
        "{messages:?}"
    );
    let indexed = repo.clone().load_index().unwrap();
    assert!(
        node(&indexed, &outcome, &victim).is_none(),
        "the replaced file is left out"
    );
    let other = node(&indexed, &outcome, &src.join("other")).unwrap();
    assert_eq!(read_back(&indexed, &other.content), b"other");
    assert_check_clean(&repo);
}

#[test]
fn a_file_replaced_by_a_fifo_does_not_hang_the_backup() {
    let (_dir, src, victim, _outside) = fixture();
    let repo = repo();
    let opts = BackupOptions {
        before_read: at(&victim, |p| {
            fs::remove_file(p).unwrap();
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }),
        ..BackupOptions::default()
    };
    let (outcome, messages) = backup(&repo, &src, opts);
    assert!(outcome.snapshot.partial);
    assert_eq!(outcome.snapshot.summary.errors, 1);
    assert!(
        error_for(&messages, &victim).contains("replaced by a FIFO"),
        "{messages:?}"
    );
    let indexed = repo.clone().load_index().unwrap();
    assert!(node(&indexed, &outcome, &victim).is_none());
    assert_check_clean(&repo);
}

#[test]
fn a_file_replaced_by_another_file_is_not_read() {
    let (_dir, src, victim, outside) = fixture();
    let repo = repo();
    let opts = BackupOptions {
        before_read: at(&victim, move |p| fs::rename(&outside, p).unwrap()),
        ..BackupOptions::default()
    };
    let (outcome, messages) = backup(&repo, &src, opts);
    assert!(outcome.snapshot.partial);
    assert!(
        error_for(&messages, &victim).contains("replaced by another regular file"),
        "{messages:?}"
    );
    let indexed = repo.clone().load_index().unwrap();
    assert!(node(&indexed, &outcome, &victim).is_none());
    assert_check_clean(&repo);
}

#[test]
fn a_file_truncated_while_read_is_stored_as_read_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let log = src.join("app.log");
    let bytes = pseudo_random(3 << 20, 11);
    fs::write(&log, &bytes).unwrap();
    let repo = repo();
    // Opened, its size taken, then truncated to 1000 bytes before the first
    // read, as `logrotate copytruncate` does.
    let opts = BackupOptions {
        after_open: at(&log, |p| {
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(1000)
                .unwrap();
        }),
        ..BackupOptions::default()
    };
    let (outcome, messages) = backup(&repo, &src, opts);
    assert!(!outcome.snapshot.partial, "what was read is stored");
    assert_eq!(outcome.changed_while_read, 1);
    let how = messages
        .iter()
        .find_map(|m| match m {
            Message::Changed { path, how } if *path == log => Some(how.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no change reported: {messages:?}"));
    assert!(how.contains("shrank"), "{how}");
    let indexed = repo.clone().load_index().unwrap();
    let node = node(&indexed, &outcome, &log).unwrap();
    assert_eq!(node.size, 1000, "the node's size is what was stored");
    assert_eq!(read_back(&indexed, &node.content), &bytes[..1000], "no zero padding");
    assert_check_clean(&repo);
}

#[test]
fn a_file_that_grows_is_read_up_to_its_walked_size_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let log = src.join("app.log");
    fs::write(&log, b"first line\n").unwrap();
    let repo = repo();
    let opts = BackupOptions {
        before_read: at(&log, |p| {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(b"second line\n").unwrap();
        }),
        ..BackupOptions::default()
    };
    let (outcome, messages) = backup(&repo, &src, opts);
    assert!(!outcome.snapshot.partial);
    assert_eq!(outcome.changed_while_read, 1);
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, Message::Changed { path, how } if *path == log && how.contains("grew"))),
        "{messages:?}"
    );
    let indexed = repo.clone().load_index().unwrap();
    let node = node(&indexed, &outcome, &log).unwrap();
    assert_eq!(read_back(&indexed, &node.content), b"first line\n");
    assert_eq!(node.size, 11);
    assert_check_clean(&repo);
}

#[test]
fn a_directory_replaced_by_a_symlink_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let sub = src.join("sub");
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join("mine"), b"mine").unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"SECRET").unwrap();
    let repo = repo();
    let target = outside.clone();
    let opts = BackupOptions {
        walk: WalkOptions {
            before_open_dir: at(&sub, move |p| {
                fs::rename(p, p.with_file_name("sub.moved")).unwrap();
                symlink(&target, p).unwrap();
            }),
            ..WalkOptions::default()
        },
        ..BackupOptions::default()
    };
    let (outcome, messages) = backup(&repo, &src, opts);
    assert!(outcome.snapshot.partial);
    assert!(
        error_for(&messages, &sub).contains("replaced by a symbolic link"),
        "{messages:?}"
    );
    let indexed = repo.clone().load_index().unwrap();
    assert!(node(&indexed, &outcome, &sub.join("secret")).is_none());
    assert!(node(&indexed, &outcome, &sub).is_none());
    assert_check_clean(&repo);
}

/// An overlay mount for a test, unmounted on drop.
struct Overlay(PathBuf);

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn files_of_both_layers_of_an_overlay_pass_the_device_and_inode_check() {
    // Container root file systems are overlays, where a file of the lower
    // layer must still show the same device and inode opened as listed.
    let dir = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| dir.path().join(d));
    for d in [&lower, &upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    fs::create_dir(lower.join("sub")).unwrap();
    fs::write(lower.join("sub/low"), b"from the lower layer").unwrap();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let mounted = nix::unistd::geteuid().is_root()
        && std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(&merged)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("no overlay mount here (needs root): skipped");
        return;
    }
    let _overlay = Overlay(merged.clone());
    fs::write(merged.join("up"), b"from the upper layer").unwrap();
    let repo = repo();
    let (outcome, messages) = backup(&repo, &merged, BackupOptions::default());
    assert!(!outcome.snapshot.partial, "{messages:?}");
    assert_eq!(outcome.snapshot.summary.files_new, 2);
    let indexed = repo.clone().load_index().unwrap();
    let low = node(&indexed, &outcome, &merged.join("sub/low")).unwrap();
    assert_eq!(read_back(&indexed, &low.content), b"from the lower layer");
    let up = node(&indexed, &outcome, &merged.join("up")).unwrap();
    assert_eq!(read_back(&indexed, &up.content), b"from the upper layer");
}
