//! Rate limiting: a token bucket per key.
//!
//! Picture a bucket holding at most `burst` tokens, refilled at `rate`
//! tokens a second. Each request takes a token; a request that finds the
//! bucket empty is refused with 429 and told, in `Retry-After`, when the
//! next token arrives. So a client may send `burst` requests at once, and
//! `rate` a second for ever after — short bursts pass, sustained floods don't.
//!
//! The `governor` crate implements it as GCRA (the generic cell rate
//! algorithm), which is the same bucket stored as a single timestamp — "the
//! theoretical arrival time" of the next allowed request — so checking and
//! updating a key is one compare-and-swap, with no timer refilling anything.
//!
//! Keys: one bucket for everybody (`global`), one per client IP
//! (`client-ip`), or one per value of a header (`header:NAME`, e.g. an API
//! key). Keys are chosen by clients, so the table is a target: a client
//! inventing a new key per request would otherwise grow it without end.
//! Three things bound it, as nginx's fixed-size `limit_req_zone` does:
//! every few thousand requests, buckets that have refilled completely —
//! indistinguishable from new ones — are dropped; at most `max_keys`
//! buckets are kept, and clients arriving while the table is full share one
//! overflow bucket (limited together, never unlimited); and a header key
//! longer than [`MAX_KEY_BYTES`] is refused with 400. Keys are copies,
//! never slices of the buffer a request head was read into.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use proxy_core::client::client_share;
use proxy_core::headers::ip_header_value;
use proxy_core::{HeadView, ProxyBody, Refusal};

use crate::stats::Metrics;
use crate::{Ctx, Middleware, Next};

/// Whose bucket a request takes its token from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    Global,
    ClientIp,
    Header(HeaderName),
}

impl FromStr for RateKey {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "global" => Ok(RateKey::Global),
            "client-ip" => Ok(RateKey::ClientIp),
            _ => match raw.strip_prefix("header:") {
                Some(name) => HeaderName::from_bytes(name.as_bytes())
                    .map(RateKey::Header)
                    .map_err(|_| format!("{name:?} is not a header name")),
                None => Err(format!(
                    "{raw:?}: expected global, client-ip or header:NAME"
                )),
            },
        }
    }
}

impl RateKey {
    /// The key of the bucket of `head`, from `client` (`client_text`: the
    /// address as text, if the caller has it made already). A header's key
    /// is a copy: a clone of hyper's header value would share (and keep
    /// alive) the buffer the whole request head was read into, for as long
    /// as the bucket lives. A key too long to keep is refused with 400.
    pub fn of(
        &self,
        head: &(impl HeadView + ?Sized),
        client: IpAddr,
        client_text: Option<&HeaderValue>,
    ) -> Result<HeaderValue, Refusal> {
        Ok(match self {
            RateKey::Global => HeaderValue::from_static(""),
            // An IPv6 client's bucket is its /64's, as its connection cap is.
            RateKey::ClientIp => match (client, client_text) {
                (IpAddr::V4(_), Some(text)) => text.clone(),
                _ => ip_header_value(client_share(client)),
            },
            RateKey::Header(name) => match head.header(name) {
                Some(value) if value.len() > MAX_KEY_BYTES => {
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        format!("{name} is longer than {MAX_KEY_BYTES} bytes"),
                    ));
                }
                Some(value) => HeaderValue::from_bytes(value)
                    .expect("a header value's bytes make a header value"),
                None => HeaderValue::from_static(""),
            },
        })
    }
}

/// The 429 for a request over `rate`/s with bursts of `burst`, whose next
/// token arrives in `wait`.
pub fn too_many_requests(rate: u32, burst: u32, wait: Duration) -> Refusal {
    // Retry-After is whole seconds; round up, never 0.
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("rate limit exceeded: {rate}/s with bursts of {burst}; retry in {seconds}s"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
}

/// Drop fully refilled buckets every this many requests (by default).
const CLEANUP_EVERY: u64 = 4096;

/// Buckets kept at most, unless told otherwise.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// The longest header value accepted as a key.
pub const MAX_KEY_BYTES: usize = 256;

/// A bucket's name: a client's key, or the one bucket that clients share
/// while the table is full.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum BucketKey {
    Client(HeaderValue),
    Overflow,
}

/// One bucket per key, at most `max_keys` of them. The map hashes keys with
/// foldhash, seeded at random per process: cheaper than std's SipHash, and
/// the random seed still keeps clients (who choose `header:NAME` keys) from
/// steering their keys into one hash chain.
struct BoundedBuckets {
    buckets: DashMapStateStore<BucketKey, foldhash::fast::RandomState>,
    max_keys: usize,
}

