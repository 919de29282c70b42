//! HTTP/2 to the upstream (`--upstream h2c://…`): HTTP/1.1 clients' requests
//! go out as HTTP/2 streams, concurrent ones share one connection, trailers
//! pass both ways, and a client that leaves resets only its own stream.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use real_server::Echo;
use support::{client, proxy_to};
use tokio::net::TcpListener;

/// A real server, and step 03 in front of it speaking HTTP/2 to it.
async fn h2_setup() -> (serving::ServerHandle, serving::Launched) {
    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let upstream = format!("h2c://{}", backend.addr());
    let proxy = proxy_to(&upstream, &[]).await;
    (backend, proxy)
}

#[tokio::test]
async fn an_http1_request_goes_upstream_as_http2_and_back() {
    let (backend, proxy) = h2_setup().await;
    let response = client()
        .get(format!("{}/over/h2?x=1", proxy.servers[0].url()))
        .header("connection", "x-private")
        .header("x-private", "hop")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_11,
        "the client keeps its HTTP/1.1"
    );
    let echo: Echo = response.json().await.unwrap();
    assert_eq!(echo.version, "HTTP/2.0");
    assert_eq!(
        (echo.path.as_str(), echo.query.as_deref()),
        ("/over/h2", Some("x=1"))
    );
    assert_eq!(echo.served_by, backend.addr().to_string());
    assert_eq!(echo.header("x-private"), None, "hop-by-hop rules hold");
    assert!(echo.header("x-forwarded-for").is_some());
}

#[tokio::test]
async fn concurrent_requests_share_one_upstream_connection() {
    let (_backend, proxy) = h2_setup().await;
    let url = proxy.servers[0].url();
    let answers = futures_util::future::join_all((0..20).map(|i| {
        let url = format!("{url}/concurrent?i={i}");
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Echo>()
                .await
                .unwrap()
        }
    }))
    .await;
    let peers: std::collections::HashSet<_> =
        answers.iter().map(|e| e.remote_addr.clone()).collect();
    assert_eq!(peers.len(), 1, "one connection carried all 20: {peers:?}");
}

#[tokio::test]
async fn trailers_pass_both_ways_over_http2() {
    let (_backend, proxy) = h2_setup().await;
    let url = proxy.servers[0].url();
    // Response trailers, to a client that said it reads them.
    let request = hyper::Request::get(format!("{url}/trailers"))
        .header("te", "trailers")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let http = Client::builder(TokioExecutor::new()).build_http();
    let collected = http
        .request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers came through");
    assert!(trailers.contains_key("x-trailer-note"), "{trailers:?}");
    // Request trailers reach the upstream.
    let mut sent = hyper::HeaderMap::new();
    sent.insert("x-digest", "abc123".parse().unwrap());
    let frames = futures_util::stream::iter([
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from("body"))),
        Ok(Frame::trailers(sent)),
    ]);
    let request = hyper::Request::post(format!("{url}/upload"))
        .header("trailer", "x-digest")
        .body(StreamBody::new(frames))
        .unwrap();
    let body = Client::builder(TokioExecutor::new())
        .build_http()
        .request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let seen: Echo = serde_json::from_slice(&body.to_bytes()).unwrap();
    assert_eq!(
        seen.trailers,
        [("x-digest".to_owned(), "abc123".to_owned())]
    );
}

#[tokio::test]
async fn a_client_that_leaves_resets_its_stream_not_the_connection() {
    let (_backend, proxy) = h2_setup().await;
    let url = proxy.servers[0].url();
    let first: Echo = client()
        .get(format!("{url}/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A slow response the client abandons half way.
    let mut slow = client()
        .get(format!("{url}/stream/5?interval_ms=300"))
        .send()
        .await
        .unwrap();
    slow.chunk().await.unwrap();
    drop(slow);
    let after: Echo = client()
        .get(format!("{url}/b"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first.remote_addr, after.remote_addr,
        "the same upstream connection"
    );
}

#[tokio::test]
async fn a_dead_h2c_upstream_is_a_502_that_says_why() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = proxy_to(&format!("h2c://{closed}"), &[]).await;
    let response = client().get(proxy.servers[0].url()).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().contains("cannot connect"));
}
