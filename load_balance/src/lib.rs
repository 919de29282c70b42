//! `load_balance`: which upstream serves this request?
//!
//! The seed's load balancer is one interface and four strategies behind a
//! factory. So is this crate, plus two strategies the seed lacks and the
//! health tracking every strategy obeys:
//!
//! | `--balance` | module | idea |
//! |---|---|---|
//! | `random` | [`random`] | any upstream, uniformly |
//! | `round-robin` | [`round_robin`] | each in turn |
//! | `weighted-round-robin` | [`weighted_round_robin`] | nginx's smooth weighted round-robin |
//! | `consistent-hash` | [`consistent_hash`] | a ring of virtual nodes: the same key, the same upstream |
//! | `least-connections` | [`least_connections`] | power of two choices over requests in flight |
//! | `bounded-consistent-hash` | [`consistent_hash`] | consistent hashing, but no upstream above `c ×` the average load |
//!
//! A [`Balancer`] owns the current upstream set and the strategy built from
//! it, behind an [`ArcSwap`]: a pick is an atomic load and the strategy's
//! own lock-free arithmetic, never a lock; replacing the set (a reload, a
//! weight change) swaps in a new strategy while requests in flight keep the
//! `Arc<Upstream>` they were given.
//!
//! Health ([`health`]) is a property of each [`Upstream`], checked at pick
//! time by every strategy: passive ejection after consecutive failures, and
//! the verdict of active probes.
//!
//! Retries are the proxy's decision (step 04); the balancer only offers
//! [`Balancer::pick_another`], an upstream the request has not tried yet.
//!
//! Left out on purpose: slow start, and zone/locality awareness.

pub mod consistent_hash;
mod hash_key;
pub mod health;
pub mod least_connections;
pub mod random;
pub mod round_robin;
pub mod weighted_round_robin;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use hyper::Uri;
use hyper::header::HeaderValue;
use std::sync::atomic::AtomicBool;
use tracing::{info, warn};

pub use hash_key::HashKey;
pub use health::{ActiveChecks, HealthPolicy, Outcome};

/// One upstream server and what the balancer knows about it.
#[derive(Debug)]
pub struct Upstream {
    pub url: Uri,
    /// `url` as text, made once: logs and metrics labels use it per request.
    pub name: Arc<str>,
    /// The `Host` header value that names this upstream, made once.
    pub host: Option<HeaderValue>,
    /// Configured weight (`--upstream URL,weight=N`), at least 1.
    pub weight: u32,
    in_flight: AtomicUsize,
    pub(crate) health: health::Health,
}

impl Upstream {
    pub fn new(url: Uri, weight: u32) -> Arc<Self> {
        Arc::new(Self {
            name: url.to_string().into(),
            host: url
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
            url,
            weight: weight.max(1),
            in_flight: AtomicUsize::new(0),
            health: health::Health::new(weight.max(1)),
        })
    }

    /// Requests sent to this upstream and not finished yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// May this upstream be picked now?
    pub fn is_healthy(&self) -> bool {
        self.health.is_healthy()
    }

    /// Drain it (no new requests; those in flight finish), or undo that.
    /// A drained upstream is not picked, like an unhealthy one — unless
    /// every upstream is out (panic mode).
    pub fn drain(&self, drained: bool) {
        self.health.drain(drained);
    }

