//! Circuit breaking, degradation, and a concurrency cap.
//!
//! When an upstream is failing, sending it more requests makes everything
//! worse: clients wait for timeouts, threads and sockets pile up, and the
//! struggling upstream never gets the quiet it needs to recover. A circuit
//! breaker notices the failure rate and stops calling for a while:
//!
//! ```text
//!            error rate ≥ threshold
//!            (over ≥ min requests)
//!   ┌────────┐ ───────────────────▶ ┌──────┐
//!   │ closed │                      │ open │ ── every request: the fallback, at once
//!   └────────┘ ◀─┐                  └──────┘
//!        ▲       │ probe succeeded     │ open window over
//!        │       │                     ▼
//!        │       └──────────────── ┌───────────┐
//!        │                         │ half-open │ ── one probe request at a time
//!        └── (closed)              └───────────┘
//!                  probe failed ──▶ open again
//! ```
//!
//! While open, every request gets the *fallback* — a degraded answer
//! (default 503 with a short body) — without touching the upstream. That is
//! degradation: a fast, honest "not now" instead of a slow failure.
//!
//! The error rate is measured over a rolling window of ten one-second
//! buckets; errors are 5xx answers, which include the proxy's own 502 for a
//! connect error and 504 for a timeout. The concurrency cap is separate: at
//! most N requests at once, 503 beyond — a bulkhead that keeps one slow
//! upstream from absorbing every connection the proxy has.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use proxy_core::{ProxyBody, Refusal};
use tracing::{info, warn};

use crate::per_second::PerSecond;
use crate::stats::Metrics;
use crate::{Ctx, Middleware, Next};

/// Breaker settings.
#[derive(Debug, Clone)]
pub struct BreakerPolicy {
    /// Open when this share of requests (0–1) failed…
    pub error_rate: f64,
    /// …over at least this many requests in the window.
    pub min_requests: u64,
    /// Stay open this long before letting a probe through.
    pub open_for: Duration,
    /// What to answer while open.
    pub fallback_status: StatusCode,
    pub fallback_body: String,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            error_rate: 0.5,
            min_requests: 20,
            open_for: Duration::from_secs(10),
            fallback_status: StatusCode::SERVICE_UNAVAILABLE,
            fallback_body: "service degraded: the upstream is failing, try again shortly"
                .to_owned(),
        }
    }
}

impl BreakerPolicy {
    /// Open when `error_percent` of at least `min_requests` requests failed,
    /// for `open_for`; the default answer while open. Without a percentage
    /// the breaker never opens (a rate above 100 % is never reached), and
    /// only its concurrency cap acts.
    pub fn new(error_percent: Option<u8>, min_requests: u64, open_for: Duration) -> Self {
        Self {
            error_rate: error_percent.map_or(2.0, |p| f64::from(p) / 100.0),
            min_requests: min_requests.max(1),
            open_for,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl State {
    fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open { .. } => 1,
            State::HalfOpen { .. } => 2,
        }
    }
}

const BUCKETS: usize = 10;

/// At most `limit` requests at once. Only ever tried, never waited on, so
/// a counter does what a semaphore would, without the semaphore's lock on
/// every release.
#[derive(Debug)]
struct ConcurrencyCap {
    in_flight: AtomicUsize,
    limit: usize,
}

impl ConcurrencyCap {
    /// Take a place, if one is free (given back by [`Self::leave`]).
    fn try_enter(&self) -> bool {
        // Compare-and-swap, not add-then-undo: an add past the limit, even
        // undone at once, could make a request arriving at that moment be
        // refused while a place is free.
        self.in_flight
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Release);
    }
}

pub struct Breaker {
    policy: BreakerPolicy,
    /// Transitions happen under this lock; the window is outside it, as
    /// every request writes to it.
    state: Mutex<State>,
    window: PerSecond<BUCKETS>,
    /// `*state == Closed`, readable without the lock: the state of
    /// nearly every request, so admitting it takes one atomic load.
    closed: AtomicBool,
    concurrency: Option<ConcurrencyCap>,
    metrics: Arc<Metrics>,
}

/// What the breaker decided before the request.
enum Admission {
    Pass { probe: bool },
    Refuse,
}

