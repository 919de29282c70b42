//! What an operator types, parsed and checked once.
//!
//! Every step's flags and the gateway's config file take the same kinds of
//! value: an upstream URL, perhaps weighted; a duration (`500ms`, `2s`,
//! `5m`, `1h`); a number of seconds (`2.5`); a size (`64MiB`); a status
//! code; a count. Each is parsed here, in one place, so that a flag and a
//! config key that mean the same thing accept the same text and refuse it
//! with the same words.
//!
//! The rule every parser keeps: input never panics, never wraps, and never
//! turns into a value it did not say. `3333333333333333333s` overflows a
//! count of milliseconds, `1e400` is infinite, `-1` is not a timeout, `0s`
//! is not a cooldown: each is refused with a message that names what was
//! expected, and the caller adds which flag or file:line:column it came
//! from. Values that are legal but absurd (a cooldown of a century) are
//! refused too: [`MAX_DURATION`] bounds every duration, so that no deadline
//! computed from one can overflow a clock.
//!
//! Left out on purpose: what a value means (a weight is a number here; the
//! balancer gives it meaning) and flags themselves (clap's, in each step).

mod duration;
mod size;
mod upstream;

pub use duration::{MAX_DURATION, duration, seconds};
pub use size::size;
pub use upstream::{tcp_address, upstream_url, weighted_tcp_address, weighted_url};

/// An HTTP status code, 100 to 599.
pub fn status(raw: &str) -> Result<u16, String> {
    raw.trim()
        .parse::<u16>()
        .ok()
        .filter(|code| (100..=599).contains(code))
        .ok_or_else(|| format!("{raw:?}: expected a status code from 100 to 599, e.g. 503"))
}

/// A count that must be at least 1 (connections, requests, tunnels).
pub fn count(raw: &str) -> Result<usize, String> {
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{raw:?}: expected a whole number of at least 1"))
}

/// `weight=N`, N from 1 to [`MAX_WEIGHT`].
pub fn weight(spec: &str) -> Result<u32, String> {
    spec.strip_prefix("weight=")
        .and_then(|w| w.parse::<u32>().ok())
        .filter(|w| (1..=MAX_WEIGHT).contains(w))
        .ok_or_else(|| format!("{spec:?}: expected weight=N with N from 1 to {MAX_WEIGHT}"))
}

/// The largest weight: smooth weighted round-robin adds weights up in a
/// signed 64-bit sum, and a million is more than any real ratio needs.
pub const MAX_WEIGHT: u32 = 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_three_digits_in_range() {
        assert_eq!(status("503"), Ok(503));
        assert_eq!(status(" 200 "), Ok(200));
        for bad in ["99", "600", "-1", "abc", "", "65536", "5030"] {
            assert!(status(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_start_at_one() {
        assert_eq!(count("1"), Ok(1));
        for bad in ["0", "-1", "1.5", "", "99999999999999999999999"] {
            assert!(count(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_are_bounded() {
        assert_eq!(weight("weight=3"), Ok(3));
        for bad in ["weight=0", "weight=-1", "weight=", "w=3", "weight=1000001"] {
            assert!(weight(bad).is_err(), "{bad}");
        }
    }
}
