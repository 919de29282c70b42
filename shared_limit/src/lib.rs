//! `shared_limit`: rate limits that hold across every proxy instance, kept
//! in Redis.
//!
//! Step 05's limiter keeps its buckets in the process, so two gateways
//! behind one load balancer each admit the full rate: a limit of 10/s
//! becomes 20/s. To hold the limit together, the instances must share the
//! buckets. Two designs are common:
//!
//! - **One atomic check per request in the shared store** — this crate. The
//!   bucket is GCRA's single number (the "theoretical arrival time" of the
//!   next allowed request, the algorithm `governor` runs in-process), and
//!   a Lua script reads, checks and writes it in one step, so instances
//!   never race. The limit is exact across any number of instances; the
//!   price is one Redis round trip on every limited request (about a
//!   tenth of a millisecond on one host) and a dependency on Redis
//!   answering.
//! - **Local buckets, synced every few milliseconds** (what some CDNs do):
//!   no wait on the request path, but between syncs each instance admits on
//!   its own, so N instances may over-admit by N × rate × the sync interval.
//!
//! The clock is Redis' (`TIME` inside the script), not the instances':
//! their clocks differ by milliseconds, which is the scale of a bucket's
//! arithmetic.
//!
//! The request path never waits on Redis longer than a bound (20 ms by
//! default). When Redis does not answer in time, or the connection fails,
//! the request is answered at once — admitted (`fail = "open"`, the
//! default: a limit exists to protect the upstreams, and a gateway that
//! refuses everything because its limiter is down is the outage it meant
//! to prevent) or refused with 503 (`fail = "closed"`, for limits that are
//! quotas someone pays for). Then Redis is left alone: one request in every
//! [`RETRY_EVERY`] tries it again, the others do not wait, so an outage
//! costs each request nothing and sharing resumes within half a second of
//! Redis coming back. It is logged once per [`LOG_EVERY`], with how many
//! requests were answered without it.
//!
//! Left out on purpose: Redis Cluster and Sentinel (one URL, one server),
//! TLS to Redis, and a local bucket as the fallback while Redis is down.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use middleware::rate_limit::{RateKey, SharedLimit, too_many_requests};
use middleware::stats::Metrics;
use middleware::{Ctx, Middleware, Next};
use prometheus_client::metrics::counter::Counter;
use proxy_core::{HeadView, ProxyBody, Refusal};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

mod quota;
pub use quota::{Quota, Taken, Window};

/// While Redis is unavailable, one request this often tries it again.
pub const RETRY_EVERY: Duration = Duration::from_millis(500);

/// While Redis is unavailable, say so at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The longest a request waits for Redis, unless told otherwise.
pub const DEFAULT_BOUND: Duration = Duration::from_millis(20);

/// GCRA, atomically. KEYS[1] is the bucket, ARGV[1] the microseconds
/// between two requests at the steady rate, ARGV[2] the burst. The bucket
/// holds the theoretical arrival time (TAT): when the bucket would be
/// empty again. A request is admitted if, counting it, the TAT is at most
/// `burst` periods ahead of now. Answers {1, 0} (admitted) or {0, µs to
/// wait}. The key expires when the bucket has refilled completely — a
/// missing key is a full bucket — so Redis keeps only busy buckets, however
/// many keys clients invent. Numbers are written with %.0f: Lua's default
/// formatting would round a microsecond timestamp to 14 digits.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local period = tonumber(ARGV[1])
local allowance = period * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + period
if next_tat - now > allowance then
  return {0, next_tat - now - allowance}
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
           'PX', math.ceil((next_tat - now) / 1000))
return {1, 0}
";

/// What to answer while Redis is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fail {
    /// Admit: the limit is off until Redis answers again.
    #[default]
    Open,
    /// Refuse with 503.
    Closed,
}

