//! Each middleware alone and in the chain, over real HTTP: a stub endpoint
//! stands in for the proxy and reports what reached it.

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use middleware::auth::{Auth, JwtKey};
use middleware::breaker::{Breaker, BreakerPolicy, State};
use middleware::rate_limit::{RateKey, RateLimit};
use middleware::request_id::RequestId;
use middleware::rewrite::{Rewrite, Rule};
use middleware::stats::{Metrics, Stats};
use middleware::{Chain, ClientConn, Ctx, Endpoint, Middleware, Next};
use proxy_core::{ProxyBody, text_response};
use serving::{Server, ServerHandle};
use tokio::net::TcpListener;

/// Answers with the status in `x-status` (default 200), echoes the path and
/// request id it saw, and counts calls.
#[derive(Default)]
struct Stub {
    calls: AtomicUsize,
    gate: Option<Arc<tokio::sync::Notify>>,
}

impl Endpoint for Stub {
    fn call<'a>(
        &'a self,
        req: Request<Incoming>,
        _ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
            let status = req
                .headers()
                .get("x-status")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(200);
            let mut response = Response::new(
                Full::new(Bytes::from(req.uri().to_string()))
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            );
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(id) = req.headers().get("x-request-id") {
                response
                    .headers_mut()
                    .insert("x-seen-request-id", id.clone());
            }
            let ids = req.headers().get_all("x-request-id").iter().count();
            response
                .headers_mut()
                .insert("x-seen-request-id-count", ids.into());
            response
        })
    }
}

async fn serve(chain: Chain) -> ServerHandle {
    let chain = Arc::new(chain);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::new(listener, "chain under test")
        .spawn(move |peer| {
            let chain = chain.clone();
            service_fn(move |req| {
                let chain = chain.clone();
                async move {
                    Ok::<_, Infallible>(
                        chain
                            .serve(req, &Ctx::new(ClientConn::new(peer, "http")))
                            .await,
                    )
                }
            })
        })
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A stub that holds every request until its gate is opened.
fn gated_stub() -> (Arc<Stub>, Arc<tokio::sync::Notify>) {
    let gate = Arc::new(tokio::sync::Notify::new());
    let stub = Arc::new(Stub {
        gate: Some(gate.clone()),
        ..Stub::default()
    });
    (stub, gate)
}

/// Send a request over a raw connection and return once `stub` has it, so
/// the caller can hang up on a request in flight by dropping the stream.
async fn request_in_flight(server: &ServerHandle, stub: &Stub) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let calls = stub.calls.load(Ordering::SeqCst);
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    while stub.calls.load(Ordering::SeqCst) == calls {
        tokio::task::yield_now().await;
    }
    stream
}

/// Adds its name to `x-trace` on the way back; aborts with 418 if told to.
struct Tracer {
    name: &'static str,
    abort: bool,
}

impl Middleware for Tracer {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        Box::pin(async move {
            let mut response = if self.abort {
                text_response(StatusCode::IM_A_TEAPOT, "aborted")
            } else {
                next.run(req, ctx).await
            };
            response
                .headers_mut()
                .append("x-trace", self.name.parse().unwrap());
            response
        })
    }
}

#[tokio::test]
async fn middlewares_run_in_order_and_an_abort_stops_the_chain() {
    let stub = Arc::new(Stub::default());
    let chain = Chain::new(stub.clone())
        .with(Arc::new(Tracer {
            name: "outer",
            abort: false,
        }))
        .with(Arc::new(Tracer {
            name: "inner",
            abort: false,
        }));
    let server = serve(chain).await;
    let response = client().get(server.url()).send().await.unwrap();
    let trace: Vec<_> = response.headers().get_all("x-trace").iter().collect();
    assert_eq!(trace, ["inner", "outer"], "responses unwind inside out");
    assert_eq!(stub.calls.load(Ordering::SeqCst), 1);

    let stub = Arc::new(Stub::default());
    let chain = Chain::new(stub.clone())
        .with(Arc::new(Tracer {
            name: "outer",
            abort: false,
        }))
        .with(Arc::new(Tracer {
            name: "gate",
            abort: true,
        }))
        .with(Arc::new(Tracer {
            name: "never",
            abort: false,
        }));
    let server = serve(chain).await;
    let response = client().get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 418);
    let trace: Vec<_> = response.headers().get_all("x-trace").iter().collect();
    assert_eq!(trace, ["gate", "outer"]);
    assert_eq!(
        stub.calls.load(Ordering::SeqCst),
        0,
        "the endpoint was not reached"
    );
}

