//! `/ws`: a websocket echo server behind a plain hyper service.
//!
//! The handshake is done by hand — check the upgrade request, answer 101
//! with `Sec-WebSocket-Accept` — because that handshake is exactly what a
//! proxy has to carry, and step 06 teaches it byte by byte. After the 101,
//! `hyper::upgrade::on` hands over the raw connection and tokio-tungstenite
//! speaks the frame protocol on it.
//!
//! With `?greet=1` the server first sends one text message naming itself, so
//! a browser (which cannot read a 101's headers) can show which upstream it
//! reached. `/ws-demo` is that browser page: loaded through a proxy, it
//! opens its socket through the same proxy.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};
use tracing::debug;

use crate::respond::{Body, Query, bad_request, full};

fn header_has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

pub(crate) fn accept(
    mut req: Request<Incoming>,
    served_by: SocketAddr,
    query: &Query,
) -> Response<Body> {
    if !header_has_token(&req, header::UPGRADE, "websocket")
        || !header_has_token(&req, header::CONNECTION, "upgrade")
    {
        return bad_request(
            "/ws is a websocket endpoint: send Connection: Upgrade and Upgrade: websocket",
        );
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        return bad_request("only websocket version 13 is spoken here");
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return bad_request("Sec-WebSocket-Key is missing");
    };
    let accept = derive_accept_key(key.as_bytes());
    let greet = query.flag("greet", false);
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                debug!("websocket upgrade failed: {e}");
                return;
            }
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        if greet {
            let hello = format!("connected to real server {served_by}");
            if ws.send(Message::text(hello)).await.is_err() {
                return;
            }
        }
        // Pings are answered and close frames returned by tungstenite itself
        // while we read; only data messages need echoing.
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(full(""))
        .expect("static response parts are valid")
}

/// `/ws-demo`: the browser page of step 06.
pub(crate) fn demo_page() -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(full(include_str!("ws_demo.html")))
        .expect("static response parts are valid")
}
