//! Progress while a backup or restore runs.
//!
//! A backup is reported by a ticker thread that reads the archiver's
//! [`Progress`] counters: on a terminal it draws an indicatif bar, with
//! `--json` it prints a status line at most once a second, and in every mode
//! it prints the archiver's messages (unreadable entries, files that changed
//! while read) as they occur. A second thread walks the same paths to count
//! files and bytes, so the bar can show a percentage and an ETA.
//!
//! A restore is reported through its progress callback, which moves a bar.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::backup::progress::{Message, Progress};
use crate::restore::{Phase, RestoreProgress};
use crate::source::walk::{WalkEvent, WalkOptions, Walker};

/// How often the ticker looks at the counters.
const TICK: Duration = Duration::from_millis(100);
/// How often a `--json` status line is printed.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// What the reporter shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Messages on stderr; a bar when `bar` is set.
    Human { bar: bool, warnings: bool },
    /// JSON lines on stdout: messages, and status lines when `status` is set.
    Json { status: bool },
}

/// The paths to count for totals (files and directories backups only).
#[derive(Debug, Clone)]
pub struct Scan {
    pub paths: Vec<PathBuf>,
    pub walk: WalkOptions,
}

/// Runs `work` while a ticker reports `progress` (and, with `scan`, a scanner
/// counts the totals); returns what `work` returns once every message it
/// produced has been printed.
pub fn with_backup_progress<T>(progress: &Progress, mode: Mode, scan: Option<Scan>, work: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        if let Some(scan) = scan {
            let done = &done;
            s.spawn(move || count_totals(progress, &scan, done));
        }
        let ticker = s.spawn(|| tick(progress, mode, &done));
        let result = {
            // Stops the ticker and the scanner even if `work` panics.
            let _stop = Stop(&done);
            work()
        };
        // The ticker only prints; if it panicked there is nothing to recover.
        let _ = ticker.join();
        result
    })
}

/// Sets the flag when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Walks the roots and adds up regular files and their sizes; stops early
/// once the backup is done. Errors are the archiver's to report.
fn count_totals(progress: &Progress, scan: &Scan, done: &AtomicBool) {
    let Ok(walker) = Walker::new(&scan.paths, &scan.walk) else {
        return;
    };
    let mut files = 0u64;
    let mut bytes = 0u64;
    for event in walker {
        if done.load(Ordering::Relaxed) {
            return;
        }
        if let WalkEvent::Item(entry) = event {
            if entry.metadata.is_file() {
                files += 1;
                bytes += entry.metadata.len();
                if files.is_multiple_of(256) {
                    publish(progress, files, bytes);
                }
            }
        }
    }
    publish(progress, files, bytes);
    progress.scan_finished.store(true, Ordering::Relaxed);
}

fn publish(progress: &Progress, files: u64, bytes: u64) {
    progress.total_files.store(files, Ordering::Relaxed);
    progress.total_bytes.store(bytes, Ordering::Relaxed);
}

/// The counters at one moment.
#[derive(Debug, Clone, serde::Serialize)]
struct Status {
    message_type: &'static str,
    seconds_elapsed: u64,
    files_done: u64,
    dirs_done: u64,
    bytes_done: u64,
    total_files: u64,
    total_bytes: u64,
    scan_finished: bool,
    /// 0.0 to 1.0, by bytes; absent until the scan has counted something.
    percent_done: Option<f64>,
    current_file: Option<String>,
}

fn status(progress: &Progress, started: Instant) -> Status {
    let bytes_done = Progress::get(&progress.bytes_done);
    let total_bytes = Progress::get(&progress.total_bytes);
    let scan_finished = progress.scan_finished.load(Ordering::Relaxed);
    let percent_done = (total_bytes > 0).then(|| (bytes_done as f64 / total_bytes as f64).min(1.0));
    Status {
        message_type: "status",
        seconds_elapsed: started.elapsed().as_secs(),
        files_done: Progress::get(&progress.files_done),
        dirs_done: Progress::get(&progress.dirs_done),
        bytes_done,
        total_files: Progress::get(&progress.total_files),
        total_bytes,
        scan_finished,
        percent_done,
        current_file: progress.current().map(|p| p.display().to_string()),
    }
}

