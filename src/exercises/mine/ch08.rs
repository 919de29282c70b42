//! Chapter 8's exercises: telling an upstream who the client is.

use std::net::SocketAddr;

/// Exercise 1. The PROXY protocol's version 1 line for a connection from
/// `client` to `proxy`: `PROXY TCP4 <client ip> <proxy ip> <client port>
/// <proxy port>\r\n` (TCP6 for IPv6). An IPv4 client accepted on a
/// dual-stack socket shows up as `::ffff:192.0.2.7`; the line must say
/// TCP4 and `192.0.2.7`, or an upstream matching addresses against IPv4
/// allow-lists would never match. A client and a proxy address of two
/// families (an IPv4 client on the proxy's IPv6 address) cannot share one
/// line: then it is `PROXY UNKNOWN\r\n`.
///
/// Hint: `IpAddr::to_canonical`; and the line ends with CR LF.
pub fn proxy_line(client: SocketAddr, proxy: SocketAddr) -> String {
    // A first attempt: the addresses as they came, and a bare newline.
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\n",
        client.ip(),
        proxy.ip(),
        client.port(),
        proxy.port()
    )
}

/// Exercise 2. The same in version 2, for IPv4 only: the 12-byte signature
/// `\r\n\r\n\0\r\nQUIT\n`, then `0x21` (version 2, PROXY), `0x11` (TCP over
/// IPv4), the length of what follows as two bytes big-endian (12), the
/// client's and the proxy's addresses (4 bytes each), then their ports (2
/// bytes each, big-endian).
///
/// Hint: `u16::to_be_bytes`, `Ipv4Addr::octets`.
pub fn proxy_block_v4(client: SocketAddr, proxy: SocketAddr) -> Vec<u8> {
    // A first attempt: the signature and the addresses, ports little-endian.
    let mut block = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    block.extend([0x21, 0x11, 0, 12]);
    for address in [client, proxy] {
        if let std::net::IpAddr::V4(v4) = address.ip() {
            block.extend(v4.octets());
        }
    }
    block.extend(client.port().to_le_bytes());
    block.extend(proxy.port().to_le_bytes());
    block
}
