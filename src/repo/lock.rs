//! Repository locks: taking, refreshing, judging stale and releasing them.
//!
//! A lock is a sealed file under `locks/` (format-spec §12). Taking one
//! writes the file, then lists every other lock; a conflicting live lock
//! makes the taker remove its own file and wait (up to `retry`) or fail with
//! [`RepoError::Locked`]. While held, a background thread rewrites the lock
//! with a later expiry (a new file, then the old one deleted: files are
//! immutable) and the guard removes it when dropped.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{hostname, now_ns, username, RepoError, Repository, Result};
use crate::id::LockId;
use crate::storage::FileKind;

pub use crate::format::lock::{Lock, LockKind};

/// How often [`Repository::list_locks`] lists again when files vanish under it.
pub const LIST_ROUNDS: usize = 8;

/// How long a lock counts without being refreshed.
pub const LOCK_TTL: Duration = Duration::from_secs(30 * 60);

/// Timing of locks; the defaults are for real use, tests shorten them.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Lifetime written into each lock file (`expires_ns = now + ttl`).
    pub ttl: Duration,
    /// How often a held lock is rewritten; well below `ttl`.
    pub refresh: Duration,
    /// How often a waiting taker looks again.
    pub poll: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            ttl: LOCK_TTL,
            refresh: LOCK_TTL / 6,
            poll: Duration::from_secs(1),
        }
    }
}

/// What tells this process's pid namespace apart from every other one: a
/// pid is only meaningful where all three agree (format-spec §12.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpace {
    pub hostname: String,
    /// `/proc/sys/kernel/random/boot_id`, "" if unknown.
    pub boot_id: String,
    /// Inode number of `/proc/self/ns/pid`, 0 if unknown.
    pub pid_ns: u64,
}

impl ProcessSpace {
    /// The space of the running process.
    pub fn current() -> Self {
        static IDENTITY: std::sync::OnceLock<(String, u64)> = std::sync::OnceLock::new();
        let (boot_id, pid_ns) = IDENTITY.get_or_init(|| (read_boot_id(), read_pid_namespace()));
        Self {
            hostname: hostname(),
            boot_id: boot_id.clone(),
            pid_ns: *pid_ns,
        }
    }

    /// Whether the pid of `lock` names a process in this space: host name,
    /// boot id and pid namespace are all known and all equal.
    pub fn holds(&self, lock: &Lock) -> bool {
        !self.hostname.is_empty()
            && !self.boot_id.is_empty()
            && self.pid_ns != 0
            && lock.hostname == self.hostname
            && lock.boot_id == self.boot_id
            && lock.pid_ns == self.pid_ns
    }
}

fn read_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The inode of the pid namespace, from the link text `pid:[4026531836]`.
fn read_pid_namespace() -> u64 {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|l| l.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok())
        .unwrap_or(0)
}

/// Whether `lock` no longer counts at `now_ns`: it has expired, or it was
/// taken in this process space by a process that is gone.
pub fn is_stale(lock: &Lock, now_ns: i64) -> bool {
    is_stale_in(lock, now_ns, &ProcessSpace::current())
}

/// [`is_stale`] as judged from `space`.
pub fn is_stale_in(lock: &Lock, now_ns: i64, space: &ProcessSpace) -> bool {
    if lock.expires_ns <= now_ns {
        return true;
    }
    space.holds(lock) && !process_alive(lock.pid)
}

/// Whether a process with this id exists on this host. Ids that cannot name
/// a single process (0, or beyond `i32`) count as alive: nothing is known.
pub fn process_alive(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(raw) if raw > 0 => !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
            Err(nix::errno::Errno::ESRCH)
        ),
        _ => true,
    }
}

/// One line naming a lock and its holder, for messages:
/// `exclusive lock 1a2b3c4d of root@node-1 (pid 4242) since 2024-05-01T10:00:00Z`.
pub fn describe(id: &LockId, lock: &Lock) -> String {
    let since = chrono::DateTime::from_timestamp(lock.time_ns.div_euclid(1_000_000_000), 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| lock.time_ns.to_string());
    format!(
        "{} lock {} of {}@{} (pid {}) since {since}",
        lock.kind,
        id.short(),
        printable(&lock.username),
        printable(&lock.hostname),
        lock.pid
    )
}

