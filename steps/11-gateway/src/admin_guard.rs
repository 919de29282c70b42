//! What stands between the admin API and someone guessing its token.
//!
//! A bearer token can be guessed only as fast as the API answers, so the
//! API answers each client address (an IPv6 /64 counting as one) at most
//! [`PER_SECOND`] times a second, bursts of [`BURST`] — far more than an
//! operator or a dashboard needs, far less than the tens of thousands of
//! guesses a second an unthrottled listener takes. Wrong tokens are logged,
//! at most once per [`LOG_EVERY`] with how many came meanwhile. And the
//! comparison takes the same time whatever was offered: both tokens are
//! hashed first, so not even a wrong *length* answers faster.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use proxy_core::client::client_share;
use proxy_core::headers::constant_time_eq;
use sha2::{Digest, Sha256};

/// Admin requests a second per client address, and the burst above it,
/// unless `[admin]` says otherwise (`rps`, `burst`).
pub const PER_SECOND: u32 = 20;
pub const BURST: u32 = 40;

/// How often wrong tokens are logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct AdminGuard {
    token: [u8; 32],
    per_client: PerClient,
    wrong: Mutex<WrongTokens>,
}

/// Each client address (an IPv6 /64 counting as one) answered at most
/// `rps` times a second: what makes guessing a secret slow. The token
/// endpoint has one too, for apps' secrets.
pub(crate) struct PerClient {
    rps: NonZeroU32,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl PerClient {
    pub(crate) fn new(rps: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            rps,
            limiter: RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst)),
        }
    }

    /// Requests a second a client may make.
    pub(crate) fn rps(&self) -> NonZeroU32 {
        self.rps
    }

    /// May `client` be answered now?
    pub(crate) fn admits(&self, client: IpAddr) -> bool {
        let admitted = self.limiter.check_key(&client_share(client)).is_ok();
        // Forget clients whose buckets are full again, now and then, so the
        // table holds only the busy ones.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        admitted
    }
}

/// Wrong tokens since the last log line.
struct WrongTokens {
    count: u64,
    last_logged: Option<Instant>,
}

impl AdminGuard {
    pub(crate) fn new(token: &str, rps: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            token: Sha256::digest(token.as_bytes()).into(),
            per_client: PerClient::new(rps, burst),
            wrong: Mutex::new(WrongTokens {
                count: 0,
                last_logged: None,
            }),
        }
    }

    /// Requests a second a client may make.
    pub(crate) fn rps(&self) -> NonZeroU32 {
        self.per_client.rps()
    }

    /// May `client` be answered now?
    pub(crate) fn admits(&self, client: IpAddr) -> bool {
        self.per_client.admits(client)
    }

    /// Is `offered` the token? In time that depends on neither.
    pub(crate) fn is_token(&self, offered: &str) -> bool {
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        constant_time_eq(&offered, &self.token)
    }

    /// Note a wrong (or missing) token from `client`; logged at most once
    /// per [`LOG_EVERY`].
    pub(crate) fn wrong_token(&self, client: IpAddr) {
        let mut wrong = self.wrong.lock().unwrap_or_else(PoisonError::into_inner);
        wrong.count += 1;
        let now = Instant::now();
        if wrong
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            tracing::warn!(
                "admin API: {} request(s) without the right token, the latest from {client}",
                wrong.count
            );
            wrong.count = 0;
            wrong.last_logged = Some(now);
        }
    }
}
