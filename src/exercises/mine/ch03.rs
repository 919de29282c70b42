//! Chapter 3's exercises: two of the header rules a proxy lives by.

use hyper::header::HeaderMap;
use proxy_core::headers::HOP_BY_HOP;

/// Exercise 1. Did the client say it can read trailers? Only then may a
/// proxy send them on (a client that never said so may not understand
/// them). The client says so with `TE: trailers`, possibly among other
/// `TE` values (`TE: gzip, trailers`), in any of several `TE` headers, and
/// a value may carry parameters (`trailers;q=1`).
///
/// Hint: every `TE` header counts; split each on commas, trim, and compare
/// the token before any `;`.
pub fn client_accepts_trailers(headers: &HeaderMap) -> bool {
    // A first attempt: look at the first TE header, as it is.
    headers
        .get("te")
        .is_some_and(|value| value.as_bytes() == b"trailers")
}

/// Exercise 2. Remove the headers that belong to one hop and must not be
/// forwarded (RFC 9110 §7.6.1): the fixed ones in `HOP_BY_HOP`
/// (`Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`, …)
/// — and every header that a
/// `Connection` header names (`Connection: close, X-Secret` makes
/// `X-Secret` hop-by-hop too). Everything else stays.
///
/// Hint: read the names listed in *every* `Connection` header (a list,
/// comma-separated, with spaces) before removing `Connection` itself.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // A first attempt: the fixed list only.
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}
