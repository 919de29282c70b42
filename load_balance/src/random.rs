//! `random`: any upstream, uniformly.
//!
//! The simplest strategy with no shared state to contend on, and over many
//! requests as even as round-robin. Its weakness is the short run: with n
//! upstreams some get several requests in a row. The generator is a
//! per-thread splitmix64 sequence, seeded so tests can reproduce it.

use std::sync::Arc;

use crate::{Dice, Strategy, Upstream, first_from};

pub struct Random {
    upstreams: Vec<Arc<Upstream>>,
    rng: Dice,
}

impl Random {
    pub fn new(upstreams: Vec<Arc<Upstream>>, seed: u64) -> Self {
        Self {
            upstreams,
            rng: Dice::new(seed),
        }
    }
}

impl Strategy for Random {
    fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
        if self.upstreams.is_empty() {
            return None;
        }
        let start = self.rng.below(self.upstreams.len());
        first_from(&self.upstreams, start, |u| u.is_healthy())
    }
}
