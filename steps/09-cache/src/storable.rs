//! What a shared cache may store (RFC 9111 §3).
//!
//! Storing is the cache's promise to hand one client's answer to others,
//! so every rule here is about whose answer it is: `private` and an
//! `Authorization` header say it is one user's; `no-store` says it must not
//! be kept at all; and a response with nothing to say about freshness —
//! no `max-age`, `s-maxage`, `Expires`, `public`, nor a status a cache may
//! guess about — is not the cache's to keep.
//!
//! Stricter than the RFC, on purpose: a response that sets a cookie is
//! stored only when the origin gave it a lifetime or said `public` — never
//! on a guessed (heuristic) lifetime. The RFC allows storing it either way,
//! and a backend that puts a session cookie on a page with a
//! `Last-Modified` and nothing else would hand that session to every
//! visitor; an origin that writes `max-age` on it has said the page is
//! for everyone.
//!
//! Left out: partial content (`206`) is passed through, not stored; so is a
//! `HEAD` response.

use hyper::header::{AUTHORIZATION, SET_COOKIE};
use hyper::{HeaderMap, Method, StatusCode};

use crate::directives::Directives;
use crate::freshness::{Lifetime, heuristically_cacheable};
use crate::vary::Vary;

/// Why a response was not stored: the `detail` of its `Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Method,
    Status,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryStar,
    /// Nothing says how long it stays fresh, and it has no validator.
    NoFreshness,
    /// Larger than one entry may be.
    TooLarge,
}

impl NotStored {
    pub fn detail(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::SetCookie => "set-cookie",
            Self::VaryStar => "vary-star",
            Self::NoFreshness => "no-freshness",
            Self::TooLarge => "too-large",
        }
    }
}

/// The parts of an exchange §3 looks at.
pub struct Exchange<'a> {
    pub method: &'a Method,
    pub request_headers: &'a HeaderMap,
    pub request: &'a Directives,
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub response: &'a Directives,
    pub vary: &'a Vary,
    pub lifetime: Lifetime,
    pub has_validator: bool,
}

/// May a shared cache store this exchange's response?
pub fn check(exchange: &Exchange<'_>) -> Result<(), NotStored> {
    let response = exchange.response;
    if exchange.method != Method::GET {
        return Err(NotStored::Method);
    }
    let status = exchange.status;
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    // must-understand: a cache that knows the status's caching rules
    // ignores no-store; one that does not must not store (§5.2.2.3).
    if response.must_understand {
        if !understood(status) {
            return Err(NotStored::Status);
        }
    } else if response.no_store {
        return Err(NotStored::NoStore);
    }
    if exchange.request.no_store {
        return Err(NotStored::NoStore);
    }
    if response.private {
        return Err(NotStored::Private);
    }
    let vouched = response.public || response.s_maxage.is_some();
    if exchange.request_headers.contains_key(AUTHORIZATION)
        && !(vouched || response.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    let explicit = matches!(exchange.lifetime, Lifetime::Explicit(_));
    if exchange.headers.contains_key(SET_COOKIE) && !(vouched || explicit) {
        return Err(NotStored::SetCookie);
    }
    if *exchange.vary == Vary::Star {
        return Err(NotStored::VaryStar);
    }
    let says_freshness = explicit || response.public || heuristically_cacheable(status);
    // Stale from the start and nothing to revalidate with: useless.
    let useful = exchange.lifetime.seconds() > 0 || exchange.has_validator;
    if !(says_freshness && useful) {
        return Err(NotStored::NoFreshness);
    }
    Ok(())
}

/// Statuses whose caching rules this cache follows, for `must-understand`.
fn understood(status: StatusCode) -> bool {
    heuristically_cacheable(status) && status != StatusCode::PARTIAL_CONTENT
        || matches!(status.as_u16(), 302 | 303 | 307)
}