impl Breaker {
    pub fn new(
        policy: BreakerPolicy,
        max_concurrent: Option<usize>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            policy,
            state: Mutex::new(State::Closed),
            window: PerSecond::new(),
            closed: AtomicBool::new(true),
            concurrency: max_concurrent.map(|limit| ConcurrencyCap {
                in_flight: AtomicUsize::new(0),
                limit,
            }),
            metrics,
        }
    }

    pub fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, current: &mut State, state: State) {
        *current = state;
        self.closed.store(state == State::Closed, Ordering::Release);
        self.metrics.breaker_state.set(state.gauge());
    }

    fn admit(&self) -> Admission {
        if self.closed.load(Ordering::Acquire) {
            return Admission::Pass { probe: false };
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed => Admission::Pass { probe: false },
            State::Open { until } if Instant::now() >= until => {
                info!("circuit half-open: letting one probe through");
                self.set(&mut state, State::HalfOpen { probing: true });
                Admission::Pass { probe: true }
            }
            State::Open { .. } | State::HalfOpen { probing: true } => Admission::Refuse,
            State::HalfOpen { probing: false } => {
                self.set(&mut state, State::HalfOpen { probing: true });
                Admission::Pass { probe: true }
            }
        }
    }

    fn record(&self, probe: bool, error: bool) {
        if probe {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if error {
                warn!("circuit open again: the probe failed");
                let until = Instant::now() + self.policy.open_for;
                self.set(&mut state, State::Open { until });
            } else {
                info!("circuit closed: the probe succeeded");
                self.window.clear();
                self.set(&mut state, State::Closed);
            }
            return;
        }
        self.window
            .record(self.window.second(Instant::now()), error);
        // Only an error can push the rate over the threshold.
        if !error {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if *state != State::Closed {
            return;
        }
        let (requests, errors) = self.totals();
        if requests >= self.policy.min_requests
            && errors as f64 >= self.policy.error_rate * requests as f64
        {
            warn!("circuit open: {errors} of {requests} requests failed in the last {BUCKETS} s");
            self.window.clear();
            let until = Instant::now() + self.policy.open_for;
            self.set(&mut state, State::Open { until });
        }
    }

    /// (requests, errors) within the last ten seconds.
    fn totals(&self) -> (u64, u64) {
        let now = self.window.second(Instant::now());
        (0..BUCKETS as u64)
            .filter_map(|ago| now.checked_sub(ago))
            .map(|second| self.window.counts(second))
            .fold((0, 0), |(requests, errors), (r, e)| {
                (requests + r, errors + e)
            })
    }

    /// Admit a request or refuse it: the decision, on either engine. The
    /// ticket holds the request's place under the concurrency cap and, in
    /// half-open, the probe, until it is told the answer or dropped.
    pub fn enter<B: Deref<Target = Breaker>>(breaker: B) -> Result<Ticket<B>, Refusal> {
        let capped = match &breaker.concurrency {
            Some(cap) if !cap.try_enter() => {
                breaker.metrics.breaker_rejected.inc();
                return Err(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "too many concurrent requests (limit {}); try again shortly",
                        cap.limit
                    ),
                ));
            }
            Some(_) => true,
            None => false,
        };
        let probe = match breaker.admit() {
            Admission::Pass { probe } => probe,
            Admission::Refuse => {
                if capped && let Some(cap) = &breaker.concurrency {
                    cap.leave();
                }
                breaker.metrics.breaker_rejected.inc();
                return Err(Refusal::new(
                    breaker.policy.fallback_status,
                    breaker.policy.fallback_body.clone(),
                ));
            }
        };
        Ok(Ticket {
            breaker,
            capped,
            probe,
            answered: false,
        })
    }
}

/// One admitted request's hold on the breaker.
pub struct Ticket<B: Deref<Target = Breaker>> {
    breaker: B,
    /// It holds a place under the concurrency cap.
    capped: bool,
    /// It is the half-open probe.
    probe: bool,
    answered: bool,
}

impl<B: Deref<Target = Breaker>> Ticket<B> {
    /// The response head came with `status`: the place is given back and
    /// the outcome recorded (a 5xx is an error).
    pub fn answered(&mut self, status: u16) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        if self.capped
            && let Some(cap) = &self.breaker.concurrency
        {
            cap.leave();
        }
        self.breaker.record(self.probe, status >= 500);
    }
}

/// Dropped unanswered (the client hung up first), a ticket gives its place
/// back and records nothing — and frees the probe, or the breaker would
/// stay half-open with a probe that never ends.
impl<B: Deref<Target = Breaker>> Drop for Ticket<B> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let breaker = &*self.breaker;
        if self.capped
            && let Some(cap) = &breaker.concurrency
        {
            cap.leave();
        }
        if self.probe {
            let mut state = breaker.state.lock().unwrap_or_else(PoisonError::into_inner);
            if *state == (State::HalfOpen { probing: true }) {
                breaker.set(&mut state, State::HalfOpen { probing: false });
            }
        }
    }
}

impl Middleware for Breaker {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        // Admission is decided now; only an admitted request gets a future
        // that waits for the upstream's answer.
        let mut ticket = match Breaker::enter(self) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                let refusal = refusal.into_response();
                return Box::pin(async move { refusal });
            }
        };
        let response = next.run(req, ctx);
        Box::pin(async move {
            let response = response.await;
            ticket.answered(response.status().as_u16());
            response
        })
    }
}
