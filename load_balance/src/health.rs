//! Health: which upstreams may be picked at all.
//!
//! A balancer that keeps sending every n-th request to a dead server turns
//! one failure into a steady error rate. Two signals take an upstream out:
//!
//! * **Passive** — the proxy reports each outcome ([`Balancer::report`]).
//!   After `max_fails` consecutive failures (connect errors, 5xx) the
//!   upstream is ejected for `cooldown`; then it is tried again, and one
//!   success clears it, while one more failure ejects it again. No extra
//!   traffic, but only real requests can find out — some of them fail.
//! * **Active** — [`ActiveChecks`] sends `GET path` to every upstream on an
//!   interval: `fall` failures in a row mark it down, `rise` successes mark
//!   it up. It finds a dead server before a user does, and notices it came
//!   back even when nobody is sent there.
//!
//! An upstream is healthy when neither signal has taken it out. Strategies
//! check this at pick time — one atomic load in the common case — so health
//! changes need no rebuild.
//!
//! For smooth weighted round-robin, failures also lower the upstream's
//! *effective weight* (nginx's `weight / max_fails` per failure) and each
//! success raises it by one, back to the configured weight: a flaky server
//! gets less traffic before it is ejected.
//!
//! [`Balancer::report`]: crate::Balancer::report

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::{Balancer, Upstream};

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
            weight,
            effective_weight: AtomicU32::new(weight),
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        if self.active_down.load(Ordering::Relaxed) {
            return false;
        }
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until == 0 || now_ms() >= until
    }

    pub(crate) fn effective_weight(&self) -> u32 {
        self.effective_weight.load(Ordering::Relaxed)
    }

    /// Record one outcome; true when the effective weight changed.
    pub(crate) fn record(&self, policy: &HealthPolicy, success: bool) -> bool {
        let before = self.effective_weight();
        let after = if success {
            // Nearly every outcome is a success on a healthy upstream: read
            // before writing, so the cache line every core reads stays
            // shared instead of bouncing between cores on each request.
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            if self.ejected_until_ms.load(Ordering::Relaxed) != 0 {
                self.ejected_until_ms.store(0, Ordering::Relaxed);
            }
            (before + 1).min(self.weight)
        } else {
            let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= policy.max_fails.max(1) {
                let until = now_ms() + policy.cooldown.as_millis() as u64;
                self.ejected_until_ms.store(until, Ordering::Relaxed);
            }
            let step = (self.weight / policy.max_fails.max(1)).max(1);
            before.saturating_sub(step).max(1)
        };
        if after != before {
            self.effective_weight.store(after, Ordering::Relaxed);
        }
        after != before
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
    /// Path probed on every upstream, e.g. `/health`.
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

    /// Probe every upstream of `balancer` each interval, until aborted.
    pub fn spawn(self, balancer: Arc<Balancer>) -> JoinHandle<()> {
        let checks = Arc::new(self);
        tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
            let mut ticks = tokio::time::interval(checks.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let probes: Vec<_> = balancer
                    .upstreams()
                    .iter()
                    .cloned()
                    .map(|upstream| {
                        let (client, checks) = (client.clone(), checks.clone());
                        tokio::spawn(async move { probe(&client, &upstream, &checks).await })
                    })
                    .collect();
                for probe in probes {
                    let _ = probe.await;
                }
            }
        })
    }
}

async fn probe(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    upstream: &Upstream,
    checks: &ActiveChecks,
) {
    let ok = match probe_uri(&upstream.url, &checks.path) {
        Some(uri) => matches!(
            tokio::time::timeout(checks.timeout, client.get(uri)).await,
            Ok(Ok(response)) if response.status().is_success() || response.status().is_redirection()
        ),
        None => false,
    };
    match upstream.health.probe(ok, checks) {
        Some(true) => info!("upstream {upstream} is up again ({} answered)", checks.path),
        Some(false) => warn!("upstream {upstream} is down ({} failed)", checks.path),
        None => {}
    }
}

fn probe_uri(upstream: &Uri, path: &str) -> Option<Uri> {
    let scheme = upstream.scheme_str()?;
    let authority = upstream.authority()?;
    format!("{scheme}://{authority}{path}").parse().ok()
}
