//! Telling the backend who the client was.
//!
//! Behind a proxy every request comes from the proxy's address, so proxies
//! pass the client along in headers:
//!
//! - `X-Forwarded-For` is a list, one address per hop: each proxy appends the
//!   peer it saw (`proxy_core::headers::append_forwarded_for`). Anyone can write
//!   anything at its start, so a backend trusts only the entries its own
//!   proxies added, counted from the right.
//! - `X-Real-IP` is one address, the client's, set by the *first* proxy. The
//!   proxy at the edge overwrites whatever the client sent, which is what
//!   makes it unforgeable; proxies further in keep it.
//! - `X-Forwarded-Host` and `X-Forwarded-Proto` keep the `Host` and scheme
//!   the client used, which the director may just have changed.
//!
//! Whether this proxy is the edge is configuration ([`Forwarding`]): a proxy
//! cannot tell a forged header from an honest one by looking at it.
//!
//! These are set after hop-by-hop headers are removed, so a client's
//! `Connection: X-Forwarded-For` cannot strip them.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use proxy_core::ClientConn;
use proxy_core::headers::append_forwarded_for;

const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Where this proxy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forwarding {
    /// Clients connect directly: overwrite X-Real-IP, X-Forwarded-Host and
    /// X-Forwarded-Proto with what we saw.
    #[default]
    Edge,
    /// Our peers are trusted proxies: keep those headers when present.
    BehindProxy,
}

/// Add the forwarding headers to an outgoing request.
pub fn set_forwarded_headers(
    headers: &mut HeaderMap,
    client: &ClientConn,
    original_host: Option<HeaderValue>,
    forwarding: Forwarding,
) {
    append_forwarded_for(headers, client.ip());
    let keep = forwarding == Forwarding::BehindProxy;
    let mut set = |name: HeaderName, value: Option<HeaderValue>| {
        if keep && headers.contains_key(&name) {
            return;
        }
        match value {
            Some(value) => {
                headers.insert(name, value);
            }
            None => {
                headers.remove(name);
            }
        }
    };
    set(X_REAL_IP, Some(client.ip().clone()));
    set(X_FORWARDED_HOST, original_host);
    set(
        X_FORWARDED_PROTO,
        Some(HeaderValue::from_static(client.scheme)),
    );
}
