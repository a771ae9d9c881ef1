//! Test instrumentation: what the embedded store has been asked to write,
//! so a test can see that a resumed upload re-sent only what was missing.
//! It counts only with the `test-counters` feature (the upload tests need
//! it); without, [`Probe`] is empty and its calls compile to nothing.

#[cfg(feature = "test-counters")]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "test-counters")]
use std::sync::Arc;

/// What the embedded store has been asked to write, since it started.
#[cfg(feature = "test-counters")]
#[derive(Debug, Default)]
pub struct StoreCounts {
    /// PutObject requests that reached the store.
    pub puts: AtomicU64,
    /// UploadPart requests that reached the store.
    pub part_puts: AtomicU64,
}

/// Where the store reports the writes it takes; shared by the store and
/// the handle that keeps it running.
#[derive(Clone, Default)]
pub(super) struct Probe(#[cfg(feature = "test-counters")] Arc<StoreCounts>);

impl Probe {
    pub(super) fn put(&self) {
        #[cfg(feature = "test-counters")]
        self.0.puts.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn part_put(&self) {
        #[cfg(feature = "test-counters")]
        self.0.part_puts.fetch_add(1, Ordering::SeqCst);
    }

    #[cfg(feature = "test-counters")]
    pub(super) fn counts(&self) -> &StoreCounts {
        &self.0
    }
}
