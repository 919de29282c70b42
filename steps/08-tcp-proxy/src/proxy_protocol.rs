//! HAProxy's PROXY protocol: a line (v1) or a block of bytes (v2) the proxy
//! writes to the upstream before anything else, saying who the client is.
//!
//! An L4 proxy cannot add a header to bytes it does not parse, so without
//! this the upstream sees every connection come from the proxy. The
//! upstream must expect it (nginx `listen … proxy_protocol`, HAProxy
//! `accept-proxy`, Redis does not): to one that does not, the header is the
//! start of garbage. Version 1 is text, easy to read in a capture; version
//! 2 is binary, fixed-size and cheaper to parse.
//!
//! Left out on purpose: v2's TLVs (TLS details, unique ids), UNIX sockets,
//! and reading the protocol on our own listener (accepting it from a load
//! balancer in front).

use std::net::{IpAddr, SocketAddr};

/// Which version to speak (`--proxy-protocol v1|v2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl std::str::FromStr for Version {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "v1" | "1" => Ok(Self::V1),
            "v2" | "2" => Ok(Self::V2),
            _ => Err(format!("{raw:?}: expected v1 or v2")),
        }
    }
}

/// The 12 bytes that open a v2 header; no HTTP or v1 text starts this way.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header for a connection from `client` to `proxy` (the address the
/// client connected to).
pub fn header(version: Version, client: SocketAddr, proxy: SocketAddr) -> Vec<u8> {
    // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
    let (source, destination) = (
        SocketAddr::new(client.ip().to_canonical(), client.port()),
        SocketAddr::new(proxy.ip().to_canonical(), proxy.port()),
    );
    match version {
        Version::V1 => v1(source, destination).into_bytes(),
        Version::V2 => v2(source, destination),
    }
}

fn v1(source: SocketAddr, destination: SocketAddr) -> String {
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => "TCP4",
        (IpAddr::V6(_), IpAddr::V6(_)) => "TCP6",
        // Mixed families cannot be said in v1: "UNKNOWN" tells the upstream
        // to use the connection's own addresses.
        _ => return "PROXY UNKNOWN\r\n".to_owned(),
    };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
}

fn v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    // Version 2, command PROXY.
    header.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            // TCP over IPv4; 12 bytes of addresses and ports follow.
            header.push(0x11);
            header.extend(12u16.to_be_bytes());
            header.extend(from.octets());
            header.extend(to.octets());
        }
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            header.push(0x21);
            header.extend(36u16.to_be_bytes());
            header.extend(from.octets());
            header.extend(to.octets());
        }
        _ => {
            // Unspecified family, no addresses: use the connection's own.
            header.push(0x00);
            header.extend(0u16.to_be_bytes());
            return header;
        }
    }
    header.extend(source.port().to_be_bytes());
    header.extend(destination.port().to_be_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn version_1_is_one_line_of_text() {
        let line = header(Version::V1, addr("192.0.2.7:51000"), addr("10.0.0.1:6379"));
        assert_eq!(line, b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 6379\r\n");
        let line = header(Version::V1, addr("[2001:db8::7]:51000"), addr("[::1]:6379"));
        assert_eq!(line, b"PROXY TCP6 2001:db8::7 ::1 51000 6379\r\n");
        let mapped = header(
            Version::V1,
            addr("[::ffff:192.0.2.7]:1"),
            addr("[::ffff:10.0.0.1]:2"),
        );
        assert_eq!(mapped, b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\n");
    }

    #[test]
    fn version_2_is_a_fixed_binary_block() {
        let block = header(Version::V2, addr("192.0.2.7:51000"), addr("10.0.0.1:6379"));
        assert_eq!(&block[..12], &V2_SIGNATURE);
        assert_eq!(block[12], 0x21, "version 2, PROXY");
        assert_eq!(block[13], 0x11, "TCP over IPv4");
        assert_eq!(&block[14..16], &[0, 12]);
        assert_eq!(&block[16..20], &[192, 0, 2, 7]);
        assert_eq!(&block[20..24], &[10, 0, 0, 1]);
        assert_eq!(&block[24..26], &51000u16.to_be_bytes());
        assert_eq!(&block[26..28], &6379u16.to_be_bytes());
        assert_eq!(block.len(), 28);
        let v6 = header(Version::V2, addr("[2001:db8::7]:1"), addr("[::1]:2"));
        assert_eq!((v6[13], v6.len()), (0x21, 16 + 36));
    }
}
