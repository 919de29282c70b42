//! CONNECT: a TCP tunnel through the proxy.
//!
//! `CONNECT host:port` asks the proxy for a raw byte pipe. The proxy dials
//! the target first — so an unreachable target is a clean 502, not a
//! tunnel that dies at once — then answers 200 and stops speaking HTTP on
//! that connection: `hyper::upgrade::on` hands over the client's socket and
//! `copy_bidirectional` moves bytes both ways until either side closes.
//! This is how HTTPS goes through a forward proxy without the proxy ever
//! seeing the plaintext: TLS runs end to end inside the tunnel.
//!
//! An open tunnel keeps its client connection's place under the connection
//! caps (`serving`) for as long as its socket is open. Over HTTP/2 a tunnel
//! is one stream of a shared connection, and each stream has a place of its
//! own: it arrives in the request as a [`serving::TunnelPlace`], which the
//! tunnel's task holds until the pipe closes. Left out on purpose:
//! an idle timeout for tunnels (step 06 has one for websockets, which can
//! close cleanly; a byte pipe cannot say goodbye).

use std::net::SocketAddr;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serving::TunnelPlace;
use tokio::net::TcpStream;
use tracing::{debug, info};

use proxy_core::{ProxyBody, error_chain, text_response};

use crate::CONNECT_TIMEOUT;
use crate::destination::Policy;

/// Answer a CONNECT request: dial, reply, then copy both ways in the background.
pub async fn open(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    policy: &Policy,
) -> Response<ProxyBody> {
    let Some(target) = req
        .uri()
        .authority()
        .filter(|a| a.port().is_some())
        .cloned()
    else {
        return text_response(
            StatusCode::BAD_REQUEST,
            format!("CONNECT needs host:port, got {:?}", req.uri().to_string()),
        );
    };
    let port = target.port_u16().expect("checked above");
    // Dial exactly the addresses the policy checked.
    let addresses = match policy.resolve_tunnel(target.host(), port).await {
        Ok(addresses) => addresses,
        Err(refusal) => {
            return text_response(
                refusal.status(),
                format!("refusing to tunnel to {target}: {refusal}"),
            );
        }
    };
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addresses[..]))
        .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return text_response(
                StatusCode::BAD_GATEWAY,
                format!("cannot open a tunnel to {target}: {}", error_chain(&e)),
            );
        }
        Err(_) => {
            return text_response(
                StatusCode::GATEWAY_TIMEOUT,
                format!("cannot open a tunnel to {target}: no answer within {CONNECT_TIMEOUT:?}"),
            );
        }
    };
    let _ = upstream.set_nodelay(true);
    let place = req.extensions_mut().remove::<TunnelPlace>();
    tokio::spawn(async move {
        let _place = place;
        let client = match hyper::upgrade::on(req).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                debug!("CONNECT {target} from {peer}: client never took the tunnel: {e}");
                return;
            }
        };
        let started = Instant::now();
        let mut client = TokioIo::new(client);
        let mut upstream = upstream;
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => info!(
                "tunnel {peer} ⇄ {target} closed after {:.3?}: {up} bytes up, {down} bytes down",
                started.elapsed()
            ),
            Err(e) => info!(
                "tunnel {peer} ⇄ {target} broke after {:.3?}: {e}",
                started.elapsed()
            ),
        }
    });
    Response::new(ProxyBody::default())
}
