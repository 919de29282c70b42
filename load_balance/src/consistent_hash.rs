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
    /// Ring points, sorted; `owners[i]` is the upstream index of `points[i]`.
    /// Two arrays rather than one of pairs: the binary search touches only
    /// points, half the memory.
    points: Vec<u64>,
    owners: Vec<u32>,
    /// `starts[b]` is the first point whose top bits are `b` or more: a
    /// lookup table that narrows the search to a few points, so a pick
    /// costs two or three cache misses even with 160,000 virtual nodes.
    starts: Vec<u32>,
    shift: u32,
    bound: Option<Bound>,
}

/// A ring position: XXH3, 64 bits. Two properties matter here. It is a
/// published algorithm, so every proxy of a fleet — whatever it was built
/// with — puts a key at the same point (std's `DefaultHasher` promises no
/// such thing across Rust versions). And it is fast on short keys: a URL
/// hashes in a few nanoseconds, against a few dozen for SipHash, which was
/// most of a pick. It is not keyed, so a client can find URLs that land on
/// one upstream — but with n upstreams, one URL in n already does, and
/// bounded loads are the defence against a hot key.
pub fn ring_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

impl ConsistentHash {
    pub fn new(upstreams: Vec<Arc<Upstream>>, replicas: usize, bound: Option<Bound>) -> Self {
        let mut ring = Vec::with_capacity(upstreams.len() * replicas.max(1));
        for (index, upstream) in upstreams.iter().enumerate() {
            for replica in 0..replicas.max(1) {
                let point = ring_hash(format!("{}#{replica}", upstream.url).as_bytes());
                ring.push((point, index as u32));
            }
        }
        ring.sort_unstable();
        let (points, owners): (Vec<u64>, Vec<u32>) = ring.into_iter().unzip();
        // About four points per bucket, at most 2^16 buckets.
        let bits = (points.len() / 4)
            .max(1)
            .next_power_of_two()
            .trailing_zeros()
            .min(16);
        let shift = 64 - bits;
        let starts = (0..=(1u64 << bits))
            .map(|bucket| match bucket {
                0 => 0,
                b if b == 1 << bits => points.len() as u32,
                b => points.partition_point(|p| *p < b << shift) as u32,
            })
            .collect();
        Self {
            upstreams,
            points,
            owners,
            starts,
            shift,
            bound,
        }
    }

    /// Index of the first point at or after `point`, wrapping to 0.
    fn position(&self, point: u64) -> usize {
        let bucket = if self.shift >= 64 {
            0
        } else {
            (point >> self.shift) as usize
        };
        let (lo, hi) = (
            self.starts[bucket] as usize,
            self.starts[bucket + 1] as usize,
        );
        (lo + self.points[lo..hi].partition_point(|p| *p < point)) % self.points.len()
    }

    /// The most requests an upstream may have in flight before new ones spill.
    fn cap(&self, bound: &Bound) -> usize {
        let total = bound.total_in_flight.load(Ordering::Relaxed) + 1;
        (bound.load_factor * total as f64 / self.upstreams.len() as f64).ceil() as usize
    }
}

impl Strategy for ConsistentHash {
    fn pick(&self, key: &[u8]) -> Option<&Arc<Upstream>> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.position(ring_hash(key));
        let upstreams = &self.upstreams;
        if let Some(bound) = &self.bound {
            let cap = self.cap(bound);
            let within_bound = first_from(&self.owners, start, |&i| {
                let upstream = &upstreams[i as usize];
                upstream.is_healthy() && upstream.in_flight() < cap
            });
            if let Some(&i) = within_bound {
                return Some(&upstreams[i as usize]);
            }
        }
        first_from(&self.owners, start, |&i| upstreams[i as usize].is_healthy())
            .map(|&i| &upstreams[i as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket table must find exactly what a plain binary search finds.
    #[test]
    fn the_lookup_table_agrees_with_a_plain_binary_search() {
        for (n, replicas) in [(1, 1), (1, 3), (2, 1), (7, 3), (10, 160), (300, 160)] {
            let upstreams = (0..n)
                .map(|i| {
                    Upstream::new(
                        format!("http://10.1.{}.{}:80", i / 250, i % 250)
                            .parse()
                            .unwrap(),
                        1,
                    )
                })
                .collect();
            let ring = ConsistentHash::new(upstreams, replicas, None);
            for k in 0..2000u32 {
                let point = ring_hash(&k.to_le_bytes());
                let plain = ring.points.partition_point(|p| *p < point) % ring.points.len();
                assert_eq!(ring.position(point), plain, "n={n} replicas={replicas}");
            }
            assert_eq!(ring.position(0), 0);
            assert_eq!(
                ring.position(u64::MAX),
                ring.points.partition_point(|p| *p < u64::MAX) % ring.points.len()
            );
        }
    }
}