/// Text from storage with control characters replaced, so a message stays one line.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is plain data that a panic cannot leave half written.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Repository {
    /// Takes a lock of `kind`, waiting up to `retry` for conflicting live
    /// locks to go away, with the default [`LockOptions`].
    pub fn lock(&self, kind: LockKind, retry: Duration) -> Result<LockGuard> {
        self.lock_with(kind, retry, &LockOptions::default())
    }

    /// [`Repository::lock`] with explicit timing.
    pub fn lock_with(&self, kind: LockKind, retry: Duration, opts: &LockOptions) -> Result<LockGuard> {
        if opts.ttl.is_zero() || opts.refresh.is_zero() || opts.refresh >= opts.ttl {
            return Err(RepoError::InvalidOption(format!(
                "lock refresh interval {:?} must be positive and below the lock lifetime {:?}",
                opts.refresh, opts.ttl
            )));
        }
        let deadline = Instant::now() + retry;
        loop {
            let started = Instant::now();
            let time_ns = now_ns();
            let space = ProcessSpace::current();
            let lock = Lock {
                time_ns,
                expires_ns: time_ns.saturating_add(duration_ns(opts.ttl)),
                hostname: space.hostname,
                username: username(),
                pid: std::process::id(),
                kind,
                boot_id: space.boot_id,
                pid_ns: space.pid_ns,
            };
            let id = self.write_lock(&lock)?;
            let conflict = match self.find_conflict(&id, kind) {
                Ok(c) => c,
                Err(e) => {
                    self.remove_lock_quietly(&id);
                    return Err(e);
                }
            };
            let Some((other_id, other)) = conflict else {
                return LockGuard::start(self.clone(), id, lock, started, opts).inspect_err(|_| {
                    self.remove_lock_quietly(&id);
                });
            };
            self.remove_lock_quietly(&id);
            let now = Instant::now();
            if now >= deadline {
                return Err(RepoError::Locked {
                    holder: describe(&other_id, &other),
                });
            }
            std::thread::sleep(jittered(opts.poll).min(deadline - now));
        }
    }

    /// Every lock file that can be read, oldest first. A lock that vanishes
    /// between the listing and its read was released or refreshed; as a
    /// refresh writes its new file before deleting the old one, listing
    /// again finds the new file. So the listing is repeated until one round
    /// sees no file vanish (after [`LIST_ROUNDS`] rounds every lock seen in
    /// any round is returned, which errs towards counting too many). A lock
    /// that cannot be opened is an error naming it.
    pub fn list_locks(&self) -> Result<Vec<(LockId, Lock)>> {
        let mut seen: HashMap<LockId, Lock> = HashMap::new();
        let mut out = Vec::new();
        for _ in 0..LIST_ROUNDS {
            let names = self.block_on(self.storage().list(FileKind::Lock))?;
            out = Vec::with_capacity(names.len());
            let mut vanished = false;
            for info in names {
                let Ok(id) = info.name.parse::<LockId>() else {
                    continue;
                };
                if let Some(lock) = seen.get(&id) {
                    out.push((id, lock.clone()));
                    continue;
                }
                match self.load_lock(&id) {
                    Ok(lock) => {
                        seen.insert(id, lock.clone());
                        out.push((id, lock));
                    }
                    Err(RepoError::Storage(e)) if e.is_not_found() => vanished = true,
                    Err(e) => return Err(e),
                }
            }
            if !vanished {
                break;
            }
            out = seen.iter().map(|(id, l)| (*id, l.clone())).collect();
        }
        out.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Reads and opens one lock file.
    pub fn load_lock(&self, id: &LockId) -> Result<Lock> {
        let name = id.to_hex();
        let plain = self.load_file(FileKind::Lock, &name)?;
        Lock::decode(&plain).map_err(|source| RepoError::Format {
            kind: FileKind::Lock,
            name,
            source,
        })
    }

    /// Removes every stale lock; returns how many were removed.
    pub fn remove_stale_locks(&self) -> Result<usize> {
        let now = now_ns();
        let mut removed = 0;
        for (id, lock) in self.list_locks()? {
            if is_stale(&lock, now) {
                self.block_on(self.storage().delete(FileKind::Lock, &id.to_hex()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes every file under `locks/`, live or not, readable or not;
    /// returns how many were removed.
    pub fn remove_all_locks(&self) -> Result<usize> {
        let names = self.block_on(self.storage().list(FileKind::Lock))?;
        for info in &names {
            self.block_on(self.storage().delete(FileKind::Lock, &info.name))?;
        }
        Ok(names.len())
    }

    fn write_lock(&self, lock: &Lock) -> Result<LockId> {
        let name = self.save_file(FileKind::Lock, &lock.encode())?;
        name.parse()
            .map_err(|_| RepoError::InvalidOption(format!("bad lock name {name}")))
    }

    fn remove_lock_quietly(&self, id: &LockId) {
        // Best effort: a lock left behind expires and is then stale.
        let _ = self.block_on(self.storage().delete(FileKind::Lock, &id.to_hex()));
    }

    /// The first live lock other than `own` that conflicts with `kind`.
    fn find_conflict(&self, own: &LockId, kind: LockKind) -> Result<Option<(LockId, Lock)>> {
        let now = now_ns();
        let space = ProcessSpace::current();
        Ok(self
            .list_locks()?
            .into_iter()
            .find(|(id, l)| id != own && kind.conflicts_with(l.kind) && !is_stale_in(l, now, &space)))
    }
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `d` plus up to a quarter more, so that two waiting takers drift apart.
fn jittered(d: Duration) -> Duration {
    let quarter = u64::try_from(d.as_micros() / 4).unwrap_or(u64::MAX);
    let extra = getrandom::u64().map_or(0, |r| r % (quarter + 1));
    d + Duration::from_micros(extra)
}

/// What the guard and its refresh thread share.
#[derive(Debug)]
struct Held {
    /// The current lock file.
    id: LockId,
    /// Its content.
    lock: Lock,
    /// When the current file's write started (its expiry counts from then).
    written: Instant,
    /// Why the lock no longer counts, once known.
    lost: Option<String>,
}

#[derive(Debug)]
struct Shared {
    repo: Repository,
    held: Mutex<Held>,
    /// Taken by a refresh and by [`Shared::ensure_held`], so that the check
    /// never looks for a file a refresh has just replaced.
    io: Mutex<()>,
    ttl: Duration,
}

impl Shared {
    /// Fails unless the lock is fresh and its current file is still in the
    /// repository.
    fn ensure_held(&self) -> Result<()> {
        let _io = guard(&self.io);
        self.ensure_fresh()?;
        let (id, kind) = {
            let held = guard(&self.held);
            (held.id, held.lock.kind)
        };
        match self
            .repo
            .block_on(self.repo.storage().size(FileKind::Lock, &id.to_hex()))
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                let reason = format!("{kind} lock {} was removed by another process", id.short());
                guard(&self.held).lost = Some(reason.clone());
                Err(RepoError::LockLost(reason))
            }
            Err(e) => Err(RepoError::Storage(e)),
        }
    }

    /// Fails if the lock is known lost or was not refreshed within its lifetime.
    fn ensure_fresh(&self) -> Result<()> {
        let held = guard(&self.held);
        if let Some(reason) = &held.lost {
            return Err(RepoError::LockLost(reason.clone()));
        }
        let age = held.written.elapsed();
        if age >= self.ttl || now_ns() >= held.lock.expires_ns {
            return Err(RepoError::LockLost(format!(
                "{} lock {} was last refreshed {}s ago and has expired; another process may have removed it",
                held.lock.kind,
                held.id.short(),
                age.as_secs()
            )));
        }
        Ok(())
    }
}

/// A held lock. Refreshed in the background; removed when dropped.
#[derive(Debug)]
pub struct LockGuard {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LockGuard {
    fn start(repo: Repository, id: LockId, lock: Lock, written: Instant, opts: &LockOptions) -> Result<Self> {
        let shared = Arc::new(Shared {
            repo,
            held: Mutex::new(Held {
                id,
                lock,
                written,
                lost: None,
            }),
            io: Mutex::new(()),
            ttl: opts.ttl,
        });
        let (stop, stopped) = mpsc::channel();
        let state = shared.clone();
        let refresh = opts.refresh;
        let thread = std::thread::Builder::new()
            .name("cairn-lock".into())
            .spawn(move || refresh_loop(&state, refresh, &stopped))
            .map_err(RepoError::LockThread)?;
        Ok(Self {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The current lock file (it changes with every refresh).
    pub fn id(&self) -> LockId {
        guard(&self.shared.held).id
    }

    pub fn kind(&self) -> LockKind {
        guard(&self.shared.held).lock.kind
    }

    /// When the lock was taken, in ns since the epoch.
    pub fn time_ns(&self) -> i64 {
        guard(&self.shared.held).lock.time_ns
    }

    /// Whether `lock` (as read from `locks/`) is this guard's lock, in any of
    /// its refreshed versions: for a holder that lists locks and must leave
    /// its own out, such as prune looking for the oldest other live lock.
    pub fn is_mine(&self, lock: &Lock) -> bool {
        let held = guard(&self.shared.held);
        let mine = &held.lock;
        lock.time_ns == mine.time_ns
            && lock.pid == mine.pid
            && lock.kind == mine.kind
            && lock.hostname == mine.hostname
            && lock.username == mine.username
            && lock.boot_id == mine.boot_id
            && lock.pid_ns == mine.pid_ns
    }

    /// Fails if the lock may no longer count: its file is no longer in the
    /// repository (it is looked up now), or it has not been refreshed within
    /// its lifetime. Call right before a step that relies on the lock, such
    /// as writing a snapshot or deleting files.
    pub fn ensure_held(&self) -> Result<()> {
        self.shared.ensure_held()
    }

    /// A handle that can check the lock from elsewhere (see [`LockWatch`]).
    pub fn watch(&self) -> LockWatch {
        LockWatch {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Closing the channel tells the thread to remove the lock and end.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A cheap handle on a held lock for code that does not own the guard.
#[derive(Debug, Clone)]
pub struct LockWatch {
    shared: Arc<Shared>,
}

impl LockWatch {
    /// See [`LockGuard::ensure_held`].
    pub fn ensure_held(&self) -> Result<()> {
        self.shared.ensure_held()
    }
}

fn refresh_loop(shared: &Shared, every: Duration, stopped: &mpsc::Receiver<()>) {
    let mut wait = every;
    // A message or a closed channel means the guard was dropped.
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
        wait = if refresh_once(shared) { every } else { every / 4 };
    }
    let _io = guard(&shared.io);
    let id = guard(&shared.held).id;
    shared.repo.remove_lock_quietly(&id);
}

/// Rewrites the lock with a later expiry; returns false if it should be
/// tried again soon.
fn refresh_once(shared: &Shared) -> bool {
    let repo = &shared.repo;
    let _io = guard(&shared.io);
    let (old, mut lock) = {
        let held = guard(&shared.held);
        if held.lost.is_some() {
            return true;
        }
        (held.id, held.lock.clone())
    };
    match repo.block_on(repo.storage().size(FileKind::Lock, &old.to_hex())) {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            // Someone removed it (`unlock --remove-all`, or judged it stale):
            // others may now hold conflicting locks, so it is not rewritten.
            guard(&shared.held).lost = Some(format!(
                "{} lock {} was removed by another process",
                lock.kind,
                old.short()
            ));
            return true;
        }
        Err(_) => return false,
    }
    let started = Instant::now();
    lock.expires_ns = now_ns().saturating_add(duration_ns(shared.ttl));
    let Ok(new) = repo.write_lock(&lock) else {
        return false;
    };
    {
        let mut held = guard(&shared.held);
        held.id = new;
        held.lock = lock;
        held.written = started;
    }
    repo.remove_lock_quietly(&old);
    true
}

#[cfg(test)]
mod tests;
