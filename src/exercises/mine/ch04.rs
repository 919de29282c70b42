//! Chapter 4, exercise 1: a `first-available` strategy.

use std::sync::Arc;

use load_balance::{Strategy, Upstream};

/// Always the first healthy upstream, in the order they were given: a
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