#[tokio::test]
async fn request_ids_are_kept_or_generated_and_travel_both_ways() {
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(RequestId))).await;
    let response = client()
        .get(server.url())
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    assert_eq!(response.headers()["x-seen-request-id"], "abc-123");
    // Two ids: the first is kept, and the backend sees only that one.
    let response = client()
        .get(server.url())
        .header("x-request-id", "first-1")
        .header("x-request-id", "second-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "first-1");
    assert_eq!(response.headers()["x-seen-request-id"], "first-1");
    assert_eq!(response.headers()["x-seen-request-id-count"], "1");
    for sent in [None, Some("has spaces"), Some("")] {
        let mut request = client().get(server.url());
        if let Some(id) = sent {
            request = request.header("x-request-id", id);
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 32, "{sent:?} → {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(response.headers()["x-seen-request-id"], id.as_str());
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[tokio::test]
async fn the_rate_limiter_allows_a_burst_then_says_when_to_retry() {
    let metrics = Arc::new(Metrics::new());
    let limit = RateLimit::new(nz(1), nz(3), RateKey::Global, metrics.clone());
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(limit))).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = client().get(server.url()).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = Some(
                response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(
        metrics
            .prometheus_text()
            .contains("proxy_rate_limited_total 2")
    );
}

#[tokio::test]
async fn rate_limit_keys_are_independent() {
    let limit = RateLimit::new(
        nz(1),
        nz(1),
        "header:x-api-key".parse().unwrap(),
        Arc::new(Metrics::new()),
    );
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(limit))).await;
    let status = |key: &'static str| {
        let url = server.url();
        async move {
            client()
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("alice").await, 200);
    assert_eq!(status("alice").await, 429);
    assert_eq!(status("bob").await, 200, "bob has his own bucket");
}

#[tokio::test]
async fn rate_limit_memory_stays_bounded_under_many_keys() {
    let limit = Arc::new(
        RateLimit::new(
            nz(1000),
            nz(1),
            "header:x-key".parse().unwrap(),
            Arc::new(Metrics::new()),
        )
        .cleanup_every(std::num::NonZeroU64::new(100).unwrap()),
    );
    let server = serve(Chain::new(Arc::new(Stub::default())).with(limit.clone())).await;
    let send = |key: String| {
        let request = client().get(server.url()).header("x-key", key).send();
        async move { request.await.unwrap() }
    };
    for i in 0..250 {
        send(format!("client-{i}")).await;
    }
    assert!(limit.tracked_keys() > 0, "buckets are remembered at first");
    // One token at 1000/s refills in 1 ms; then every bucket is as good as
    // new. Waiting out the refill is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The middleware's own periodic cleanup (every 100 requests here) must
    // forget them: nothing in the test calls it.
    for _ in 0..100 {
        send("the-same-client".to_owned()).await;
    }
    assert!(
        limit.tracked_keys() <= 1,
        "{} buckets remembered",
        limit.tracked_keys()
    );
}

#[tokio::test]
async fn a_full_key_table_makes_newcomers_share_one_bucket() {
    // Three buckets at most, two tokens each, one refill a second (longer
    // than this test): the fourth and later keys share the overflow bucket,
    // while the first three keep their own.
    let limit = Arc::new(RateLimit::with_max_keys(
        nz(1),
        nz(2),
        "header:x-key".parse().unwrap(),
        Arc::new(Metrics::new()),
        3,
    ));
    let server = serve(Chain::new(Arc::new(Stub::default())).with(limit.clone())).await;
    let status = |key: &str| {
        let request = client().get(server.url()).header("x-key", key).send();
        async move { request.await.unwrap().status().as_u16() }
    };
    for key in ["a", "b", "c"] {
        assert_eq!(status(key).await, 200, "{key}'s first request");
    }
    assert_eq!(status("d").await, 200, "the overflow bucket's first token");
    assert_eq!(
        status("e").await,
        200,
        "its second, taken by another newcomer"
    );
    assert_eq!(status("f").await, 429, "newcomers share it: empty now");
    assert_eq!(status("a").await, 200, "a still has a bucket of its own");
    assert!(
        limit.tracked_keys() <= 4,
        "{} buckets",
        limit.tracked_keys()
    );
}

#[tokio::test]
async fn a_key_too_long_to_keep_is_refused() {
    let limit = RateLimit::new(
        nz(100),
        nz(100),
        "header:x-key".parse().unwrap(),
        Arc::new(Metrics::new()),
    );
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(limit))).await;
    let answer = client()
        .get(server.url())
        .header("x-key", "k".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("longer than 256 bytes")
    );
}

