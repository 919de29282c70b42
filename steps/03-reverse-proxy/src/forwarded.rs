//! Telling the backend who the client was.
//!
//! Behind a proxy every request comes from the proxy's address, so proxies
//! pass the client along in headers:
//!
//! - `X-Forwarded-For` is a list, one address per hop: each proxy appends the
//!   peer it saw (`proxy_core::headers::append_forwarded_for`). Anyone can write
//!   anything at its start, so a backend trusts only the entries its own
//!   proxies added, counted from the right.
//! - `X-Real-IP` is one address, the client's. This proxy always writes it
//!   itself, over whatever arrived, which is what makes it unforgeable: the
//!   TCP peer, or — when the peer is a trusted proxy (`--trusted-proxy`) —
//!   the right-most address in `X-Forwarded-For` that no trusted proxy
//!   wrote ([`proxy_core::TrustedProxies`]).
//! - `X-Forwarded-Host` and `X-Forwarded-Proto` keep the `Host` and scheme
//!   the client used, which the director may just have changed; a trusted
//!   proxy's values are kept, since it saw the client's.
//!
//! Which peers are trusted is configuration: a proxy cannot tell a forged
//! header from an honest one by looking at it.
//!
//! These are set after hop-by-hop headers are removed, so a client's
//! `Connection: X-Forwarded-For` cannot strip them.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use proxy_core::ClientConn;
use proxy_core::headers::append_forwarded_for;

const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Add the forwarding headers to an outgoing request.
pub fn set_forwarded_headers(
    headers: &mut HeaderMap,
    client: &ClientConn,
    original_host: Option<HeaderValue>,
) {
    // The hop we saw goes on the list; the client (the peer, or whom a
    // trusted peer forwarded) is X-Real-IP.
    append_forwarded_for(headers, client.peer_ip());
    headers.insert(X_REAL_IP, client.ip().clone());
    // A trusted proxy before us knows the Host and scheme the client used.
    let keep = client.peer_trusted();
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
    set(X_FORWARDED_HOST, original_host);
    set(
        X_FORWARDED_PROTO,
        Some(HeaderValue::from_static(client.scheme)),
    );
}
