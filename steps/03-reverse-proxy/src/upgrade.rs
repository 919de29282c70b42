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
//! hands over the client's and the backend's sockets as an [`Upgrade`], and
//! the proxy's [`UpgradeHandler`] decides what happens to them. The default,
//! [`spawn_tunnel`], copies bytes both ways until either side closes — all
//! Go does. Step 06 installs a handler that knows websocket framing, so it
//! can time idle tunnels out and close them cleanly at shutdown.
//!
//! `Upgrade: h2c` is never forwarded: a backend that switched to HTTP/2 on
//! the proxy's connection would let the client send requests the proxy
//! never sees — past every rule it enforces.

use proxy_core::refusal::UpgradeRefusal;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::Uri;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tracing::debug;

use crate::ProxyError;

/// The protocol named by `Upgrade`, if `Connection` lists `upgrade`.
pub fn requested_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_says_upgrade =
        proxy_core::headers::connection_listed(headers).contains(&header::UPGRADE);
    if connection_says_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// What the client asked to switch to, claimed from its request (step 5).
pub struct Requested {
    /// The protocol to put back into the outgoing `Upgrade` header.
    pub protocol: HeaderValue,
    /// The client's side of the upgrade; absent over HTTP/2, which has no
    /// 101, so a backend's 101 to such a request is refused.
    pub client: Option<OnUpgrade>,
}

impl Requested {
    /// Can the backend's 101 become a tunnel: did it switch to the protocol
    /// asked for, on a client connection that can be handed over?
    pub fn accepts(&self, switched_to: Option<&HeaderValue>) -> bool {
        self.client.is_some()
            && switched_to
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(self.protocol.as_bytes()))
    }
}

/// Take the upgrade out of an outgoing request before the hop-by-hop
/// headers go: an unprintable protocol is an error, `h2c` is dropped (the
/// request is forwarded as a plain one), anything else is claimed together
/// with the client's side of the connection.
pub fn claim(parts: &mut Parts) -> Result<Option<Requested>, ProxyError> {
    let Some(protocol) = requested_protocol(&parts.headers) else {
        return Ok(None);
    };
    if !is_printable(&protocol) {
        return Err(UpgradeRefusal::invalid_protocol(protocol.as_bytes()).into());
    }
    if is_h2c(&protocol) {
        return Ok(None);
    }
    Ok(Some(Requested {
        protocol,
        client: parts.extensions.remove::<OnUpgrade>(),
    }))
}

/// Printable ASCII only, as Go's `ascii.IsPrint` demands.
fn is_printable(protocol: &HeaderValue) -> bool {
    protocol
        .as_bytes()
        .iter()
        .all(|b| (b' '..=b'~').contains(b))
}

/// Is this the cleartext HTTP/2 upgrade we refuse to tunnel?
fn is_h2c(protocol: &HeaderValue) -> bool {
    protocol.as_bytes().eq_ignore_ascii_case(b"h2c")
}

/// Restore the two headers an upgrade needs after hop-by-hop stripping.
pub fn restore_upgrade_headers(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Both halves of an upgrade the backend accepted, not yet connected.
pub struct Upgrade {
    /// The client's connection, once hyper has sent it the 101.
    pub client: OnUpgrade,
    /// The backend's connection, once hyper has read its 101.
    pub backend: OnUpgrade,
    /// Who the client is (for logs).
    pub peer: SocketAddr,
    /// Where the director sent the request.
    pub target: Uri,
    /// The protocol both sides agreed on (`websocket`, …).
    pub protocol: HeaderValue,
}

impl Upgrade {
    /// Wait for both sides to hand over their connections.
    pub async fn connect(self) -> Result<(TokioIo<Upgraded>, TokioIo<Upgraded>), hyper::Error> {
        let (client, backend) = tokio::try_join!(self.client, self.backend)?;
        Ok((TokioIo::new(client), TokioIo::new(backend)))
    }
}

/// What the proxy does with an accepted upgrade (it must not block: spawn).
pub type UpgradeHandler = Arc<dyn Fn(Upgrade) + Send + Sync>;

/// The default handler: copy bytes between client and backend until either
/// closes.
pub fn spawn_tunnel(upgrade: Upgrade) {
    tokio::spawn(async move {
        let peer = upgrade.peer;
        let (mut client, mut backend) = match upgrade.connect().await {
            Ok(pair) => pair,
            Err(e) => {
                debug!("upgrade for {peer} failed: {e}");
                return;
            }
        };
        match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            Ok((up, down)) => {
                debug!("upgraded connection for {peer} closed: {up} bytes up, {down} down")
            }
            Err(e) => debug!("upgraded connection for {peer} broke: {e}"),
        }
    });
}
