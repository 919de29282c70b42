//! `consistent-hash` and `bounded-consistent-hash`: the same key, the same
//! upstream — and what happens when the set changes.
//!
//! Hashing a key modulo n sends the same key to the same upstream, until n
//! changes: then almost every key moves, and every cache behind the proxy
//! goes cold at once. A hash *ring* fixes that. Each upstream is hashed
//! onto a ring of 2⁶⁴ points many times over (its *virtual nodes*, the
//! `replicas`); a key is hashed onto the same ring and served by the first
//! virtual node clockwise (a binary search over the sorted points). When an
//! upstream leaves, only the keys that landed on its nodes move, each to
//! the next node clockwise; when one joins among n, it takes about
//! 1/(n+1) of the keys. Virtual nodes smooth out the arcs: with one point
//! per upstream some would own far more of the ring than others.
//!
//! The key is the seed's choice, the request URL, or the client IP, or a
//! header (`--hash-key url|client-ip|header:NAME`).
//!
//! A popular key can still bury one upstream. *Consistent hashing with
//! bounded loads* (Mirrokni, Thorup, Zadimoghaddam, 2016) caps every
//! upstream at `c ×` the average number of requests in flight (c = 1.25 by
//! default): walking clockwise, a full upstream is skipped and the key
//! spills to the next. Keys still mostly stay put, and no upstream takes
//! more than its bound.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Strategy, Upstream, first_from};

/// The load cap of `bounded-consistent-hash`.
pub struct Bound {
    pub load_factor: f64,
    /// Requests in flight over all upstreams of the balancer.
    pub total_in_flight: Arc<AtomicUsize>,
}

pub struct ConsistentHash {
    upstreams: Vec<Arc<Upstream>>,
    /// (point on the ring, upstream index), sorted by point.
    ring: Vec<(u64, usize)>,
    bound: Option<Bound>,
}

/// A ring position. SipHash with fixed keys: stable for a given build,
/// well mixed even for keys that differ in one character.
pub fn ring_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl ConsistentHash {
    pub fn new(upstreams: Vec<Arc<Upstream>>, replicas: usize, bound: Option<Bound>) -> Self {
        let mut ring = Vec::with_capacity(upstreams.len() * replicas.max(1));
        for (index, upstream) in upstreams.iter().enumerate() {
            for replica in 0..replicas.max(1) {
                let point = ring_hash(format!("{}#{replica}", upstream.url).as_bytes());
                ring.push((point, index));
            }
        }
        ring.sort_unstable();
        Self {
            upstreams,
            ring,
            bound,
        }
    }

    /// The most requests an upstream may have in flight before new ones spill.
    fn cap(&self, bound: &Bound) -> usize {
        let total = bound.total_in_flight.load(Ordering::Relaxed) + 1;
        (bound.load_factor * total as f64 / self.upstreams.len() as f64).ceil() as usize
    }
}

impl Strategy for ConsistentHash {
    fn pick(&self, key: &[u8]) -> Option<&Arc<Upstream>> {
        if self.ring.is_empty() {
            return None;
        }
        let point = ring_hash(key);
        let start = self.ring.partition_point(|(p, _)| *p < point) % self.ring.len();
        let upstreams = &self.upstreams;
        if let Some(bound) = &self.bound {
            let cap = self.cap(bound);
            let within_bound = first_from(&self.ring, start, |&(_, i)| {
                upstreams[i].is_healthy() && upstreams[i].in_flight() < cap
            });
            if let Some(&(_, i)) = within_bound {
                return Some(&upstreams[i]);
            }
        }
        first_from(&self.ring, start, |&(_, i)| upstreams[i].is_healthy())
            .map(|&(_, i)| &upstreams[i])
    }
}
