//! Counts per second over the last few seconds: the ring both the circuit
//! breaker (error rate over ten seconds) and statistics (requests per
//! second) keep.
//!
//! Every request is recorded, so recording takes no lock: a bucket is
//! three atomics. Reusing a bucket for a new second is the one step that
//! must not race — counts added between "this bucket is now second s" and
//! "its counts are zero" would be lost or, worse, mixed with counts from N
//! seconds ago — so it happens under a lock, taken once per bucket per
//! second: the counts are zeroed first, then the new second is published
//! (`Release`), and a request adds to a bucket only once it has seen its
//! own second there (`Acquire`).
//!
//! Left out on purpose: sub-second resolution and decay; a rate over whole
//! seconds is what both users need.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Requests and errors for each of the last `N` seconds.
#[derive(Debug)]
pub(crate) struct PerSecond<const N: usize> {
    buckets: [Bucket; N],
    rotate: Mutex<()>,
    start: Instant,
}

#[derive(Debug)]
struct Bucket {
    /// Which second since `start` the counts are for (`u64::MAX`: none).
    second: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

impl<const N: usize> PerSecond<N> {
    pub(crate) fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| Bucket {
                second: AtomicU64::new(u64::MAX),
                requests: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
            rotate: Mutex::new(()),
            start: Instant::now(),
        }
    }

    /// Seconds since the ring was made, on the monotonic clock: callers
    /// that read the clock anyway pass their reading in.
    pub(crate) fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_secs()
    }

    /// One request in second `second`, failed or not.
    pub(crate) fn record(&self, second: u64, error: bool) {
        let bucket = &self.buckets[(second % N as u64) as usize];
        if bucket.second.load(Ordering::Acquire) != second {
            let _rotating = self.rotate.lock().unwrap_or_else(PoisonError::into_inner);
            if bucket.second.load(Ordering::Acquire) != second {
                bucket.requests.store(0, Ordering::Relaxed);
                bucket.errors.store(0, Ordering::Relaxed);
                bucket.second.store(second, Ordering::Release);
            }
        }
        bucket.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            bucket.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (requests, errors) in second `second`: zero once its bucket has been
    /// reused, or if nothing was recorded then.
    pub(crate) fn counts(&self, second: u64) -> (u64, u64) {
        let bucket = &self.buckets[(second % N as u64) as usize];
        if bucket.second.load(Ordering::Acquire) == second {
            (
                bucket.requests.load(Ordering::Relaxed),
                bucket.errors.load(Ordering::Relaxed),
            )
        } else {
            (0, 0)
        }
    }

    /// Forget everything recorded so far.
    pub(crate) fn clear(&self) {
        let _rotating = self.rotate.lock().unwrap_or_else(PoisonError::into_inner);
        for bucket in &self.buckets {
            bucket.second.store(u64::MAX, Ordering::Release);
        }
    }
}
