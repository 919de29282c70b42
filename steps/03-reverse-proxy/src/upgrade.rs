//! Protocol upgrades (101 Switching Protocols): websockets through the proxy.
//!
//! `Upgrade` is hop-by-hop like `Connection`, yet an upgrade only works if
//! the backend sees it, so the proxy removes both with the other hop-by-hop
//! headers and then puts back exactly `Connection: Upgrade` and the one
//! protocol the client asked for. Two checks guard the tunnel, as in Go:
//! the requested protocol must be printable ASCII, and the backend must
//! switch to the protocol that was requested — anything else is a 502, not
//! a tunnel to who-knows-what.
//!
//! After the 101, both connections stop being HTTP. `hyper::upgrade::on`
//! hands over the client's and the backend's sockets, and bytes are copied
//! both ways until either side closes.
//!
//! `Upgrade: h2c` is never forwarded: a backend that switched to HTTP/2 on
//! the proxy's connection would let the client send requests the proxy
//! never sees — past every rule it enforces.

use std::net::SocketAddr;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tracing::debug;

/// The protocol named by `Upgrade`, if `Connection` lists `upgrade`.
pub fn requested_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_says_upgrade =
        forward_proxy::headers::connection_listed(headers).contains(&header::UPGRADE);
    if connection_says_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Printable ASCII only, as Go's `ascii.IsPrint` demands.
pub fn is_printable(protocol: &HeaderValue) -> bool {
    protocol
        .as_bytes()
        .iter()
        .all(|b| (b' '..=b'~').contains(b))
}

/// Is this the cleartext HTTP/2 upgrade we refuse to tunnel?
pub fn is_h2c(protocol: &HeaderValue) -> bool {
    protocol.as_bytes().eq_ignore_ascii_case(b"h2c")
}

/// Restore the two headers an upgrade needs after hop-by-hop stripping.
pub fn restore_upgrade_headers(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Copy bytes between client and backend until either closes.
pub fn spawn_tunnel(client: OnUpgrade, backend: OnUpgrade, peer: SocketAddr) {
    tokio::spawn(async move {
        let (client, backend): (Upgraded, Upgraded) = match tokio::try_join!(client, backend) {
            Ok(pair) => pair,
            Err(e) => {
                debug!("upgrade for {peer} failed: {e}");
                return;
            }
        };
        let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
        match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            Ok((up, down)) => {
                debug!("upgraded connection for {peer} closed: {up} bytes up, {down} down")
            }
            Err(e) => debug!("upgraded connection for {peer} broke: {e}"),
        }
    });
}