fn breaker_policy(open_for_ms: u64) -> BreakerPolicy {
    BreakerPolicy {
        error_rate: 0.5,
        min_requests: 4,
        open_for: Duration::from_millis(open_for_ms),
        ..BreakerPolicy::default()
    }
}

async fn get_status(server: &ServerHandle, status: u16) -> u16 {
    client()
        .get(server.url())
        .header("x-status", status.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_breaker_opens_on_errors_degrades_then_closes_after_a_good_probe() {
    let stub = Arc::new(Stub::default());
    let metrics = Arc::new(Metrics::new());
    let breaker = Arc::new(Breaker::new(breaker_policy(1000), None, metrics.clone()));
    let server = serve(Chain::new(stub.clone()).with(breaker.clone())).await;
    for _ in 0..2 {
        assert_eq!(get_status(&server, 200).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(get_status(&server, 500).await, 500);
    }
    assert!(
        matches!(breaker.state(), State::Open { .. }),
        "2 of 4 failed: open"
    );
    let calls = stub.calls.load(Ordering::SeqCst);
    let response = client().get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .starts_with("service degraded")
    );
    assert_eq!(
        stub.calls.load(Ordering::SeqCst),
        calls,
        "open: the upstream is not touched"
    );
    assert!(metrics.prometheus_text().contains("proxy_breaker_state 1"));
    // The open window is the behaviour under test: wait it out.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        get_status(&server, 200).await,
        200,
        "the probe goes through"
    );
    assert_eq!(breaker.state(), State::Closed);
    assert!(metrics.prometheus_text().contains("proxy_breaker_state 0"));
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let breaker = Arc::new(Breaker::new(
        breaker_policy(1000),
        None,
        Arc::new(Metrics::new()),
    ));
    let server = serve(Chain::new(Arc::new(Stub::default())).with(breaker.clone())).await;
    for _ in 0..4 {
        get_status(&server, 502).await;
    }
    assert!(matches!(breaker.state(), State::Open { .. }));
    // Wait out the open window: it is what is under test.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        get_status(&server, 504).await,
        504,
        "the probe reaches the upstream"
    );
    assert!(matches!(breaker.state(), State::Open { .. }));
    assert_eq!(get_status(&server, 200).await, 503);
}

#[tokio::test]
async fn the_concurrency_cap_refuses_beyond_its_limit() {
    let (stub, gate) = gated_stub();
    let breaker = Breaker::new(BreakerPolicy::default(), Some(1), Arc::new(Metrics::new()));
    let server = serve(Chain::new(stub.clone()).with(Arc::new(breaker))).await;
    let first = tokio::spawn(client().get(server.url()).send());
    while stub.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let second = client().get(server.url()).send().await.unwrap();
    assert_eq!(second.status(), 503);
    assert!(
        second
            .text()
            .await
            .unwrap()
            .contains("too many concurrent requests (limit 1)")
    );
    gate.notify_one();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn basic_auth_lets_known_users_in() {
    let auth = Auth::default().basic(vec!["alice:secret".to_owned()]);
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(auth))).await;
    let missing = client().get(server.url()).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Basic realm=\"proxy workbench\""
    );
    assert_eq!(missing.text().await.unwrap(), "credentials required\n");
    let wrong = client()
        .get(server.url())
        .basic_auth("alice", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.text().await.unwrap(),
        "unknown user or wrong password\n"
    );
    let right = client()
        .get(server.url())
        .basic_auth("alice", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn jwt_bearer_tokens_are_verified_with_their_times() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let auth = Auth::default()
        .jwt(JwtKey::Hs256Secret(b"s3cret".to_vec()))
        .unwrap();
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(auth))).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |exp: u64, nbf: u64, secret: &[u8]| {
        let claims = serde_json::json!({"sub": "ada", "exp": exp, "nbf": nbf});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let cases = [
        (token(now + 600, now - 10, b"s3cret"), 200, ""),
        (
            token(now - 600, now - 900, b"s3cret"),
            401,
            "invalid token: expired",
        ),
        (
            token(now + 600, now + 300, b"s3cret"),
            401,
            "invalid token: not valid yet",
        ),
        (
            token(now + 600, now - 10, b"other"),
            401,
            "invalid token: bad signature",
        ),
    ];
    for (jwt, status, reason) in cases {
        let response = client()
            .get(server.url())
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        if status == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer realm=\"proxy workbench\""
            );
            let body = response.text().await.unwrap();
            assert!(body.contains(reason), "{body}");
        }
    }
}

