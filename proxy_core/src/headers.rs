//! The header rules every proxy in the course obeys, written once.
//!
//! A proxy stands between two connections, and some headers describe a
//! connection rather than the message: they are *hop-by-hop*. Forwarding
//! them would make the next hop act on a conversation it was never part of
//! (a `Keep-Alive` timeout meant for the client, a `Transfer-Encoding` the
//! proxy already decoded, `Proxy-Authorization` credentials meant for us).
//! RFC 9110 §7.6.1 lists the fixed ones and lets a sender name more in
//! `Connection`; every `Connection` header counts, not just the first.
//!
//! Step 01 applies them as they are; step 03 adds the exceptions Go's
//! ReverseProxy makes (`Te: trailers`, protocol upgrades).

use std::net::IpAddr;

use hyper::Uri;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::Authority;

/// The headers that are always hop-by-hop (RFC 9110 §7.6.1, plus the
/// non-standard `Proxy-Connection` and `Keep-Alive` that old clients send).
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Is `name` one of the fixed hop-by-hop headers? For engines that compare
/// raw bytes (step 10) rather than parsed names.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_str().as_bytes()))
}

/// Does this `TE` value list `trailers` (among other codings, with or
/// without parameters, in any case)? Then the client takes trailers, and
/// `TE: trailers` is the one `TE` a proxy passes on (Go's rule): without
/// it a gRPC backend would not send its status. `TE: trailers, deflate`
/// counts; `deflate` alone does not.
pub fn te_lists_trailers(value: &[u8]) -> bool {
    value.split(|b| *b == b',').any(|coding| {
        let name = coding.split(|b| *b == b';').next().unwrap_or_default();
        name.trim_ascii().eq_ignore_ascii_case(b"trailers")
    })
}

/// Methods a request may be sent twice with (RFC 9110 §9.2.2): the ones a
/// retry can repeat without doing twice what the client asked once.
pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

/// Every header name listed in any `Connection` header.
pub fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
        .collect()
}

/// Remove the fixed hop-by-hop headers and every header `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_listed(headers) {
        headers.remove(name);
    }
    // One pass over the names present instead of a hashed lookup for each
    // of the nine: most messages carry one hop-by-hop header or none, and
    // a proxy does this twice per request.
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name))
        .cloned()
        .collect();
    for name in present {
        headers.remove(name);
    }
}

/// The client's address as a header value, made once per connection:
/// formatting an IP address for every request shows up in profiles.
pub fn ip_header_value(ip: IpAddr) -> HeaderValue {
    let mut text = [0u8; 48];
    HeaderValue::from_bytes(format_ip(ip, &mut text))
        .expect("an IP address is a valid header value")
}

/// An address as text, without allocating. An IPv4 address, the usual
/// case, is written digit by digit: through `Display` (the `fmt`
/// machinery, padding and all) the two addresses of every request cost
/// 1,900 instructions, an eighth of a step 10 request (bench/README.md,
/// "Hooks").
pub fn format_ip(ip: IpAddr, into: &mut [u8; 48]) -> &[u8] {
    let IpAddr::V4(v4) = ip else {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(&mut into[..]);
        let _ = write!(cursor, "{ip}");
        let len = cursor.position() as usize;
        return &into[..len];
    };
    let mut at = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            into[at] = b'.';
            at += 1;
        }
        if octet >= 100 {
            into[at] = b'0' + octet / 100;
            at += 1;
        }
        if octet >= 10 {
            into[at] = b'0' + octet / 10 % 10;
            at += 1;
        }
        into[at] = b'0' + octet % 10;
        at += 1;
    }
    &into[..at]
}

/// Append the client to `X-Forwarded-For`, folding earlier values (from
/// proxies before us, or forged by the client: the list is only as
/// trustworthy as its first hop) into one comma-separated header.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: &HeaderValue) {
    let name = HeaderName::from_static("x-forwarded-for");
    let prior: Vec<&[u8]> = headers
        .get_all(&name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if prior.is_empty() {
        headers.insert(name, client.clone());
        return;
    }
    let mut value = prior.join(&b", "[..]);
    value.extend_from_slice(b", ");
    value.extend_from_slice(client.as_bytes());
    let value = HeaderValue::from_bytes(&value).expect("joined header values stay valid");
    headers.insert(name, value);
}

/// The longest `Host` taken: a DNS name (253 bytes), a colon and a port.
pub const MAX_HOST_LEN: usize = 253 + 6;

