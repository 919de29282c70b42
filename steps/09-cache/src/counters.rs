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
    /// Nothing stored could answer: from the origin (or, for a client that
    /// asked `only-if-cached`, a 504).
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
        // Fresh while its age is below its lifetime: a second or more left.
        let stale = status.ttl.is_some_and(|ttl| ttl <= 0);
        if status.hit {
            return if stale { Self::Stale } else { Self::Hit };
        }
        if status.detail == Some("stale-if-error") {
            return Self::Stale;
        }
        match status.forward {
            Some(Forward::Method | Forward::Bypass) => Self::Bypass,
            // A stored answer the origin confirmed (a 304 to an
            // unconditional request is the origin's own answer: a miss).
            Some(Forward::Stale | Forward::Request) if status.forward_status == Some(304) => {
                Self::Revalidated
            }
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

    /// One answer, described by `status`.
    pub(crate) fn count(&self, status: &CacheStatus) {
        // ALL lists the outcomes in their declared order.
        self.answers[Outcome::of(status) as usize].inc();
        if status.collapsed {
            self.collapsed.inc();
        }
        self.served_bytes.inc_by(status.body_from_store);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_is_one_outcome() {
        let fresh = CacheStatus::hit(10);
        let stale = CacheStatus::hit(-5).detail("stale-while-revalidate");
        let just_stale = CacheStatus::hit(0).detail("max-stale");
        let mut unconditional_304 = CacheStatus::forward(Forward::UriMiss);
        unconditional_304.forward_status = Some(304);
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
            (just_stale, Outcome::Stale),
            (on_error, Outcome::Stale),
            (revalidated, Outcome::Revalidated),
            (unconditional_304, Outcome::Miss),
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
        // `count` finds an outcome's counter by its place in ALL.
        for (place, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, place);
        }
    }
}
