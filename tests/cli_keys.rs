//! End-to-end tests of passwords and key files: which password source wins,
//! what is prompted for on a terminal, and key files that cannot be used.

mod cli_support;

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cli_support::{cairn, init, PASSWORD};

const CHEAP: [&str; 2] = ["--kdf-memory", "8192"];

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `snapshots` with `password` in the environment; returns the output.
fn open_with(repo: &Path, password: &str) -> std::process::Output {
    cairn(repo)
        .env("CAIRN_PASSWORD", password)
        .args(["snapshots", "--json"])
        .output()
        .unwrap()
}

#[test]
fn password_file_and_command_win_over_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("pw");
    fs::write(&file, "from the file\n").unwrap();
    let repo = tmp.path().join("repo");
    cairn(&repo)
        .env("CAIRN_PASSWORD", "from the environment")
        .arg("--password-file")
        .arg(&file)
        .arg("init")
        .args(CHEAP)
        .assert()
        .success();
    assert!(open_with(&repo, "from the file").status.success());
    assert_eq!(open_with(&repo, "from the environment").status.code(), Some(12));

    let out = cairn(&repo)
        .env("CAIRN_PASSWORD", "from the environment")
        .args(["--password-command", "echo from the file", "snapshots"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));

    // A file and a command together: which one is meant is unclear.
    let out = cairn(&repo)
        .arg("--password-file")
        .arg(&file)
        .args(["--password-command", "echo x", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("--password-file") && err.contains("--password-command"),
        "{err}"
    );
}

#[test]
fn a_failing_password_command_is_not_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, &CHEAP);
    let out = cairn(&repo)
        .env_remove("CAIRN_PASSWORD")
        .args([
            "--password-command",
            "vault read token=s3cr3t-token >/dev/null 2>&1; exit 3",
        ])
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("--password-command failed: exit status: 3"), "{err}");
    assert!(!err.contains("s3cr3t"), "the command line must not be shown: {err}");
}

#[test]
fn commands_backed_up_from_stdin_do_not_see_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, &CHEAP);
    let out = cairn(&repo)
        .env("CAIRN_FROM_PASSWORD", "other secret")
        .env("CAIRN_NEW_PASSWORD", "new secret")
        .args([
            "backup",
            "--json",
            "--stdin-from-command",
            "--stdin-filename",
            "env.txt",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "echo \"${CAIRN_PASSWORD-unset} ${CAIRN_FROM_PASSWORD-unset} ${CAIRN_NEW_PASSWORD-unset} ${HOME:+home}\"",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let target = tmp.path().join("restored");
    cairn(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(target.join("env.txt")).unwrap(),
        "unset unset unset home\n",
        "password variables are removed, the rest is kept"
    );
}

#[test]
fn a_damaged_key_file_is_skipped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, &CHEAP);
    let bytes = b"\x01\x08 planted garbage";
    let name = blake3::hash(bytes).to_hex().to_string();
    fs::write(repo.join("keys").join(&name), bytes).unwrap();

    let out = open_with(&repo, PASSWORD);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains(&format!("warning: key {name} skipped")), "{err}");

    let out = open_with(&repo, "wrong");
    assert_eq!(out.status.code(), Some(12));
    let err = stderr_of(&out);
    assert!(
        err.contains("1 key file(s) tried, 1 skipped") && err.contains(&name),
        "{err}"
    );

    // `key list` shows it, so that it can be removed.
    let out = cairn(&repo).args(["key", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let damaged = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == name.as_str())
        .unwrap();
    assert!(damaged["problem"].is_string(), "{damaged}");
    cairn(&repo).args(["key", "remove", &name]).assert().success();
}

