//! Live counters of a running backup, read by whoever shows progress.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters updated by the archiver; cheap to read from another thread.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_done: AtomicU64,
    pub dirs_done: AtomicU64,
    pub bytes_done: AtomicU64,
    /// Totals found by a concurrent scan; zero until it has counted.
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
    pub scan_finished: AtomicBool,
    current: Mutex<Option<PathBuf>>,
    messages: Mutex<Vec<Message>>,
}

/// Something the user should hear about, in order of occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// An entry could not be read and was left out.
    Error { path: PathBuf, error: String },
    /// A file changed while it was read; what was read is stored. `how`
    /// says what changed.
    Changed { path: PathBuf, how: String },
    /// The parent snapshot could not be used for a directory.
    Warning(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Progress {
    pub fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dir_done(&self) {
        self.dirs_done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_current(&self, path: &Path) {
        *lock(&self.current) = Some(path.to_owned());
    }

    pub fn current(&self) -> Option<PathBuf> {
        lock(&self.current).clone()
    }

    pub fn report(&self, message: Message) {
        lock(&self.messages).push(message);
    }

    /// Messages not taken yet.
    pub fn take_messages(&self) -> Vec<Message> {
        std::mem::take(&mut *lock(&self.messages))
    }

    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}
