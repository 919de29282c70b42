//! Chapter 7's exercises: sending plain HTTP to HTTPS, and which names a
//! certificate covers.

use hyper::http::uri::Authority;

/// Exercise 1. Where `--redirect-http` sends a request that came in over
/// plain HTTP for `authority` (the client's `Host`, maybe with the port it
/// used, e.g. `example.com:8080`) and `path` (path and query): the same
/// host over `https://`, on `https_port` — left out when it is 443, the
/// default — and the same path and query.
///
/// Hint: `Authority::host()` is the host without the port (an IPv6 host
/// keeps its brackets).
pub fn https_location(authority: &Authority, https_port: u16, path: &str) -> String {
    // A first attempt: the authority as the client sent it.
    format!("https://{authority}:{https_port}{path}")
}

/// Exercise 2. Does a certificate issued for `pattern` cover the server
/// name `name` a client asked for? Names compare case-insensitively. A
/// wildcard `*.example.com` stands for exactly one label: it covers
/// `www.example.com`, but neither `example.com` nor `a.b.example.com`
/// (RFC 6125 §6.4.3).
///
/// Hint: split off the first label of `name` and compare the rest.
pub fn certificate_covers(pattern: &str, name: &str) -> bool {
    // A first attempt: a wildcard matches any name that ends the same way.
    match pattern.strip_prefix('*') {
        Some(suffix) => name
            .to_ascii_lowercase()
            .ends_with(&suffix.to_ascii_lowercase()),
        None => pattern.eq_ignore_ascii_case(name),
    }
}
