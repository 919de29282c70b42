//! `Cache-Status` (RFC 9211): what the cache did, on every answer.
//!
//! Without it, a cache is a black box: was that answer stored, how old is
//! it, did the origin see the request at all? RFC 9211 gives each cache on
//! the path one list member — its name, then parameters: `hit`, or `fwd=`
//! with why the request went upstream (`uri-miss`, `vary-miss`, `stale`,
//! `request`, `method`, `bypass`), `fwd-status` (what upstream answered),
//! `stored`, `collapsed` (it rode another request's flight), `ttl` (seconds
//! of freshness left, negative when stale) and `detail`. A cache appends
//! its member after those of caches nearer the origin.

use std::sync::Arc;

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use load_balance::Upstream;

pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Why a request went upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Nothing stored for the URL.
    UriMiss,
    /// Something stored for the URL, not for this request's `Vary` headers.
    VaryMiss,
    /// Stored, but stale (or `no-cache`): revalidated.
    Stale,
    /// The request asked to go upstream (`no-cache`, `max-age=0`...).
    Request,
    /// A method the cache does not answer (it may invalidate).
    Method,
    /// A request the cache does not handle (a range, a body).
    Bypass,
}

impl Forward {
    fn token(self) -> &'static str {
        match self {
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Stale => "stale",
            Self::Request => "request",
            Self::Method => "method",
            Self::Bypass => "bypass",
        }
    }
}

/// What the cache did for one answer: its `Cache-Status` member, and what
/// the counters read beside it.
#[derive(Debug, Clone, Default)]
pub struct CacheStatus {
    pub hit: bool,
    pub forward: Option<Forward>,
    pub forward_status: Option<u16>,
    pub stored: bool,
    pub collapsed: bool,
    pub ttl: Option<i64>,
    pub detail: Option<&'static str>,
    /// The upstream that answered the request this cache sent for it —
    /// not part of the header: the proxy around the cache counts by it.
    pub upstream: Option<Arc<Upstream>>,
    /// Body bytes answered from the store (not part of the header either:
    /// counted).
    pub body_from_store: u64,
}

impl CacheStatus {
    pub fn hit(ttl: i64) -> Self {
        Self {
            hit: true,
            ttl: Some(ttl),
            ..Self::default()
        }
    }

    pub fn forward(forward: Forward) -> Self {
        Self {
            forward: Some(forward),
            ..Self::default()
        }
    }

    pub fn detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Append this member, named `cache`, to `headers`' `Cache-Status`.
    pub fn append_to(&self, cache: &str, headers: &mut HeaderMap) {
        let mut member = cache.to_owned();
        if self.hit {
            member.push_str("; hit");
        }
        if let Some(forward) = self.forward {
            member.push_str("; fwd=");
            member.push_str(forward.token());
        }
        if let Some(status) = self.forward_status {
            member.push_str(&format!("; fwd-status={status}"));
        }
        if self.stored {
            member.push_str("; stored");
        }
        if self.collapsed {
            member.push_str("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            member.push_str(&format!("; ttl={ttl}"));
        }
        if let Some(detail) = self.detail {
            member.push_str("; detail=");
            member.push_str(detail);
        }
        if let Ok(value) = HeaderValue::from_str(&member) {
            headers.append(&CACHE_STATUS, value);
        }
    }
}
