//! Every behaviour NOTES chapter 3 asks of an HTTP/1 reverse proxy, each
//! against a real backend over TCP. Each case takes the [`Launch`] of the
//! proxy under test; [`http1_behaviours!`](crate::http1_behaviours) makes
//! them the tests of a step (03 and 10 run them all).

use std::time::{Duration, Instant};

use crate::wire::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use real_server::Echo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// What the backend saw of a GET /echo with `headers`.
pub async fn echo(setup: &Setup, headers: &[(&str, &str)]) -> Echo {
    let mut request = client().get(format!("{}/echo", setup.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().json().await.unwrap()
}

// 1. Hop-by-hop headers, both ways.

pub async fn hop_by_hop_request_headers_are_removed_but_te_trailers_is_kept(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let seen = echo(
        &setup,
        &[
            ("connection", "x-one"),
            ("connection", "x-two"),
            ("x-one", "1"),
            ("x-two", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    for gone in [
        "connection",
        "x-one",
        "x-two",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the backend");
    }
    assert_eq!(seen.header("te"), Some("trailers"));
    assert_eq!(seen.header("x-kept"), Some("yes"));
}

pub async fn te_trailers_among_other_codings_is_kept_alone(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let seen = echo(&setup, &[("te", "trailers, deflate")]).await;
    assert_eq!(seen.header("te"), Some("trailers"), "TE: trailers, deflate");
    let seen = echo(&setup, &[("te", "deflate")]).await;
    assert_eq!(seen.header("te"), None, "TE: deflate");
}

pub async fn connection_names_hop_by_hop_headers_for_its_own_request_only(launch: Launch) {
    // Two pipelined requests on one connection; only the second names
    // X-Keep in Connection. Removal is per request: the first keeps its
    // X-Keep. (The fuzzer's request_head oracle once got this wrong, reading
    // every Connection header in the byte stream: bench/README.md.)
    let setup = Setup::new(launch, &[]).await;
    let answer = raw(
        setup.addr(),
        b"GET /first HTTP/1.1\r\nHost: x\r\nX-Keep: 1\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: x\r\nConnection: X-Keep, close\r\nX-Keep: 2\r\n\r\n",
    )
    .await;
    let bodies: Vec<real_server::Echo> = answer
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|response| json_body(&format!("HTTP/1.1 {response}")))
        .collect();
    assert_eq!(bodies.len(), 2, "{answer}");
    assert_eq!(
        (bodies[0].path.as_str(), bodies[0].header("x-keep")),
        ("/first", Some("1"))
    );
    assert_eq!(
        (bodies[1].path.as_str(), bodies[1].header("x-keep")),
        ("/second", None)
    );
}

pub async fn hop_by_hop_response_headers_are_removed(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let url = format!(
        "{}/headers?set=Connection:X-Secret&set=X-Secret:internal&set=Keep-Alive:timeout=5&set=Proxy-Authenticate:Basic&set=X-Public:ok",
        setup.url()
    );
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.headers()["x-public"], "ok");
    for gone in ["x-secret", "keep-alive", "proxy-authenticate"] {
        assert!(
            response.headers().get(gone).is_none(),
            "{gone} reached the client"
        );
    }
}

// 2. X-Forwarded-For, -Host, -Proto and X-Real-IP.

pub async fn forwarded_headers_say_who_the_client_was(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let seen = echo(
        &setup,
        &[("x-forwarded-for", "203.0.113.9"), ("x-real-ip", "6.6.6.6")],
    )
    .await;
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(
        seen.header("x-real-ip"),
        Some("127.0.0.1"),
        "the edge overwrites a forged X-Real-IP"
    );
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(setup.addr().to_string().as_str())
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("host"),
        Some(setup.backend.addr().to_string().as_str())
    );
}

pub async fn connection_cannot_strip_the_forwarded_headers(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let seen = echo(
        &setup,
        &[("connection", "X-Forwarded-For, X-Real-IP, X-Forwarded-Host")],
    )
    .await;
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert!(seen.header("x-forwarded-host").is_some());
}

pub async fn x_real_ip_is_set_by_the_first_proxy_only(launch: Launch) {
    let inner = Setup::new(launch, &["--trusted-proxy", "127.0.0.1/32"]).await;
    let outer = launch(&inner.url(), &[]).await;
    let seen: Echo = client()
        .get(format!("{}/chain", url_of(&outer)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("127.0.0.1, 127.0.0.1"),
        "one entry per hop"
    );
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(outer.servers[0].addr().to_string().as_str()),
        "the host the client asked for, not the inner proxy's"
    );
}

// 3. No invented User-Agent.

pub async fn no_user_agent_is_invented(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let answer = raw(
        setup.addr(),
        b"GET /ua HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(json_body(&answer).header("user-agent"), None, "{answer}");
}

// 4. Upgrades.

pub async fn websocket_upgrade_is_tunnelled_both_ways(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let url = format!("ws://{}/ws?greet=1", setup.addr());
    let (mut ws, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(
        hello,
        Message::text(format!("connected to real server {}", setup.backend.addr()))
    );
    for text in ["one", "two", "three"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    ws.send(Message::binary(vec![0u8; 70_000])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8; 70_000])
    );
    ws.close(None).await.unwrap();
}

pub async fn an_unprintable_upgrade_protocol_is_refused(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let answer = raw(
        setup.addr(),
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: web\xe9socket\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(answer.contains("invalid protocol"), "{answer}");
}

pub async fn a_backend_switching_to_another_protocol_is_a_502(launch: Launch) {
    let backend = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: not-websocket\r\n\r\n")
            .await;
        let _ = stream.read(&mut [0u8; 1]).await;
    })
    .await;
    let proxy = launch(&format!("http://{backend}"), &[]).await;
    let answer = raw(
        proxy.servers[0].addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.contains("\"not-websocket\" when \"websocket\" was requested"),
        "{answer}"
    );
}

pub async fn an_h2c_upgrade_is_forwarded_without_the_upgrade(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let answer = raw(
        setup.addr(),
        b"GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = json_body(&answer);
    for gone in ["upgrade", "connection", "http2-settings"] {
        assert_eq!(seen.header(gone), None, "{gone} reached the backend");
    }
}

// 5. Streaming, both ways.

pub async fn the_first_chunk_of_a_slow_stream_arrives_at_once(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let started = Instant::now();
    let response = client()
        .get(format!("{}/stream/2?interval_ms=1500", setup.url()))
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    assert_eq!(chunks.next().await.unwrap().unwrap(), "chunk 1 of 2\n");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

pub async fn sse_events_stream_through(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let response = client()
        .get(format!("{}/sse?n=3&interval_ms=1000", setup.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let started = Instant::now();
    let mut events = response.bytes_stream();
    let first = events.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"id: 1\n"));
    assert!(started.elapsed() < Duration::from_millis(800));
}

pub async fn the_request_body_streams_to_the_backend(launch: Launch) {
    // The backend answers as soon as it has the first body chunk; a proxy
    // that waited for the whole body would never deliver that answer,
    // because the client sends the rest only after it.
    let backend = raw_backend(|mut stream| async move {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("first-part") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\ngot first",
            )
            .await;
    })
    .await;
    let proxy = launch(&format!("http://{backend}"), &[]).await;
    let (body, rest) = body_channel();
    let request = client()
        .post(url_of(&proxy))
        .body(reqwest::Body::wrap_stream(rest))
        .send();
    body.send(Ok(Bytes::from("first-part"))).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the backend answered while the body was still open")
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "got first");
}

/// A request body the test writes to piece by piece.
fn body_channel() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    (
        tx,
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)),
    )
}

