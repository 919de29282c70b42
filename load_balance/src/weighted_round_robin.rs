//! `weighted-round-robin`: nginx's *smooth* weighted round-robin.
//!
//! Give upstreams a, b, c the weights 5, 1, 1. A naive weighted round-robin
//! sends `a a a a a b c`: five in a row to a. nginx's smooth algorithm
//! interleaves them, `a a b a c a a`, with the same proportions. Each
//! upstream keeps a *current weight*; every round:
//!
//! 1. add each upstream's effective weight to its current weight;
//! 2. pick the upstream with the largest current weight (the first, on a tie);
//! 3. subtract the total of the effective weights from the winner's.
//!
//! | round | current before | pick | current after |
//! |---|---|---|---|
//! | 1 | 5, 1, 1 | a | −2, 1, 1 |
//! | 2 | 3, 2, 2 | a | −4, 2, 2 |
//! | 3 | 1, 3, 3 | b | 1, −4, 3 |
//! | 4 | 6, −3, 4 | a | −1, −3, 4 |
//! | 5 | 4, −2, 5 | c | 4, −2, −2 |
//! | 6 | 9, −1, −1 | a | 2, −1, −1 |
//! | 7 | 7, 0, 0 | a | 0, 0, 0 |
//!
//! After a full cycle (the total weight, 7 rounds) every current weight is
//! back to zero, so the sequence repeats exactly. nginx runs the three steps
//! under a lock on every pick. We run them once, when the upstream set or an
//! effective weight changes, and store the cycle as a *schedule*; a pick is
//! then one shared atomic increment and an index — the same sequence, no
//! lock, one cycle for the whole process ([`crate::Turns`]).
//! Weights are divided by their greatest common divisor first (10, 20, 30
//! is 1, 2, 3), and the reduced total is capped at [`MAX_TOTAL_WEIGHT`].
//!
//! The *effective* weight is where health comes in: failures lower it and
//! successes restore it (see [`crate::health`]), so a flaky upstream is
//! sent less before it is ejected.

use std::sync::Arc;

use crate::{Error, Strategy, Turns, Upstream, first_from};

/// The longest schedule we precompute (total of the reduced weights).
pub const MAX_TOTAL_WEIGHT: u64 = 100_000;

pub struct WeightedRoundRobin {
    upstreams: Vec<Arc<Upstream>>,
    schedule: Vec<usize>,
    turns: Turns,
}

impl WeightedRoundRobin {
    pub fn new(upstreams: Vec<Arc<Upstream>>) -> Result<Self, Error> {
        let weights: Vec<u64> = upstreams
            .iter()
            .map(|u| u64::from(u.health.effective_weight()))
            .collect();
        let divisor = weights.iter().copied().fold(0, gcd).max(1);
        let reduced: Vec<u64> = weights.iter().map(|w| w / divisor).collect();
        let total: u64 = reduced.iter().sum();
        if total > MAX_TOTAL_WEIGHT {
            return Err(Error::WeightsTooLarge(total));
        }
        Ok(Self {
            upstreams,
            schedule: smooth_schedule(&reduced),
            turns: Turns::new(),
        })
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One full cycle of nginx's smooth weighted round-robin, as indices.
pub fn smooth_schedule(weights: &[u64]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        schedule.push(best);
    }
    schedule
}

impl Strategy for WeightedRoundRobin {
    fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
        if self.schedule.is_empty() {
            return None;
        }
        let turn = self.turns.next() % self.schedule.len();
        first_from(&self.schedule, turn, |&i| self.upstreams[i].is_healthy())
            .map(|&i| &self.upstreams[i])
    }
}
