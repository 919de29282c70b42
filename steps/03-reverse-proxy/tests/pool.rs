//! The upstream connection pool, seen from a backend: which connections it
//! opens, reuses and closes.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serving::{Binder, Server, ServerHandle};
use step03_reverse_proxy::{HttpTransport, ReverseProxy, TransportOptions, single_host};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A backend that counts the connections it accepts and answers every
/// request on them with `response`; `then_close` hangs up after the first.
async fn counting_backend(
    response: &'static [u8],
    then_close: bool,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let addr = raw_backend(move |mut stream| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            while !read_head(&mut stream).await.is_empty() {
                if stream.write_all(response).await.is_err() || then_close {
                    return;
                }
            }
        }
    })
    .await;
    (addr, accepted)
}

async fn get_text(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_chunked_response_gives_its_connection_back() {
    let (backend, accepted) = counting_backend(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    )
    .await;
    let proxy = proxy_to(&format!("http://{backend}"), &[]).await;
    for _ in 0..10 {
        assert_eq!(
            get_text(&proxy.servers[0].url()).await,
            (200, "hello".into())
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    // No `Connection: close`: the pool keeps each connection, and the
    // backend hangs up on it right after answering.
    let (backend, accepted) =
        counting_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    let proxy = proxy_to(&format!("http://{backend}"), &[]).await;
    for _ in 0..10 {
        assert_eq!(get_text(&proxy.servers[0].url()).await, (200, "ok".into()));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10);
}

/// Step 03's proxy with the pool's idle timeout set.
async fn proxy_with_idle_timeout(upstream: SocketAddr, idle: Duration) -> ServerHandle {
    let transport = HttpTransport::new(TransportOptions {
        pool_idle_timeout: idle,
        ..TransportOptions::default()
    });
    let target = format!("http://{upstream}").parse().unwrap();
    let proxy = Arc::new(ReverseProxy::with_transport(single_host(target), transport));
    let listener = Binder::ephemeral()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    step03_reverse_proxy::serve(proxy, Server::new(listener, "proxy"), Default::default()).unwrap()
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let backend = raw_backend(move |mut stream: TcpStream| {
        let closed_tx = closed_tx.clone();
        async move {
            while !read_head(&mut stream).await.is_empty() {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
            let _ = closed_tx.send(Instant::now());
        }
    })
    .await;
    let idle = Duration::from_millis(300);
    let proxy = proxy_with_idle_timeout(backend, idle).await;
    assert_eq!(get_text(&proxy.url()).await, (200, "ok".into()));
    let answered = Instant::now();
    let closed_at = tokio::time::timeout(Duration::from_secs(5), closed.recv())
        .await
        .expect("the idle connection was never closed")
        .unwrap();
    let after = closed_at - answered;
    assert!(
        after >= idle - Duration::from_millis(50) && after < Duration::from_secs(2),
        "closed {after:?} after the response, idle timeout {idle:?}"
    );
}

#[tokio::test]
async fn a_response_with_trailers_gives_its_connection_back() {
    let (backend, accepted) = counting_backend(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n",
        false,
    )
    .await;
    let proxy = proxy_to(&format!("http://{backend}"), &[]).await;
    for _ in 0..5 {
        let response = client()
            .get(proxy.servers[0].url())
            .header("te", "trailers")
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "hello");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_early_answer_closes_the_connection_still_taking_an_upload() {
    // The backend answers as soon as it has the head and never reads the
    // body; the client keeps uploading. The proxy must not park that
    // connection in the pool half way through the exchange.
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let backend = raw_backend(move |mut stream: TcpStream| {
        let closed_tx = closed_tx.clone();
        async move {
            read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo much")
                .await;
            let mut sink = [0u8; 65536];
            while tokio::io::AsyncReadExt::read(&mut stream, &mut sink)
                .await
                .is_ok_and(|n| n > 0)
            {}
            let _ = closed_tx.send(());
        }
    })
    .await;
    let proxy = proxy_to(&format!("http://{backend}"), &[]).await;
    let (chunks_tx, chunks) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    chunks_tx
        .send(Ok(bytes::Bytes::from(vec![b'x'; 1024])))
        .await
        .unwrap();
    let upload = reqwest::Body::wrap_stream(tokio_stream_from(chunks));
    let response = client()
        .post(proxy.servers[0].url())
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(response.text().await.unwrap(), "too much");
    tokio::time::timeout(Duration::from_secs(3), closed.recv())
        .await
        .expect("the upstream connection was kept open with the upload unfinished");
    drop(chunks_tx);
}

/// The receiving half of a channel as a stream (for a streaming request body).
fn tokio_stream_from<T: Send + 'static>(
    mut receiver: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
