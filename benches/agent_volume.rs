//! The node agent's volume backup beside `cairn backup` of the same
//! directory: wall time, throughput and peak RSS, for a volume of large
//! files and for a volume of many small files.
//!
//! The agent path is what the agent runs for a VolumeBackup: the
//! repository opened, a shared lock, the index loaded, the volume's
//! directory opened once and read through its descriptor under a logical
//! path (`backup_dir`). Each run is a process of its own (this program
//! started again), so its peak RSS is its own; `cairn backup` runs as a
//! child of such a process, which reports its child's peak.
//!
//! Full size (2 GiB of incompressible data in 256 MiB files, and a million
//! files of 64 to 1024 bytes, 1000 per directory):
//!
//! ```sh
//! cargo bench --bench agent_volume
//! ```
//!
//! Scaled down: `CAIRN_BENCH_BIG_MIB=256 CAIRN_BENCH_SMALL_FILES=50000`.
//! `CAIRN_BENCH_DIR` chooses where the data and repositories go (default:
//! a temporary directory, removed afterwards).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cairn::backup::progress::Progress;
use cairn::backup::{backup_dir, BackupOptions, ParentChoice};
use cairn::repo::{LockKind, Repository};
use cairn::storage::open::{open, OpenOptions};

const PASSWORD: &str = "bench";
const CHILD: &str = "CAIRN_BENCH_CHILD";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Peak RSS in KiB of this process (`self`) or of its waited children.
fn peak_kib(children: bool) -> i64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let who = if children {
        UsageWho::RUSAGE_CHILDREN
    } else {
        UsageWho::RUSAGE_SELF
    };
    getrusage(who).map(|u| u.max_rss()).unwrap_or(-1)
}

/// Fills `buf` with a xorshift stream (incompressible, no duplicates).
fn noise(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

fn make_big(dir: &Path, bytes: u64) {
    const FILE: u64 = 256 << 20;
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    let mut n = 0;
    while left > 0 {
        let size = left.min(FILE);
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(format!("big{n:02}"))).unwrap());
        let mut written = 0;
        while written < size {
            let len = (size - written).min(block.len() as u64) as usize;
            noise(&mut state, &mut block[..len]);
            f.write_all(&block[..len]).unwrap();
            written += len as u64;
        }
        left -= size;
        n += 1;
    }
}

fn make_small(dir: &Path, files: u64) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut buf = vec![0u8; 1024];
    for i in 0..files {
        let sub = dir.join(format!("d{:05}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        noise(&mut state, &mut buf);
        let len = 64 + (state % 961) as usize;
        std::fs::write(sub.join(format!("f{:03}", i % 1000)), &buf[..len]).unwrap();
    }
}

fn cairn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.env("CAIRN_PASSWORD", PASSWORD).env_remove("CAIRN_REPOSITORY");
    cmd
}

fn init(repo: &Path) {
    let status = cairn()
        .arg("-r")
        .arg(repo)
        .args(["init", "--kdf-memory", "8192"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// In a child: the agent's path for a volume; prints its peak RSS.
fn agent_child(repo: &str, data: &Path) {
    let storage = open(repo, &OpenOptions::default()).unwrap();
    let repo = Repository::open(storage, PASSWORD.as_bytes()).unwrap();
    let lock = repo.lock(LockKind::Shared, std::time::Duration::from_secs(60)).unwrap();
    let repo = repo.load_index().unwrap();
    let dir = cairn::source::open::open_dir_path(data).unwrap();
    let opts = BackupOptions {
        hostname: Some("bench".into()),
        parent: ParentChoice::Latest,
        lock: Some(lock.watch()),
        ..BackupOptions::default()
    };
    backup_dir(
        &repo,
        dir,
        Path::new("/volumes/bench/data"),
        &opts,
        &Progress::default(),
    )
    .unwrap();
    drop(lock);
    println!("{}", peak_kib(false));
}

/// In a child: `cairn backup` of the directory; prints that one's peak.
fn cli_child(repo: &str, data: &Path) {
    let status = cairn()
        .args(["-q", "-r", repo, "backup", "--host", "bench"])
        .arg(data)
        .status()
        .unwrap();
    assert!(status.success());
    println!("{}", peak_kib(true));
}

/// Runs `mode` in a fresh process; wall seconds and peak RSS in MiB.
fn measure(mode: &str, repo: &Path, data: &Path) -> (f64, f64) {
    let start = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{mode}\n{}\n{}", repo.display(), data.display()))
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kib: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(-1.0);
    (secs, kib / 1024.0)
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        let parts: Vec<&str> = spec.split('\n').collect();
        let (mode, repo, data) = (parts[0], parts[1], Path::new(parts[2]));
        match mode {
            "agent" => agent_child(repo, data),
            _ => cli_child(repo, data),
        }
        return;
    }
    // `cargo bench` passes --bench; a filter argument is ignored.
    let big = env_u64("CAIRN_BENCH_BIG_MIB", 2048) << 20;
    let small = env_u64("CAIRN_BENCH_SMALL_FILES", 1_000_000);
    let (_tmp, root): (Option<tempfile::TempDir>, PathBuf) = match std::env::var("CAIRN_BENCH_DIR") {
        Ok(d) => (None, PathBuf::from(d)),
        Err(_) => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_owned();
            (Some(t), p)
        }
    };
    println!("| volume | path | wall s | MiB/s | files/s | peak RSS MiB |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, files) in [("big", 0), ("small", small)] {
        let data = root.join(format!("{name}-data"));
        if !data.exists() {
            if files == 0 {
                make_big(&data, big);
            } else {
                make_small(&data, files);
            }
        }
        let (bytes, count) = if files == 0 {
            (big, big.div_ceil(256 << 20))
        } else {
            (files * 544, files)
        };
        let label = if files == 0 {
            format!("{} MiB in {count} files", big >> 20)
        } else {
            format!("{count} small files")
        };
        for mode in ["agent", "cairn backup"] {
            let repo = root.join(format!("{name}-{}", mode.replace(' ', "-")));
            if repo.exists() {
                std::fs::remove_dir_all(&repo).unwrap();
            }
            init(&repo);
            let (secs, rss) = measure(if mode == "agent" { "agent" } else { "cli" }, &repo, &data);
            #[allow(clippy::cast_precision_loss)]
            let (mib_s, files_s) = ((bytes >> 20) as f64 / secs, count as f64 / secs);
            println!("| {label} | {mode} | {secs:.2} | {mib_s:.0} | {files_s:.0} | {rss:.0} |");
        }
    }
}
