//! Step 01 through a real client (reqwest's proxy support, curl's behaviour)
//! against real backends over TCP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use real_server::Echo;
use serving::{Binder, Launched, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Setup {
    proxy: Launched,
    backend: ServerHandle,
}

impl Setup {
    /// The proxy as the tests' loopback backends need it: local
    /// destinations and any CONNECT port allowed.
    async fn new(extra_args: &[&str]) -> Self {
        let open = ["--allow-private", "--connect-ports", "any"];
        Self::with_defaults(&[&open[..], extra_args].concat()).await
    }

    /// The proxy with its defaults and `args`.
    async fn with_defaults(args: &[&str]) -> Self {
        let args = step01_forward_proxy::Args::parse_from(
            std::iter::once("step01-forward-proxy").chain(args.iter().copied()),
        );
        let proxy = step01_forward_proxy::launch(args, &Binder::ephemeral())
            .await
            .unwrap();
        let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
        Setup { proxy, backend }
    }

    fn proxy_url(&self) -> String {
        self.proxy.servers[0].url()
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(self.proxy_url()).unwrap())
            .build()
            .unwrap()
    }
}

/// Send raw bytes to the proxy and read its whole answer.
async fn raw(setup: &Setup, request: String) -> String {
    let mut stream = TcpStream::connect(setup.proxy.servers[0].addr())
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// Ways to write an address of this machine that all resolve to it.
const LOOPBACK_SPELLINGS: [&str; 6] = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0",
    "[::ffff:127.0.0.1]",
    "localhost",
];

