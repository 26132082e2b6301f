//! A cancellation flag shared between an async request and the blocking work it started.
//!
//! Dropping a request's future does not stop a `spawn_blocking` task: the thread runs to the end. The request
//! holds a [`CancelOnDrop`]; when the uploader goes away the future (and the guard) is dropped, the flag is set,
//! and the extraction and counting loops, which check it between bounded steps, give up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Cheap to clone; every clone sees the same flag.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A flag that is never set, for callers with nothing to cancel.
    pub fn never() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that cancels when dropped (keep it in the async future that waits for the work).
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// Sets the flag when dropped.
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dropping_the_guard_cancels() {
        let c = super::Cancel::new();
        let guard = c.on_drop();
        assert!(!c.is_cancelled());
        drop(guard);
        assert!(c.is_cancelled());
    }
}