#[tokio::test]
async fn tokens_an_attacker_would_try_are_refused_in_our_words() {
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header, encode};
    let auth = Auth::default()
        .jwt(JwtKey::Hs256Secret(b"s3cret".to_vec()))
        .unwrap()
        .jwt_issuer("https://issuer.example")
        .jwt_audience("api");
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(auth))).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let signed = |header: &Header, claims: serde_json::Value| {
        encode(header, &claims, &EncodingKey::from_secret(b"s3cret")).unwrap()
    };
    let good = serde_json::json!({"exp": exp, "iss": "https://issuer.example", "aud": "api"});
    let b64 = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&good.to_string())
    );
    let critical = {
        // A valid signature over a header that demands an extension.
        let header = b64(r#"{"alg":"HS256","typ":"JWT","crit":["exp-ext"],"exp-ext":1}"#);
        let payload = b64(&good.to_string());
        let signing_input = format!("{header}.{payload}");
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(b"s3cret"),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        format!("{signing_input}.{signature}")
    };
    let cases = [
        ("bearer", signed(&Header::default(), good.clone()), 200, ""),
        ("BEARER", signed(&Header::default(), good.clone()), 200, ""),
        ("Bearer", unsigned, 401, "invalid token: "),
        ("Bearer", critical, 401, "(crit)"),
        (
            "Bearer",
            signed(
                &Header::default(),
                serde_json::json!({"exp": exp, "iss": "https://evil.example", "aud": "api"}),
            ),
            401,
            "issued by someone else",
        ),
        (
            "Bearer",
            signed(
                &Header::default(),
                serde_json::json!({"exp": exp, "iss": "https://issuer.example", "aud": "billing"}),
            ),
            401,
            "another audience",
        ),
        (
            "Bearer",
            signed(
                &Header::default(),
                serde_json::json!({"exp": exp, "iss": "https://issuer.example"}),
            ),
            401,
            "a required claim is missing",
        ),
        (
            "Bearer",
            signed(
                &Header::default(),
                serde_json::json!({"exp": exp, "aud": "api"}),
            ),
            401,
            "a required claim is missing",
        ),
    ];
    for (scheme, token, status, reason) in cases {
        let response = client()
            .get(server.url())
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{scheme} {token}");
        let body = response.text().await.unwrap();
        assert!(body.contains(reason), "{body}");
        // Never the library's own words (type and variant names).
        assert!(
            !body.contains("variant") && !body.contains("Error"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn basic_scheme_names_are_case_insensitive() {
    use base64::Engine as _;
    let auth = Auth::default().basic(vec!["alice:secret".to_owned()]);
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(auth))).await;
    let credentials = base64::engine::general_purpose::STANDARD.encode("alice:secret");
    for scheme in ["basic", "BASIC", "Basic"] {
        let response = client()
            .get(server.url())
            .header("authorization", format!("{scheme} {credentials}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn ip_rules_allow_and_deny_by_network() {
    let cases = [
        (
            Auth::default().deny(vec!["127.0.0.0/8".parse().unwrap()]),
            403,
        ),
        (
            Auth::default().allow(vec!["10.0.0.0/8".parse().unwrap()]),
            403,
        ),
        (
            Auth::default().allow(vec!["127.0.0.1/32".parse().unwrap()]),
            200,
        ),
    ];
    for (auth, status) in cases {
        let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(auth))).await;
        let response = client().get(server.url()).send().await.unwrap();
        assert_eq!(response.status(), status);
        if status == 403 {
            assert!(
                response
                    .text()
                    .await
                    .unwrap()
                    .starts_with("forbidden: 127.0.0.1")
            );
        }
    }
}

#[tokio::test]
async fn rewrite_rules_apply_in_order_and_keep_the_query() {
    let rules = vec![
        "^/api/v1/(.*)=/$1".parse::<Rule>().unwrap(),
        "^/api/(.*)=/never/$1".parse::<Rule>().unwrap(),
        "^/old$=/new".parse::<Rule>().unwrap(),
    ];
    let server =
        serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(Rewrite::new(rules)))).await;
    for (sent, seen) in [
        ("/api/v1/users?id=7", "/users?id=7"),
        ("/old", "/new"),
        ("/other", "/other"),
    ] {
        let body = client()
            .get(format!("{}{sent}", server.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, seen);
    }
    let strip = Rewrite::new(vec![Rule::strip_prefix("/api/")]);
    assert_eq!(strip.apply("/api/users"), Some("/users".to_owned()));
    assert_eq!(strip.apply("/api"), Some("/".to_owned()));
    assert_eq!(
        strip.apply("/apix/users"),
        None,
        "only a whole path segment is a prefix"
    );
    assert!("no-equals-sign".parse::<Rule>().is_err());
    assert!("(unclosed=/x".parse::<Rule>().is_err());
}

#[tokio::test]
async fn statistics_count_by_status_and_serve_prometheus_text() {
    let metrics = Arc::new(Metrics::new());
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(Stats {
        metrics: metrics.clone(),
    })))
    .await;
    for status in [200, 200, 200, 404, 503] {
        get_status(&server, status).await;
    }
    let text = metrics.prometheus_text();
    for line in [
        "proxy_requests_total{method=\"GET\",status=\"200\",upstream=\"-\"} 3",
        "proxy_requests_total{method=\"GET\",status=\"404\",upstream=\"-\"} 1",
        "proxy_requests_total{method=\"GET\",status=\"503\",upstream=\"-\"} 1",
        "proxy_request_duration_seconds_count 5",
        "proxy_in_flight_requests 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let body_bytes: usize = 5; // the stub echoes "/" (1 byte) for each request
    assert!(
        text.contains(&format!("proxy_response_bytes_total {body_bytes}")),
        "{text}"
    );
    let summary = metrics.summary();
    assert_eq!(summary["breaker_state"], "closed");
    assert!(summary["qps_10s"].as_f64().is_some());
    let admin = middleware::stats::admin_response(&metrics, "/nope");
    assert_eq!(admin.status(), 404);
}

#[tokio::test]
async fn the_in_flight_gauge_forgets_a_client_that_hung_up() {
    let (stub, _gate) = gated_stub();
    let metrics = Arc::new(Metrics::new());
    let server = serve(Chain::new(stub.clone()).with(Arc::new(Stats {
        metrics: metrics.clone(),
    })))
    .await;
    let client = request_in_flight(&server, &stub).await;
    let gauge = |metrics: &Metrics| {
        let text = metrics.prometheus_text();
        let line = text
            .lines()
            .find(|line| line.starts_with("proxy_in_flight_requests "))
            .map(str::to_owned);
        line.unwrap_or_else(|| panic!("no in-flight gauge in\n{text}"))
    };
    assert_eq!(gauge(&metrics), "proxy_in_flight_requests 1");
    // The stub never answers; the client gives up and hangs up, and the
    // server drops the request's future.
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), async {
        while gauge(&metrics) != "proxy_in_flight_requests 0" {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the gauge still counts a request whose client hung up");
}

#[tokio::test]
async fn a_client_that_hangs_up_gives_its_place_under_the_cap_back() {
    let (stub, gate) = gated_stub();
    let breaker = Breaker::new(BreakerPolicy::default(), Some(1), Arc::new(Metrics::new()));
    let server = serve(Chain::new(stub.clone()).with(Arc::new(breaker))).await;
    let first = request_in_flight(&server, &stub).await;
    assert_eq!(
        get_status(&server, 200).await,
        503,
        "the first holds the place"
    );
    drop(first);
    // Once the server has dropped the abandoned request, the one place is
    // free again: a new request is let through (and waits at the gate)
    // instead of being refused.
    let mut second = None;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut response = tokio::spawn(client().get(server.url()).send());
            let admitted = async {
                while stub.calls.load(Ordering::SeqCst) < 2 {
                    tokio::task::yield_now().await;
                }
            };
            tokio::select! {
                () = admitted => {
                    second = Some(response);
                    return;
                }
                refused = &mut response => {
                    assert_eq!(refused.unwrap().unwrap().status(), 503, "only the cap refuses here");
                }
            }
        }
    })
    .await
    .expect("the abandoned request still holds the only place");
    gate.notify_one();
    let second = second.expect("admitted").await.unwrap().unwrap();
    assert_eq!(second.status(), 200);
}

