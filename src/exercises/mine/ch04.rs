//! Chapter 4's exercises: two strategies of your own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use load_balance::{Strategy, Upstream};

/// Exercise 1. Always the first healthy upstream, in the order they were given: a
/// primary and its standbys. Every request goes to the primary while it
/// is healthy, to the first standby while it is not, and back to the
/// primary when it recovers.
///
/// Hint: `Upstream::is_healthy` says whether an upstream may be picked.
/// Once the tests pass, add it to `load_balance::STRATEGIES` (a variant of
/// `Kind` and one line) and try `--balance first-available` in step 04.
pub struct FirstAvailable {
    upstreams: Vec<Arc<Upstream>>,
}

impl FirstAvailable {
    pub fn new(upstreams: Vec<Arc<Upstream>>) -> Self {
        Self { upstreams }
    }
}

impl Strategy for FirstAvailable {
    fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
        // A first attempt: the first upstream, healthy or not.
        self.upstreams.first()
    }
}

/// Exercise 2. Least response time: the healthy upstream that has been
/// answering fastest. Every finished request reports how long it took
/// ([`record`](Self::record)); each upstream keeps an exponentially
/// weighted moving average of those times, `average = 0.8 × average + 0.2
/// × sample`, starting at its first sample, so one slow answer moves it a
/// little and a run of them moves it a lot. An upstream that has no
/// average yet is picked first (otherwise it would never get measured).
///
/// Hint: keep one `Option<f64>` per upstream, in the order given; `pick`
/// looks for an unmeasured healthy one, then the lowest average.
pub struct LeastResponseTime {
    upstreams: Vec<Arc<Upstream>>,
    averages: Mutex<Vec<Option<f64>>>,
}

impl LeastResponseTime {
    pub fn new(upstreams: Vec<Arc<Upstream>>) -> Self {
        let averages = Mutex::new(vec![None; upstreams.len()]);
        Self {
            upstreams,
            averages,
        }
    }

    /// A request to `upstream` took `took`.
    pub fn record(&self, upstream: &Upstream, took: Duration) {
        let Some(at) = self.upstreams.iter().position(|u| u.url == upstream.url) else {
            return;
        };
        // A first attempt: remember the last time only.
        self.averages.lock().expect("not poisoned")[at] = Some(took.as_secs_f64());
    }
}

impl Strategy for LeastResponseTime {
    fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
        let averages = self.averages.lock().expect("not poisoned");
        // ...and an upstream never measured counts as the slowest.
        self.upstreams
            .iter()
            .zip(averages.iter())
            .filter(|(upstream, _)| upstream.is_healthy())
            .min_by(|(_, a), (_, b)| {
                let (a, b) = (a.unwrap_or(f64::MAX), b.unwrap_or(f64::MAX));
                a.total_cmp(&b)
            })
            .map(|(upstream, _)| upstream)
    }
}