pub async fn a_large_upload_arrives_whole(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let body: Vec<u8> = (0..32 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let seen: Echo = client()
        .post(format!("{}/upload", setup.url()))
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen.body_length, body.len() as u64);
    assert_eq!(seen.body_sha256, hex::encode(Sha256::digest(&body)));
}

// 6. Trailers.

/// The trailers a client reads of /trailers through `url`, over HTTP/2 or HTTP/1.1.
pub async fn trailers_via(http2: bool, url: String) -> Option<hyper::HeaderMap> {
    let builder = Client::builder(TokioExecutor::new());
    let client = if http2 {
        builder.clone().http2_only(true).build_http()
    } else {
        builder.build_http()
    };
    let request = hyper::Request::get(url)
        .header("te", "trailers")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .trailers()
        .cloned()
}

pub async fn announced_trailers_are_forwarded_over_http1(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let trailers = trailers_via(false, format!("{}/trailers", setup.url()))
        .await
        .expect("trailers arrived");
    assert_eq!(trailers["x-trailer-note"], "sent after the body");
    assert_eq!(trailers["x-checksum"].len(), 64);
}

pub async fn request_trailers_reach_the_backend(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("x-digest", "abc123".parse().unwrap());
    let frames = futures_util::stream::iter([
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from("body"))),
        Ok(Frame::trailers(trailers)),
    ]);
    let request = hyper::Request::post(format!("{}/upload", setup.url()))
        .header("trailer", "x-digest")
        .body(StreamBody::new(frames))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let body = client
        .request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let seen: Echo = serde_json::from_slice(&body.to_bytes()).unwrap();
    assert_eq!(seen.body_length, 4);
    assert_eq!(
        seen.trailers,
        [("x-digest".to_owned(), "abc123".to_owned())]
    );
}

