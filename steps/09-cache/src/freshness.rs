//! How old a stored response is, and how long it stays fresh (RFC 9111
//! §4.2).
//!
//! A response is fresh while its age is below its freshness lifetime. The
//! lifetime comes from the origin when it says (`s-maxage`, then
//! `max-age`, then `Expires` minus `Date`) and from a heuristic when it
//! does not: a tenth of the time since `Last-Modified`, for the statuses
//! the RFC lets a cache guess about. The age is not "now minus when we
//! stored it": the response may have been old when it arrived (an `Age`
//! from a cache upstream, a `Date` in the past, the time it spent on the
//! wire), and §4.2.3's arithmetic takes the larger of what those say.
//!
//! Left out on purpose: clocks. `Date` is trusted as the origin's clock;
//! the corrections below only ever make a response older, never younger,
//! so a skewed origin costs revalidations, never stale answers.

use std::time::{Duration, SystemTime};

use hyper::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use hyper::{HeaderMap, StatusCode};

use crate::directives::{Directives, Seconds};

/// The heuristic never guesses longer than this, however old the resource.
pub const HEURISTIC_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// When a stored response was asked for and arrived, and what it said
/// about its age then: what §4.2.3 needs, and nothing of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When the request that brought it was sent.
    pub requested: SystemTime,
    /// When its head arrived.
    pub received: SystemTime,
    /// Its `Date`, or `received` when it had none (or none readable).
    pub date: SystemTime,
    /// Its `Age` (0 when absent or unreadable).
    pub age: u64,
}

impl Timing {
    pub fn of(headers: &HeaderMap, requested: SystemTime, received: SystemTime) -> Self {
        Self {
            requested,
            received,
            date: http_date(headers, DATE).unwrap_or(received),
            age: age_value(headers),
        }
    }

    /// §4.2.3: the age it had when it arrived, corrected for the time it
    /// spent on the way, plus the time it has spent here since.
    pub fn current_age(&self, now: SystemTime) -> u64 {
        let apparent_age = seconds_between(self.date, self.received);
        let response_delay = seconds_between(self.requested, self.received);
        let corrected_age_value = self.age.saturating_add(response_delay);
        let corrected_initial_age = apparent_age.max(corrected_age_value);
        let resident_time = seconds_between(self.received, now);
        corrected_initial_age.saturating_add(resident_time)
    }
}

/// Whole seconds from `earlier` to `later`, 0 if `later` is not later.
fn seconds_between(earlier: SystemTime, later: SystemTime) -> u64 {
    later.duration_since(earlier).map_or(0, |d| d.as_secs())
}

/// The first `Age` line's first value, if it is delta-seconds; a value a
/// cache cannot read is ignored, not guessed at (`Age: -5`, `Age: 1.5`).
pub fn age_value(headers: &HeaderMap) -> u64 {
    let Some(line) = headers.get(AGE).and_then(|v| v.to_str().ok()) else {
        return 0;
    };
    let first = line.split(',').next().unwrap_or_default().trim();
    match crate::directives::delta_seconds(first) {
        Seconds::Valid(seconds) => seconds,
        Seconds::Invalid => 0,
    }
}

/// The first `name` line as an HTTP date (any of the three formats RFC 9110
/// §5.6.7 makes recipients accept); None when absent or unreadable.
pub fn http_date(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<SystemTime> {
    let text = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(text.trim()).ok()
}

/// Statuses a cache may guess a lifetime for when the origin gave none
/// (RFC 9110 §15.1).
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Where a lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The origin said (an unreadable or contradictory word counts as 0).
    Explicit(u64),
    /// Guessed from `Last-Modified`.
    Heuristic(u64),
    /// Nothing to go on: stale at once, usable only after validation.
    None,
}

impl Lifetime {
    pub fn seconds(self) -> u64 {
        match self {
            Self::Explicit(seconds) | Self::Heuristic(seconds) => seconds,
            Self::None => 0,
        }
    }
}

