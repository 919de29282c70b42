//! Step 02 against real backends: what it does, and — pinned on purpose —
//! what it does not do yet. Each `gap_` test fails the day the gap closes;
//! step 03's tests assert the opposite.

use std::time::Duration;

use clap::Parser;
use real_server::{Echo, pattern_byte};
use serving::{Binder, Launched, ServerHandle};
use tokio::net::TcpListener;

async fn backend() -> ServerHandle {
    real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap()
}

async fn proxy_to(upstream: &str) -> Launched {
    let args = step02_reverse_proxy_minimal::Args::parse_from([
        "step02-reverse-proxy-minimal",
        "--upstream",
        upstream,
    ]);
    step02_reverse_proxy_minimal::launch(args, &Binder::ephemeral())
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn echo_through(proxy: &Launched, path: &str, headers: &[(&str, &str)]) -> Echo {
    let mut request = client().get(format!("{}{path}", proxy.servers[0].url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn requests_are_moved_onto_the_upstream_path_and_query() {
    let backend = backend().await;
    let proxy = proxy_to(&format!("{}/base?from=proxy", backend.url())).await;
    let echo = echo_through(&proxy, "/hello?x=1", &[]).await;
    assert_eq!(echo.served_by, backend.addr().to_string());
    assert_eq!(echo.path, "/base/hello");
    assert_eq!(echo.query.as_deref(), Some("from=proxy&x=1"));
}

#[tokio::test]
async fn status_headers_and_body_come_back_unchanged() {
    let backend = backend().await;
    let proxy = proxy_to(&backend.url()).await;
    let url = proxy.servers[0].url();
    let response = client()
        .get(format!("{url}/status/418"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 418);
    assert_eq!(
        response.headers()["x-served-by"],
        backend.addr().to_string().as_str()
    );
    let body = client()
        .get(format!("{url}/bytes/300000"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 300_000);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64))
    );
}

#[tokio::test]
async fn without_upstream_it_starts_real_servers_and_uses_the_first() {
    let binder = Binder::ephemeral();
    let args = step02_reverse_proxy_minimal::Args::parse_from(["step02-reverse-proxy-minimal"]);
    let launched = step02_reverse_proxy_minimal::launch(args, &binder)
        .await
        .unwrap();
    let requested: Vec<String> = binder.bound().iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(
        requested,
        [
            real_server::DEFAULT_ADDRS[0],
            real_server::DEFAULT_ADDRS[1],
            &args_default_listen()
        ]
    );
    let proxy = launched.get("minimal reverse proxy").unwrap();
    let echo: Echo = client()
        .get(proxy.url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.served_by, launched.servers[0].addr().to_string());
}

fn args_default_listen() -> String {
    step02_reverse_proxy_minimal::Args::parse_from(["step02-reverse-proxy-minimal"])
        .listen
        .to_string()
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = proxy_to(&format!("http://{closed}")).await;
    let response = client().get(proxy.servers[0].url()).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .starts_with("upstream request failed")
    );
}

#[tokio::test]
async fn gap_hop_by_hop_request_headers_reach_the_backend() {
    let backend = backend().await;
    let proxy = proxy_to(&backend.url()).await;
    let echo = echo_through(
        &proxy,
        "/",
        &[
            ("connection", "x-private"),
            ("x-private", "meant for the proxy"),
            ("keep-alive", "timeout=5"),
        ],
    )
    .await;
    assert_eq!(echo.header("x-private"), Some("meant for the proxy"));
    assert_eq!(echo.header("keep-alive"), Some("timeout=5"));
}

#[tokio::test]
async fn gap_hop_by_hop_response_headers_reach_the_client() {
    let backend = backend().await;
    let proxy = proxy_to(&backend.url()).await;
    let url = format!(
        "{}/headers?set=Connection:X-Secret&set=X-Secret:internal",
        proxy.servers[0].url()
    );
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.headers()["x-secret"], "internal");
}

#[tokio::test]
async fn gap_no_forwarded_headers_and_the_host_is_the_proxys() {
    let backend = backend().await;
    let proxy = proxy_to(&backend.url()).await;
    let echo = echo_through(&proxy, "/", &[]).await;
    assert_eq!(echo.header("x-forwarded-for"), None);
    assert_eq!(echo.header("x-real-ip"), None);
    // The backend only sees the proxy's connection and the proxy's name.
    assert_eq!(
        echo.header("host"),
        Some(proxy.servers[0].addr().to_string().as_str())
    );
}

#[tokio::test]
async fn gap_websocket_upgrades_are_not_tunnelled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = backend().await;
    let proxy = proxy_to(&backend.url()).await;
    let mut client = tokio::net::TcpStream::connect(proxy.servers[0].addr())
        .await
        .unwrap();
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    // Step 02 passes the backend's 101 on, so the client believes it has a
    // websocket…
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(client.read(&mut byte).await.unwrap(), 1, "closed mid-head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // …but never joins the two connections: a text frame (masked with a
    // zero key, so the payload reads as is) gets no echo. Through a tunnel
    // the echo takes milliseconds; two seconds of silence is the gap.
    client
        .write_all(&[0x81, 0x85, 0, 0, 0, 0, b'h', b'e', b'l', b'l', b'o'])
        .await
        .unwrap();
    let mut echo = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), client.read(&mut echo)).await;
    assert!(
        matches!(read, Err(_) | Ok(Ok(0))),
        "the websocket echo came back through step 02: {read:?} {:?}",
        &echo[..]
    );
}
