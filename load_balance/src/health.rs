//! Health: which upstreams may be picked at all.
//!
//! A balancer that keeps sending every n-th request to a dead server turns
//! one failure into a steady error rate. Two signals take an upstream out:
//!
//! * **Passive** — the proxy reports each outcome ([`Balancer::report`]).
//!   After `max_fails` consecutive failures the upstream is ejected for
//!   `cooldown`; then it is tried again, and one success clears it, while
//!   one more failure ejects it again. No extra traffic, but only real
//!   requests can find out. What counts as a failure matters more than it
//!   seems: an upstream that could not be reached, or did not answer in
//!   time, always counts ([`Outcome::Unreachable`]); an answer counts only
//!   when its status is one the operator listed ([`Outcome::BadStatus`]),
//!   because an application's own 500 or 503 is something any client can
//!   ask for (`GET /status/503`) — counted by default, three such requests
//!   would take an upstream out for everyone. Even then at most half of the
//!   upstreams can be out for their statuses at once, and a lone upstream is
//!   never ejected: there is nowhere better to send its requests.
//! * **Active** — [`ActiveChecks`] sends `GET path` to every upstream on an
//!   interval, through the proxy's own transport (so an `https://` upstream
//!   is checked over TLS with the proxy's trust settings): `fall` failures
//!   in a row mark it down, `rise` successes mark it up. It finds a dead
//!   server before a user does, and notices it came back even when nobody
//!   is sent there.
//!
//! An upstream is healthy when neither signal has taken it out. Strategies
//! check this at pick time — one atomic load in the common case — so health
//! changes need no rebuild. When no upstream is healthy the balancer
//! routes to all of them anyway (panic mode, Envoy's name for it): a
//! request that might succeed beats a 503 that certainly fails, and it is
//! how the health of a set that was all taken out can be seen again.
//! Every ejection, return and verdict is logged with its cause.
//!
//! For smooth weighted round-robin, failures also lower the upstream's
//! *effective weight* (nginx's `weight / max_fails` per failure) and each
//! success raises it by one, back to the configured weight: a flaky server
//! gets less traffic before it is ejected.
//!
//! [`Balancer::report`]: crate::Balancer::report

use std::future::Future;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::header::HOST;
use hyper::{Request, Uri};
use proxy_core::{RequestBody, Transport, error_chain};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::{Balancer, Upstream};

/// How one request to an upstream went, as the proxy reports it.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Success,
    /// It could not be reached, or did not answer in time; the cause.
    Unreachable(&'a str),
    /// It answered with a status the operator counts as a failure.
    BadStatus(u16),
}

/// What one recorded outcome changed.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub(crate) weight_changed: bool,
    /// This failure took the upstream out.
    pub(crate) ejected: bool,
    /// This success brought an ejected upstream back.
    pub(crate) returned: bool,
}

/// Passive health settings.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// Consecutive failures that eject an upstream.
    pub max_fails: u32,
    /// How long an ejected upstream sits out before it is tried again.
    pub cooldown: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            max_fails: 3,
            cooldown: Duration::from_secs(10),
        }
    }
}

/// Milliseconds since the first call: cheap to store in an atomic.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // +1 so that 0 can mean "not ejected".
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

#[derive(Debug)]
pub(crate) struct Health {
    consecutive_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    active_down: AtomicBool,
    active_streak: AtomicU32,
    /// Taken out by an operator (the gateway's drain): no new requests.
    drained: AtomicBool,
    weight: u32,
    effective_weight: AtomicU32,
}