/// §4.2.1, for a shared cache: how long a response with these `headers`,
/// `directives` and `status` stays fresh.
pub fn lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    directives: &Directives,
    timing: &Timing,
) -> Lifetime {
    let explicit = |seconds: Seconds| match seconds {
        Seconds::Valid(seconds) => Lifetime::Explicit(seconds),
        Seconds::Invalid => Lifetime::Explicit(0),
    };
    if let Some(seconds) = directives.s_maxage {
        return explicit(seconds);
    }
    if let Some(seconds) = directives.max_age {
        return explicit(seconds);
    }
    if headers.contains_key(EXPIRES) && !directives.targeted {
        // An Expires a cache cannot read means "already expired" (§5.3).
        return Lifetime::Explicit(
            http_date(headers, EXPIRES).map_or(0, |expires| seconds_between(timing.date, expires)),
        );
    }
    if !(heuristically_cacheable(status) || directives.public) {
        return Lifetime::None;
    }
    match http_date(headers, LAST_MODIFIED) {
        Some(modified) => {
            let since = seconds_between(modified, timing.date);
            Lifetime::Heuristic((since / 10).min(HEURISTIC_MAX.as_secs()))
        }
        None => Lifetime::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn date(seconds: u64) -> String {
        httpdate::fmt_http_date(at(seconds))
    }

    #[test]
    fn the_age_is_the_largest_of_what_the_response_says_plus_time_here() {
        // Sent at 0, arrived at 2 with Age 10 and a Date of 1: it was at
        // least 12 seconds old on arrival (10 + the 2 on the way).
        let timing = Timing::of(&headers(&[("age", "10"), ("date", &date(1))]), at(0), at(2));
        assert_eq!(timing.current_age(at(2)), 12);
        assert_eq!(timing.current_age(at(7)), 17);
        // A Date 100 s in the past says more than Age does.
        let timing = Timing::of(
            &headers(&[("age", "10"), ("date", &date(0))]),
            at(100),
            at(100),
        );
        assert_eq!(timing.current_age(at(100)), 100);
    }

    #[test]
    fn unreadable_ages_are_ignored_and_the_first_value_counts() {
        for (line, age) in [
            ("abc", 0),
            ("-7200", 0),
            ("7200.0", 0),
            ("0, 7200", 0),
            ("7200, 0", 7200),
        ] {
            assert_eq!(age_value(&headers(&[("age", line)])), age, "{line}");
        }
    }

    #[test]
    fn s_maxage_wins_then_max_age_then_expires() {
        let timing = Timing::of(&headers(&[("date", &date(0))]), at(0), at(0));
        let h = headers(&[
            ("cache-control", "max-age=60, s-maxage=30"),
            ("expires", &date(600)),
        ]);
        let lifetime = |h: &HeaderMap| lifetime(StatusCode::OK, h, &Directives::of(h), &timing);
        assert_eq!(lifetime(&h), Lifetime::Explicit(30));
        let h = headers(&[("cache-control", "max-age=60"), ("expires", &date(600))]);
        assert_eq!(lifetime(&h), Lifetime::Explicit(60));
        let h = headers(&[("expires", &date(600))]);
        assert_eq!(lifetime(&h), Lifetime::Explicit(600));
        let h = headers(&[("expires", "soon")]);
        assert_eq!(lifetime(&h), Lifetime::Explicit(0));
    }

    #[test]
    fn the_heuristic_is_a_tenth_of_the_time_since_last_modified_for_some_statuses() {
        let h = headers(&[("date", &date(1000)), ("last-modified", &date(0))]);
        let timing = Timing::of(&h, at(1000), at(1000));
        let d = Directives::of(&h);
        assert_eq!(
            lifetime(StatusCode::OK, &h, &d, &timing),
            Lifetime::Heuristic(100)
        );
        assert_eq!(
            lifetime(StatusCode::NOT_FOUND, &h, &d, &timing),
            Lifetime::Heuristic(100)
        );
        assert_eq!(
            lifetime(StatusCode::CREATED, &h, &d, &timing),
            Lifetime::None
        );
        let no_date = headers(&[("date", &date(1000))]);
        assert_eq!(
            lifetime(StatusCode::OK, &no_date, &d, &timing),
            Lifetime::None
        );
    }
}
