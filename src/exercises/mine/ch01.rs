//! Chapter 1's exercises: the two checks a forward proxy makes before it
//! dials anywhere.

use std::net::IpAddr;

use hyper::header::HeaderValue;

/// Exercise 1. May a client of this proxy *not* reach `ip`? True for the
/// addresses that lead into the network behind the proxy rather than out to
/// the internet: loopback, the private ranges, link-local (where cloud
/// metadata services such as `169.254.169.254` live), the shared CGNAT
/// range `100.64.0.0/10`, unspecified `0.0.0.0`, IPv6 unique-local
/// `fc00::/7` — and any IPv6 address that carries one of those IPv4
/// addresses inside it (`::ffff:127.0.0.1`).
///
/// Hint: `IpAddr::to_canonical` turns an IPv4-mapped IPv6 address back into
/// IPv4; `Ipv4Addr` has `is_loopback`, `is_private`, `is_link_local`,
/// `is_unspecified`; the rest are a comparison of octets or segments.
pub fn is_off_limits(ip: IpAddr) -> bool {
    // A first attempt: loopback and the private IPv4 ranges.
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// Exercise 2. Does `offered`, a `Proxy-Authorization` header value, carry
/// the Basic credentials whose base64 is `expected` (`alice:secret` is
/// `YWxpY2U6c2VjcmV0`)? The scheme's name is case-insensitive (`basic`,
/// `Basic`, `BASIC`), and there may be extra spaces around the
/// credentials. Compare the secret in constant time: a comparison that stops
/// at the first wrong byte tells an attacker, by how long the refusal took,
/// how much of a guess was right.
///
/// Hint: `proxy_core::headers::split_credentials` and `constant_time_eq`.
pub fn basic_credentials_match(offered: Option<&HeaderValue>, expected: &str) -> bool {
    // A first attempt: the whole header, byte for byte, with `==`.
    offered.is_some_and(|value| value.as_bytes() == format!("Basic {expected}").as_bytes())
}
