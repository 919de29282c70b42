//! Retries: a failed request sent again, to another upstream.
//!
//! With one upstream of three dead, every third request fails until
//! passive health ejects it — unless the proxy sends those requests to
//! another upstream, as nginx does (`proxy_next_upstream error timeout`).
//! Whether that is safe depends on what the dead one may have seen:
//!
//! * **Nothing** — the connection was refused, reset before the request
//!   left, the TLS handshake failed, a pooled connection was found dead.
//!   No upstream can have acted on it, so any request may go again,
//!   whatever its method.
//! * **Possibly all of it** — the connection broke while waiting for the
//!   answer, or no answer came in time. The upstream may have done the
//!   work. Only an idempotent request (GET, HEAD, PUT, DELETE, OPTIONS,
//!   TRACE: RFC 9110 §9.2.2) may go again, because doing it twice does what
//!   doing it once did; and only if its body is still at hand — none, or
//!   small enough to have been kept (64 KiB, step 03's `MAX_KEPT_BODY`).
//!   **A POST is never sent twice**: a retried payment is a double payment.
//!
//! Retries happen only before any byte of the response has reached the
//! client: after that, the client has seen an answer, and a second one
//! would be a different answer spliced onto the first.
//!
//! Retries multiply load exactly when upstreams are struggling: with three
//! attempts per request, an overloaded set gets three times the traffic —
//! a retry storm. A [`RetryBudget`] caps them at a share of the requests
//! (Finagle's design: each request earns a fifth of a retry) with a floor,
//! so that a quiet proxy can still retry a few requests a second.
//!
//! Left out on purpose: retrying on a status (a 503 is an answer, and the
//! application may have acted before giving it), hedged requests, and
//! backoff between attempts (the next attempt goes to a *different*
//! upstream, which has no reason to be slow).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;

/// Thousandths of a retry, so that a fifth of one is a whole number.
const MILLI: u64 = 1000;

/// At most this share of requests may be retried…
const RATIO_MILLI: u64 = 200;

/// …plus this many retries a second, whatever the traffic.
const FLOOR_PER_SECOND: u32 = 10;

/// Retries saved up by a quiet period are capped, so that a burst after
/// hours of calm cannot spend thousands at once.
const MAX_SAVED: u64 = 100 * MILLI;

/// Finagle's retry budget: every request deposits a fifth of a retry, every
/// retry withdraws a whole one; when the account is empty, a floor of ten
/// retries a second still passes.
#[derive(Debug, Default)]
pub struct RetryBudget {
    earned: AtomicU64,
    floor_second: AtomicU64,
    floor_used: AtomicU32,
}

impl RetryBudget {
    /// A request arrived.
    pub fn deposit(&self) {
        // Read first: once the account is full (the normal state of a busy,
        // healthy proxy) no request writes to this shared line.
        if self.earned.load(Ordering::Relaxed) < MAX_SAVED {
            self.earned.fetch_add(RATIO_MILLI, Ordering::Relaxed);
        }
    }

    /// May one more request be retried?
    pub fn withdraw(&self) -> bool {
        let mut earned = self.earned.load(Ordering::Relaxed);
        while earned >= MILLI {
            match self.earned.compare_exchange_weak(
                earned,
                earned - MILLI,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => earned = now,
            }
        }
        let second = seconds();
        if self.floor_second.swap(second, Ordering::Relaxed) != second {
            self.floor_used.store(0, Ordering::Relaxed);
        }
        self.floor_used.fetch_add(1, Ordering::Relaxed) < FLOOR_PER_SECOND
    }
}

/// Whole seconds since the first call.
fn seconds() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs()
}

/// How many retries a request may have, the budget they come from, and
/// their counts for `/metrics` (step 05 registers them).
#[derive(Debug, Default)]
pub struct Retries {
    /// Attempts after the first; 0 turns retries off.
    pub max: u32,
    pub budget: RetryBudget,
    pub counters: RetryCounters,
}

/// Retries made, and retries the budget refused.
#[derive(Debug, Clone, Default)]
pub struct RetryCounters {
    pub retried: Counter,
    pub refused: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifth_of_the_requests_plus_a_floor() {
        let budget = RetryBudget::default();
        for _ in 0..100 {
            budget.deposit();
        }
        // 100 requests earn 20 retries, and the floor adds 10 this second
        // (the test cannot straddle many seconds: at most one more floor).
        let granted = (0..100).filter(|_| budget.withdraw()).count();
        assert!((30..=40).contains(&granted), "{granted}");
    }

    #[test]
    fn savings_are_capped() {
        let budget = RetryBudget::default();
        for _ in 0..10_000 {
            budget.deposit();
        }
        let granted = (0..1000).filter(|_| budget.withdraw()).count();
        assert!((110..=120).contains(&granted), "{granted}");
    }
}
