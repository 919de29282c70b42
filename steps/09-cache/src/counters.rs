//! What the cache did, counted: the numbers an operator watches.
//!
//! `Cache-Status` tells one client what happened to its request; these
//! counters tell the operator what happens to all of them. Each answer is
//! one [`Outcome`], read off the `Cache-Status` member the answer carries,
//! so the two can never disagree. Bytes answered from the store count
//! what the origin did not have to send.
//!
//! The counters are `prometheus-client`'s: whoever exposes them (the
//! gateway's `/metrics`) labels them and registers them; `step09-cache`
//! alone counts into counters nobody reads.

use prometheus_client::metrics::counter::Counter;

use crate::status::{CacheStatus, Forward};

/// What one answer was, for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Fresh from the store.
    Hit,
    /// From the store though stale: the client accepted it (`max-stale`),
    /// the origin allowed it while revalidating, or the origin failed
    /// (`stale-if-error`).
    Stale,
    /// From the origin, because nothing stored could answer.
    Miss,
    /// A stored answer the origin confirmed with a 304.
    Revalidated,
    /// Not the cache's business: other methods, bodies, upgrades, ranges it
    /// cannot answer.
    Bypass,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Self::Hit,
        Self::Stale,
        Self::Miss,
        Self::Revalidated,
        Self::Bypass,
    ];

    /// Its name, as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::Miss => "miss",
            Self::Revalidated => "revalidated",
            Self::Bypass => "bypass",
        }
    }

    /// The outcome `status` describes.
    pub fn of(status: &CacheStatus) -> Self {
        if status.hit {
            return if status.detail.is_some() {
                Self::Stale
            } else {
                Self::Hit
            };
        }
        if status.detail == Some("stale-if-error") {
            return Self::Stale;
        }
        match status.forward {
            Some(Forward::Method | Forward::Bypass) => Self::Bypass,
            _ if status.forward_status == Some(304) => Self::Revalidated,
            // Upstream, or `only-if-cached` with nothing stored.
            _ => Self::Miss,
        }
    }
}

/// One cache's counters.
#[derive(Debug, Clone, Default)]
pub struct CacheCounters {
    /// Answers, by [`Outcome`] (in [`Outcome::ALL`]'s order).
    answers: [Counter; Outcome::ALL.len()],
    /// Requests that rode another's upstream request.
    collapsed: Counter,
    /// Body bytes answered from the store.
    served_bytes: Counter,
}

impl CacheCounters {
    /// Counters kept elsewhere: `answers` gives the one for each outcome.
    pub fn new(
        answers: impl FnMut(Outcome) -> Counter,
        collapsed: Counter,
        served_bytes: Counter,
    ) -> Self {
        Self {
            answers: Outcome::ALL.map(answers),
            collapsed,
            served_bytes,
        }
    }

    /// One answer, described by `status`, whose body from the store is
    /// `stored_body` bytes long (0 when it came from upstream).
    pub(crate) fn count(&self, status: &CacheStatus, stored_body: u64) {
        let outcome = Outcome::of(status);
        let index = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("ALL lists every outcome");
        self.answers[index].inc();
        if status.collapsed {
            self.collapsed.inc();
        }
        if matches!(
            outcome,
            Outcome::Hit | Outcome::Stale | Outcome::Revalidated
        ) {
            self.served_bytes.inc_by(stored_body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_is_one_outcome() {
        let fresh = CacheStatus::hit(10);
        let stale = CacheStatus::hit(-5).detail("stale-while-revalidate");
        let mut on_error = CacheStatus::forward(Forward::Stale).detail("stale-if-error");
        on_error.forward_status = Some(503);
        let mut revalidated = CacheStatus::forward(Forward::Stale);
        revalidated.forward_status = Some(304);
        let mut miss = CacheStatus::forward(Forward::UriMiss);
        miss.forward_status = Some(200);
        let post = CacheStatus::forward(Forward::Method);
        let range = CacheStatus::forward(Forward::Bypass).detail("range");
        let cases = [
            (fresh, Outcome::Hit),
            (stale, Outcome::Stale),
            (on_error, Outcome::Stale),
            (revalidated, Outcome::Revalidated),
            (miss, Outcome::Miss),
            (post, Outcome::Bypass),
            (range, Outcome::Bypass),
            (
                CacheStatus::default().detail("only-if-cached"),
                Outcome::Miss,
            ),
        ];
        for (status, outcome) in cases {
            assert_eq!(Outcome::of(&status), outcome, "{status:?}");
        }
    }
}
