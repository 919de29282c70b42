//! Chapter 3, exercise 1: may trailers be passed on?

use hyper::header::HeaderMap;

/// Did the client say it can read trailers? Only then may a proxy send
/// them on (a client that never said so may not understand them). The
/// client says so with `TE: trailers`, possibly among other `TE` values
/// (`TE: gzip, trailers`), in any of several `TE` headers, and a value may
/// carry parameters (`trailers;q=1`).
///
/// Hint: every `TE` header counts; split each on commas, trim, and compare
/// the token before any `;`.
pub fn client_accepts_trailers(headers: &HeaderMap) -> bool {
    // A first attempt: look at the first TE header, as it is.
    headers
        .get("te")
        .is_some_and(|value| value.as_bytes() == b"trailers")
}
