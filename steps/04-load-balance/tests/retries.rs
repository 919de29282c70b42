//! Retries, as a client and the upstreams see them: a failure the client
//! never notices, and a POST that is never sent twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{client, proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod support;

/// Read one request (head, then a Content-Length body) off `stream`.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |n| n.trim().parse().unwrap());
            if bytes.len() >= end + 4 + length {
                return Some(
                    String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).into_owned(),
                );
            }
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
        }
    }
}

/// An upstream that counts the requests it receives and answers each with
/// its name and the body it got — or, if `hang_up`, closes the connection
/// without a word once the whole request is in (it may have acted on it).
async fn upstream(name: &'static str, hang_up: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                while let Some(body) = read_request(&mut stream).await {
                    count.fetch_add(1, Ordering::SeqCst);
                    if hang_up {
                        return;
                    }
                    let text = format!("{name} got {body:?}");
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, received)
}

/// An address where nothing listens.
async fn refusing() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

#[tokio::test]
async fn a_refused_connection_is_retried_elsewhere_whatever_the_method() {
    let (good, received) = upstream("good", false).await;
    let dead = refusing().await;
    let proxy = proxy(&[dead, good], &["--max-fails", "100"]).await;
    let url = proxy.servers[0].url();
    for i in 0..6 {
        let response = client()
            .post(&url)
            .body(format!("order {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(
            response.text().await.unwrap(),
            format!("good got \"order {i}\"")
        );
    }
    assert_eq!(received.load(Ordering::SeqCst), 6, "each POST arrived once");
}

#[tokio::test]
async fn a_post_the_upstream_may_have_received_is_never_sent_twice() {
    let (hangs_up, hung_up_on) = upstream("hangs-up", true).await;
    let (good, received) = upstream("good", false).await;
    let proxy = proxy(&[hangs_up, good], &["--max-fails", "100"]).await;
    let url = proxy.servers[0].url();
    let mut failed = 0;
    for i in 0..6 {
        let response = client()
            .post(&url)
            .body(format!("order {i}"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => {}
            502 => failed += 1,
            other => panic!("request {i}: {other}"),
        }
    }
    let (first, second) = (
        hung_up_on.load(Ordering::SeqCst),
        received.load(Ordering::SeqCst),
    );
    assert_eq!(first + second, 6, "no POST reached an upstream twice");
    assert_eq!(
        failed, first,
        "each POST the first upstream took failed, visibly"
    );
    assert!(failed > 0, "round-robin sent some to the first");
}

#[tokio::test]
async fn an_idempotent_request_the_upstream_dropped_goes_to_another() {
    let (hangs_up, hung_up_on) = upstream("hangs-up", true).await;
    let (good, received) = upstream("good", false).await;
    let proxy = proxy(&[hangs_up, good], &["--max-fails", "100"]).await;
    let url = proxy.servers[0].url();
    for i in 0..6 {
        // A PUT with a body: kept, and sent again whole.
        let response = client()
            .put(&url)
            .body(format!("state {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(
            response.text().await.unwrap(),
            format!("good got \"state {i}\"")
        );
    }
    assert!(hung_up_on.load(Ordering::SeqCst) > 0);
    assert_eq!(received.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_timeout_is_retried_for_an_idempotent_request() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    // Accepts, reads, never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (good, received) = upstream("good", false).await;
    let proxy = proxy(
        &[silent_url, good],
        &["--timeout", "0.3", "--max-fails", "100"],
    )
    .await;
    let url = proxy.servers[0].url();
    for _ in 0..4 {
        assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    }
    assert_eq!(received.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn retries_zero_turns_them_off() {
    let (good, _) = upstream("good", false).await;
    let dead = refusing().await;
    let proxy = proxy(&[dead, good], &["--retries", "0", "--max-fails", "100"]).await;
    let url = proxy.servers[0].url();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client().get(&url).send().await.unwrap().status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 502, 502]);
}

#[tokio::test]
async fn a_request_is_tried_at_most_retries_plus_one_times() {
    let mut upstreams = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..4 {
        let (url, count) = upstream("hangs-up", true).await;
        upstreams.push(url);
        counts.push(count);
    }
    let proxy = proxy(&upstreams, &["--retries", "2", "--max-fails", "100"]).await;
    let response = client().get(proxy.servers[0].url()).send().await.unwrap();
    assert_eq!(response.status(), 502);
    let tried: usize = counts.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    assert_eq!(
        tried, 3,
        "the first attempt and two retries, each to another upstream"
    );
    assert!(counts.iter().all(|c| c.load(Ordering::SeqCst) <= 1));
}
