//! `random`: any upstream, uniformly.
//!
//! The simplest strategy with no shared state to contend on, and over many
//! requests as even as round-robin. Its weakness is the short run: with n
//! upstreams some get several requests in a row.
//!
//! The dice ([`Dice`]) are this crate's own, and small: each thread draws
//! from its own sequence of splitmix64, a well-known generator that turns
//! a counter into well-mixed 64-bit numbers with three multiplications and
//! shifts. Two reasons against the textbook `Mutex<StdRng>`: a seed
//! (`Options::seed`) replays a run exactly, which keeps the statistical
//! tests from failing one time in a thousand; and no lock is shared, so a
//! pick stays about 30 ns with two threads at once (bench/README.md).
//! Least-connections draws its two candidates from the same dice.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Strategy, Upstream, first_from};

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

/// Pseudo-random numbers without a shared state: splitmix64 of a seeded
/// per-thread counter, so a seed reproduces a thread's sequence and no two
/// cores ever write the same generator.
pub(crate) struct Dice {
    seed: u64,
    draws: thread_local::ThreadLocal<Cell<u64>>,
    threads: AtomicU64,
}

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            draws: thread_local::ThreadLocal::new(),
            threads: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        // Thread k starts 2^40 draws in: the threads' sequences never overlap.
        let draws = self
            .draws
            .get_or(|| Cell::new(self.threads.fetch_add(1, Ordering::Relaxed) << 40));
        let draw = draws.get();
        draws.set(draw + 1);
        let mut z = self
            .seed
            .wrapping_add((draw + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; n is small).
    pub(crate) fn below(&self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}
