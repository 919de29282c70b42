//! Where a forward proxy agrees to go.
//!
//! A forward proxy dials whatever its client names, from where the proxy
//! stands. Open to everyone, that turns it into a way in: a client outside
//! reaches the proxy's own loopback services (an admin page on
//! 127.0.0.1:9090), the private network behind it, the cloud's metadata
//! address (169.254.169.254) — server-side request forgery. And a target
//! that is the proxy itself makes it call itself: one `CONNECT` to its own
//! port nested two thousand deep turns one client socket into four
//! thousand of the proxy's.
//!
//! So, as Squid does by default, the proxy:
//! - resolves the target first and refuses it if any address it resolves
//!   to is loopback, private, link-local, unique-local, shared (CGNAT),
//!   multicast or unspecified, unless started with `--allow-private`.
//!   Checking the *resolved* address is what makes the rule hold however
//!   the target is spelled: `127.1`, `2130706433`, `0`, `[::ffff:127.0.0.1]`
//!   and `localhost` all resolve to a loopback address;
//! - then, for `CONNECT`, connects to exactly the addresses it checked; a
//!   plain request's connector resolves the name again through the same
//!   policy ([`crate::CheckedResolver`]), so either way a name that
//!   resolves differently a moment later (DNS rebinding) gets nowhere;
//! - refuses a target that resolves to its own listening socket (508), the
//!   loop check that still matters with `--allow-private`;
//! - tunnels `CONNECT` to port 443 only, unless `--connect-ports` lists
//!   more: a tunnel to port 25 or 22 is a spam relay or a shell, not HTTPS.
//!
//! Left out on purpose: allow and deny lists of names (a proxy that needs
//! them wants a real ACL language, like Squid's).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hyper::StatusCode;

/// Which ports `CONNECT` may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectPorts {
    Any,
    Only(Vec<u16>),
}

impl ConnectPorts {
    pub fn allows(&self, port: u16) -> bool {
        match self {
            ConnectPorts::Any => true,
            ConnectPorts::Only(ports) => ports.contains(&port),
        }
    }
}

impl FromStr for ConnectPorts {
    type Err = String;

    /// `any`, or ports separated by commas: `443,8443`.
    fn from_str(raw: &str) -> Result<Self, String> {
        if raw == "any" {
            return Ok(ConnectPorts::Any);
        }
        raw.split(',')
            .map(|port| match port.trim().parse::<u16>() {
                Ok(port) if port > 0 => Ok(port),
                _ => Err(format!(
                    "{port:?} is not a port: expected `any` or ports like 443,8443"
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ConnectPorts::Only)
    }
}

/// Why a destination was refused, with the status that says so.
#[derive(Debug)]
pub enum Refusal {
    /// The target resolves to an address the policy keeps clients away from.
    Private { address: IpAddr, kind: &'static str },
    /// The target is this proxy.
    Loop,
    /// `CONNECT` to a port not on the list.
    Port(u16),
    /// The name does not resolve.
    Unresolved(io::Error),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Private { .. } | Refusal::Port(_) => StatusCode::FORBIDDEN,
            Refusal::Loop => StatusCode::LOOP_DETECTED,
            Refusal::Unresolved(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Private { address, kind } => write!(
                f,
                "it resolves to {address}, a {kind} address; start the proxy with --allow-private to reach local and private networks"
            ),
            Refusal::Loop => write!(f, "that is this proxy, and the request would loop"),
            Refusal::Port(port) => write!(
                f,
                "CONNECT goes to port 443 only, not {port}; start the proxy with --connect-ports to allow more"
            ),
            Refusal::Unresolved(e) => write!(f, "cannot resolve it: {e}"),
        }
    }
}

/// The rules one proxy applies to every destination.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where this proxy listens (for the loop check).
    pub listen: SocketAddr,
    pub allow_private: bool,
    pub connect_ports: ConnectPorts,
}

impl Policy {
    /// Resolve `host:port` and check every address; the addresses to
    /// connect to, or why not.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(Refusal::Unresolved)?
            .map(|address| SocketAddr::new(address.ip().to_canonical(), address.port()))
            .collect();
        if addresses.is_empty() {
            return Err(Refusal::Unresolved(io::Error::new(
                io::ErrorKind::NotFound,
                "no addresses",
            )));
        }
        for address in &addresses {
            if self.is_self(*address) {
                return Err(Refusal::Loop);
            }
            if !self.allow_private
                && let Some(kind) = restricted(address.ip())
            {
                return Err(Refusal::Private {
                    address: address.ip(),
                    kind,
                });
            }
        }
        Ok(addresses)
    }

    /// [`resolve`](Self::resolve) for a `CONNECT`, which also checks the port.
    pub async fn resolve_tunnel(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        if !self.connect_ports.allows(port) {
            return Err(Refusal::Port(port));
        }
        self.resolve(host, port).await
    }

    fn is_self(&self, target: SocketAddr) -> bool {
        let (ip, ours) = (target.ip(), self.listen.ip());
        target.port() == self.listen.port()
            && (ip == ours
                || ours.is_unspecified()
                || ip.is_unspecified()
                || (ip.is_loopback() && ours.is_loopback()))
    }
}

/// What kind of address clients may not reach by default, if it is one.
pub fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (CGNAT)")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_multicast() || v4.is_broadcast() || a >= 240 {
                Some("multicast, broadcast or reserved")
            } else if (a, b, c) == (192, 0, 0) || (a == 198 && (18..20).contains(&b)) {
                Some("special-purpose")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let first = segments[0];
            // Addresses that carry an IPv4 address inside are judged by it:
            // IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96), 6to4 (2002::/16).
            let embedded = |high: u16, low: u16| {
                IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(high) << 16) | u32::from(low),
                ))
            };
            if segments[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return restricted(embedded(segments[6], segments[7]));
            }
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return restricted(embedded(segments[6], segments[7]));
            }
            if first == 0x2002 {
                return restricted(embedded(segments[1], segments[2]));
            }
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                Some("link- or site-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_local_address_is_restricted() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "fec0::1",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(restricted(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "100.128.0.1"] {
            assert_eq!(restricted(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn connect_ports_parse() {
        assert_eq!("any".parse(), Ok(ConnectPorts::Any));
        assert_eq!("443, 8443".parse(), Ok(ConnectPorts::Only(vec![443, 8443])));
        assert!(
            "443,ssh"
                .parse::<ConnectPorts>()
                .unwrap_err()
                .contains("\"ssh\"")
        );
        assert!("0".parse::<ConnectPorts>().is_err());
    }
}
