//! Every real_server endpoint, exercised over real TCP the way a proxy test
//! will use it.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use real_server::{Echo, pattern_byte};
use serving::ServerHandle;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

async fn start() -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    real_server::spawn(listener).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn echo_reports_headers_in_order_with_repeats_and_the_body_digest() {
    let server = start().await;
    let body = vec![7u8; 100_000];
    let echo: Echo = client()
        .post(format!("{}/some/path?a=1&b=2", server.url()))
        .header("x-first", "1")
        .header("x-repeat", "one")
        .header("x-repeat", "two")
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.served_by, server.addr().to_string());
    assert_eq!(echo.method, "POST");
    assert_eq!(echo.path, "/some/path");
    assert_eq!(echo.query.as_deref(), Some("a=1&b=2"));
    assert_eq!(echo.version, "HTTP/1.1");
    assert!(
        echo.remote_addr.starts_with("127.0.0.1:"),
        "{}",
        echo.remote_addr
    );
    let names: Vec<&str> = echo.headers.iter().map(|(n, _)| n.as_str()).collect();
    let first = names.iter().position(|n| *n == "x-first").unwrap();
    let repeat = names.iter().position(|n| *n == "x-repeat").unwrap();
    assert!(first < repeat, "arrival order kept: {names:?}");
    assert_eq!(
        echo.headers_named("x-repeat").collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert_eq!(echo.body_length, 100_000);
    assert_eq!(echo.body_sha256, hex::encode(Sha256::digest(&body)));
}

#[tokio::test]
async fn echo_speaks_plain_text_when_asked() {
    let server = start().await;
    let text = client()
        .get(format!("{}/hello?name=world", server.url()))
        .header("accept", "text/plain")
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!("served by:       {}\n", server.addr())),
        "{text}"
    );
    assert!(
        text.contains("request:         GET /hello?name=world HTTP/1.1\n"),
        "{text}"
    );
    assert!(text.contains("x-forwarded-for: 10.1.2.3\n"), "{text}");
    assert!(text.contains("x-real-ip:       (none)\n"), "{text}");
    assert!(
        text.contains("body:            0 bytes, sha256 e3b0c442"),
        "{text}"
    );
}

#[tokio::test]
async fn echo_over_http2_prior_knowledge() {
    let server = start().await;
    let http2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let echo: Echo = http2
        .get(server.url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.version, "HTTP/2.0");
}

