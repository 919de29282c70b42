//! Validation: asking the origin "is what I have still good?", and
//! answering a client who asks the cache the same (RFC 9111 §4.3).
//!
//! A stale response is not thrown away: if it carries a validator — an
//! `ETag`, a `Last-Modified` date — the cache sends the request on with
//! `If-None-Match` / `If-Modified-Since`, and an origin whose resource has
//! not changed answers `304 Not Modified`: a head, no body. The cache then
//! refreshes the stored head from the 304's (a new `Date`, maybe a new
//! `Cache-Control`) and serves the body it already had. A client may do
//! the same to the cache: its `If-None-Match` is compared with the stored
//! `ETag` (weakly: `W/"x"` matches `"x"`), and the cache answers 304 itself.

use hyper::header::{self, CONTENT_LENGTH, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method};

use crate::directives::Directives;
use crate::freshness::{self, Timing, http_date};
use crate::store::Stored;

/// Take the client's own conditions off a request the cache sends for
/// itself: it wants the full response, to store, whatever the client has.
pub fn unconditional(parts: &mut Parts) {
    for name in [
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ] {
        parts.headers.remove(name);
    }
}

/// Make `parts` ask whether `stored` is still good. None when it has no
/// validator to ask with.
pub fn ask_about(parts: &mut Parts, stored: &Stored) -> Option<()> {
    unconditional(parts);
    let (etag, modified) = (stored.etag().cloned(), stored.last_modified().cloned());
    if etag.is_none() && modified.is_none() {
        return None;
    }
    if let Some(etag) = etag {
        parts.headers.insert(IF_NONE_MATCH, etag);
    }
    if let Some(modified) = modified {
        parts.headers.insert(IF_MODIFIED_SINCE, modified);
    }
    Some(())
}

/// `stored`, with its head refreshed from a 304's `headers` (§3.2): each
/// field the 304 has replaces the stored one, but `Content-Length` and
/// `Content-Encoding` — the 304 has no body, so they say nothing about the
/// stored one.
pub fn refreshed(stored: &Stored, headers: &HeaderMap, timing: Timing) -> Stored {
    let mut merged = stored.headers.clone();
    let mut replaced = Vec::new();
    for (name, value) in headers {
        // Framing and coding describe the stored body, not the 304's.
        if *name == CONTENT_LENGTH || *name == header::AGE || *name == header::CONTENT_ENCODING {
            continue;
        }
        if !replaced.contains(name) {
            merged.remove(name);
            replaced.push(name.clone());
        }
        merged.append(name.clone(), value.clone());
    }
    // A body this cache changed (rewritten, compressed) keeps its weak
    // validator: the origin's strong one names other bytes.
    if stored
        .etag()
        .is_some_and(|etag| etag.as_bytes().starts_with(b"W/"))
    {
        crate::rewrite::weaken_etag(&mut merged);
    }
    let directives = Directives::of_response(&merged);
    let lifetime = freshness::lifetime(stored.status, &merged, &directives, &timing);
    Stored {
        status: stored.status,
        headers: merged,
        body: stored.body.clone(),
        trailers: stored.trailers.clone(),
        selecting: stored.selecting.clone(),
        timing,
        lifetime,
        directives,
    }
}

/// Does the client already have `stored`, by its conditional headers?
/// (§4.3.2: `If-None-Match` first; `If-Modified-Since` only without it.)
pub fn client_has(method: &Method, request: &HeaderMap, stored: &Stored) -> bool {
    if *method != Method::GET && *method != Method::HEAD {
        return false;
    }
    if request.contains_key(IF_NONE_MATCH) {
        let Some(etag) = stored.etag() else {
            return false;
        };
        let etag = etag.to_str().unwrap_or_default();
        return request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|line| line.to_str().ok())
            .any(|line| etag_listed(line, etag));
    }
    let Some(since) = http_date(request, IF_MODIFIED_SINCE) else {
        return false;
    };
    let modified = http_date(&stored.headers, LAST_MODIFIED)
        .or_else(|| http_date(&stored.headers, header::DATE))
        .unwrap_or(stored.timing.received);
    modified <= since
}

/// Is `etag` in the `If-None-Match` list `list` (`*` or entity tags,
/// compared weakly: `W/"x"` matches `"x"`)?
pub fn etag_listed(list: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let held = opaque(etag);
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || opaque(tag) == held)
}

/// The headers a 304 from the cache carries: the stored ones that describe
/// the response and guide caches, without the body's framing.
pub fn not_modified_headers(stored: &Stored) -> HeaderMap {
    let mut headers = stored.headers.clone();
    for name in [
        CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    headers
}
