//! A flag that asks long repository work (a backup, a restore) to stop.
//! The work checks it between files and between chunks or packs, stops
//! with its `Canceled` error and writes no snapshot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared cancel flag: clones see the same flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the work to stop; it stops at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Whether an optional token was canceled.
pub fn canceled(token: Option<&CancelToken>) -> bool {
    token.is_some_and(CancelToken::is_canceled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_canceled());
        assert!(!canceled(Some(&b)));
        a.cancel();
        assert!(b.is_canceled());
        assert!(canceled(Some(&b)));
        assert!(!canceled(None));
    }
}
