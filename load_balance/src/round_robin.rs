//! `round-robin`: each upstream in turn.
//!
//! A counter, incremented per pick: request i goes to upstream `i mod n`.
//! Exactly even, and cheap — but blind to weights and to how busy each
//! upstream is. A down upstream's turn passes to the next one.
//!
//! One counter for the whole process ([`Turns`](crate::Turns)), so the
//! cycle is exact whatever the number of worker threads.

use std::sync::Arc;

use crate::{Strategy, Turns, Upstream, first_from};

pub struct RoundRobin {
    upstreams: Vec<Arc<Upstream>>,
    turns: Turns,
}

impl RoundRobin {
    pub fn new(upstreams: Vec<Arc<Upstream>>) -> Self {
        Self {
            upstreams,
            turns: Turns::new(),
        }
    }
}

impl Strategy for RoundRobin {
    fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
        if self.upstreams.is_empty() {
            return None;
        }
        let turn = self.turns.next() % self.upstreams.len();
        first_from(&self.upstreams, turn, |u| u.is_healthy())
    }
}
