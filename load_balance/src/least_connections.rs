//! `least-connections`: the power of two choices.
//!
//! Sending each request to the upstream with the fewest requests in flight
//! adapts to slow servers, but scanning all of them per request is O(n),
//! and with many proxies all herding onto the same idle server at once it
//! oscillates. Picking two upstreams at random and taking the less busy of
//! the two (Mitzenmacher's "power of two choices") keeps nearly all the
//! benefit — the maximum load drops from O(log n / log log n) to
//! O(log log n) — at O(1) cost and without herding.

use std::sync::Arc;

use crate::random::Dice;
use crate::{Strategy, Upstream, first_from};

pub struct LeastConnections {
    upstreams: Vec<Arc<Upstream>>,
    rng: Dice,
}

impl LeastConnections {
    pub fn new(upstreams: Vec<Arc<Upstream>>, seed: u64) -> Self {
        Self {
            upstreams,
            rng: Dice::new(seed),
        }
    }
}

impl Strategy for LeastConnections {
    fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
        let n = self.upstreams.len();
        if n < 2 {
            return first_from(&self.upstreams, 0, |u| u.is_healthy());
        }
        let a = self.rng.below(n);
        // A second, different index: offset by 1..n.
        let b = (a + 1 + self.rng.below(n - 1)) % n;
        let (ua, ub) = (&self.upstreams[a], &self.upstreams[b]);
        match (ua.is_healthy(), ub.is_healthy()) {
            (true, true) if ub.in_flight() < ua.in_flight() => Some(ub),
            (true, _) => Some(ua),
            (false, true) => Some(ub),
            (false, false) => first_from(&self.upstreams, a, |u| u.is_healthy()),
        }
    }
}