pub async fn a_trailer_announcement_without_a_chunked_body_is_dropped(launch: Launch) {
    // Go drops it too: only a chunked body has trailers to announce, and
    // an upstream waiting for announced fields would wait in vain.
    let setup = Setup::new(launch, &[]).await;
    let answer = raw(
        setup.addr(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTrailer: x-digest\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody",
    )
    .await;
    let seen = json_body(&answer);
    assert_eq!(seen.body_length, 4);
    assert!(
        !seen.headers.iter().any(|(name, _)| name == "trailer"),
        "{:?}",
        seen.headers
    );
}

// 7. Expect: 100-continue.

pub async fn expect_100_continue_works_end_to_end(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let mut stream = TcpStream::connect(setup.addr()).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let interim = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
        .await
        .expect("100 Continue arrived before the body was sent");
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    stream.write_all(b"hello").await.unwrap();
    let answer = read_all(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(json_body(&answer).body_length, 5);
}

// 8. A client that goes away cancels the upstream request.

/// A backend that reads a request head, says so, never answers (it reads
/// on — a body, if one comes — until the proxy hangs up) and says when the
/// proxy did.
async fn silent_backend() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::Receiver<()>,
    tokio::sync::mpsc::Receiver<()>,
) {
    let (got_request, request_arrived) = tokio::sync::mpsc::channel::<()>(1);
    let (saw_close, upstream_closed) = tokio::sync::mpsc::channel::<()>(1);
    let backend = raw_backend(move |mut stream| {
        let (got_request, saw_close) = (got_request.clone(), saw_close.clone());
        async move {
            read_head(&mut stream).await;
            let _ = got_request.send(()).await;
            let mut buf = [0u8; 64];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            let _ = saw_close.send(()).await;
        }
    })
    .await;
    (backend, request_arrived, upstream_closed)
}

pub async fn a_client_that_goes_away_cancels_the_upstream_request(launch: Launch) {
    let (backend, mut request_arrived, mut upstream_closed) = silent_backend().await;
    let proxy = launch(&format!("http://{backend}"), &[]).await;
    let mut client = TcpStream::connect(proxy.servers[0].addr()).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    request_arrived.recv().await.unwrap();
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), upstream_closed.recv())
        .await
        .expect("the backend saw its connection close");
}

/// A client that owes a request body and sends none of it (`sent` is all
/// it ever writes) gets a 408 once the body timeout has passed, and the
/// upstream connection the request opened is closed: it cannot be held.
async fn a_stalled_body_is_cut_off(launch: Launch, sent: &[u8]) {
    let (backend, mut request_arrived, mut upstream_closed) = silent_backend().await;
    let proxy = launch(
        &format!("http://{backend}"),
        &["--client-body-timeout", "1"],
    )
    .await;
    let mut client = TcpStream::connect(proxy.servers[0].addr()).await.unwrap();
    client.write_all(sent).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), request_arrived.recv())
        .await
        .expect("the request reached the backend");
    let answer = read_all(&mut client).await;
    let answer = answer.trim_start_matches("HTTP/1.1 100 Continue\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), upstream_closed.recv())
        .await
        .expect("the backend saw its connection close");
}

