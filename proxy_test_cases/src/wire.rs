//! The wire side of the proxy tests: a proxy in front of a real server, a
//! client, raw-socket requests and answers, hand-written backends for what
//! real_server cannot misbehave at. Which proxy is under test is a
//! [`Launch`]: each step's tests say how to start theirs.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serving::{Launched, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts the proxy under test in front of `upstream`, with extra flags.
pub type Launch = for<'a> fn(&'a str, &'a [&'a str]) -> BoxFuture<'a, Launched>;

/// The proxy under test in front of a fresh real server.
pub struct Setup {
    pub proxy: Launched,
    pub backend: ServerHandle,
}

impl Setup {
    /// The proxy `launch` starts, in front of a fresh real server, with
    /// extra CLI flags.
    pub async fn new(launch: Launch, extra: &[&str]) -> Self {
        let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let proxy = launch(&backend.url(), extra).await;
        Setup { proxy, backend }
    }

    pub fn url(&self) -> String {
        url_of(&self.proxy)
    }

    pub fn addr(&self) -> SocketAddr {
        self.proxy.servers[0].addr()
    }
}

/// Where a launched proxy takes requests.
pub fn url_of(proxy: &Launched) -> String {
    proxy.servers[0].url()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Write `request` as raw bytes and read until the peer closes (or 10 s).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_all(&mut stream).await
}

pub async fn read_all(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Read one response head (up to the blank line).
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A backend that hands each accepted connection to `handle`.
pub async fn raw_backend<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    addr
}

/// The JSON body of a raw HTTP/1.1 answer.
pub fn json_body(answer: &str) -> real_server::Echo {
    let (_, body) = answer.split_once("\r\n\r\n").expect("a complete response");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// `count` upstreams that answer every request without a body `200 ok`,
/// and read a request with a body for as long as its client sends, without
/// ever answering it; each such request's head is announced on the
/// returned channel once it has arrived (whichever upstream took it), so a
/// test knows the proxy is sending that body upstream.
pub async fn upload_sinks(
    count: usize,
) -> (Vec<SocketAddr>, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let (heads, announced) = tokio::sync::mpsc::unbounded_channel();
    let mut addrs = Vec::new();
    for _ in 0..count {
        addrs.push(upload_sink(heads.clone()).await);
    }
    (addrs, announced)
}

async fn upload_sink(heads: tokio::sync::mpsc::UnboundedSender<()>) -> SocketAddr {
    raw_backend(move |mut stream: TcpStream| {
        let heads = heads.clone();
        async move {
            let mut seen = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                seen.extend_from_slice(&buf[..n]);
                let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                if head.contains("content-length") || head.contains("transfer-encoding") {
                    let _ = heads.send(());
                    // Read the body for ever; answer nothing.
                    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                    return;
                }
                seen.drain(..end + 4);
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
                if stream.write_all(ok).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// A client that announces a 100,000-byte upload to `proxy`, sends 10
/// bytes of it, and hangs up once `upstream_heads` says the upload has
/// reached the upstream.
pub async fn abandon_upload(
    proxy: SocketAddr,
    host: &str,
    upstream_heads: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: {host}\r\ncontent-length: 100000\r\n\r\n0123456789"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), upstream_heads.recv())
        .await
        .expect("the upload reached the upstream")
        .expect("the sink is alive");
    drop(stream);
}