impl std::str::FromStr for Fail {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "open" => Ok(Fail::Open),
            "closed" => Ok(Fail::Closed),
            _ => Err(format!("{raw:?}: expected \"open\" or \"closed\"")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SharedLimitError {
    #[error("redis URL {url:?}: {source}")]
    Url {
        url: String,
        source: redis::RedisError,
    },
}

/// What Redis said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    /// Over the limit; the next token arrives in this long.
    Refused(Duration),
    /// Redis did not answer (in time): the [`Fail`] mode decides.
    Unavailable,
}

/// The connection to Redis that every shared limit of a process uses, and
/// what it knows about Redis' health.
pub struct SharedLimits {
    url: String,
    connection: ConnectionManager,
    script: redis::Script,
    /// Quotas' leases ([`Quota`]).
    lease: redis::Script,
    fail: Fail,
    bound: Duration,
    /// Milliseconds since `epoch`: 0 while Redis answers; otherwise when
    /// the next request may try it.
    retry_at: AtomicU64,
    /// When the outage was last logged (ms since `epoch`, 0: never).
    logged_at: AtomicU64,
    /// Requests answered without Redis since the last log line.
    unanswered: AtomicU64,
    epoch: Instant,
    /// Every request answered without Redis, for /metrics.
    unavailable_total: Counter,
}

impl SharedLimits {
    /// Limits kept at `url` (`redis://HOST:PORT[/DB]`). Connects lazily:
    /// a gateway starts, and serves (by `fail`), while Redis is down.
    pub fn new(url: &str, fail: Fail, bound: Duration) -> Result<Self, SharedLimitError> {
        let failed = |source| SharedLimitError::Url {
            url: url.to_owned(),
            source,
        };
        let client = redis::Client::open(url).map_err(failed)?;
        // Give up on a connection attempt after a second; requests never
        // wait that long (they stop at `bound`), but the attempt goes on
        // for the next one. No retries inside the manager: the retry
        // pacing is ours (RETRY_EVERY).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(failed)?;
        Ok(Self {
            url: url.to_owned(),
            connection,
            script: redis::Script::new(GCRA),
            lease: redis::Script::new(quota::LEASE),
            fail,
            bound,
            retry_at: AtomicU64::new(0),
            logged_at: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
            epoch: Instant::now(),
            unavailable_total: Counter::default(),
        })
    }

    /// Count the requests answered without Redis in `counter` (one the
    /// process' metrics show, and which outlives this connection when a
    /// reload replaces it).
    pub fn count_unavailable_in(mut self, counter: Counter) -> Self {
        self.unavailable_total = counter;
        self
    }

