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
        let header = ip_header_value(peer.ip());
        Self {
            peer,
            scheme,
            client: peer.ip(),
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

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The connection as seen for one request: `conn` itself unless its
    /// peer is trusted, else with the client taken from `X-Forwarded-For`.
    pub fn client_of(&self, conn: &ClientConn, headers: &HeaderMap) -> Option<ClientConn> {
        if self.is_empty() || !self.trusts(conn.peer.ip()) {
            return None;
        }
        // Right to left: the entries trusted proxies appended are skipped;
        // the first one that is not trusted is the client. An entry that
        // is not an address ends the walk: nothing left of it can be
        // believed, so the last trusted hop stands for the client.
        let mut client = conn.peer.ip();
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for entry in forwarded.iter().rev() {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
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
        // No header: the trusted peer itself.
        assert_eq!(resolve(&lb, "10.0.0.5", &[]), "10.0.0.5");
        // Nothing trusted: always the peer.
        assert_eq!(resolve(&[], "10.0.0.5", &["192.0.2.7"]), "10.0.0.5");
    }
}
