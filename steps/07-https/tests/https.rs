//! Step 07 end to end: TLS toward clients, TLS toward upstreams, the
//! redirect listener — with certificates made for each test by a test CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serving::{Binder, Launched, Server, ServerHandle};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A directory of PEM files that lives as long as the test.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, and a leaf for `names` signed by it: ca.pem, leaf.pem, leaf.key.
    fn new(names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "step07-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "proxy workbench test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("leaf.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("leaf.key"), leaf_key.serialize_pem()).unwrap();
        Self { dir }
    }

    /// A self-signed certificate for `name` made the way most people make
    /// one, with the openssl command (which marks it as a CA): self.pem and
    /// self.key.
    fn openssl_self_signed(&self, name: &str) {
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args([
                "-keyout",
                &self.path("self.key"),
                "-out",
                &self.path("self.pem"),
            ])
            .args(["-subj", &format!("/CN={name}")])
            .args(["-addext", &format!("subjectAltName=DNS:{name}")])
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl command (Debian package openssl)");
        assert!(status.success());
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A rustls server configuration serving the leaf.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_of("leaf")
    }

    /// The same, offering HTTP/2 by ALPN as well (as a gRPC server does).
    fn server_config_h2(&self) -> Arc<rustls::ServerConfig> {
        let mut config = (*self.server_config_of("leaf")).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A rustls server configuration serving `NAME.pem` with `NAME.key`.
    fn server_config_of(&self, name: &str) -> Arc<rustls::ServerConfig> {
        let chain = CertificateDer::pem_file_iter(self.dir.join(format!("{name}.pem")))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.dir.join(format!("{name}.key"))).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(step07_https::crypto())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

async fn proxy(flags: &[&str]) -> anyhow::Result<Launched> {
    let argv = ["step07-https"].into_iter().chain(flags.iter().copied());
    step07_https::launch(
        step07_https::Args::try_parse_from(argv)?,
        &Binder::ephemeral(),
    )
    .await
}

fn addr(launched: &Launched) -> SocketAddr {
    launched.get("https proxy").unwrap().addr()
}

/// A client that trusts exactly the certificates in `pem` and finds
/// `localhost` at `at`.
fn client_trusting(pem: &Path, at: SocketAddr) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(&std::fs::read(pem).unwrap()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .resolve("localhost", at)
        .no_proxy()
        .build()
        .unwrap()
}

/// GET `path` from the proxy as `localhost`, trusting only `pem`.
async fn get_via(launched: &Launched, pem: &Path, path: &str) -> reqwest::Response {
    client_trusting(pem, addr(launched))
        .get(format!("https://localhost:{}{path}", addr(launched).port()))
        .send()
        .await
        .unwrap()
}

/// real_server behind TLS, serving the leaf of `pki`: an HTTPS upstream.
async fn tls_backend(pki: &Pki) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    real_server::serve(Server::new(listener, "tls backend").tls(pki.server_config())).unwrap()
}

#[tokio::test]
async fn a_self_signed_certificate_is_generated_and_its_file_is_what_clients_trust() {
    let dir = Pki::new(&["unused"]);
    let cert = dir.path("generated.pem");
    let launched = proxy(&["--cert-out", &cert]).await.unwrap();
    let client = client_trusting(Path::new(&cert), addr(&launched));
    for host in ["localhost".to_owned(), addr(&launched).ip().to_string()] {
        let url = format!("https://{host}:{}/hello", addr(&launched).port());
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let echo: real_server::Echo = response.json().await.unwrap();
        assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
    }
    // Valid for 90 days, not the 774,680 of rcgen's default: openssl's
    // -checkend succeeds if it is still valid that many seconds from now.
    let valid_in = |days: u64| {
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-in", &cert, "-checkend"])
            .arg((days * 86_400).to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("the openssl command (Debian package openssl)")
            .success()
    };
    assert!(valid_in(89), "valid in 89 days");
    assert!(!valid_in(91), "expired in 91 days");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let pki = Pki::new(&["localhost"]);
    let launched = proxy(&["--cert-out", &pki.path("generated.pem")])
        .await
        .unwrap();
    // Trusting some other CA is not trusting this certificate.
    let client = client_trusting(&pki.dir.join("ca.pem"), addr(&launched));
    let error = client
        .get(format!("https://localhost:{}/", addr(&launched).port()))
        .send()
        .await
        .unwrap_err();
    let chain = format!("{error:?}");
    assert!(chain.contains("UnknownIssuer"), "{chain}");
}

#[tokio::test]
async fn alpn_gives_http2_to_clients_that_offer_it_and_http1_to_the_rest() {
    let pki = Pki::new(&["unused"]);
    let cert = pki.path("generated.pem");
    let launched = proxy(&["--cert-out", &cert]).await.unwrap();
    let url = format!("https://localhost:{}/", addr(&launched).port());
    let both = client_trusting(Path::new(&cert), addr(&launched));
    let response = both.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);

    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let http1 = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .add_root_certificate(root)
        .resolve("localhost", addr(&launched))
        .no_proxy()
        .build()
        .unwrap();
    let response = http1.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn certificate_files_from_a_ca_are_served() {
    let pki = Pki::new(&["localhost"]);
    let launched = proxy(&[
        "--tls-cert",
        &pki.path("leaf.pem"),
        "--tls-key",
        &pki.path("leaf.key"),
    ])
    .await
    .unwrap();
    let response = get_via(&launched, &pki.dir.join("ca.pem"), "/").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn bad_certificate_files_are_clear_errors_at_start() {
    let pki = Pki::new(&["localhost"]);
    let missing = pki.path("nope.pem");
    let error = proxy(&["--tls-cert", &missing, "--tls-key", &pki.path("leaf.key")])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot read") && error.contains("nope.pem"),
        "{error}"
    );

    let error = proxy(&[
        "--tls-cert",
        &pki.path("leaf.key"),
        "--tls-key",
        &pki.path("leaf.key"),
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("no PEM certificate"), "{error}");

    let error = proxy(&[
        "--tls-cert",
        &pki.path("leaf.pem"),
        "--tls-key",
        &pki.path("leaf.pem"),
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("no PEM private key"), "{error}");

    // Both halves valid, but not of one pair.
    let other = Pki::new(&["localhost"]);
    let error = proxy(&[
        "--tls-cert",
        &pki.path("leaf.pem"),
        "--tls-key",
        &other.path("leaf.key"),
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("cannot be used together"), "{error}");

    let error = step07_https::Args::try_parse_from(["step07-https", "--tls-cert", "x.pem"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("--tls-key"), "{error}");
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_given_ca() {
    let pki = Pki::new(&["localhost"]);
    let backend = tls_backend(&pki).await;
    let upstream = format!("https://localhost:{}", backend.addr().port());
    let launched = proxy(&[
        "--upstream",
        &upstream,
        "--upstream-ca",
        &pki.path("ca.pem"),
        "--cert-out",
        &pki.path("generated.pem"),
    ])
    .await
    .unwrap();
    let response = get_via(&launched, &pki.dir.join("generated.pem"), "/over/tls").await;
    assert_eq!(response.status(), 200);
    let echo: real_server::Echo = response.json().await.unwrap();
    assert_eq!(echo.path, "/over/tls");
    assert_eq!(echo.served_by, backend.addr().to_string());
    assert_eq!(
        echo.version, "HTTP/1.1",
        "an upstream offering no ALPN gets HTTP/1.1"
    );
}

/// step 07 in front of an HTTPS real server that offers h2 by ALPN.
async fn h2_upstream_setup(pki: &Pki) -> (ServerHandle, Launched) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend =
        real_server::serve(Server::new(listener, "h2 backend").tls(pki.server_config_h2()))
            .unwrap();
    let upstream = format!("https://localhost:{}", backend.addr().port());
    let launched = proxy(&[
        "--upstream",
        &upstream,
        "--upstream-ca",
        &pki.path("ca.pem"),
        "--cert-out",
        &pki.path("generated.pem"),
    ])
    .await
    .unwrap();
    (backend, launched)
}

#[tokio::test]
async fn an_https_upstream_that_offers_h2_gets_http2() {
    let pki = Pki::new(&["localhost"]);
    let (_backend, launched) = h2_upstream_setup(&pki).await;
    let response = get_via(&launched, &pki.dir.join("generated.pem"), "/by/alpn").await;
    let echo: real_server::Echo = response.json().await.unwrap();
    assert_eq!(echo.version, "HTTP/2.0");
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
}

#[tokio::test]
async fn grpc_passes_through_tls_on_both_sides() {
    use hyper::http::uri::PathAndQuery;
    use real_server::grpc::{EchoReply, EchoRequest, SERVER_STREAM, UNARY};
    use tonic::codec::ProstCodec;

    let pki = Pki::new(&["localhost"]);
    let (backend, launched) = h2_upstream_setup(&pki).await;
    // A tonic client over TLS that trusts the proxy's certificate and
    // finds `localhost` at the proxy.
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(pki.dir.join("generated.pem")).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(step07_https::crypto())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.enforce_http(false);
    let at = addr(&launched);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .wrap_connector(tcp);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    // The certificate names localhost; the proxy listens on 127.0.0.1.
    let origin = format!("https://localhost:{}", at.port()).parse().unwrap();
    let mut grpc = tonic::client::Grpc::with_origin(client, origin);
    grpc.ready().await.unwrap();
    let reply = grpc
        .unary::<_, EchoReply, _>(
            tonic::Request::new(EchoRequest {
                message: "over two TLS hops".to_owned(),
                count: 0,
            }),
            PathAndQuery::from_static(UNARY),
            ProstCodec::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.message, "over two TLS hops");
    assert_eq!(reply.served_by, backend.addr().to_string());
    grpc.ready().await.unwrap();
    let replies: Vec<EchoReply> = grpc
        .server_streaming::<_, EchoReply, _>(
            tonic::Request::new(EchoRequest {
                message: "tick".to_owned(),
                count: 3,
            }),
            PathAndQuery::from_static(SERVER_STREAM),
            ProstCodec::default(),
        )
        .await
        .unwrap()
        .into_inner()
        .map(|reply| reply.unwrap())
        .collect()
        .await;
    assert_eq!(replies.len(), 3);
}

#[tokio::test]
async fn a_self_signed_upstream_certificate_made_with_openssl_is_trusted_as_itself() {
    // openssl marks it CA:TRUE, which webpki alone refuses as a server's
    // own certificate ("CaUsedAsEndEntity"); curl, Go and nginx accept it.
    let pki = Pki::new(&["unused"]);
    pki.openssl_self_signed("localhost");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = real_server::serve(
        Server::new(listener, "self-signed backend").tls(pki.server_config_of("self")),
    )
    .unwrap();
    let upstream = format!("https://localhost:{}", backend.addr().port());
    let generated = pki.path("generated.pem");
    let launched = proxy(&[
        "--upstream",
        &upstream,
        "--upstream-ca",
        &pki.path("self.pem"),
        "--cert-out",
        &generated,
    ])
    .await
    .unwrap();
    let response = get_via(&launched, Path::new(&generated), "/pinned").await;
    assert_eq!(response.status(), 200);
    // Pinned, but still for its name only: the same certificate presented
    // for another name is refused.
    let elsewhere = format!("https://127.0.0.1:{}", backend.addr().port());
    let launched = proxy(&[
        "--upstream",
        &elsewhere,
        "--upstream-ca",
        &pki.path("self.pem"),
        "--cert-out",
        &generated,
    ])
    .await
    .unwrap();
    let response = get_via(&launched, Path::new(&generated), "/").await;
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert!(text.contains("not valid for name"), "{text}");
}

#[tokio::test]
async fn health_checks_reach_https_upstreams_over_tls() {
    let pki = Pki::new(&["localhost"]);
    let (first, second) = (tls_backend(&pki).await, tls_backend(&pki).await);
    let upstreams =
        [first.addr().port(), second.addr().port()].map(|port| format!("https://localhost:{port}"));
    let generated = pki.path("generated.pem");
    let launched = proxy(&[
        "--upstream",
        &upstreams[0],
        "--upstream",
        &upstreams[1],
        "--upstream-ca",
        &pki.path("ca.pem"),
        "--health-path",
        "/health",
        "--health-interval",
        "50ms",
        "--cert-out",
        &generated,
    ])
    .await
    .unwrap();
    let served_by = async || {
        let response = get_via(&launched, Path::new(&generated), "/").await;
        response
            .json::<real_server::Echo>()
            .await
            .unwrap()
            .served_by
    };
    // The checks must answer over TLS for one upstream to be told from the
    // other: take the second down, wait until it is no longer used…
    let sick = second.addr().to_string();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .post(format!(
            "https://127.0.0.1:{}/health/down",
            second.addr().port()
        ))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut in_a_row = 0;
    while in_a_row < 10 {
        assert!(Instant::now() < deadline, "{sick} was never taken out");
        in_a_row = if served_by().await == sick {
            0
        } else {
            in_a_row + 1
        };
    }
    // …while the first, answering its checks over TLS, serves throughout.
    assert_eq!(served_by().await, first.addr().to_string());
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_a_502_that_says_why() {
    let pki = Pki::new(&["localhost"]);
    let backend = tls_backend(&pki).await;
    let wrong_name = Pki::new(&["somewhere.else"]);
    let misnamed = tls_backend(&wrong_name).await;
    for (backend, ca, why) in [
        // The system roots have never heard of the test CA.
        (&backend, None, "invalid peer certificate: UnknownIssuer"),
        // Signed by the CA we trust, but for another name.
        (
            &misnamed,
            Some(wrong_name.path("ca.pem")),
            "invalid peer certificate: certificate not valid for name \"localhost\"",
        ),
    ] {
        let upstream = format!("https://localhost:{}", backend.addr().port());
        let generated = pki.path("generated.pem");
        let mut flags = vec!["--upstream", &upstream, "--cert-out", &generated];
        if let Some(ca) = &ca {
            flags.extend(["--upstream-ca", ca]);
        }
        let launched = proxy(&flags).await.unwrap();
        let response = get_via(&launched, &pki.dir.join("generated.pem"), "/").await;
        assert_eq!(response.status(), 502);
        let text = response.text().await.unwrap();
        assert!(text.contains(why), "{text}");
    }
}

#[tokio::test]
async fn insecure_upstream_accepts_what_verification_would_refuse() {
    let pki = Pki::new(&["localhost"]);
    let backend = tls_backend(&pki).await;
    let upstream = format!("https://localhost:{}", backend.addr().port());
    let launched = proxy(&[
        "--upstream",
        &upstream,
        "--insecure-upstream",
        "--cert-out",
        &pki.path("generated.pem"),
    ])
    .await
    .unwrap();
    let response = get_via(&launched, &pki.dir.join("generated.pem"), "/").await;
    assert_eq!(response.status(), 200);
    let conflict = step07_https::Args::try_parse_from([
        "step07-https",
        "--insecure-upstream",
        "--upstream-ca",
        "x",
    ]);
    assert!(conflict.is_err(), "the two trust flags exclude each other");
}

#[tokio::test]
async fn the_redirect_listener_sends_everyone_to_https() {
    let pki = Pki::new(&["unused"]);
    let launched = proxy(&[
        "--redirect-http",
        "127.0.0.1:0",
        "--cert-out",
        &pki.path("generated.pem"),
    ])
    .await
    .unwrap();
    let redirect = launched.get("https redirect").unwrap().addr();
    let https_port = addr(&launched).port();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let response = client
        .post(format!("http://{redirect}/a/b?x=1&y=2"))
        .header("host", "example.test:8080")
        .body("form data")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308, "a POST stays a POST");
    assert_eq!(
        response.headers()["location"],
        format!("https://example.test:{https_port}/a/b?x=1&y=2").as_str()
    );

    // HTTP/1.0 may leave Host out; then there is nowhere to send it.
    let mut raw = TcpStream::connect(redirect).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
}

#[tokio::test]
async fn the_redirect_never_copies_more_than_a_host_into_location() {
    let pki = Pki::new(&["unused"]);
    let launched = proxy(&[
        "--redirect-http",
        "127.0.0.1:0",
        "--cert-out",
        &pki.path("generated.pem"),
    ])
    .await
    .unwrap();
    let redirect = launched.get("https redirect").unwrap().addr();
    let ask = |request: &'static str| async move {
        let mut raw = TcpStream::connect(redirect).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut raw, request.as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        raw.read_to_string(&mut answer).await.unwrap();
        answer
    };
    // A Host that would make Location point at a page of the attacker's.
    let answer =
        ask("GET /login HTTP/1.1\r\nHost: evil.example:444/phish?x=\r\nConnection: close\r\n\r\n")
            .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("location:"),
        "{answer}"
    );
    // The request line's authority wins over Host (RFC 9112 §3.2.2).
    let answer = ask(
        "GET http://good.example/login HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    assert!(
        answer.contains("location: https://good.example:"),
        "{answer}"
    );
}

/// A TLS connection to the proxy as `localhost`, trusting the certificate
/// it wrote to `cert`.
async fn tls_to(launched: &Launched, cert: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(step07_https::crypto())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr(launched)).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn websockets_work_over_tls() {
    let pki = Pki::new(&["unused"]);
    let cert = pki.path("generated.pem");
    let launched = proxy(&["--cert-out", &cert]).await.unwrap();
    let tls = tls_to(&launched, &cert).await;
    let url = format!("wss://localhost:{}/ws?greet=1", addr(&launched).port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert!(
        hello
            .to_text()
            .unwrap()
            .starts_with("connected to real server")
    );
    ws.send(Message::text("over tls")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("over tls"));
}

#[tokio::test]
async fn a_client_that_never_starts_the_handshake_is_cut_off() {
    let pki = Pki::new(&["unused"]);
    let launched = proxy(&[
        "--header-read-timeout",
        "1",
        "--cert-out",
        &pki.path("generated.pem"),
    ])
    .await
    .unwrap();
    let mut silent = TcpStream::connect(addr(&launched)).await.unwrap();
    let started = Instant::now();
    let mut byte = [0; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte))
        .await
        .expect("the proxy closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_completes_the_handshake_and_says_nothing_is_cut_off() {
    // The deadline counts from accept: a finished handshake does not
    // restart it, and the first request head is due within the same second.
    let pki = Pki::new(&["unused"]);
    let cert = pki.path("generated.pem");
    let launched = proxy(&["--header-read-timeout", "1", "--cert-out", &cert])
        .await
        .unwrap();
    let mut silent = tls_to(&launched, &cert).await;
    let mut byte = [0; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte))
        .await
        .expect("the proxy closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