    fn now_ms(&self) -> u64 {
        // +1: 0 is reserved for "Redis answers".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Take one token from `bucket` (`rate`/s, bursts of `burst`).
    pub async fn check(&self, bucket: &[u8], rate: NonZeroU32, burst: NonZeroU32) -> Verdict {
        let period_us = (1_000_000 / u64::from(rate.get())).max(1);
        let mut invocation = self.script.key(bucket);
        invocation.arg(period_us).arg(burst.get());
        match self.ask::<(u8, u64)>(&invocation).await {
            Some((1, _)) => Verdict::Admitted,
            Some((_, wait_us)) => Verdict::Refused(Duration::from_micros(wait_us)),
            None => Verdict::Unavailable,
        }
    }

    /// Run `script` in Redis within the bound, or answer `None` at once
    /// while Redis is known to be down (one call per [`RETRY_EVERY`] tries
    /// it again).
    async fn ask<T: redis::FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let retry_at = self.retry_at.load(Ordering::Acquire);
        if retry_at != 0 {
            // Redis is down. Exactly one request per RETRY_EVERY wins the
            // swap and tries it; the others are answered without waiting.
            let now = self.now_ms();
            let next = now + RETRY_EVERY.as_millis() as u64;
            if now < retry_at
                || self
                    .retry_at
                    .compare_exchange(retry_at, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                self.count_unanswered(None);
                return None;
            }
        }
        let mut connection = self.connection.clone();
        let call = script.invoke_async::<T>(&mut connection);
        let failure = match tokio::time::timeout(self.bound, call).await {
            Ok(Ok(answer)) => {
                self.answered();
                return Some(answer);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", self.bound.as_millis()),
        };
        let now = self.now_ms();
        self.retry_at
            .store(now + RETRY_EVERY.as_millis() as u64, Ordering::Release);
        self.count_unanswered(Some(&failure));
        None
    }

    /// The connection, for work off the request path that waits as long
    /// as it likes (statistics written once a second).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// What to answer while Redis is unavailable.
    pub fn fail(&self) -> Fail {
        self.fail
    }

    /// Redis answered: if it had not been, say that sharing is back.
    fn answered(&self) {
        if self.retry_at.swap(0, Ordering::AcqRel) != 0 {
            let missed = self.unanswered.swap(0, Ordering::Relaxed);
            self.logged_at.store(0, Ordering::Relaxed);
            tracing::info!(
                "redis {} answers again: rate limits are shared again ({missed} requests since the last report were answered without it)",
                self.url
            );
        }
    }

    /// One more request answered without Redis; log it if the last line
    /// is older than LOG_EVERY.
    fn count_unanswered(&self, failure: Option<&str>) {
        self.unavailable_total.inc();
        let missed = self.unanswered.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.now_ms();
        let logged = self.logged_at.load(Ordering::Relaxed);
        if logged != 0 && now - logged < LOG_EVERY.as_millis() as u64 {
            return;
        }
        if self
            .logged_at
            .compare_exchange(logged, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.unanswered.store(0, Ordering::Relaxed);
        tracing::warn!(
            "redis {} unavailable{}: rate limits are not shared; {missed} request(s) {} without them since the last report; retrying every {} ms",
            self.url,
            failure.map(|f| format!(" ({f})")).unwrap_or_default(),
            match self.fail {
                Fail::Open => "admitted",
                Fail::Closed => "refused",
            },
            RETRY_EVERY.as_millis()
        );
    }
}

/// A rate limit held together by every instance sharing one Redis: the
/// shared counterpart of `middleware::rate_limit::RateLimit`, with the same
/// keys and the same 429.
pub struct SharedRateLimit {
    limits: Arc<SharedLimits>,
    /// Names the buckets in Redis: `workbench:rate:<name>:<key>`. Instances
    /// share a bucket when they give it the same name.
    prefix: Vec<u8>,
    rate: NonZeroU32,
    burst: NonZeroU32,
    key: RateKey,
    metrics: Arc<Metrics>,
}

impl SharedRateLimit {
    pub fn new(
        limits: Arc<SharedLimits>,
        name: &str,
        rate: NonZeroU32,
        burst: NonZeroU32,
        key: RateKey,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            limits,
            prefix: format!("workbench:rate:{name}:").into_bytes(),
            rate,
            burst,
            key,
            metrics,
        }
    }
}

impl SharedLimit for SharedRateLimit {
    fn check<'a>(
        &'a self,
        head: &'a (dyn HeadView + Sync),
        client: IpAddr,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            let key = self.key.of(head, client, None)?;
            let mut bucket = self.prefix.clone();
            bucket.extend_from_slice(key.as_bytes());
            match self.limits.check(&bucket, self.rate, self.burst).await {
                Verdict::Admitted => Ok(()),
                Verdict::Refused(wait) => {
                    self.metrics.count_rate_limited();
                    Err(too_many_requests(self.rate.get(), self.burst.get(), wait))
                }
                Verdict::Unavailable => match self.limits.fail {
                    Fail::Open => Ok(()),
                    Fail::Closed => Err(Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the shared rate limit cannot be checked (Redis is unavailable); try again shortly",
                    )),
                },
            }
        })
    }
}

impl Middleware for SharedRateLimit {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        Box::pin(async move {
            let checked = {
                let (head, body) = req.into_parts();
                let checked = self.check(&head, ctx.client.client_ip()).await;
                (Request::from_parts(head, body), checked)
            };
            match checked {
                (req, Ok(())) => next.run(req, ctx).await,
                (_, Err(refusal)) => refusal.into_response(),
            }
        })
    }
}
