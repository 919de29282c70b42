//! One request's way through the upstream set, whichever engine carries it.
//!
//! Picking an upstream, reporting each outcome for passive health, moving
//! a failed request to another upstream when that is safe and the retry
//! budget allows, and counting it in flight: these are decisions, not
//! plumbing, and they are written once, here. Step 03's hyper engine
//! drives a [`Journey`] through [`crate::Attempts`] (its `Route`); the
//! gateway's fast engine (step 10's hooks) drives one directly.
//!
//! Left out on purpose: *whether* a failed request may go again. That
//! depends on what of it has left, which only the engine knows: it says
//! so with `resendable` (chapter 4's retry rule).

use std::fmt::Display;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use hyper::StatusCode;
use load_balance::{InFlight, Outcome, Upstream};
use proxy_core::{HeadView, Refusal, Transport};
use tracing::warn;

use crate::BalancedProxy;

/// Where one request is, among `proxy`'s upstreams.
pub struct Journey<P> {
    proxy: P,
    upstream: Arc<Upstream>,
    tried: Vec<Arc<Upstream>>,
    in_flight: Option<InFlight>,
    /// The last attempt failed (and was reported when it did).
    last_failed: bool,
    /// The client abandoned the request: nothing to report.
    abandoned: bool,
}

impl<P, T> Journey<P>
where
    P: Deref<Target = BalancedProxy<T>>,
    T: Transport,
{
    /// Start request `head`, forwarded with `path`, from `client`: pick
    /// its upstream (by its hash key, if the strategy reads one), or refuse
    /// with 503 when there is none.
    pub fn begin(
        proxy: P,
        head: &impl HeadView,
        path: &[u8],
        client: IpAddr,
    ) -> Result<Self, Refusal> {
        let key = if proxy.balancer.kind().uses_key() {
            proxy.hash_key.of(head, path, client)
        } else {
            Vec::new()
        };
        let Some(upstream) = proxy.balancer.pick(&key) else {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no upstream to send to: none is configured, or every one is drained",
            ));
        };
        proxy.retries.budget.deposit();
        let in_flight = proxy.start(&upstream);
        Ok(Self {
            proxy,
            upstream,
            tried: Vec::new(),
            in_flight,
            last_failed: false,
            abandoned: false,
        })
    }

    /// The upstream the request is (now) going to.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// The attempt failed (`cause`). Reported against its upstream; then,
    /// if the request is `resendable`, retries are left and the budget
    /// allows, it moves to an upstream not tried yet: `true`. `label`
    /// names the request in the log.
    pub fn failed(&mut self, cause: &str, resendable: bool, label: impl Display) -> bool {
        let proxy = &*self.proxy;
        proxy
            .balancer
            .report(&self.upstream, &proxy.policy, Outcome::Unreachable(cause));
        self.last_failed = true;
        if !resendable || self.tried.len() as u32 >= proxy.retries.max {
            return false;
        }
        self.tried.push(self.upstream.clone());
        let Some(next) = proxy.balancer.pick_another(&self.tried) else {
            return false;
        };
        if !proxy.retries.budget.withdraw() {
            proxy.retries.counters.refused.inc();
            warn!(
                "{label}: {} failed ({cause}); not retried: the retry budget is spent",
                self.upstream
            );
            return false;
        }
        proxy.retries.counters.retried.inc();
        warn!(
            "{label}: {} failed ({cause}); retry {} of {} on {next}",
            self.upstream,
            self.tried.len(),
            proxy.retries.max
        );
        self.in_flight = proxy.start(&next);
        self.upstream = next;
        self.last_failed = false;
        true
    }

    /// The client went away: whatever happens now says nothing about the
    /// upstream.
    pub fn abandon(&mut self) {
        self.abandoned = true;
    }

    /// The upstream answered with `status`: reported (a failure only if
    /// the health settings list the status). A request whose last attempt
    /// failed was reported then; an abandoned one is not reported.
    pub fn answered(&mut self, status: u16) {
        if self.abandoned || self.last_failed {
            return;
        }
        let proxy = &*self.proxy;
        let outcome = if proxy.fail_statuses.contains(&status) {
            Outcome::BadStatus(status)
        } else {
            Outcome::Success
        };
        proxy
            .balancer
            .report(&self.upstream, &proxy.policy, outcome);
    }

    /// Whether the client abandoned the request.
    pub fn was_abandoned(&self) -> bool {
        self.abandoned
    }

    /// The in-flight count, to hold until the response body has been sent.
    pub fn take_in_flight(&mut self) -> Option<InFlight> {
        self.in_flight.take()
    }

    /// Whether failed attempts may be retried at all (a body must then be
    /// kept whole to be sent again).
    pub fn retries(&self) -> bool {
        self.proxy.retries.max > 0
    }
}
