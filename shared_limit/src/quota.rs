//! Quotas: at most N requests in a window — a second, or a UTC day — held
//! by every instance together, without a Redis round trip per request.
//!
//! A rate limit's bucket (GCRA, [`SharedLimits::check`]) must be asked on
//! every request: it is one number that moves with each. A quota is a
//! count in a window, and a count can be *leased*: an instance asks Redis
//! for a handful of admissions at once (one script, [`LEASE`], that
//! grants at most what is left of the limit), spends them locally, and
//! asks again when they are gone. Redis never grants more than the limit,
//! so the instances together never admit more than it; a lease an
//! instance holds but does not spend before the window ends is lost,
//! which is the price (at most one lease per instance per window).
//!
//! The size of a lease follows the instance's own traffic: a tenth of what
//! it took in the last second (or in this one so far, when that is more),
//! at least one, at most [`MAX_LEASE`] — and
//! the script grants at most a sixteenth of what is left, so the last
//! admissions of a window go one at a time, wherever they are asked for.
//! At a few requests a second every request asks Redis (exact, and
//! cheap at that rate); at thousands a second, one in hundreds does.
//!
//! Without Redis the count is the process' own.
//!
//! A second is a fixed window, not a sliding one: a client may spend one
//! window's quota at its end and the next one's at the start of the next.
//! That is the usual trade for a count that can be shared this cheaply;
//! a smooth rate is what the rate limits are for.

use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::SharedLimits;

/// Grant at most the asked number of admissions of KEYS[1]'s window,
/// never past the limit, and at most a sixteenth of what is left (at least
/// one). ARGV: asked, limit, seconds the key lives. Answers the grant, 0
/// when the window's quota is spent.
pub(crate) const LEASE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1])) or 0
local left = tonumber(ARGV[2]) - used
if left <= 0 then return 0 end
local grant = math.min(tonumber(ARGV[1]), math.max(1, math.floor(left / 16)))
redis.call('INCRBY', KEYS[1], grant)
if used == 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return grant
";

/// The most admissions one lease asks for.
pub const MAX_LEASE: u64 = 1000;

/// Seconds in a day: a UTC day is `unix seconds / DAY`.
const DAY: u64 = 86_400;

/// A quota's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Second,
    /// A UTC day.
    Day,
}

impl Window {
    fn seconds(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Day => DAY,
        }
    }

    /// How long a window's key is kept in Redis after `now`: past its end,
    /// a day's two more days (someone may want to look), a second's one.
    fn key_lifetime(self, period: u64, now: u64) -> u64 {
        let end = (period + 1) * self.seconds();
        let after = match self {
            Window::Second => 1,
            Window::Day => 2 * DAY,
        };
        end.saturating_sub(now) + after
    }
}

/// What a quota said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Admitted,
    /// This window's quota is spent.
    Exhausted,
    /// Redis did not answer (in time): its `fail` mode decides.
    Unavailable,
}

/// At most `limit` requests per window, counted under `key`
/// (`<key>:<window number>` in Redis).
pub struct Quota {
    limit: u64,
    window: Window,
    key: String,
    state: Mutex<State>,
}

/// What this instance knows of the current window.
#[derive(Default)]
struct State {
    /// The window (unix seconds / its length) the rest is about.
    period: u64,
    /// Without Redis: admitted in this window.
    used: u64,
    /// Granted by Redis and not yet spent.
    leased: u64,
    /// Redis said nothing is left in this window.
    spent: bool,
    /// Requests in this second and the last, to size leases.
    second: u64,
    this_second: u64,
    last_second: u64,
}

impl State {
    /// Move to the window and second of `now`.
    fn advance(&mut self, period: u64, now: u64) {
        if period != self.period {
            *self = State {
                period,
                second: self.second,
                this_second: self.this_second,
                last_second: self.last_second,
                ..State::default()
            };
        }
        if now != self.second {
            self.last_second = if now == self.second + 1 {
                self.this_second
            } else {
                0
            };
            self.second = now;
            self.this_second = 0;
        }
        self.this_second += 1;
    }

    /// How many admissions to ask for: a tenth of a second of this
    /// instance's traffic — the last second's, or this one's so far if
    /// more (traffic that starts or grows is not asked about one request
    /// at a time for a whole second).
    fn lease_size(&self) -> u64 {
        (self.last_second.max(self.this_second) / 10).clamp(1, MAX_LEASE)
    }
}

impl Quota {
    pub fn new(limit: u64, window: Window, key: impl Into<String>) -> Self {
        Self {
            limit,
            window,
            key: key.into(),
            state: Mutex::default(),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// Without Redis: the count is this process'.
    fn count_alone(&self, period: u64, now: u64) -> Taken {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.advance(period, now);
        if state.used >= self.limit {
            return Taken::Exhausted;
        }
        state.used += 1;
        Taken::Admitted
    }

    /// With Redis: answer from the lease this instance holds, or say how
    /// many admissions to ask for.
    fn spend_lease(&self, period: u64, now: u64) -> Result<Taken, u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.advance(period, now);
        if state.leased > 0 {
            state.leased -= 1;
            return Ok(Taken::Admitted);
        }
        if state.spent {
            return Ok(Taken::Exhausted);
        }
        Err(state.lease_size())
    }

    /// Count one request: admitted, or the window's quota is spent. With
    /// `shared`, the count is every instance's.
    pub async fn take(&self, shared: Option<&SharedLimits>) -> Taken {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let period = now / self.window.seconds();
        let Some(shared) = shared else {
            return self.count_alone(period, now);
        };
        let asked = match self.spend_lease(period, now) {
            Ok(taken) => return taken,
            Err(asked) => asked,
        };
        let key = format!("{}:{period}", self.key);
        let mut lease = shared.lease.key(key);
        lease
            .arg(asked)
            .arg(self.limit)
            .arg(self.window.key_lifetime(period, now));
        let granted = shared.ask::<u64>(&lease).await;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let current = state.period == period;
        match granted {
            None => Taken::Unavailable,
            Some(0) => {
                if current {
                    state.spent = true;
                }
                Taken::Exhausted
            }
            Some(granted) => {
                if current {
                    state.leased += granted - 1;
                }
                Taken::Admitted
            }
        }
    }
}
