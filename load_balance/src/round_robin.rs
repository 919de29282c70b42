//! `round-robin`: each upstream in turn.
//!
//! One atomic counter, incremented per pick: request i goes to upstream
//! `i mod n`. Exactly even, and cheap — but blind to weights and to how
//! busy each upstream is. A down upstream's turn passes to the next one.
//!
//! The counter is shared by all threads on purpose: the cycle is exact
//! across the whole proxy, which is what a learner sees with curl. The
//! price is that two cores picking at once write the same cache line (see
//! the pick benchmark). nginx instead keeps one cycle per worker process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Strategy, Upstream, first_from};

pub struct RoundRobin {
    upstreams: Vec<Arc<Upstream>>,
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(upstreams: Vec<Arc<Upstream>>) -> Self {
        Self {
            upstreams,
            next: AtomicUsize::new(0),
        }
    }
}

impl Strategy for RoundRobin {
    fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
        if self.upstreams.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len();
        first_from(&self.upstreams, turn, |u| u.is_healthy())
    }
}