pub async fn a_client_that_never_sends_its_expected_body_is_cut_off(launch: Launch) {
    a_stalled_body_is_cut_off(
        launch,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
}

pub async fn an_upload_that_stops_half_way_is_cut_off(launch: Launch) {
    a_stalled_body_is_cut_off(
        launch,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
}

/// A client that waits for its `100 Continue` is doing as asked, however
/// long the upstream takes to say it: the body timeout must not cut it off.
pub async fn a_client_waiting_for_its_continue_is_served(launch: Launch) {
    // An upstream that never sends `100 Continue`: it answers once the
    // body is there.
    let backend = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let mut body = [0u8; 5];
        if stream.read_exact(&mut body).await.is_ok() {
            let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec();
            answer.extend_from_slice(&body);
            let _ = stream.write_all(&answer).await;
        }
    })
    .await;
    let proxy = launch(
        &format!("http://{backend}"),
        &["--client-body-timeout", "0.5"],
    )
    .await;
    let mut client = TcpStream::connect(proxy.servers[0].addr()).await.unwrap();
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let continued = tokio::time::timeout(Duration::from_secs(10), read_head(&mut client))
        .await
        .expect("told to continue");
    assert!(continued.starts_with("HTTP/1.1 100"), "{continued}");
    client.write_all(b"hello").await.unwrap();
    let answer = read_all(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
}

/// The response timeout runs from the sending, through the body: a client
/// that owes its body when it runs out is answered 408 (its failure; the
/// upstream may be waiting for those bytes), not left waiting.
pub async fn a_timeout_while_the_body_is_owed_is_408(launch: Launch) {
    let answer = answer_after_a_silence(
        launch,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// What a client sending `request` hears from the proxy (`--timeout 0.3`)
/// in front of an upstream that reads the head and never answers.
async fn answer_after_a_silence(launch: Launch, request: &[u8]) -> String {
    let (backend, mut request_arrived, _upstream_closed) = silent_backend().await;
    let proxy = launch(&format!("http://{backend}"), &["--timeout", "0.3"]).await;
    let mut client = TcpStream::connect(proxy.servers[0].addr()).await.unwrap();
    client.write_all(request).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), request_arrived.recv())
        .await
        .expect("the request reached the backend");
    read_all(&mut client).await
}

/// A client is never blamed for a body it was not asked for: one that
/// sent `Expect: 100-continue` and was not told to continue when the
/// response timeout runs out gets 504 (the upstream's silence); one that
/// was told (hyper tells at once) and sent nothing gets 408.
pub async fn a_client_not_yet_told_to_continue_is_not_blamed(launch: Launch) {
    let answer = answer_after_a_silence(
        launch,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    match answer.strip_prefix("HTTP/1.1 100 Continue\r\n\r\n") {
        Some(told) => assert!(told.starts_with("HTTP/1.1 408"), "{answer}"),
        None => assert!(answer.starts_with("HTTP/1.1 504"), "{answer}"),
    }
}

// 9. Pooled upstream connections.

pub async fn upstream_connections_are_pooled_and_reused(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let mut peers = std::collections::HashSet::new();
    for _ in 0..20 {
        // A new client connection each time: reuse happens on the upstream side.
        let seen: Echo = client()
            .get(setup.url())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        peers.insert(seen.remote_addr);
    }
    assert_eq!(peers.len(), 1, "upstream connections: {peers:?}");
}

// 10 and 11. Bad input and protocol edges.

async fn assert_refused(setup: &Setup, request: &[u8], expected_status: &str) {
    // A refusal is an answer: a dropped connection (or a handler that
    // panicked) tells the client nothing and must not pass as one.
    let answer = raw(setup.addr(), request).await;
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {expected_status}")),
        "{}\n→ {answer}",
        String::from_utf8_lossy(request)
    );
    // …and the proxy serves on.
    let ok = raw(
        setup.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

pub async fn ambiguous_framing_is_rejected(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    assert_refused(
        &setup,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "400",
    )
    .await;
    assert_refused(
        &setup,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "400",
    )
    .await;
}

pub async fn content_length_with_transfer_encoding_cannot_smuggle_a_request(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    // If the body were framed by Content-Length (5), "0\r\n\r\nGET /smuggled…"
    // would be read as a second request.
    let answer = raw(
        setup.addr(),
        b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    let seen = json_body(&answer);
    assert_eq!(seen.path, "/first");
    assert_eq!(seen.body_length, 5);
    assert_eq!(
        seen.header("content-length"),
        None,
        "the ambiguous length went upstream"
    );
    assert!(!answer.contains("/smuggled"));
}

pub async fn oversized_headers_are_refused(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    assert_refused(&setup, request.as_bytes(), "431").await;
}

pub async fn a_stalled_request_head_is_cut_off(launch: Launch) {
    let setup = Setup::new(launch, &["--header-read-timeout", "1"]).await;
    let mut stalled = TcpStream::connect(setup.addr()).await.unwrap();
    stalled
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_all(&mut stalled).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    let ok = raw(
        setup.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

pub async fn what_rfc_9112_says_to_reject_is_rejected(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    for request in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: one\r\n two\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        assert_refused(&setup, request, "400").await;
    }
}

pub async fn non_ascii_header_values_pass_through_unchanged(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let answer = raw(
        setup.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9 \xff\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(json_body(&answer).header("x-name"), Some("café \u{fffd}"));
}

pub async fn an_absolute_form_request_still_goes_to_the_configured_upstream(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    let answer = raw(
        setup.addr(),
        b"GET http://elsewhere.invalid/steal?x=1 HTTP/1.1\r\nHost: elsewhere.invalid\r\nConnection: close\r\n\r\n",
    )
    .await;
    let seen = json_body(&answer);
    assert_eq!(seen.served_by, setup.backend.addr().to_string());
    assert_eq!(seen.path, "/steal");
}

pub async fn a_truncated_upstream_response_never_looks_complete(launch: Launch) {
    let backend = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
            .await;
    })
    .await;
    let proxy = launch(&format!("http://{backend}"), &[]).await;
    // The head may or may not reach the client before the failure does
    // (the proxy sees both in one read); either way the exchange must fail.
    let outcome = match client().get(url_of(&proxy)).send().await {
        Ok(response) => response.bytes().await,
        Err(error) => Err(error),
    };
    assert!(
        outcome.is_err(),
        "a 10-byte body passed for 100: {outcome:?}"
    );
}

pub async fn a_response_with_both_length_and_chunked_is_framed_by_the_chunks(launch: Launch) {
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and a
    // proxy must not pass both on. Passing the length left the client
    // waiting for 100 bytes of a 5-byte body, then cut off.
    let backend = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            )
            .await;
    })
    .await;
    let proxy = launch(&format!("http://{backend}"), &[]).await;
    let response = client().get(url_of(&proxy)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-length"), None);
    assert_eq!(response.text().await.unwrap(), "hello");
}

pub async fn a_garbled_upstream_response_is_a_502(launch: Launch) {
    let backend = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream.write_all(b"THIS IS NOT HTTP\r\n\r\n").await;
    })
    .await;
    let proxy = launch(&format!("http://{backend}"), &[]).await;
    let response = client().get(url_of(&proxy)).send().await.unwrap();
    assert_eq!(response.status(), 502);
}

