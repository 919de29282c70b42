//! Who is on the other end of a connection, and who the client really is.
//!
//! Every proxy here needs the client's address: to append it to
//! `X-Forwarded-For`, to key a rate limit, to check an allow list, to pick
//! an upstream by hashing it. The accept loop knows the TCP peer once per
//! connection, so it is captured once, with its header form made once too.
//!
//! Behind a load balancer the peer is the load balancer, and the client is
//! further left in `X-Forwarded-For`. Only peers the operator lists as
//! trusted ([`TrustedProxies`], `--trusted-proxy CIDR`) are believed: then
//! the client is the right-most address in `X-Forwarded-For` that is not
//! itself a trusted proxy (nginx's `set_real_ip_from` with
//! `real_ip_recursive on`). Anything left of it was written by someone the
//! operator does not vouch for, and could be a forgery. A peer that is not
//! trusted is the client, whatever its headers say.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{HeaderMap, HeaderValue};
use ipnet::IpNet;

use crate::headers::ip_header_value;

/// The connection a request arrived on, and the client it speaks for.
#[derive(Debug, Clone)]
pub struct ClientConn {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// `"http"` or `"https"`.
    pub scheme: &'static str,
    /// The client: the peer, or the address a trusted peer forwarded.
    client: IpAddr,
    /// `client` as a header value, formatted once.
    client_header: HeaderValue,
    /// The peer's IP as a header value (the hop this proxy saw).
    peer_header: HeaderValue,
    /// Is the peer a trusted proxy, whose forwarding headers count?
    peer_trusted: bool,
}

impl ClientConn {
    pub fn new(peer: SocketAddr, scheme: &'static str) -> Self {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d;
        // rules written for IPv4 (allow/deny, trusted proxies) must see a.b.c.d.
        let ip = peer.ip().to_canonical();
        let peer = SocketAddr::new(ip, peer.port());
        let header = ip_header_value(ip);
        Self {
            peer,
            scheme,
            client: ip,
            client_header: header.clone(),
            peer_header: header,
            peer_trusted: false,
        }
    }

    /// The client's IP: for allow lists, rate limits and hashing.
    pub fn client_ip(&self) -> IpAddr {
        self.client
    }

    /// The client's IP as a header value (X-Real-IP, rate-limit keys).
    pub fn ip(&self) -> &HeaderValue {
        &self.client_header
    }

    /// The peer's IP as a header value: what this hop appends to
    /// `X-Forwarded-For`.
    pub fn peer_ip(&self) -> &HeaderValue {
        &self.peer_header
    }

    /// Did a trusted proxy hand us this request? Then its
    /// `X-Forwarded-Host` and `X-Forwarded-Proto` are kept.
    pub fn peer_trusted(&self) -> bool {
        self.peer_trusted
    }
}

/// Whose share an address counts against — for connection caps and rate
/// limits alike: an IPv4 address, or an IPv6 address's /64. One host is
/// usually given a whole /64, and counting its addresses one by one would
/// give it 2^64 shares (and 2^64 buckets).
pub fn client_share(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client behind `peer`, if `peer` is trusted: the right-most
    /// entry of the `X-Forwarded-For` lines (`values`, in order) that no
    /// trusted proxy wrote. `None`: the peer is not trusted, and is the
    /// client itself. (Step 10, which has no `HeaderMap`, calls it with
    /// the raw values.)
    pub fn forwarded_client<'a>(
        &self,
        peer: IpAddr,
        values: impl Iterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        if self.is_empty() || !self.trusts(peer) {
            return None;
        }
        // Right to left: the entries trusted proxies appended are skipped;
        // the first one that is not trusted is the client. An entry that
        // is not an address ends the walk: nothing left of it can be
        // believed, so the last trusted hop stands for the client.
        let mut client = peer;
        let forwarded = values
            .flat_map(|value| value.split(|b| *b == b','))
            .collect::<Vec<_>>();
        for entry in forwarded.iter().rev() {
            let parsed = std::str::from_utf8(entry)
                .ok()
                .and_then(|entry| entry.trim().parse::<IpAddr>().ok());
            match parsed {
                Some(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        Some(client)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The connection as seen for one request: `conn` itself unless its
    /// peer is trusted, else with the client taken from `X-Forwarded-For`.
    pub fn client_of(&self, conn: &ClientConn, headers: &HeaderMap) -> Option<ClientConn> {
        // Raw bytes, every line: a line that is not text must end the walk
        // like any other garbage, not vanish and let what is left of it be
        // believed.
        let client = self.forwarded_client(
            conn.peer.ip(),
            headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|value| value.as_bytes()),
        )?;
        Some(ClientConn {
            client,
            client_header: ip_header_value(client),
            peer_trusted: true,
            ..conn.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(trusted: &[&str], peer: &str, forwarded: &[&str]) -> String {
        let trusted = TrustedProxies::new(trusted.iter().map(|n| n.parse().unwrap()).collect());
        let conn = ClientConn::new(format!("{peer}:1000").parse().unwrap(), "http");
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        match trusted.client_of(&conn, &headers) {
            Some(resolved) => resolved.client_ip().to_string(),
            None => conn.client_ip().to_string(),
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address() {
        let lb = ["10.0.0.0/8"];
        // A forged entry on the left is skipped past.
        assert_eq!(
            resolve(&lb, "10.0.0.5", &["6.6.6.6, 192.0.2.7"]),
            "192.0.2.7"
        );
        // Two trusted hops, over two headers.
        assert_eq!(
            resolve(&lb, "10.0.0.5", &["192.0.2.7, 10.0.0.9", "10.0.0.8"]),
            "192.0.2.7"
        );
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(resolve(&lb, "192.0.2.99", &["1.2.3.4"]), "192.0.2.99");
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(resolve(&lb, "10.0.0.5", &["192.0.2.7, junk"]), "10.0.0.5");
        // So do bytes that are not text, in the line or on a line of their own.
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let conn = ClientConn::new("10.0.0.5:1000".parse().unwrap(), "http");
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"6.6.6.6, \x80").unwrap(),
        );
        let client = trusted.client_of(&conn, &headers).unwrap().client_ip();
        assert_eq!(client.to_string(), "10.0.0.5");
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"192.0.2.7").unwrap(),
        );
        let client = trusted.client_of(&conn, &headers).unwrap().client_ip();
        assert_eq!(client.to_string(), "192.0.2.7");
        // No header: the trusted peer itself.
        assert_eq!(resolve(&lb, "10.0.0.5", &[]), "10.0.0.5");
        // Nothing trusted: always the peer.
        assert_eq!(resolve(&[], "10.0.0.5", &["192.0.2.7"]), "10.0.0.5");
    }
}
