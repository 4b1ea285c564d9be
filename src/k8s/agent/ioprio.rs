//! The I/O priority of the agent's reading and writing threads
//! (`--io-priority`), so that a backup yields the disk to the node's
//! workloads.
//!
//! Linux keeps an I/O priority per thread, and a thread starts with the
//! priority of the thread that created it. The agent sets it at the start
//! of each blocking job, on the thread the job runs on; the threads that
//! job starts (the backup's file readers) inherit it. Schedulers that
//! know priorities (BFQ; mq-deadline knows the classes) honour it; others
//! ignore it.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::k8s::controller::log;

/// `ioprio_set`'s `which`: `who` is a thread id (0: the calling thread).
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: u32 = 13;
const IOPRIO_CLASS_BE: u16 = 2;
const IOPRIO_CLASS_IDLE: u16 = 3;
/// The lowest level of the best-effort class.
const BE_LOWEST: u16 = 7;

/// `--io-priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IoPriority {
    /// Disk time only when no other process wants it. A busy node can
    /// hold the work back indefinitely (with the repository's lock held).
    Idle,
    /// The lowest level of the normal class: the node's workloads go
    /// first, and the work still always moves on.
    #[default]
    BestEffort,
    /// Leave the threads' priority as it is.
    None,
}

impl IoPriority {
    /// The `ioprio` value (class and level), or None to leave it alone.
    pub fn value(self) -> Option<u16> {
        match self {
            Self::Idle => Some(IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT),
            Self::BestEffort => Some((IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | BE_LOWEST),
            Self::None => None,
        }
    }

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::BestEffort => "best-effort",
            Self::None => "none",
        }
    }

    /// Gives the calling thread this priority.
    pub fn set_current_thread(self) -> std::io::Result<()> {
        let Some(value) = self.value() else {
            return Ok(());
        };
        // SAFETY: ioprio_set takes three integers (which, who, ioprio) and
        // touches no memory of this process; `who` 0 is the calling
        // thread. The only outcomes are a return value and errno.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0 as libc::c_int,
                libc::c_int::from(value),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Sets the calling thread's priority; where the kernel refuses, warns
    /// once (for the whole process) and goes on at the priority it has.
    pub fn apply(self) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if let Err(e) = self.set_current_thread() {
            if !WARNED.swap(true, Ordering::Relaxed) {
                log::warn(&format!(
                    "--io-priority {}: the kernel refused to set it ({e}); reading at normal priority",
                    self.name()
                ));
            }
        }
    }
}

/// The calling thread's I/O priority (class and level) as `ioprio_get`
/// gives it.
pub fn current_thread() -> std::io::Result<u16> {
    // SAFETY: as for ioprio_set: integers in, an integer or errno out, no
    // memory of this process touched.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0 as libc::c_int) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    u16::try_from(rc).map_err(|_| std::io::Error::other(format!("ioprio_get gave {rc}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own, so the test's thread keeps its
    /// priority.
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn the_thread_gets_the_priority_asked_for_and_its_children_inherit_it() {
        for prio in [IoPriority::BestEffort, IoPriority::Idle] {
            let (own, child) = on_thread(move || {
                prio.set_current_thread().unwrap();
                let own = current_thread().unwrap();
                let child = std::thread::scope(|s| s.spawn(current_thread).join().unwrap()).unwrap();
                (own, child)
            });
            assert_eq!(Some(own), prio.value(), "{prio:?}");
            assert_eq!(child, own, "a reader thread started by the job inherits {prio:?}");
        }
        assert_eq!(IoPriority::BestEffort.value(), Some((2 << 13) | 7));
        assert_eq!(IoPriority::Idle.value(), Some(3 << 13));
    }

    #[test]
    fn none_leaves_the_priority_alone() {
        let (before, after) = on_thread(|| {
            let before = current_thread().unwrap();
            IoPriority::None.set_current_thread().unwrap();
            (before, current_thread().unwrap())
        });
        assert_eq!(before, after);
    }
}