/// With `x-drop`, starts the rest of the chain and drops its future
/// without polling it — what hyper does when a client hangs up before the
/// request's future first runs — and answers 204 itself.
struct DropsUnpolled;

impl Middleware for DropsUnpolled {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        if !req.headers().contains_key("x-drop") {
            return next.run(req, ctx);
        }
        drop(next.run(req, ctx));
        let mut response = Response::new(ProxyBody::default());
        *response.status_mut() = StatusCode::NO_CONTENT;
        Box::pin(async move { response })
    }
}

#[tokio::test]
async fn a_request_dropped_before_it_runs_frees_its_cap_place_and_its_probe() {
    let breaker = Arc::new(Breaker::new(
        breaker_policy(200),
        Some(1),
        Arc::new(Metrics::new()),
    ));
    let stub = Arc::new(Stub::default());
    let chain = Chain::new(stub.clone())
        .with(Arc::new(DropsUnpolled))
        .with(breaker.clone());
    let server = serve(chain).await;
    let dropped = || async {
        let response = client()
            .get(server.url())
            .header("x-drop", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    };
    dropped().await;
    assert_eq!(
        get_status(&server, 200).await,
        200,
        "the dropped request gave its only place back"
    );
    assert_eq!(stub.calls.load(Ordering::SeqCst), 1);
    for status in [200, 500, 500] {
        get_status(&server, status).await;
    }
    assert!(matches!(breaker.state(), State::Open { .. }));
    // The open window is the behaviour under test: wait it out.
    tokio::time::sleep(Duration::from_millis(250)).await;
    dropped().await;
    assert_eq!(
        breaker.state(),
        State::HalfOpen { probing: false },
        "the dropped probe freed the probe slot"
    );
    assert_eq!(
        get_status(&server, 200).await,
        200,
        "the next probe goes through"
    );
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn rs256_tokens_are_verified_with_the_public_key() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let public = proxy_test_cases::jwt_keys::PUBLIC_PEM.as_bytes().to_vec();
    let private = proxy_test_cases::jwt_keys::PRIVATE_PEM.as_bytes();
    let auth = Auth::default().jwt(JwtKey::Rs256PublicPem(public)).unwrap();
    let server = serve(Chain::new(Arc::new(Stub::default())).with(Arc::new(auth))).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let claims = serde_json::json!({"sub": "ada", "exp": exp});
    let signed = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(private).unwrap(),
    )
    .unwrap();
    assert_eq!(
        client()
            .get(server.url())
            .bearer_auth(&signed)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // An HS256 token (whoever knows the "secret" could forge it) is refused.
    let forged = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert_eq!(
        client()
            .get(server.url())
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert!(
        Auth::default()
            .jwt(JwtKey::Rs256PublicPem(b"not a key".to_vec()))
            .is_err()
    );
}

/// Logs something, so the test can see which span it was written in.
struct Logs;

impl Middleware for Logs {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        tracing::warn!("a line logged while handling the request");
        next.run(req, ctx)
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .event_format(serving::RequestIdLines::default())
        .finish();
    // The test's runtime is single-threaded: the server runs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let chain = Chain::new(Arc::new(Stub::default()))
        .with(Arc::new(RequestId))
        .with(Arc::new(Logs));
    let server = serve(chain).await;
    client()
        .get(server.url())
        .header("x-request-id", "trace-me-7")
        .send()
        .await
        .unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("a line logged while handling the request"))
        .unwrap_or_else(|| panic!("no line in {log:?}"));
    assert!(line.ends_with(" request_id=trace-me-7"), "{line}");
}

/// An IPv6 host usually has a whole /64: eight of its addresses are one
/// client to a per-client limit (as they are to the connection caps), not
/// eight, or a client could take 2^64 buckets.
#[tokio::test]
async fn an_ipv6_slash_64_is_one_client_to_the_rate_limit() {
    let limit = RateLimit::new(nz(1), nz(2), RateKey::ClientIp, Arc::new(Metrics::new()));
    let chain = Arc::new(Chain::new(Arc::new(Stub::default())).with(Arc::new(limit)));
    // The clients arrive through a trusted proxy on loopback, which names
    // each in X-Forwarded-For.
    let trusted = proxy_core::TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]);
    let server = Server::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), "limited")
        .serve_clients(trusted, move |client, req| {
            let chain = chain.clone();
            async move { chain.serve(req, &Ctx::new(client)).await }
        })
        .unwrap();
    let mut admitted = 0;
    for host in 1..=8 {
        let status = client()
            .get(server.url())
            .header("x-forwarded-for", format!("2001:db8:1:2::{host}"))
            .send()
            .await
            .unwrap()
            .status();
        admitted += usize::from(status == 200);
    }
    assert_eq!(admitted, 2, "a burst of 2 for the whole /64");
    // Another /64 is another client.
    let other = client()
        .get(server.url())
        .header("x-forwarded-for", "2001:db8:1:3::1")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}