impl Health {
    pub(crate) fn new(weight: u32) -> Self {
        Self {
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            active_down: AtomicBool::new(false),
            active_streak: AtomicU32::new(0),
            drained: AtomicBool::new(false),
            weight,
            effective_weight: AtomicU32::new(weight),
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        !self.active_down.load(Ordering::Relaxed)
            && !self.drained.load(Ordering::Relaxed)
            && !self.is_ejected()
    }

    pub(crate) fn drain(&self, drained: bool) {
        self.drained.store(drained, Ordering::Relaxed);
    }

    pub(crate) fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// Taken out by passive health, and still sitting out its cooldown.
    pub(crate) fn is_ejected(&self) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    pub(crate) fn effective_weight(&self) -> u32 {
        self.effective_weight.load(Ordering::Relaxed)
    }

    /// Record one outcome. A failure ejects only if `may_eject`.
    pub(crate) fn record(&self, policy: &HealthPolicy, success: bool, may_eject: bool) -> Recorded {
        let mut recorded = Recorded::default();
        let before = self.effective_weight();
        let after = if success {
            // Nearly every outcome is a success on a healthy upstream: read
            // before writing, so the cache line every core reads stays
            // shared instead of bouncing between cores on each request.
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            if self.ejected_until_ms.load(Ordering::Relaxed) != 0 {
                recorded.returned = self.ejected_until_ms.swap(0, Ordering::Relaxed) != 0;
            }
            (before + 1).min(self.weight)
        } else {
            let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if may_eject && failures >= policy.max_fails.max(1) {
                let until = now_ms() + policy.cooldown.as_millis() as u64;
                let previous = self.ejected_until_ms.swap(until, Ordering::Relaxed);
                recorded.ejected = previous == 0 || previous <= now_ms();
            }
            let step = (self.weight / policy.max_fails.max(1)).max(1);
            before.saturating_sub(step).max(1)
        };
        if after != before {
            self.effective_weight.store(after, Ordering::Relaxed);
        }
        recorded.weight_changed = after != before;
        recorded
    }

    /// Record one active probe; returns the new up/down verdict if it flipped.
    fn probe(&self, ok: bool, checks: &ActiveChecks) -> Option<bool> {
        let down = self.active_down.load(Ordering::Relaxed);
        if ok != down {
            // The probe agrees with the current verdict.
            self.active_streak.store(0, Ordering::Relaxed);
            return None;
        }
        let streak = self.active_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let needed = if ok { checks.rise } else { checks.fall };
        if streak >= needed.max(1) {
            self.active_streak.store(0, Ordering::Relaxed);
            self.active_down.store(!ok, Ordering::Relaxed);
            return Some(ok);
        }
        None
    }
}

/// Active health checks.
#[derive(Debug, Clone)]
pub struct ActiveChecks {
    /// Path probed on every upstream, e.g. `/health` (empty for checks that
    /// only open a connection).
    pub path: String,
    pub interval: Duration,
    /// A probe without an answer within this time failed.
    pub timeout: Duration,
    /// Successes in a row that bring a down upstream back.
    pub rise: u32,
    /// Failures in a row that take an upstream down.
    pub fall: u32,
}

impl ActiveChecks {
    pub fn new(path: impl Into<String>, interval: Duration) -> Self {
        Self {
            path: path.into(),
            interval,
            timeout: interval.min(Duration::from_secs(2)),
            rise: 2,
            fall: 2,
        }
    }

    /// Probe every upstream of `balancer` each interval, until aborted,
    /// with `GET path` through `transport` — the one the proxy sends
    /// requests with.
    pub fn spawn<T: Transport>(self, balancer: Arc<Balancer>, transport: T) -> JoinHandle<()> {
        let path = self.path.clone();
        let timeout = self.timeout;
        self.spawn_probing(balancer, move |upstream| {
            let (transport, path) = (transport.clone(), path.clone());
            async move { http_probe(&transport, &upstream, &path, timeout).await }
        })
    }

    /// Probe every upstream of `balancer` each interval with `probe`, until
    /// aborted: `Ok`, or why it failed (step 08 checks that a TCP
    /// connection can be opened).
    pub fn spawn_probing<P, F>(self, balancer: Arc<Balancer>, probe: P) -> JoinHandle<()>
    where
        P: Fn(Arc<Upstream>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let checks = Arc::new(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(checks.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let probes: Vec<_> = balancer
                    .upstreams()
                    .iter()
                    .cloned()
                    .map(|upstream| {
                        let (checks, probing) = (checks.clone(), probe(upstream.clone()));
                        tokio::spawn(async move {
                            let verdict = tokio::time::timeout(checks.timeout, probing)
                                .await
                                .unwrap_or_else(|_| {
                                    Err(format!("no answer within {:?}", checks.timeout))
                                });
                            judge(&upstream, &checks, verdict);
                        })
                    })
                    .collect();
                for probe in probes {
                    let _ = probe.await;
                }
            }
        })
    }
}

/// One HTTP probe: `Ok` or why it failed, in words an operator can act on.
async fn http_probe<T: Transport>(
    transport: &T,
    upstream: &Upstream,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let uri = probe_uri(&upstream.url, path)
        .ok_or_else(|| format!("{}{path} is not a URL", upstream.url))?;
    let mut request = Request::get(uri)
        .body(RequestBody::empty())
        .map_err(|e| e.to_string())?;
    if let Some(host) = &upstream.host {
        request.headers_mut().insert(HOST, host.clone());
    }
    let response = transport
        .round_trip(request)
        .await
        .map_err(|failed| error_chain(failed.error.as_ref()))?;
    let status = response.status();
    // Read the (short) answer to its end, so the connection goes back to
    // the pool instead of being closed.
    let _ = tokio::time::timeout(timeout, response.into_body().collect()).await;
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// Count a probe's verdict, and say so when it flips the upstream.
fn judge(upstream: &Upstream, checks: &ActiveChecks, verdict: Result<(), String>) {
    // What was checked: a path, or (no path) whether a connection opens.
    let path = match checks.path.as_str() {
        "" => "the connect check",
        path => path,
    };
    match (upstream.health.probe(verdict.is_ok(), checks), verdict) {
        (Some(true), _) => info!(
            "upstream {upstream} is up again: {path} answered {} times in a row",
            checks.rise
        ),
        (Some(false), Err(why)) => warn!(
            "upstream {upstream} is down: {path} failed {} times in a row, the last: {why}",
            checks.fall
        ),
        (_, Err(why)) => debug!("upstream {upstream}: {path} failed: {why}"),
        _ => {}
    }
}

fn probe_uri(upstream: &Uri, path: &str) -> Option<Uri> {
    let scheme = upstream.scheme_str()?;
    let authority = upstream.authority()?;
    format!("{scheme}://{authority}{path}").parse().ok()
}