fn tick(progress: &Progress, mode: Mode, done: &AtomicBool) {
    let started = Instant::now();
    let bar = match mode {
        Mode::Human { bar: true, .. } => Some(backup_bar()),
        _ => None,
    };
    let mut last_status = Instant::now();
    loop {
        // Read the flag first, so the messages taken after it is set are the last.
        let finished = done.load(Ordering::Acquire);
        for message in progress.take_messages() {
            print_message(&message, mode, bar.as_ref());
        }
        if finished {
            break;
        }
        if let Some(bar) = &bar {
            update_bar(bar, progress);
        }
        if let Mode::Json { status: true } = mode {
            if last_status.elapsed() >= STATUS_EVERY {
                last_status = Instant::now();
                json_line(&status(progress, started));
            }
        }
        std::thread::sleep(TICK);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn backup_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let template = "[{elapsed_precise}] {wide_bar} {percent:>3}% {bytes}/{total_bytes} \
                    {binary_bytes_per_sec} ETA {eta}\n{msg}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn update_bar(bar: &ProgressBar, progress: &Progress) {
    let bytes_done = Progress::get(&progress.bytes_done);
    let files_done = Progress::get(&progress.files_done);
    let total_files = Progress::get(&progress.total_files);
    let scanned = progress.scan_finished.load(Ordering::Relaxed);
    bar.set_length(Progress::get(&progress.total_bytes).max(bytes_done));
    bar.set_position(bytes_done);
    let files = if scanned || total_files > files_done {
        format!("{files_done}/{total_files} files")
    } else {
        format!("{files_done} files")
    };
    let current = progress.current().map(|p| shorten(&p, 60)).unwrap_or_default();
    bar.set_message(format!("{files} {current}"));
}

/// The path, cut at the front to at most `max` characters.
fn shorten(path: &Path, max: usize) -> String {
    let s = crate::format::escape::path(path).to_string();
    let count = s.chars().count();
    if count <= max {
        return s;
    }
    let tail: String = s.chars().skip(count - (max - 3)).collect();
    format!("...{tail}")
}

fn print_message(message: &Message, mode: Mode, bar: Option<&ProgressBar>) {
    match mode {
        Mode::Json { .. } => json_line(&message_json(message)),
        Mode::Human { warnings, .. } => {
            let line = match message {
                Message::Error { path, error } => format!("error: {}: {error}", crate::format::escape::path(path)),
                Message::Changed { path, how } if warnings => {
                    format!(
                        "warning: {}: changed while it was read ({how})",
                        crate::format::escape::path(path)
                    )
                }
                Message::Warning(text) if warnings => format!("warning: {text}"),
                _ => return,
            };
            match bar {
                Some(bar) => bar.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
        }
    }
}

fn message_json(message: &Message) -> serde_json::Value {
    match message {
        Message::Error { path, error } => serde_json::json!({
            "message_type": "error",
            "path": path.display().to_string(),
            "error": error,
        }),
        Message::Changed { path, how } => serde_json::json!({
            "message_type": "warning",
            "path": path.display().to_string(),
            "warning": "changed while it was read",
            "change": how,
        }),
        Message::Warning(text) => serde_json::json!({
            "message_type": "warning",
            "warning": text,
        }),
    }
}

/// One JSON line on stdout; a closed stdout is not worth stopping a backup for.
fn json_line<T: serde::Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, value).is_ok() {
        let _ = writeln!(out);
        let _ = out.flush();
    }
}

/// A bar for a restore, moved by the restore's progress callback.
pub struct RestoreBar {
    bar: ProgressBar,
}

impl RestoreBar {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let template = "[{elapsed_precise}] {wide_bar} {percent:>3}% {bytes}/{total_bytes} \
                        {binary_bytes_per_sec} ETA {eta} {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar }
    }

    pub fn update(&self, p: &RestoreProgress) {
        self.bar.set_length(p.bytes_total.max(p.bytes_done));
        self.bar.set_position(p.bytes_done);
        let phase = match p.phase {
            Phase::Planning => "planning",
            Phase::Writing => "writing",
            Phase::Metadata => "metadata",
            Phase::Verifying => "verifying",
            Phase::Done => "done",
        };
        self.bar
            .set_message(format!("{}/{} files, {phase}", p.files_done, p.files_total));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for RestoreBar {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_long_paths_at_the_front() {
        assert_eq!(shorten(Path::new("/a/b"), 10), "/a/b");
        let long = shorten(Path::new("/very/long/directory/name/file.txt"), 16);
        assert_eq!(long.chars().count(), 16);
        assert!(long.starts_with("...") && long.ends_with("file.txt"));
    }

    #[test]
    fn scan_counts_files_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"12345").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), b"123").unwrap();
        let progress = Progress::default();
        let scan = Scan {
            paths: vec![dir.path().to_owned()],
            walk: WalkOptions::default(),
        };
        count_totals(&progress, &scan, &AtomicBool::new(false));
        assert_eq!(Progress::get(&progress.total_files), 2);
        assert_eq!(Progress::get(&progress.total_bytes), 8);
        assert!(progress.scan_finished.load(Ordering::Relaxed));
    }

    #[test]
    fn a_panicking_backup_does_not_hang_the_ticker() {
        let progress = Progress::default();
        let mode = Mode::Human {
            bar: false,
            warnings: false,
        };
        let result = std::panic::catch_unwind(|| with_backup_progress(&progress, mode, None, || panic!("boom")));
        assert!(result.is_err());
        assert_eq!(with_backup_progress(&progress, mode, None, || 7), 7);
    }

    #[test]
    fn status_has_percent_once_totals_are_known() {
        let progress = Progress::default();
        assert_eq!(status(&progress, Instant::now()).percent_done, None);
        progress.total_bytes.store(200, Ordering::Relaxed);
        progress.add_bytes(50);
        assert_eq!(status(&progress, Instant::now()).percent_done, Some(0.25));
    }
}