// The error handler's defaults.

pub async fn an_unreachable_upstream_is_a_502_with_the_reason(launch: Launch) {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = launch(&format!("http://{closed}"), &[]).await;
    let response = client().get(url_of(&proxy)).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Connection refused")
    );
}

pub async fn a_slow_upstream_is_a_504_after_the_timeout(launch: Launch) {
    let setup = Setup::new(launch, &["--timeout", "0.3"]).await;
    let started = Instant::now();
    let response = client()
        .get(format!("{}/delay/3000", setup.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2));
}

pub async fn a_host_header_that_is_more_than_a_host_is_refused(launch: Launch) {
    let setup = Setup::new(launch, &[]).await;
    for host in ["evil.example:444/phish?x=", "user@example.com", "a\tb"] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_refused(&setup, request.as_bytes(), "400").await;
        // Checked even when the request line names the host itself.
        let request = format!("GET http://good.example/ HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_refused(&setup, request.as_bytes(), "400").await;
    }
}

/// The cases above as `#[tokio::test]`s against one proxy:
/// `proxy_test_cases::http1_behaviours!(support::proxy_to);`.
#[macro_export]
macro_rules! http1_behaviours {
    ($launch:path) => {
        #[::tokio::test]
        async fn hop_by_hop_request_headers_are_removed_but_te_trailers_is_kept() {
            $crate::http1::hop_by_hop_request_headers_are_removed_but_te_trailers_is_kept($launch)
                .await
        }
        #[::tokio::test]
        async fn te_trailers_among_other_codings_is_kept_alone() {
            $crate::http1::te_trailers_among_other_codings_is_kept_alone($launch).await
        }
        #[::tokio::test]
        async fn connection_names_hop_by_hop_headers_for_its_own_request_only() {
            $crate::http1::connection_names_hop_by_hop_headers_for_its_own_request_only($launch)
                .await
        }
        #[::tokio::test]
        async fn hop_by_hop_response_headers_are_removed() {
            $crate::http1::hop_by_hop_response_headers_are_removed($launch).await
        }
        #[::tokio::test]
        async fn forwarded_headers_say_who_the_client_was() {
            $crate::http1::forwarded_headers_say_who_the_client_was($launch).await
        }
        #[::tokio::test]
        async fn connection_cannot_strip_the_forwarded_headers() {
            $crate::http1::connection_cannot_strip_the_forwarded_headers($launch).await
        }
        #[::tokio::test]
        async fn x_real_ip_is_set_by_the_first_proxy_only() {
            $crate::http1::x_real_ip_is_set_by_the_first_proxy_only($launch).await
        }
        #[::tokio::test]
        async fn no_user_agent_is_invented() {
            $crate::http1::no_user_agent_is_invented($launch).await
        }
        #[::tokio::test]
        async fn websocket_upgrade_is_tunnelled_both_ways() {
            $crate::http1::websocket_upgrade_is_tunnelled_both_ways($launch).await
        }
        #[::tokio::test]
        async fn an_unprintable_upgrade_protocol_is_refused() {
            $crate::http1::an_unprintable_upgrade_protocol_is_refused($launch).await
        }
        #[::tokio::test]
        async fn a_backend_switching_to_another_protocol_is_a_502() {
            $crate::http1::a_backend_switching_to_another_protocol_is_a_502($launch).await
        }
        #[::tokio::test]
        async fn an_h2c_upgrade_is_forwarded_without_the_upgrade() {
            $crate::http1::an_h2c_upgrade_is_forwarded_without_the_upgrade($launch).await
        }
        #[::tokio::test]
        async fn the_first_chunk_of_a_slow_stream_arrives_at_once() {
            $crate::http1::the_first_chunk_of_a_slow_stream_arrives_at_once($launch).await
        }
        #[::tokio::test]
        async fn sse_events_stream_through() {
            $crate::http1::sse_events_stream_through($launch).await
        }
        #[::tokio::test]
        async fn the_request_body_streams_to_the_backend() {
            $crate::http1::the_request_body_streams_to_the_backend($launch).await
        }
        #[::tokio::test]
        async fn a_large_upload_arrives_whole() {
            $crate::http1::a_large_upload_arrives_whole($launch).await
        }
        #[::tokio::test]
        async fn announced_trailers_are_forwarded_over_http1() {
            $crate::http1::announced_trailers_are_forwarded_over_http1($launch).await
        }
        #[::tokio::test]
        async fn request_trailers_reach_the_backend() {
            $crate::http1::request_trailers_reach_the_backend($launch).await
        }
        #[::tokio::test]
        async fn a_trailer_announcement_without_a_chunked_body_is_dropped() {
            $crate::http1::a_trailer_announcement_without_a_chunked_body_is_dropped($launch).await
        }
        #[::tokio::test]
        async fn expect_100_continue_works_end_to_end() {
            $crate::http1::expect_100_continue_works_end_to_end($launch).await
        }
        #[::tokio::test]
        async fn a_client_that_goes_away_cancels_the_upstream_request() {
            $crate::http1::a_client_that_goes_away_cancels_the_upstream_request($launch).await
        }
        #[::tokio::test]
        async fn a_client_that_never_sends_its_expected_body_is_cut_off() {
            $crate::http1::a_client_that_never_sends_its_expected_body_is_cut_off($launch).await
        }
        #[::tokio::test]
        async fn an_upload_that_stops_half_way_is_cut_off() {
            $crate::http1::an_upload_that_stops_half_way_is_cut_off($launch).await
        }
        #[::tokio::test]
        async fn a_client_waiting_for_its_continue_is_served() {
            $crate::http1::a_client_waiting_for_its_continue_is_served($launch).await
        }
        #[::tokio::test]
        async fn a_timeout_while_the_body_is_owed_is_408() {
            $crate::http1::a_timeout_while_the_body_is_owed_is_408($launch).await
        }
        #[::tokio::test]
        async fn a_client_not_yet_told_to_continue_is_not_blamed() {
            $crate::http1::a_client_not_yet_told_to_continue_is_not_blamed($launch).await
        }
        #[::tokio::test]
        async fn upstream_connections_are_pooled_and_reused() {
            $crate::http1::upstream_connections_are_pooled_and_reused($launch).await
        }
        #[::tokio::test]
        async fn ambiguous_framing_is_rejected() {
            $crate::http1::ambiguous_framing_is_rejected($launch).await
        }
        #[::tokio::test]
        async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
            $crate::http1::content_length_with_transfer_encoding_cannot_smuggle_a_request($launch)
                .await
        }
        #[::tokio::test]
        async fn oversized_headers_are_refused() {
            $crate::http1::oversized_headers_are_refused($launch).await
        }
        #[::tokio::test]
        async fn a_stalled_request_head_is_cut_off() {
            $crate::http1::a_stalled_request_head_is_cut_off($launch).await
        }
        #[::tokio::test]
        async fn what_rfc_9112_says_to_reject_is_rejected() {
            $crate::http1::what_rfc_9112_says_to_reject_is_rejected($launch).await
        }
        #[::tokio::test]
        async fn non_ascii_header_values_pass_through_unchanged() {
            $crate::http1::non_ascii_header_values_pass_through_unchanged($launch).await
        }
        #[::tokio::test]
        async fn an_absolute_form_request_still_goes_to_the_configured_upstream() {
            $crate::http1::an_absolute_form_request_still_goes_to_the_configured_upstream($launch)
                .await
        }
        #[::tokio::test]
        async fn a_truncated_upstream_response_never_looks_complete() {
            $crate::http1::a_truncated_upstream_response_never_looks_complete($launch).await
        }
        #[::tokio::test]
        async fn a_response_with_both_length_and_chunked_is_framed_by_the_chunks() {
            $crate::http1::a_response_with_both_length_and_chunked_is_framed_by_the_chunks($launch)
                .await
        }
        #[::tokio::test]
        async fn a_garbled_upstream_response_is_a_502() {
            $crate::http1::a_garbled_upstream_response_is_a_502($launch).await
        }
        #[::tokio::test]
        async fn an_unreachable_upstream_is_a_502_with_the_reason() {
            $crate::http1::an_unreachable_upstream_is_a_502_with_the_reason($launch).await
        }
        #[::tokio::test]
        async fn a_slow_upstream_is_a_504_after_the_timeout() {
            $crate::http1::a_slow_upstream_is_a_504_after_the_timeout($launch).await
        }
        #[::tokio::test]
        async fn a_host_header_that_is_more_than_a_host_is_refused() {
            $crate::http1::a_host_header_that_is_more_than_a_host_is_refused($launch).await
        }
    };
}

/// The names the macro runs, checked against the cases by a test.
#[cfg(test)]
pub(crate) const CASES: usize = 40;
