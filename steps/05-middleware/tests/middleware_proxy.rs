//! Step 05 end to end: real backends, the chain as the flags build it.

use std::time::Duration;

use clap::Parser;
use serving::{Binder, Launched, ServerHandle};
use tokio::net::TcpListener;

async fn backend() -> ServerHandle {
    real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap()
}

async fn middleware_proxy(upstream: &str, extra: &[&str]) -> Launched {
    let argv = [
        "step05-middleware",
        "--upstream",
        upstream,
        "--admin",
        "127.0.0.1:0",
    ]
    .into_iter()
    .chain(extra.iter().copied());
    step05_middleware::launch(
        step05_middleware::Args::parse_from(argv),
        &Binder::ephemeral(),
    )
    .await
    .unwrap()
}

fn url(launched: &Launched) -> String {
    launched.get("middleware proxy").unwrap().url()
}

fn admin(launched: &Launched) -> String {
    launched.get("admin").unwrap().url()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn without_middleware_flags_it_proxies_and_names_each_request() {
    let backend = backend().await;
    let proxy = middleware_proxy(&backend.url(), &[]).await;
    let response = client()
        .get(format!("{}/hello", url(&proxy)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let echo: real_server::Echo = response.json().await.unwrap();
    assert_eq!(
        echo.header("x-request-id"),
        Some(id.as_str()),
        "the upstream saw the same id"
    );
}

#[tokio::test]
async fn refusals_carry_the_request_id_and_are_counted() {
    let backend = backend().await;
    let proxy = middleware_proxy(
        &backend.url(),
        &[
            "--rate-limit",
            "1",
            "--burst",
            "2",
            "--basic-auth",
            "alice:secret",
        ],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client()
            .get(url(&proxy))
            .basic_auth("alice", Some("secret"))
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("x-request-id"));
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let metrics = client()
        .get(format!("{}/metrics", admin(&proxy)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let upstream = format!("upstream=\"{}/\"", backend.url());
    assert!(
        metrics.contains(&format!(
            "proxy_requests_total{{method=\"GET\",status=\"200\",{upstream}}} 2"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("status=\"429\",upstream=\"-\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("proxy_rate_limited_total 1"), "{metrics}");
}

#[tokio::test]
async fn the_rate_limit_comes_before_auth() {
    let backend = backend().await;
    let proxy = middleware_proxy(
        &backend.url(),
        &[
            "--rate-limit",
            "1",
            "--burst",
            "1",
            "--basic-auth",
            "alice:secret",
        ],
    )
    .await;
    assert_eq!(
        client().get(url(&proxy)).send().await.unwrap().status(),
        401
    );
    // The unauthenticated attempt spent the bucket: a flood of bad
    // credentials is throttled before each one is checked.
    let response = client()
        .get(url(&proxy))
        .basic_auth("alice", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn the_breaker_opens_on_a_failing_backend_and_closes_when_it_recovers() {
    // With the defaults of step 04 underneath: its passive health must not
    // eject the lone upstream, or the half-open probe would never reach it.
    let backend = backend().await;
    let proxy = middleware_proxy(
        &backend.url(),
        &[
            "--breaker-error-rate",
            "50",
            "--breaker-min-requests",
            "4",
            "--breaker-open",
            "1s",
        ],
    )
    .await;
    for _ in 0..4 {
        let response = client()
            .get(format!("{}/flaky?fail_percent=100", url(&proxy)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
    }
    let degraded = client()
        .get(format!("{}/status/200", url(&proxy)))
        .send()
        .await
        .unwrap();
    assert_eq!(degraded.status(), 503);
    assert!(
        degraded
            .text()
            .await
            .unwrap()
            .starts_with("service degraded")
    );
    let stats: serde_json::Value = client()
        .get(format!("{}/stats", admin(&proxy)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["breaker_state"], "open");
    assert_eq!(stats["breaker_rejected"], 1);
    // The open window is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let probe = client()
        .get(format!("{}/status/200", url(&proxy)))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
    let stats: serde_json::Value = client()
        .get(format!("{}/stats", admin(&proxy)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["breaker_state"], "closed");
}

#[tokio::test]
async fn jwt_and_networks_guard_the_upstream() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let backend = backend().await;
    let proxy = middleware_proxy(
        &backend.url(),
        &["--jwt-secret", "s3cret", "--allow", "127.0.0.0/8"],
    )
    .await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let token = encode(
        &Header::default(),
        &serde_json::json!({"sub": "ada", "exp": exp}),
        &EncodingKey::from_secret(b"s3cret"),
    )
    .unwrap();
    assert_eq!(
        client()
            .get(url(&proxy))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(url(&proxy))
            .bearer_auth("not.a.token")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let denied = middleware_proxy(&backend.url(), &["--deny", "127.0.0.1/32"]).await;
    let response = client().get(url(&denied)).send().await.unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn rewrites_reach_the_upstream() {
    let backend = backend().await;
    let proxy = middleware_proxy(&backend.url(), &["--rewrite", "^/api/v1/(.*)=/$1"]).await;
    let echo: real_server::Echo = client()
        .get(format!("{}/api/v1/users?id=7", url(&proxy)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.path, "/users");
    assert_eq!(echo.query.as_deref(), Some("id=7"));
}

#[test]
fn bad_flags_are_clear_cli_errors() {
    let error = |args: &[&str]| {
        step05_middleware::Args::try_parse_from(
            std::iter::once("step05-middleware").chain(args.iter().copied()),
        )
        .unwrap_err()
        .to_string()
    };
    assert!(error(&["--rate-key", "cookie"]).contains("expected global, client-ip or header:NAME"));
    assert!(error(&["--rewrite", "nothing"]).contains("expected REGEX=REPLACEMENT"));
    assert!(error(&["--allow", "10.0.0.0/33"]).contains("--allow"));
    assert!(error(&["--breaker-error-rate", "0"]).contains("--breaker-error-rate"));
    assert!(error(&["--rate-limit", "0"]).contains("--rate-limit"));
}

#[tokio::test]
async fn an_rs256_public_key_file_guards_the_upstream() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let backend = backend().await;
    let public = proxy_test_cases::jwt_keys::public_key_file();
    let proxy = middleware_proxy(
        &backend.url(),
        &["--jwt-public-key", public.to_str().unwrap()],
    )
    .await;
    let private = proxy_test_cases::jwt_keys::PRIVATE_PEM.as_bytes();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let token = encode(
        &Header::new(Algorithm::RS256),
        &serde_json::json!({"sub": "ada", "exp": exp}),
        &EncodingKey::from_rsa_pem(private).unwrap(),
    )
    .unwrap();
    assert_eq!(
        client()
            .get(url(&proxy))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client().get(url(&proxy)).send().await.unwrap().status(),
        401
    );
    let missing = step05_middleware::Args::parse_from([
        "step05-middleware",
        "--upstream",
        &backend.url(),
        "--jwt-public-key",
        "/nonexistent/key.pem",
    ]);
    let error = step05_middleware::launch(missing, &Binder::ephemeral())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot read --jwt-public-key /nonexistent/key.pem"),
        "{error}"
    );
}

/// Status of a GET with this `X-Forwarded-For`.
async fn status_forwarded_for(proxy: &Launched, forwarded_for: &str) -> u16 {
    client()
        .get(url(proxy))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_bucket_and_verdict() {
    let backend = backend().await;
    // The test client plays the load balancer at 127.0.0.1.
    let behind = middleware_proxy(
        &backend.url(),
        &[
            "--trusted-proxy",
            "127.0.0.1/32",
            "--rate-limit",
            "1",
            "--burst",
            "1",
            "--deny",
            "192.0.2.0/24",
        ],
    )
    .await;
    assert_eq!(status_forwarded_for(&behind, "198.51.100.1").await, 200);
    assert_eq!(
        status_forwarded_for(&behind, "198.51.100.1").await,
        429,
        "its bucket is empty"
    );
    assert_eq!(
        status_forwarded_for(&behind, "198.51.100.2").await,
        200,
        "another client, another bucket"
    );
    assert_eq!(
        status_forwarded_for(&behind, "192.0.2.7").await,
        403,
        "denied by its own address"
    );
    // A forged entry left of the one the trusted proxy wrote changes nothing.
    assert_eq!(
        status_forwarded_for(&behind, "198.51.100.3, 192.0.2.8").await,
        403
    );
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_address() {
    let backend = backend().await;
    let edge = middleware_proxy(
        &backend.url(),
        &[
            "--rate-limit",
            "1",
            "--burst",
            "1",
            "--deny",
            "127.0.0.1/32",
        ],
    )
    .await;
    // Denied as 127.0.0.1, whatever X-Forwarded-For claims.
    assert_eq!(status_forwarded_for(&edge, "198.51.100.1").await, 403);
    let limited = middleware_proxy(&backend.url(), &["--rate-limit", "1", "--burst", "1"]).await;
    assert_eq!(status_forwarded_for(&limited, "198.51.100.1").await, 200);
    assert_eq!(
        status_forwarded_for(&limited, "198.51.100.2").await,
        429,
        "one bucket: the peer's"
    );
}

#[tokio::test]
async fn request_bytes_count_what_was_sent_not_what_was_claimed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = backend().await;
    let proxy = middleware_proxy(&backend.url(), &[]).await;
    let request_bytes = || async {
        let stats: serde_json::Value = client()
            .get(format!("{}/stats", admin(&proxy)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["request_bytes"].as_u64().unwrap()
    };
    let posted = client()
        .post(url(&proxy))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(request_bytes().await, 1000);
    // Two clients claim the largest body there is, send three bytes, and
    // hang up: counted by Content-Length, this wrapped the counter.
    for _ in 0..2 {
        let mut liar =
            tokio::net::TcpStream::connect(proxy.get("middleware proxy").unwrap().addr())
                .await
                .unwrap();
        liar.write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\nabc",
        )
        .await
        .unwrap();
        liar.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), liar.read_to_end(&mut rest)).await;
    }
    let counted = request_bytes().await;
    assert!((1000..=1006).contains(&counted), "request_bytes {counted}");
}

#[tokio::test]
async fn the_admin_pages_obey_the_address_rules_too() {
    let backend = backend().await;
    let denied = middleware_proxy(&backend.url(), &["--deny", "127.0.0.0/8"]).await;
    let response = client()
        .get(format!("{}/metrics", admin(&denied)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let open = middleware_proxy(&backend.url(), &[]).await;
    let response = client()
        .get(format!("{}/metrics", admin(&open)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn token_claims_without_a_token_key_are_a_cli_error() {
    for flag in ["--jwt-issuer", "--jwt-audience"] {
        let error = step05_middleware::Args::try_parse_from(["step05-middleware", flag, "x"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--jwt-secret") || error.contains("--jwt-public-key"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn retries_are_counted_in_the_metrics() {
    let backend = backend().await;
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = middleware_proxy(
        &backend.url(),
        &[
            "--upstream",
            &format!("http://{dead}"),
            "--max-fails",
            "100",
        ],
    )
    .await;
    for _ in 0..4 {
        let response = client().get(url(&proxy)).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let metrics = client()
        .get(format!("{}/metrics", admin(&proxy)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "proxy_retries_total 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "proxy_retries_refused_total 0"),
        "{metrics}"
    );
}

/// Clients that announce an upload, send a little of it and hang up make
/// the upstream request fail — by their own doing. Counted against the
/// upstream, 30 of them opened the breaker and every client got 503; they
/// are the clients' failures (a 400 each, in the statistics as such), and
/// the upstream stays in service.
#[tokio::test]
async fn abandoned_uploads_do_not_open_the_breaker() {
    let (sinks, mut heads) = proxy_test_cases::wire::upload_sinks(1).await;
    let sink = sinks[0];
    let proxy = middleware_proxy(
        &format!("http://{sink}"),
        &["--breaker-error-rate", "50", "--breaker-min-requests", "20"],
    )
    .await;
    let addr = proxy.get("middleware proxy").unwrap().addr();
    for _ in 0..30 {
        proxy_test_cases::wire::abandon_upload(addr, "x", &mut heads).await;
    }
    let answer = client().get(url(&proxy)).send().await.unwrap();
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
}