/// The host a request is for: the request line's authority when it has
/// one (absolute form wins over `Host`, RFC 9112 §3.2.2), else the `Host`
/// header. A `Host`, whenever present, must be a host and an optional port
/// — nothing else: one carrying `/`, `?`, `@`, spaces or control bytes is
/// refused, since whatever copies it into a `Location`, a log line or a
/// forwarded header would carry the attacker's text along.
pub fn request_host(headers: &HeaderMap, uri: &Uri) -> Result<Option<Authority>, &'static str> {
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("a request target may not carry userinfo (user@host)");
    }
    let host = match headers.get(header::HOST) {
        None => None,
        Some(host) if host.len() > MAX_HOST_LEN => {
            return Err("the Host header is longer than a host name and port can be");
        }
        Some(host) => match Authority::try_from(host.as_bytes()) {
            Ok(authority) if !authority.as_str().contains('@') && !authority.host().is_empty() => {
                Some(authority)
            }
            _ => return Err("the Host header must be a host name or address and an optional port"),
        },
    };
    Ok(uri.authority().cloned().or(host))
}

/// An `Authorization`-style value split into its scheme and credentials.
/// Scheme names are case-insensitive (RFC 9110 §11.1): `basic`, `Basic`
/// and `BASIC` are one scheme, so the caller compares with
/// `eq_ignore_ascii_case`.
pub fn split_credentials(value: &HeaderValue) -> Option<(&str, &str)> {
    split_credential_bytes(value.as_bytes())
}

/// [`split_credentials`] of a value's bytes, as either engine's head view
/// gives them: visible ASCII only (what hyper's `to_str` accepts).
pub fn split_credential_bytes(value: &[u8]) -> Option<(&str, &str)> {
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, credentials) = text.trim().split_once(' ')?;
    Some((scheme, credentials.trim()))
}

/// Compare secrets in time that depends on their length only, so that how
/// long a refusal takes says nothing about how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.9",
            "192.168.100.1",
            "1.20.100.7",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.1.2.3",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut into = [0u8; 48];
            assert_eq!(format_ip(ip, &mut into), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn every_connection_header_and_every_listed_name_counts() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static("x-one, keep-alive"),
        );
        headers.append(header::CONNECTION, HeaderValue::from_static("X-Two"));
        for name in ["x-one", "x-two", "keep-alive", "te", "x-kept"] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static("1"));
        }
        remove_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn te_trailers_counts_among_other_codings() {
        for yes in [
            "trailers",
            "trailers, deflate",
            "deflate, Trailers;q=0.5",
            " trailers ",
        ] {
            assert!(te_lists_trailers(yes.as_bytes()), "{yes}");
        }
        for no in ["deflate", "trailersx", "", "gzip;trailers"] {
            assert!(!te_lists_trailers(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn idempotent_methods_are_rfc_9110s() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(method.as_bytes()), "{method}");
            let parsed: hyper::Method = method.parse().unwrap();
            assert!(parsed.is_idempotent(), "{method}");
        }
        for method in ["POST", "PATCH", "CONNECT", "get"] {
            assert!(!is_idempotent(method.as_bytes()), "{method}");
        }
    }

    #[test]
    fn forwarded_for_appends_after_earlier_hops() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.2, 10.0.0.3"),
        );
        append_forwarded_for(&mut headers, &ip_header_value("192.0.2.7".parse().unwrap()));
        let all: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7"]);
    }

    #[test]
    fn credentials_split_whatever_the_scheme_case() {
        let value = HeaderValue::from_static("bearer  abc.def ");
        assert_eq!(split_credentials(&value), Some(("bearer", "abc.def")));
        assert_eq!(split_credentials(&HeaderValue::from_static("Basic")), None);
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
    }

    #[test]
    fn host_headers_are_host_and_port_only() {
        let host = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_static(value));
            request_host(&headers, &Uri::from_static("/")).map(|a| a.map(|a| a.to_string()))
        };
        assert_eq!(
            host("example.com:8443"),
            Ok(Some("example.com:8443".into()))
        );
        assert_eq!(host("[::1]:80"), Ok(Some("[::1]:80".into())));
        for bad in [
            "evil.example:444/phish?x=",
            "a b",
            "user@example.com",
            "x?y",
            "",
        ] {
            assert!(host(bad).is_err(), "{bad:?}");
        }
        // The request line's authority wins over Host.
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("evil.example"));
        let uri = Uri::from_static("http://good.example/path");
        assert_eq!(
            request_host(&headers, &uri).unwrap().unwrap(),
            "good.example"
        );
    }

    #[test]
    fn an_overlong_host_and_userinfo_in_the_target_are_refused() {
        let mut headers = HeaderMap::new();
        let long = format!("{}.example", "a".repeat(61_000));
        headers.insert(header::HOST, HeaderValue::from_str(&long).unwrap());
        assert!(request_host(&headers, &Uri::from_static("/")).is_err());
        let longest = format!("{}:65535", "a".repeat(253));
        headers.insert(header::HOST, HeaderValue::from_str(&longest).unwrap());
        assert!(request_host(&headers, &Uri::from_static("/")).is_ok());
        let target = Uri::from_static("http://user:pw@good.example/path");
        assert!(request_host(&HeaderMap::new(), &target).is_err());
    }
}