#[tokio::test]
async fn every_response_names_the_server_that_sent_it() {
    let server = start().await;
    for path in [
        "/",
        "/status/404",
        "/health",
        "/bytes/3",
        "/nonsense/deep/path",
    ] {
        let response = client()
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["x-served-by"],
            server.addr().to_string().as_str(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn status_answers_the_code_and_rejects_nonsense() {
    let server = start().await;
    let r = client()
        .get(format!("{}/status/418", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.text().await.unwrap(), "418 I'm a teapot\n");
    for bad in ["99", "600", "abc"] {
        let r = client()
            .get(format!("{}/status/{bad}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("status code must be 200 to 599")
        );
    }
}

#[tokio::test]
async fn delay_waits_before_answering() {
    let server = start().await;
    let started = Instant::now();
    let r = client()
        .get(format!("{}/delay/150", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let r = client()
        .get(format!("{}/delay/soon", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn stream_flushes_each_chunk_on_its_own() {
    let server = start().await;
    let started = Instant::now();
    let response = client()
        .get(format!("{}/stream/3?interval_ms=600", server.url()))
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(first, "chunk 1 of 3\n");
    assert!(
        first_at < Duration::from_millis(500),
        "first chunk waited {first_at:?}"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = chunks.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"chunk 2 of 3\nchunk 3 of 3\n");
    assert!(started.elapsed() >= Duration::from_millis(1200));
}

#[tokio::test]
async fn sse_sends_events() {
    let server = start().await;
    let r = client()
        .get(format!("{}/sse?n=3&interval_ms=10", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    assert_eq!(body.matches("event: tick\n").count(), 3);
    assert!(
        body.ends_with("id: 3\nevent: tick\ndata: tick 3\n\n"),
        "{body}"
    );
    let r = client()
        .get(format!("{}/sse?n=x", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn bytes_are_deterministic_and_exact_in_length() {
    let server = start().await;
    let r = client()
        .get(format!("{}/bytes/1000003", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], "1000003");
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 1_000_003);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64))
    );
}

async fn get_trailers(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: String,
) -> (String, Option<hyper::HeaderMap>) {
    let request = hyper::Request::get(url)
        .header("te", "trailers")
        .body(Empty::new())
        .unwrap();
    let collected = client
        .request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let trailers = collected.trailers().cloned();
    (
        String::from_utf8(collected.to_bytes().to_vec()).unwrap(),
        trailers,
    )
}

#[tokio::test]
async fn trailers_follow_the_body() {
    let server = start().await;
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let (body, trailers) = get_trailers(&http1, format!("{}/trailers", server.url())).await;
    assert_eq!(body, "the body comes first,\nthen the trailers.\n");
    let trailers = trailers.expect("announced trailers arrive over HTTP/1.1");
    assert_eq!(trailers["x-checksum"], hex::encode(Sha256::digest(&body)));
    assert_eq!(trailers["x-trailer-note"], "sent after the body");

    // Unannounced trailers: HTTP/2 carries them, HTTP/1.1 (hyper) drops them.
    let unannounced = format!("{}/trailers?announce=0", server.url());
    let (_, trailers) = get_trailers(&http1, unannounced.clone()).await;
    assert!(trailers.is_none());
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let (_, trailers) = get_trailers(&http2, unannounced).await;
    assert_eq!(
        trailers.expect("HTTP/2 sends them")["x-trailer-note"],
        "sent after the body"
    );
}

#[tokio::test]
async fn websocket_echoes_text_and_binary_and_closes_cleanly() {
    let server = start().await;
    let url = format!("ws://{}/ws?greet=1", server.addr());
    let (mut ws, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(
        hello,
        Message::text(format!("connected to real server {}", server.addr()))
    );
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).await.unwrap();
    let mut saw_close = false;
    while let Some(Ok(message)) = ws.next().await {
        saw_close |= message.is_close();
    }
    assert!(saw_close, "the server answers the close frame");
}

#[tokio::test]
async fn websocket_endpoint_rejects_plain_requests() {
    let server = start().await;
    let r = client()
        .get(format!("{}/ws", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("websocket endpoint"));
}

#[tokio::test]
async fn health_goes_down_and_up() {
    let server = start().await;
    let health = format!("{}/health", server.url());
    assert_eq!(client().get(&health).send().await.unwrap().status(), 200);
    let r = client()
        .post(format!("{health}/down"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(&health).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "down\n");
    assert_eq!(
        client()
            .get(format!("{health}/up"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    client().post(format!("{health}/up")).send().await.unwrap();
    assert_eq!(client().get(&health).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn flaky_fails_as_often_as_asked() {
    let server = start().await;
    let mut failures = 0;
    for _ in 0..400 {
        let url = format!("{}/flaky?fail_percent=25", server.url());
        if client().get(url).send().await.unwrap().status() == 500 {
            failures += 1;
        }
    }
    // Binomial(400, 0.25): mean 100, sd 8.7; this bound fails once in ~10^8 runs.
    assert!((50..=150).contains(&failures), "{failures} failures");
    for (percent, status) in [(0, 200), (100, 500)] {
        for _ in 0..20 {
            let url = format!("{}/flaky?fail_percent={percent}", server.url());
            assert_eq!(client().get(url).send().await.unwrap().status(), status);
        }
    }
    let r = client()
        .get(format!("{}/flaky?fail_percent=150", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn headers_endpoint_sets_response_headers() {
    let server = start().await;
    let r = client()
        .get(format!(
            "{}/headers?set=X-Color:red&set=X-Color:blue&set=Cache-Control:no-store",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    let colors: Vec<_> = r.headers().get_all("x-color").iter().collect();
    assert_eq!(colors, ["red", "blue"]);
    assert_eq!(r.headers()["cache-control"], "no-store");
    for bad in ["Content-Length:5", "no-colon", "bad%20name:1"] {
        let r = client()
            .get(format!("{}/headers?set={bad}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn garbage_on_the_wire_gets_400_and_the_server_serves_on() {
    let server = start().await;
    for garbage in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let r = client().get(server.url()).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn launch_starts_one_server_per_listen_address() {
    let binder = serving::Binder::ephemeral();
    let launched = real_server::launch_defaults(&binder).await.unwrap();
    assert_eq!(launched.servers.len(), 2);
    let requested: Vec<String> = binder.bound().iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(requested, real_server::DEFAULT_ADDRS);
    for server in &launched.servers {
        let echo: Echo = client()
            .get(server.url())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(echo.served_by, server.addr().to_string());
    }
    launched.shutdown().await;
}
