//! The chain as plain data, and the one place it is put together.
//!
//! Step 05 fills [`ChainSettings`] from its flags; the gateway fills one
//! for every request (`[global]`) and one per service from its TOML file.
//! Either way [`ChainSettings::build`] makes the chain, in the one order
//! this crate teaches (see the crate's doc for why):
//!
//! request id → statistics → rate limit → auth → breaker → rewrite →
//! header transforms → endpoint
//!
//! A link is in the chain only when its settings are there. The rate
//! limit is the one link a caller may supply itself: the gateway's is held
//! in Redis by every instance together (`shared_limit`), step 05's in the
//! process ([`RateLimit`]).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::auth::{Auth, AuthConfigError, JwtKey};
use crate::breaker::{Breaker, BreakerPolicy};
use crate::headers::{EditHeaders, HeaderEdits};
use crate::rate_limit::{DEFAULT_MAX_KEYS, Limit, RateKey, RateLimit, SharedLimit};
use crate::request_id::RequestId;
use crate::rewrite::{Rewrite, Rule};
use crate::stats::{Metrics, Stats};
use crate::{Chain, Endpoint};

/// Which links a chain has, and how each is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainSettings {
    /// Give every request an `X-Request-Id` (and its log lines a span).
    pub request_id: bool,
    /// Count requests, statuses, bytes and latency into the metrics.
    pub statistics: bool,
    pub rate_limit: Option<RateLimitSettings>,
    pub auth: Option<AuthSettings>,
    pub breaker: Option<BreakerSettings>,
    /// Path rewrites, tried in order (a stripped prefix is one).
    pub rewrite: Vec<Rule>,
    /// Headers set and removed on the way up, and on the way back.
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
}

/// A token bucket per key.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSettings {
    pub rps: NonZeroU32,
    pub burst: NonZeroU32,
    pub key: RateKey,
    /// The most buckets kept at once (in the process).
    pub max_keys: usize,
}

impl RateLimitSettings {
    /// `rps` a second per `key`, bursts of `burst`, the default table size.
    pub fn new(rps: NonZeroU32, burst: NonZeroU32, key: RateKey) -> Self {
        Self {
            rps,
            burst,
            key,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

/// Credentials and address rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthSettings {
    /// `user:password` pairs accepted with Basic auth.
    pub basic: Vec<String>,
    pub jwt: Option<JwtSettings>,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

/// Bearer tokens: the key that signs them, and the claims they must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtSettings {
    pub key: JwtKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// The circuit breaker and the concurrency cap (at least one is set).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Open at this share of failed requests (percent, 1 to 100).
    pub error_rate: Option<u8>,
    /// …over at least this many requests in the window.
    pub min_requests: u64,
    /// How long the circuit stays open before a probe.
    pub open: Duration,
    /// At most this many requests in flight; 503 beyond.
    pub max_concurrent: Option<usize>,
}

impl BreakerSettings {
    /// The breaker these settings describe, counting into `metrics`.
    pub fn build(&self, metrics: &Arc<Metrics>) -> Arc<Breaker> {
        let policy = BreakerPolicy::new(self.error_rate, self.min_requests, self.open);
        Arc::new(Breaker::new(policy, self.max_concurrent, metrics.clone()))
    }
}

/// Makes the rate-limit link from its settings (the gateway's shares its
/// buckets through Redis).
pub type MakeRateLimit = dyn Fn(&RateLimitSettings) -> Arc<dyn SharedLimit> + Send + Sync;

/// A chain, and the links its owner reads back (the breaker's state for an
/// admin page).
pub struct Built {
    pub chain: Chain,
    pub breaker: Option<Arc<Breaker>>,
    /// The chain's rate limit: another engine serving the same routes asks
    /// the same buckets.
    pub rate_limit: Option<Limit>,
    /// The chain's auth and rewrite, for another engine to ask the same.
    pub auth: Option<Arc<Auth>>,
    pub rewrite: Option<Arc<Rewrite>>,
    /// The chain's header transforms.
    pub headers: Option<Arc<EditHeaders>>,
}

impl ChainSettings {
    /// The chain these settings describe in front of `endpoint`; a rate
    /// limit is made by `rate_limiter` when given, else kept in the process.
    pub fn build(
        &self,
        endpoint: Arc<dyn Endpoint>,
        metrics: &Arc<Metrics>,
        rate_limiter: Option<&MakeRateLimit>,
    ) -> Result<Built, AuthConfigError> {
        let mut chain = Chain::new(endpoint);
        if self.request_id {
            chain = chain.with(Arc::new(RequestId));
        }
        if self.statistics {
            chain = chain.with(Arc::new(Stats {
                metrics: metrics.clone(),
            }));
        }
        let limit = self.rate_limit.as_ref().map(|limit| match rate_limiter {
            Some(make) => Limit::Shared(make(limit)),
            None => Limit::Local(Arc::new(RateLimit::with_max_keys(
                limit.rps,
                limit.burst,
                limit.key.clone(),
                metrics.clone(),
                limit.max_keys,
            ))),
        });
        match &limit {
            Some(Limit::Local(local)) => chain = chain.with(local.clone()),
            Some(Limit::Shared(shared)) => chain = chain.with(shared.clone()),
            None => {}
        }
        let auth = match &self.auth {
            Some(auth) => Some(Arc::new(auth.build()?)),
            None => None,
        };
        if let Some(auth) = &auth {
            chain = chain.with(auth.clone());
        }
        let breaker = self.breaker.as_ref().map(|breaker| breaker.build(metrics));
        if let Some(breaker) = &breaker {
            chain = chain.with(breaker.clone());
        }
        let rewrite =
            (!self.rewrite.is_empty()).then(|| Arc::new(Rewrite::new(self.rewrite.clone())));
        if let Some(rewrite) = &rewrite {
            chain = chain.with(rewrite.clone());
        }
        let headers =
            (!self.request_headers.is_empty() || !self.response_headers.is_empty()).then(|| {
                Arc::new(EditHeaders {
                    request: self.request_headers.clone(),
                    response: self.response_headers.clone(),
                })
            });
        if let Some(headers) = &headers {
            chain = chain.with(headers.clone());
        }
        Ok(Built {
            chain,
            breaker,
            rate_limit: limit,
            auth,
            rewrite,
            headers,
        })
    }
}

impl AuthSettings {
    /// The auth link these settings describe.
    pub fn build(&self) -> Result<Auth, AuthConfigError> {
        let mut auth = Auth::default()
            .basic(self.basic.clone())
            .allow(self.allow.clone())
            .deny(self.deny.clone());
        if let Some(jwt) = &self.jwt {
            auth = auth.jwt(jwt.key.clone())?;
            if let Some(issuer) = &jwt.issuer {
                auth = auth.jwt_issuer(issuer);
            }
            if let Some(audience) = &jwt.audience {
                auth = auth.jwt_audience(audience);
            }
        }
        Ok(auth)
    }
}
