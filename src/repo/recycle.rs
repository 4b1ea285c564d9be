//! A bounded set of reusable buffers.
//!
//! Large buffers (pack bodies, chunking buffers) are taken, filled, and given
//! back rather than freed: at most `max` exist, which bounds memory, and
//! none is freed and reallocated, which would fragment the allocator's heap.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Up to `max` values of `T`, lent out and returned.
#[derive(Debug)]
pub struct Recycler<T> {
    state: Mutex<State<T>>,
    freed: Condvar,
}

#[derive(Debug)]
struct State<T> {
    idle: Vec<T>,
    /// Values in existence, idle or lent.
    created: usize,
    max: usize,
}

impl<T: Default> Recycler<T> {
    pub fn new(max: usize) -> Self {
        Self {
            state: Mutex::new(State {
                idle: Vec::new(),
                created: 0,
                max: max.max(1),
            }),
            freed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        // The state is a list and a count, each updated in one step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle value, or a new one while fewer than `max` exist; otherwise
    /// waits until one is given back or forgotten.
    pub fn take(&self) -> T {
        let mut st = self.state();
        loop {
            if let Some(v) = st.idle.pop() {
                return v;
            }
            if st.created < st.max {
                st.created += 1;
                return T::default();
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Returns a value taken earlier.
    pub fn give(&self, value: T) {
        self.state().idle.push(value);
        self.freed.notify_one();
    }

    /// Lifts the bound: nobody waits any more. For when the work using the
    /// values has failed and lent values may never come back.
    pub fn close(&self) {
        self.state().max = usize::MAX;
        self.freed.notify_all();
    }

    /// Records that a value taken earlier will not come back (it was lost
    /// with a failed operation or is still referenced elsewhere).
    pub fn forget(&self) {
        let mut st = self.state();
        st.created = st.created.saturating_sub(1);
        drop(st);
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bounded_reused_and_forgettable() {
        let r: Recycler<Vec<u8>> = Recycler::new(1);
        let mut v = r.take();
        v.extend_from_slice(b"kept");
        r.give(v);
        let again = r.take();
        assert_eq!(again, b"kept", "the same value comes back");
        // Lost: its slot is freed, so the next take does not wait forever.
        drop(again);
        r.forget();
        let fresh = r.take();
        assert!(fresh.is_empty());
        // While it is lent, a second take waits until it is given back.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let second = r.take();
                tx.send(second.len()).unwrap();
            });
            assert!(
                rx.recv_timeout(std::time::Duration::from_millis(100)).is_err(),
                "the second take did not wait"
            );
            r.give(vec![1, 2, 3]);
            assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap(), 3);
        });
        // The thread dropped its value without giving it back, so all are
        // lent; closed, takes no longer wait for them.
        r.close();
        assert!(r.take().is_empty());
    }
}