/// The proxy's answer to `CONNECT target`.
async fn connect(setup: &Setup, target: &str) -> String {
    raw(
        setup,
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn absolute_form_request_is_forwarded_with_forwarded_for_and_no_hop_by_hop() {
    let setup = Setup::new(&[]).await;
    let echo: Echo = setup
        .client()
        .get(format!("{}/hello?x=1", setup.backend.url()))
        .header("connection", "x-private")
        .header("x-private", "for the proxy only")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-kept", "yes")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.path, "/hello");
    assert_eq!(echo.query.as_deref(), Some("x=1"));
    assert_eq!(
        echo.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(echo.header("x-kept"), Some("yes"));
    for gone in ["connection", "x-private", "keep-alive", "proxy-connection"] {
        assert_eq!(echo.header(gone), None, "{gone} reached the backend");
    }
    assert!(echo.header("via").unwrap().starts_with("1.1 workbench-"));
}

#[tokio::test]
async fn hop_by_hop_headers_in_the_response_stop_at_the_proxy() {
    let setup = Setup::new(&[]).await;
    let url = format!(
        "{}/headers?set=Connection:X-Secret&set=X-Secret:internal&set=Keep-Alive:timeout=5&set=X-Public:ok",
        setup.backend.url()
    );
    let response = setup.client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-public"], "ok");
    assert!(response.headers().get("x-secret").is_none());
    assert!(response.headers().get("keep-alive").is_none());
}

#[tokio::test]
async fn responses_stream_through() {
    let setup = Setup::new(&[]).await;
    let started = Instant::now();
    let response = setup
        .client()
        .get(format!("{}/stream/2?interval_ms=1500", setup.backend.url()))
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    assert_eq!(chunks.next().await.unwrap().unwrap(), "chunk 1 of 2\n");
    let first_at = started.elapsed();
    assert!(
        first_at < Duration::from_millis(1000),
        "first chunk after {first_at:?}"
    );
}

/// A TLS server with a certificate for `localhost`, made up for the test.
async fn tls_backend() -> (u16, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        "hello over tls\n",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, cert.pem())
}

#[tokio::test]
async fn connect_tunnel_carries_tls_end_to_end() {
    let setup = Setup::new(&[]).await;
    let (port, ca) = tls_backend().await;
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(setup.proxy_url()).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let body = client
        .get(format!("https://localhost:{port}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello over tls\n");
}

#[tokio::test]
async fn connect_answers_400_without_a_port_and_502_when_unreachable() {
    let setup = Setup::new(&[]).await;
    let answer = raw(
        &setup,
        "CONNECT localhost HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let closed = closed_port().await;
    let answer = raw(
        &setup,
        format!("CONNECT 127.0.0.1:{closed} HTTP/1.1\r\nHost: 127.0.0.1:{closed}\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.contains("cannot open a tunnel to 127.0.0.1:"),
        "{answer}"
    );
}

#[tokio::test]
async fn origin_form_request_is_refused_with_a_reason() {
    let setup = Setup::new(&[]).await;
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/x", setup.proxy_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("this is a forward proxy")
    );
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_destination_is_502_with_the_reason() {
    let setup = Setup::new(&[]).await;
    let port = closed_port().await;
    let response = setup
        .client()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert!(text.contains("Connection refused"), "{text}");
}

#[tokio::test]
async fn a_request_to_the_proxy_itself_does_not_loop() {
    let setup = Setup::new(&[]).await;
    for target in [
        setup.proxy_url(),
        setup.proxy_url().replace("127.0.0.1", "localhost"),
    ] {
        let response = setup
            .client()
            .get(format!("{target}/again"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 508, "{target}");
        assert!(response.text().await.unwrap().contains("would loop"));
    }
    // However the proxy's own address is spelled, it resolves to the
    // proxy: nesting CONNECTs to itself used to turn one client socket
    // into thousands of the proxy's.
    let port = setup.proxy.servers[0].addr().port();
    for host in LOOPBACK_SPELLINGS {
        let answer = connect(&setup, &format!("{host}:{port}")).await;
        assert!(answer.starts_with("HTTP/1.1 508"), "{host}: {answer}");
    }
}

#[tokio::test]
async fn by_default_local_and_private_destinations_are_refused() {
    let setup = Setup::with_defaults(&[]).await;
    let port = setup.backend.addr().port();
    for host in LOOPBACK_SPELLINGS
        .into_iter()
        .chain(["10.0.0.1", "169.254.169.254"])
    {
        let response = setup
            .client()
            .get(format!("http://{host}:{port}/secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{host}");
        let text = response.text().await.unwrap();
        assert!(text.contains("--allow-private"), "{host}: {text}");
    }
    let answer = connect(&setup, "127.1:443").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[tokio::test]
async fn by_default_connect_reaches_port_443_only() {
    let setup = Setup::with_defaults(&["--allow-private"]).await;
    let port = setup.backend.addr().port();
    let answer = connect(&setup, &format!("127.0.0.1:{port}")).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("--connect-ports"), "{answer}");
    // Listed, the same port is tunnelled to (the first setup's backend).
    let allowed =
        Setup::with_defaults(&["--allow-private", "--connect-ports", &format!("443,{port}")]).await;
    let answer = connect(&allowed, &format!("127.0.0.1:{port}")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn proxy_auth_is_required_when_configured() {
    let setup = Setup::new(&["--proxy-auth", "alice:secret"]).await;
    let url = format!("{}/private", setup.backend.url());
    let response = setup.client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 407);
    assert_eq!(
        response.headers()["proxy-authenticate"],
        "Basic realm=\"proxy workbench\""
    );
    for (user, password, status) in [("alice", "wrong", 407), ("alice", "secret", 200)] {
        let client = reqwest::Client::builder()
            .proxy(
                reqwest::Proxy::all(setup.proxy_url())
                    .unwrap()
                    .basic_auth(user, password),
            )
            .build()
            .unwrap();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), status, "{user}:{password}");
        if status == 200 {
            let echo: Echo = response.json().await.unwrap();
            assert_eq!(
                echo.header("proxy-authorization"),
                None,
                "credentials leaked upstream"
            );
        }
    }
}

#[tokio::test]
async fn proxy_auth_scheme_names_are_case_insensitive() {
    let setup = Setup::new(&["--proxy-auth", "alice:secret"]).await;
    // base64("alice:secret")
    for scheme in ["basic", "BASIC"] {
        let answer = raw(
            &setup,
            format!(
                "GET {}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {scheme} YWxpY2U6c2VjcmV0\r\nConnection: close\r\n\r\n",
                setup.backend.url()
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{scheme}: {answer}");
    }
}

#[test]
fn bad_proxy_auth_flag_is_a_clear_cli_error() {
    let error = step01_forward_proxy::Args::try_parse_from([
        "step01-forward-proxy",
        "--proxy-auth",
        "nocolon",
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("expected USER:PASSWORD"), "{error}");
}

#[tokio::test]
async fn open_tunnels_keep_their_place_under_the_connection_caps() {
    // A tunnel outlives the HTTP exchange that opened it; its socket must
    // still count, or tunnels would slip past every connection cap.
    let setup = Setup::new(&["--max-connections-per-ip", "2"]).await;
    let port = setup.backend.addr().port();
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(setup.proxy.servers[0].addr())
            .await
            .unwrap();
        stream
            .write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        tunnels.push(stream);
    }
    let mut third = TcpStream::connect(setup.proxy.servers[0].addr())
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), third.read(&mut byte))
        .await
        .expect("the third connection is closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn http2_tunnels_keep_their_place_under_the_connection_caps() {
    // Over HTTP/2 a tunnel is a stream, and hyper drops the body of its 200:
    // the stream's place must stay with the tunnel, or one connection could
    // open a hundred tunnels (two descriptors each) under a cap of three.
    let setup = Setup::new(&["--max-connections-per-ip", "3"]).await;
    let port = setup.backend.addr().port();
    let stream = TcpStream::connect(setup.proxy.servers[0].addr())
        .await
        .unwrap();
    let (sender, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let open = |sender: h2::client::SendRequest<Bytes>| async move {
        let mut sender = sender.ready().await.unwrap();
        let request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("127.0.0.1:{port}"))
            .body(())
            .unwrap();
        let (response, tunnel) = sender.send_request(request, false).unwrap();
        (response.await.unwrap(), tunnel)
    };
    // The connection holds one place, each open tunnel one more.
    let (first, mut first_tunnel) = open(sender.clone()).await;
    assert_eq!(first.status(), 200);
    let (second, _second_tunnel) = open(sender.clone()).await;
    assert_eq!(second.status(), 200);
    let (third, _) = open(sender.clone()).await;
    assert_eq!(third.status(), 503, "a third tunnel finds no place");

    // The tunnel is a working pipe to the backend.
    first_tunnel
        .send_data(
            Bytes::from_static(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            false,
        )
        .unwrap();
    let mut answer = first.into_body();
    let mut bytes = Vec::new();
    while let Some(data) = answer.data().await {
        bytes.extend_from_slice(&data.unwrap());
    }
    assert!(bytes.starts_with(b"HTTP/1.1 200"), "{bytes:?}");
    // Once both ends of the first tunnel have closed, its place is free.
    first_tunnel.send_data(Bytes::new(), true).unwrap();
    let fourth = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (response, _tunnel) = open(sender.clone()).await;
            if response.status() == 200 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(fourth.is_ok(), "the closed tunnel gave its place back");
}
