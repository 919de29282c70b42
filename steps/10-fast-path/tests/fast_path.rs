//! What step 10's own engine must get right beyond step 03's cases: the
//! edges of keeping one buffer per connection and driving the upstream
//! from the client's task.

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let setup = Setup::new(proxy_to, &[]).await;
    let answer = raw(
        setup.addr(),
        b"GET /echo/first HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo/second HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /echo/third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Each echo says the path it served (pretty-printed JSON).
    let at = |path: &str| {
        answer
            .find(&format!("\"path\": \"{path}\""))
            .unwrap_or_else(|| panic!("no answer for {path}: {answer}"))
    };
    assert!(at("/echo/first") < at("/echo/second"), "{answer}");
    assert!(at("/echo/second") < at("/echo/third"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3);
}

#[tokio::test]
async fn an_http_1_0_client_gets_a_chunked_body_decoded_and_the_connection_closed() {
    let setup = Setup::new(proxy_to, &[]).await;
    // /stream answers chunked; HTTP/1.0 has no chunks.
    let answer = raw(setup.addr(), b"GET /stream/3 HTTP/1.0\r\n\r\n").await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(body.lines().count(), 3, "{body:?}");
    assert!(body.ends_with("chunk 3 of 3\n"), "{body:?}");
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_replaced_without_an_error() {
    // An upstream that serves one request per connection and then closes
    // it, without saying so: the proxy pools the connection, finds it dead
    // at the next request, and opens another.
    let backend = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let proxy = proxy_to(&format!("http://{backend}"), &[]).await;
    let client = client();
    for _ in 0..5 {
        let response = client.get(url_of(&proxy)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
        // Let the upstream's close arrive before the next request.
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_lets_a_response_finish() {
    let setup = Setup::new(proxy_to, &[]).await;
    // One idle keep-alive connection, and one slow response under way.
    let mut idle = TcpStream::connect(setup.addr()).await.unwrap();
    idle.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut idle).await;
    assert!(head.starts_with("HTTP/1.1 200"));
    let mut busy = TcpStream::connect(setup.addr()).await.unwrap();
    busy.write_all(b"GET /stream/2?interval_ms=500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut busy).await;
    assert!(head.starts_with("HTTP/1.1 200"));

    let Setup { proxy, backend } = setup;
    let started = Instant::now();
    let shutdown = tokio::spawn(proxy.shutdown());
    // The idle connection is closed without waiting for the grace period.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("the idle connection was closed");
    // The slow response arrives whole.
    let body = read_all(&mut busy).await;
    assert!(body.contains("chunk 2 of 2"), "{body}");
    shutdown.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(backend);
}

#[tokio::test]
async fn a_head_with_too_many_headers_is_refused() {
    let setup = Setup::new(proxy_to, &[]).await;
    let mut request = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for n in 0..200 {
        request.push_str(&format!("X-{n}: y\r\n"));
    }
    request.push_str("\r\n");
    let answer = raw(setup.addr(), request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn an_https_upstream_is_refused_at_start_with_the_reason() {
    let error = step10_fast_path::Args::try_parse_from([
        "step10-fast-path",
        "--upstream",
        "https://example.com",
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("--upstream"), "{error}");
    assert!(error.contains("http://"), "{error}");
}

#[tokio::test]
async fn a_status_line_without_a_reason_phrase_is_forwarded() {
    // Found by fuzzing: the missing reason was read from outside the
    // buffer, and the proxy panicked.
    let backend = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let proxy = proxy_to(&format!("http://{backend}"), &[]).await;
    let answer = raw(
        proxy.servers[0].addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 \r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
}

#[tokio::test]
async fn a_pooled_connection_that_dies_after_an_interim_answer_is_not_sent_again() {
    // The first request on a connection is served; the second gets a
    // 103 Early Hints and then the connection dies. The request was
    // answered (in part): it must not be sent again — and never as the
    // interim head the proxy forwarded.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let backend = raw_backend(move |mut stream| {
        let record = record.clone();
        async move {
            let first = read_head(&mut stream).await;
            record
                .lock()
                .unwrap()
                .push(first.lines().next().unwrap_or("").to_owned());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            let second = read_head(&mut stream).await;
            record
                .lock()
                .unwrap()
                .push(second.lines().next().unwrap_or("").to_owned());
            let _ = stream
                .write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
                .await;
        }
    })
    .await;
    let proxy = proxy_to(&format!("http://{backend}"), &[]).await;
    let client = client();
    let first = client.get(url_of(&proxy)).send().await.unwrap();
    assert_eq!(first.text().await.unwrap(), "ok");
    let second = client.get(url_of(&proxy)).send().await.unwrap();
    assert_eq!(second.status(), 502);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|line| line.starts_with("GET ")),
        "the upstream was sent {seen:?}"
    );
}

#[tokio::test]
async fn a_post_the_upstream_took_without_answering_is_not_sent_twice() {
    // The second request on a pooled connection is a POST; the upstream
    // reads it and closes without a word. It may have acted on it: the
    // client gets a 502, and the POST reached the upstream once.
    let posts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = posts.clone();
    let backend = raw_backend(move |mut stream| {
        let counted = counted.clone();
        async move {
            loop {
                let head = read_head(&mut stream).await;
                if head.is_empty() {
                    return;
                }
                if head.starts_with("POST") {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let mut body = [0u8; 4];
                    let _ = stream.read_exact(&mut body).await;
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
        }
    })
    .await;
    let proxy = proxy_to(&format!("http://{backend}"), &[]).await;
    let client = client();
    let first = client.get(url_of(&proxy)).send().await.unwrap();
    assert_eq!(first.text().await.unwrap(), "ok");
    let post = client
        .post(url_of(&proxy))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 502);
    assert_eq!(posts.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// An upstream that reads the head and then stops taking the body is given
/// up after the client body timeout (504), not waited on for ever.
#[tokio::test]
async fn an_upstream_that_stops_taking_the_body_is_given_up() {
    let (got_head, mut head_arrived) = tokio::sync::mpsc::channel::<()>(1);
    let backend = proxy_test_cases::wire::raw_backend(move |mut stream| {
        let got_head = got_head.clone();
        async move {
            proxy_test_cases::wire::read_head(&mut stream).await;
            let _ = got_head.send(()).await;
            // Never reads again, never answers; holds the socket open.
            std::future::pending::<()>().await;
            drop(stream);
        }
    })
    .await;
    let proxy = proxy_to(
        &format!("http://{backend}"),
        &["--client-body-timeout", "1"],
    )
    .await;
    let client = TcpStream::connect(proxy.servers[0].addr()).await.unwrap();
    let (mut reading, mut writing) = client.into_split();
    let size = 64 * 1024 * 1024;
    let uploading = tokio::spawn(async move {
        let head = format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        writing.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..size / chunk.len() {
            writing.write_all(&chunk).await?;
        }
        std::io::Result::Ok(())
    });
    head_arrived.recv().await.unwrap();
    let mut answer = Vec::new();
    // The proxy closes with the upload unread: the end may be a reset,
    // after the answer.
    let _ = tokio::time::timeout(Duration::from_secs(30), reading.read_to_end(&mut answer))
        .await
        .expect("answered before the test gave up");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    uploading.abort();
}
