//! Step 06 end to end: websockets through the whole step 06 proxy, over TCP.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serving::{Binder, Launched};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn proxy(flags: &[&str]) -> Launched {
    let argv = ["step06-websocket"]
        .into_iter()
        .chain(flags.iter().copied());
    let args = step06_websocket::Args::try_parse_from(argv).unwrap();
    step06_websocket::launch(args, &Binder::ephemeral())
        .await
        .unwrap()
}

fn ws_url(launched: &Launched, path: &str) -> String {
    let addr = launched.get("websocket proxy").unwrap().addr();
    format!("ws://{addr}{path}")
}

async fn connect(url: &str) -> Client {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next message, or a panic after 5 s.
async fn next(ws: &mut Client) -> Message {
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a message within 5 s")
        .expect("the stream is open")
        .expect("a valid frame")
}

async fn greeting(url: &str) -> String {
    let mut ws = connect(url).await;
    let hello = next(&mut ws).await.into_text().unwrap().to_string();
    ws.close(None).await.unwrap();
    hello
}

/// A websocket echo backend that reports every close frame it receives.
async fn recording_backend() -> (String, mpsc::UnboundedReceiver<CloseFrame>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (closes, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let closes = closes.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Close(Some(frame)) = &message {
                        let _ = closes.send(frame.clone());
                    } else if (message.is_text() || message.is_binary())
                        && ws.send(message).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (url, received)
}

fn assert_going_away(message: &Message, reason: &str) {
    match message {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Away, "{frame:?}");
            assert_eq!(frame.reason.as_str(), reason);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn sessions_from_one_client_stick_to_one_upstream_by_default() {
    let sticky = proxy(&[]).await;
    let url = ws_url(&sticky, "/ws?greet=1");
    let mut upstreams = HashSet::new();
    for _ in 0..6 {
        upstreams.insert(greeting(&url).await);
    }
    assert_eq!(upstreams.len(), 1, "{upstreams:?}");

    // The same requests round-robin: the default is what makes them stick.
    let scattered = proxy(&["--balance", "round-robin"]).await;
    let url = ws_url(&scattered, "/ws?greet=1");
    let mut upstreams = HashSet::new();
    for _ in 0..3 {
        upstreams.insert(greeting(&url).await);
    }
    assert_eq!(upstreams.len(), 3, "{upstreams:?}");
}

#[tokio::test]
async fn messages_and_close_frames_pass_both_ways() {
    let launched = proxy(&[]).await;
    let mut ws = connect(&ws_url(&launched, "/ws")).await;
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("hello"));
    let payload = vec![7u8; 200_000];
    ws.send(Message::binary(payload.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(payload));

    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4000),
        reason: "my reason".into(),
    }))
    .await
    .unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => {
            // The backend's answer to our close came back through the tunnel.
            assert_eq!(frame.code, CloseCode::Library(4000));
            assert_eq!(frame.reason.as_str(), "my reason");
        }
        other => panic!("expected the backend's close, got {other:?}"),
    }
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_with_going_away_on_both_sides() {
    let (backend, mut backend_closes) = recording_backend().await;
    let launched = proxy(&["--upstream", &backend, "--idle-timeout", "300ms"]).await;
    let mut ws = connect(&ws_url(&launched, "/")).await;
    ws.send(Message::text("one")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("one"));

    let quiet_since = Instant::now();
    let close = next(&mut ws).await;
    let waited = quiet_since.elapsed();
    assert_going_away(&close, "idle for 300ms");
    assert!(
        waited >= Duration::from_millis(280) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    let at_backend = tokio::time::timeout(Duration::from_secs(5), backend_closes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at_backend.code, CloseCode::Away);
    assert_eq!(at_backend.reason.as_str(), "idle for 300ms");
}

#[tokio::test]
async fn traffic_keeps_a_tunnel_open_past_the_idle_timeout() {
    let launched = proxy(&["--idle-timeout", "1s"]).await;
    let mut ws = connect(&ws_url(&launched, "/ws")).await;
    let started = Instant::now();
    let mut sent = 0;
    // 2.5 s of traffic, a message every 100 ms: silences ten times shorter
    // than the idle timeout, however slow the machine, over two and a half
    // timeouts.
    while started.elapsed() < Duration::from_millis(2500) {
        sent += 1;
        let text = format!("message {sent}");
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::text(text));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent >= 6);
}

#[tokio::test]
async fn shutdown_closes_tunnels_with_going_away_and_does_not_hang() {
    let (backend, mut backend_closes) = recording_backend().await;
    let launched = proxy(&["--upstream", &backend]).await;
    let mut ws = connect(&ws_url(&launched, "/")).await;
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("before"));

    let started = Instant::now();
    let shutdown = tokio::spawn(launched.shutdown());
    assert_going_away(&next(&mut ws).await, "proxy shutting down");
    // Our close answer goes back; then the proxy lets the socket go.
    ws.close(None).await.ok();
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {}
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown finishes")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let at_backend = backend_closes.recv().await.unwrap();
    assert_eq!(at_backend.code, CloseCode::Away);
    assert_eq!(at_backend.reason.as_str(), "proxy shutting down");
}

#[tokio::test]
async fn a_bad_upgrade_is_refused_before_any_tunnel() {
    let launched = proxy(&[]).await;
    let addr = launched.get("websocket proxy").unwrap().addr();
    // real_server refuses a websocket without a key: the client hears why.
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{addr}/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Sec-WebSocket-Key is missing")
    );
}

#[tokio::test]
async fn the_handshake_client_shows_the_101_and_the_echo() {
    let launched = proxy(&[]).await;
    let mut out = Vec::new();
    step06_websocket::handshake::talk(
        &ws_url(&launched, "/ws?greet=1"),
        &["hi there".to_owned()],
        None,
        &mut out,
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("< HTTP/1.1 101 Switching Protocols"), "{out}");
    assert!(out.contains("accept checks out"), "{out}");
    assert!(
        out.contains("< text: connected to real server 127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("< text: hi there"), "{out}");
    assert!(out.ends_with("< close: 1000 bye\n"), "{out}");
}

#[tokio::test]
async fn the_handshake_client_explains_what_it_cannot_do() {
    let mut out = Vec::new();
    let error = step06_websocket::handshake::talk("wss://example.com/", &[], None, &mut out)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("only ws:// URLs"),
        "{error:#}"
    );
    // Port 1 on loopback: nobody listens, and the error says where it tried.
    let error = step06_websocket::handshake::talk("ws://127.0.0.1:1/ws", &[], None, &mut out)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("cannot connect to 127.0.0.1:1"),
        "{error:#}"
    );
}

#[tokio::test]
async fn tunnels_past_the_cap_are_closed_with_try_again_later() {
    // A tunnel outlives its request, so no request cap counts it; this one
    // does. The second websocket is told 1013 at once; the first goes on.
    let launched = proxy(&["--max-tunnels", "1"]).await;
    let mut first = connect(&ws_url(&launched, "/ws")).await;
    first.send(Message::text("one")).await.unwrap();
    assert_eq!(next(&mut first).await, Message::text("one"));
    let mut second = connect(&ws_url(&launched, "/ws")).await;
    match next(&mut second).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Again, "{frame:?}");
            assert!(frame.reason.contains("1 tunnels already open"), "{frame:?}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    first.send(Message::text("still here")).await.unwrap();
    assert_eq!(next(&mut first).await, Message::text("still here"));
}