#[test]
fn weak_key_parameters_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let out = cairn(&repo).args(["init", "--kdf-memory", "64"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--kdf-memory 64"), "{}", stderr_of(&out));
    assert!(!repo.join("config").exists());
    init(&repo, &CHEAP);
    let out = cairn(&repo)
        .env("CAIRN_NEW_PASSWORD", "another")
        .args(["key", "add", "--kdf-memory", "8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read_dir(repo.join("keys")).unwrap().count(), 1);
}

/// A pseudo-terminal: the parent's end, and the child's end.
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

fn open_pty() -> Pty {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the two valid `c_int`s
    // given; the name, termios and winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned
    // by nothing else.
    unsafe {
        Pty {
            master: OwnedFd::from_raw_fd(master),
            slave: OwnedFd::from_raw_fd(slave),
        }
    }
}

/// Starts `cmd` with the pseudo-terminal as its standard input and its
/// controlling terminal (where password prompts go).
/// `cairn -r REPO` as a plain process, with no password variables set.
fn cairn_process(repo: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"));
    for name in [
        "CAIRN_REPOSITORY",
        "CAIRN_PASSWORD",
        "CAIRN_PASSWORD_FILE",
        "CAIRN_PASSWORD_COMMAND",
        "CAIRN_NEW_PASSWORD",
    ] {
        cmd.env_remove(name);
    }
    cmd.arg("-r").arg(repo);
    cmd
}

fn spawn_on(pty: &Pty, cmd: &mut std::process::Command) -> Child {
    use std::os::unix::process::CommandExt;
    let stdin = pty.slave.try_clone().unwrap();
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only calls setsid and
    // ioctl, both async-signal-safe, and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Reads what the child wrote to the terminal until `until` returns true on
/// it, the terminal closes, or `deadline` passes and nothing more is buffered.
fn read_terminal(pty: &Pty, deadline: Instant, until: impl Fn(&str) -> bool) -> String {
    let mut seen = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if until(&text) {
            return text;
        }
        // Past the deadline, what is already buffered is still read.
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd {
            fd: pty.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = i32::try_from(left.as_millis().min(500)).unwrap_or(500);
        // SAFETY: one valid pollfd for the duration of the call.
        if unsafe { libc::poll(&mut poll, 1, wait) } <= 0 {
            if left.is_zero() {
                return text;
            }
            continue;
        }
        let mut buf = [0u8; 1024];
        // SAFETY: reads at most buf.len() bytes into buf.
        let n = unsafe { libc::read(pty.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return text; // EIO: every slave end is closed.
        }
        seen.extend_from_slice(&buf[..n as usize]);
    }
}

fn type_line(pty: &Pty, line: &str) {
    let mut master = fs::File::from(pty.master.try_clone().unwrap());
    master.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// Waits for the child to exit, killing it after `deadline`.
fn finish(mut child: Child, deadline: Instant) -> std::process::Output {
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[test]
fn on_a_terminal_a_given_password_is_used_without_a_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let pty = open_pty();
    let deadline = Instant::now() + Duration::from_secs(60);
    let child = spawn_on(
        &pty,
        cairn_process(&repo)
            .env("CAIRN_PASSWORD", "demo")
            .arg("init")
            .args(CHEAP),
    );
    let out = finish(child, deadline);
    let shown = read_terminal(&pty, Instant::now(), |_| false);
    assert!(!shown.contains("password"), "init prompted: {shown:?}");
    assert!(out.status.success(), "init waited or failed: {}", stderr_of(&out));
    assert!(open_with(&repo, "demo").status.success());

    // key add with the new password in the environment does not prompt either.
    let child = spawn_on(
        &pty,
        cairn_process(&repo)
            .env("CAIRN_PASSWORD", "demo")
            .env("CAIRN_NEW_PASSWORD", "second")
            .args(["key", "add"])
            .args(CHEAP),
    );
    let out = finish(child, deadline);
    assert!(out.status.success(), "key add waited or failed: {}", stderr_of(&out));
    assert!(open_with(&repo, "second").status.success());
}

#[test]
fn on_a_terminal_without_a_password_init_asks_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let pty = open_pty();
    let deadline = Instant::now() + Duration::from_secs(60);
    let child = spawn_on(&pty, cairn_process(&repo).arg("init").args(CHEAP));
    let first = read_terminal(&pty, deadline, |t| t.contains("enter new password"));
    assert!(first.contains("enter new password"), "{first:?}");
    type_line(&pty, "typed twice");
    let second = read_terminal(&pty, deadline, |t| t.contains("again"));
    assert!(second.contains("again"), "{second:?}");
    type_line(&pty, "typed twice");
    let out = finish(child, deadline);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(open_with(&repo, "typed twice").status.success());
}