    pub fn is_drained(&self) -> bool {
        self.health.is_drained()
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Counts a request as in flight until dropped (drop it when the response
/// body is done).
#[derive(Debug)]
pub struct InFlight {
    upstream: Arc<Upstream>,
    total: Arc<AtomicUsize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The strategies, by name. Each variant has one entry in [`STRATEGIES`],
/// which says everything else about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Random,
    RoundRobin,
    WeightedRoundRobin,
    ConsistentHash,
    LeastConnections,
    BoundedConsistentHash,
}

/// How a registered strategy is built over an upstream set (the last
/// argument is the balancer's total of requests in flight).
type Builder =
    fn(Vec<Arc<Upstream>>, &Options, Arc<AtomicUsize>) -> Result<Box<dyn Strategy>, Error>;

/// One strategy: its name, what it reads, and how to build it.
pub struct Registered {
    pub kind: Kind,
    pub name: &'static str,
    /// Does it read the request's hash key? (Only then is one computed.)
    pub reads_key: bool,
    /// Does it read how many requests each upstream has in flight? (Only
    /// then are they counted: two atomic updates and a body wrapper.)
    pub reads_load: bool,
    build: Builder,
}

/// The registry: adding a strategy is a module, an entry here and its
/// variant above. Names, `--help`, error messages and the in-flight
/// bookkeeping all come from this table.
pub const STRATEGIES: &[Registered] = &[
    Registered {
        kind: Kind::Random,
        name: "random",
        reads_key: false,
        reads_load: false,
        build: |upstreams, options, _| Ok(Box::new(random::Random::new(upstreams, options.seed))),
    },
    Registered {
        kind: Kind::RoundRobin,
        name: "round-robin",
        reads_key: false,
        reads_load: false,
        build: |upstreams, _, _| Ok(Box::new(round_robin::RoundRobin::new(upstreams))),
    },
    Registered {
        kind: Kind::WeightedRoundRobin,
        name: "weighted-round-robin",
        reads_key: false,
        reads_load: false,
        build: |upstreams, _, _| {
            Ok(Box::new(weighted_round_robin::WeightedRoundRobin::new(
                upstreams,
            )?))
        },
    },
    Registered {
        kind: Kind::ConsistentHash,
        name: "consistent-hash",
        reads_key: true,
        reads_load: false,
        build: |upstreams, options, _| {
            Ok(Box::new(consistent_hash::ConsistentHash::new(
                upstreams,
                options.replicas,
                None,
            )))
        },
    },
    Registered {
        kind: Kind::LeastConnections,
        name: "least-connections",
        reads_key: false,
        reads_load: true,
        build: |upstreams, options, _| {
            Ok(Box::new(least_connections::LeastConnections::new(
                upstreams,
                options.seed,
            )))
        },
    },
    Registered {
        kind: Kind::BoundedConsistentHash,
        name: "bounded-consistent-hash",
        reads_key: true,
        reads_load: true,
        build: |upstreams, options, total_in_flight| {
            Ok(Box::new(consistent_hash::ConsistentHash::new(
                upstreams,
                options.replicas,
                Some(consistent_hash::Bound {
                    load_factor: options.load_factor,
                    total_in_flight,
                }),
            )))
        },
    },
];

impl Kind {
    /// Every strategy, in the registry's order.
    pub fn all() -> impl Iterator<Item = Kind> {
        STRATEGIES.iter().map(|strategy| strategy.kind)
    }

    /// Every strategy's name, in the registry's order.
    pub fn names() -> Vec<&'static str> {
        STRATEGIES.iter().map(|strategy| strategy.name).collect()
    }

    fn entry(self) -> &'static Registered {
        STRATEGIES
            .iter()
            .find(|strategy| strategy.kind == self)
            .expect("every Kind has a line in STRATEGIES (a test checks)")
    }

    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// Does this strategy read the request's hash key?
    pub fn uses_key(self) -> bool {
        self.entry().reads_key
    }

    /// Does this strategy read how many requests each upstream has in
    /// flight? Only then is it worth counting them.
    pub fn uses_load(self) -> bool {
        self.entry().reads_load
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a balancer could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("unknown balancing strategy {given:?}; valid: {}", Kind::names().join(", "))]
    UnknownStrategy { given: String },
    #[error("weights add up to {0} after dividing by their common factor; keep the sum at most {max}", max = weighted_round_robin::MAX_TOTAL_WEIGHT)]
    WeightsTooLarge(u64),
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        Kind::all()
            .find(|k| k.name() == name)
            .ok_or_else(|| Error::UnknownStrategy {
                given: name.to_owned(),
            })
    }
}

/// Tuning shared by the strategies.
#[derive(Debug, Clone)]
pub struct Options {
    /// Virtual nodes per upstream on the hash ring.
    pub replicas: usize,
    /// Bounded loads: no upstream above `load_factor ×` the average.
    pub load_factor: f64,
    /// Seed for `random` and `least-connections` (fixed in tests).
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            replicas: 160,
            load_factor: 1.25,
            seed: 0x5eed,
        }
    }
}

/// A strategy built for one upstream set.
pub trait Strategy: Send + Sync {
    /// A healthy upstream for a request whose hash key is `key`, or `None`
    /// when no upstream is healthy.
    fn pick(&self, key: &[u8]) -> Option<&Arc<Upstream>>;
}