impl StateStore for BoundedBuckets {
    type Key = BucketKey;

    fn measure_and_replace<T, F, E>(&self, key: &BucketKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // A full table takes no new keys: newcomers share the overflow
        // bucket until the cleanup makes room.
        if self.buckets.len() >= self.max_keys && !self.buckets.contains_key(key) {
            return self.buckets.measure_and_replace(&BucketKey::Overflow, f);
        }
        self.buckets.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<BucketKey> for BoundedBuckets {
    fn retain_recent(&self, drop_below: Nanos) {
        self.buckets.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        self.buckets.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.buckets.len()
    }

    fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

type Buckets = RateLimiter<BucketKey, BoundedBuckets, DefaultClock>;

pub struct RateLimit {
    limiter: Buckets,
    key: RateKey,
    rate: u32,
    burst: u32,
    checks: AtomicU64,
    cleanup_every: u64,
    metrics: Arc<Metrics>,
}

impl RateLimit {
    /// `rate` requests a second per key, bursts of up to `burst`, at most
    /// [`DEFAULT_MAX_KEYS`] buckets.
    pub fn new(rate: NonZeroU32, burst: NonZeroU32, key: RateKey, metrics: Arc<Metrics>) -> Self {
        Self::with_max_keys(rate, burst, key, metrics, DEFAULT_MAX_KEYS)
    }

    /// The same, keeping at most `max_keys` buckets.
    pub fn with_max_keys(
        rate: NonZeroU32,
        burst: NonZeroU32,
        key: RateKey,
        metrics: Arc<Metrics>,
        max_keys: usize,
    ) -> Self {
        let buckets = BoundedBuckets {
            buckets: DashMapStateStore::with_hasher(foldhash::fast::RandomState::default()),
            max_keys: max_keys.max(1),
        };
        Self {
            limiter: RateLimiter::new(
                Quota::per_second(rate).allow_burst(burst),
                buckets,
                DefaultClock::default(),
            ),
            key,
            rate: rate.get(),
            burst: burst.get(),
            checks: AtomicU64::new(0),
            cleanup_every: CLEANUP_EVERY,
            metrics,
        }
    }

    /// Forget fully refilled buckets every `requests` requests instead of
    /// every 4,096: a forgotten bucket is one that would allow a full burst
    /// anyway, so forgetting it changes no answer, only memory.
    pub fn cleanup_every(mut self, requests: NonZeroU64) -> Self {
        self.cleanup_every = requests.get();
        self
    }

    /// Buckets currently remembered, refilled or not (for tests and /stats).
    pub fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }
}

/// A rate limit whose buckets live outside the process (`shared_limit`'s,
/// in Redis): asking it is a round trip, so its answer is a future. Either
/// engine asks it; as a [`Middleware`] it also sits in hyper's chain.
pub trait SharedLimit: Middleware {
    fn check<'a>(
        &'a self,
        head: &'a (dyn HeadView + Sync),
        client: IpAddr,
    ) -> BoxFuture<'a, Result<(), Refusal>>;
}

/// A chain's rate limit, for another engine to ask: kept in the process
/// (answered at once) or shared (answered by a round trip).
#[derive(Clone)]
pub enum Limit {
    Local(Arc<RateLimit>),
    Shared(Arc<dyn SharedLimit>),
}

impl Limit {
    /// Admit `head` from `client`, or refuse it.
    pub async fn check(&self, head: &(dyn HeadView + Sync), client: IpAddr) -> Result<(), Refusal> {
        match self {
            Limit::Local(limit) => limit.check(head, client, None),
            Limit::Shared(limit) => limit.check(head, client).await,
        }
    }
}

impl RateLimit {
    /// Take a token for `head` from `client` (see [`RateKey::of`]), or
    /// refuse it: the decision, on either engine.
    pub fn check(
        &self,
        head: &(impl HeadView + ?Sized),
        client: IpAddr,
        client_text: Option<&HeaderValue>,
    ) -> Result<(), Refusal> {
        let checks = self.checks.fetch_add(1, Ordering::Relaxed);
        if checks % self.cleanup_every == self.cleanup_every - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = BucketKey::Client(self.key.of(head, client, client_text)?);
        self.limiter.check_key(&key).map_err(|not_until| {
            self.metrics.count_rate_limited();
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            too_many_requests(self.rate, self.burst, wait)
        })
    }
}

impl Middleware for RateLimit {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        match self.check(&req, ctx.client.client_ip(), Some(ctx.client.ip())) {
            Ok(()) => next.run(req, ctx),
            Err(refusal) => {
                let refusal = refusal.into_response();
                Box::pin(async move { refusal })
            }
        }
    }
}