/// Build the strategy `kind` over `upstreams` — the seed's factory.
pub fn build(
    kind: Kind,
    upstreams: Vec<Arc<Upstream>>,
    options: &Options,
    total_in_flight: Arc<AtomicUsize>,
) -> Result<Box<dyn Strategy>, Error> {
    (kind.entry().build)(upstreams, options, total_in_flight)
}

/// The upstream set, the strategy over it, and the in-flight count.
pub struct Balancer {
    kind: Kind,
    options: Options,
    upstreams: ArcSwap<Vec<Arc<Upstream>>>,
    strategy: ArcSwap<Box<dyn Strategy>>,
    total_in_flight: Arc<AtomicUsize>,
    /// Every upstream is out, and requests go to all of them anyway.
    panicking: AtomicBool,
    /// Whose turn it is in panic mode and among retries.
    turns: Turns,
}

impl Balancer {
    pub fn new(kind: Kind, upstreams: Vec<Arc<Upstream>>, options: Options) -> Result<Self, Error> {
        let total_in_flight = Arc::new(AtomicUsize::new(0));
        let strategy = build(kind, upstreams.clone(), &options, total_in_flight.clone())?;
        Ok(Self {
            kind,
            options,
            upstreams: ArcSwap::from_pointee(upstreams),
            strategy: ArcSwap::from_pointee(strategy),
            total_in_flight,
            panicking: AtomicBool::new(false),
            turns: Turns::new(),
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Pick an upstream for a request with hash key `key`: the strategy's
    /// choice among the healthy ones; when none is healthy, any of them
    /// that is not drained (panic mode: health is a guess, a drain is an
    /// operator's order). `None` for an empty or wholly drained set.
    pub fn pick(&self, key: &[u8]) -> Option<Arc<Upstream>> {
        if let Some(upstream) = self.strategy.load().pick(key) {
            if self.panicking.load(Ordering::Relaxed)
                && self.panicking.swap(false, Ordering::Relaxed)
            {
                info!("an upstream is healthy again: panic mode is over");
            }
            return Some(upstream.clone());
        }
        let upstreams = self.upstreams.load();
        let serving = upstreams.iter().filter(|u| !u.is_drained()).count();
        if serving == 0 {
            return None;
        }
        if !self.panicking.swap(true, Ordering::Relaxed) {
            warn!(
                "no healthy upstream: routing to all {serving} that are not drained until one is healthy again (panic mode)"
            );
        }
        // A hashed request keeps going to one upstream; the others take turns.
        let at = if key.is_empty() {
            self.turns.next()
        } else {
            consistent_hash::ring_hash(key) as usize
        };
        upstreams
            .iter()
            .filter(|u| !u.is_drained())
            .nth(at % serving)
            .cloned()
    }

    /// An upstream to retry a request on that it has not `tried`: the next
    /// healthy one that is, else any untried one (an ejected upstream may
    /// have recovered; a retry that might work beats an error that will).
    /// The strategy is not asked: a second pick would take a turn from the
    /// round-robin cycle, and with one dead upstream of two every request
    /// would then meet the dead one first.
    pub fn pick_another(&self, tried: &[Arc<Upstream>]) -> Option<Arc<Upstream>> {
        let untried = |u: &Arc<Upstream>| !tried.iter().any(|t| Arc::ptr_eq(t, u));
        let upstreams = self.upstreams.load();
        let start = self.turns.next();
        first_from(&upstreams, start, |u| untried(u) && u.is_healthy())
            .or_else(|| first_from(&upstreams, start, |u| untried(u) && !u.is_drained()))
            .cloned()
    }

    /// Count a request as in flight on `upstream` until the guard drops.
    pub fn start(&self, upstream: &Arc<Upstream>) -> InFlight {
        upstream.in_flight.fetch_add(1, Ordering::Relaxed);
        self.total_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            upstream: upstream.clone(),
            total: self.total_in_flight.clone(),
        }
    }

    /// The current upstream set.
    pub fn upstreams(&self) -> Arc<Vec<Arc<Upstream>>> {
        self.upstreams.load_full()
    }

    /// Replace the upstream set. Picks in progress finish on the old set;
    /// requests in flight keep their upstream.
    pub fn replace(&self, upstreams: Vec<Arc<Upstream>>) -> Result<(), Error> {
        let strategy = build(
            self.kind,
            upstreams.clone(),
            &self.options,
            self.total_in_flight.clone(),
        )?;
        self.upstreams.store(Arc::new(upstreams));
        self.strategy.store(Arc::new(strategy));
        Ok(())
    }

    /// Tell the balancer how a request to `upstream` went (passive health).
    /// A weighted strategy also adjusts the upstream's effective weight,
    /// and is rebuilt when it changes.
    pub fn report(&self, upstream: &Upstream, policy: &HealthPolicy, outcome: Outcome<'_>) {
        let success = matches!(outcome, Outcome::Success);
        let may_eject = !success && self.may_eject(upstream, outcome);
        let recorded = upstream.health.record(policy, success, may_eject);
        match outcome {
            Outcome::Unreachable(why) if recorded.ejected => warn!(
                "upstream {upstream} ejected for {:?}: {} failures in a row, the last: {why}",
                policy.cooldown, policy.max_fails
            ),
            Outcome::BadStatus(status) if recorded.ejected => warn!(
                "upstream {upstream} ejected for {:?}: {} failures in a row, the last: it answered {status}",
                policy.cooldown, policy.max_fails
            ),
            _ if recorded.returned => {
                info!("upstream {upstream} is back: a request to it succeeded")
            }
            _ => {}
        }
        if recorded.weight_changed && self.kind == Kind::WeightedRoundRobin {
            let upstreams = self.upstreams.load_full();
            // Weights were validated when the set was built; a smaller
            // effective weight cannot make the schedule longer.
            if let Ok(strategy) = build(
                self.kind,
                upstreams.to_vec(),
                &self.options,
                self.total_in_flight.clone(),
            ) {
                self.strategy.store(Arc::new(strategy));
            }
        }
    }
}

impl Balancer {
    /// May this failure take `upstream` out? Never the only upstream; and
    /// for a status, only while fewer than half of the set are out for
    /// theirs — a status is something a client can provoke.
    fn may_eject(&self, upstream: &Upstream, outcome: Outcome<'_>) -> bool {
        let upstreams = self.upstreams.load();
        if upstreams.len() <= 1 {
            return false;
        }
        match outcome {
            Outcome::BadStatus(_) => {
                let out = upstreams
                    .iter()
                    .filter(|u| !std::ptr::eq(u.as_ref(), upstream) && u.health.is_ejected())
                    .count();
                out < upstreams.len() / 2
            }
            _ => true,
        }
    }
}

/// The first item at or after `start` (wrapping) that `accept`s — how every
/// strategy passes a down upstream's turn on to the next one.
pub(crate) fn first_from<T>(items: &[T], start: usize, accept: impl Fn(&T) -> bool) -> Option<&T> {
    let n = items.len();
    (0..n)
        .map(|i| &items[(start + i) % n])
        .find(|item| accept(item))
}

/// Whose turn it is: the cursor of the round-robin strategies, one counter
/// for the whole process. Every worker thread takes its turn from the same
/// atomic, so the proxy follows one exact cycle whatever the thread count —
/// what chapter 4 shows a learner with curl in a loop. The price is one
/// cache line that two busy cores pass back and forth: 60–90 ns a pick
/// when both contend, where strategies that write nothing shared take
/// 30–50 (`cargo bench -p load_balance`; bench/README.md) — well under 1 %
/// of a proxied request. nginx's workers each keep their own cycle instead,
/// which interleaves cycles (with three upstreams, requests can go
/// a b c a b b); the course keeps the textbook behaviour.
pub(crate) struct Turns(AtomicUsize);

impl Turns {
    pub(crate) fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// The next turn (callers reduce it modulo their cycle).
    pub(crate) fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// The `--balance` flag's parser: the registered strategies' names, which
/// clap lists in `--help` and in the error for an unknown one.
#[cfg(feature = "clap")]
pub fn kind_parser() -> impl clap::builder::TypedValueParser<Value = Kind> {
    clap::builder::TypedValueParser::map(
        clap::builder::PossibleValuesParser::new(Kind::names()),
        |name| name.parse::<Kind>().expect("a registered name parses"),
    )
}
