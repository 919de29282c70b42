//! Apps, their tokens and quotas, and the statistics, through the real
//! binary — with a real redis-server where instances share them.

mod support;

use real_server::Echo;
use real_server::redis::RedisServer;
use serde_json::Value;
use std::sync::atomic::Ordering;
use support::running::{Gateway, two_apps};

use support::{backend, client, counting_backend, on_both_engines};

on_both_engines!(
    an_app_trades_its_secret_for_a_token_that_opens_an_open_auth_service,
    the_token_endpoint_refuses_what_is_not_a_client_credentials_grant,
    an_app_outside_its_allow_is_forbidden,
    an_app_over_its_qps_or_its_qpd_is_told_which,
    stats_count_each_request_per_service_per_app_and_in_total,
);

/// `[tokens]`, two apps ([`two_apps`], `first_app` for app-a's more keys)
/// and an `open_auth` service `api` (under /api) in front of `upstream`,
/// beside a plain `web`.
fn tenants(upstream: &str, first_app: &str) -> String {
    format!(
        r#"{}
[[services]]
name = "api"
path_prefix = "/api"
upstreams = ["{upstream}"]
open_auth = true
[[services]]
name = "web"
path_prefix = "/"
upstreams = ["{upstream}"]
"#,
        two_apps(first_app)
    )
}

/// `POST /oauth/tokens` with `id:secret` and `form`.
async fn ask_token(gateway: &Gateway, id: &str, secret: &str, form: &str) -> reqwest::Response {
    client()
        .post(format!("{}/oauth/tokens", gateway.url))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

/// GET `path` with `token` as the bearer (none: no Authorization).
async fn call(gateway: &Gateway, path: &str, token: Option<&str>) -> reqwest::Response {
    let request = client().get(format!("{}{path}", gateway.url));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

async fn stats(gateway: &Gateway) -> Value {
    gateway.admin_json("/stats").await
}

async fn an_app_trades_its_secret_for_a_token_that_opens_an_open_auth_service(
    engine: &'static str,
) {
    let upstream = backend().await;
    let gateway = Gateway::start_on(engine, &tenants(&upstream.url(), ""), &[]);
    let answer = ask_token(
        &gateway,
        "app-a",
        "a-secret",
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let json: Value = answer.json().await.unwrap();
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 600);
    let token = json["access_token"].as_str().unwrap();

    // The open_auth service wants the token; the other does not.
    let refused = call(&gateway, "/api/x", None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    assert!(refused.text().await.unwrap().contains("no bearer token"));
    assert_eq!(call(&gateway, "/open", None).await.status(), 200);
    let admitted = call(&gateway, "/api/x", Some(token)).await;
    assert_eq!(admitted.status(), 200);
    let echo: Echo = admitted.json().await.unwrap();
    assert_eq!(echo.path, "/api/x");

    // A token this gateway did not sign, or one altered, is not a token.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "app-a", "iss": "step11-gateway", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret"),
    )
    .unwrap();
    let answer = call(&gateway, "/api/x", Some(&forged)).await;
    assert_eq!(answer.status(), 401);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("not one this gateway signed")
    );
    // An expired one says so.
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "app-a", "iss": "step11-gateway", "iat": 999_999_000u64, "exp": 1_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"signing-secret"),
    )
    .unwrap();
    let answer = call(&gateway, "/api/x", Some(&expired)).await;
    assert_eq!(answer.status(), 401);
    let text = answer.text().await.unwrap();
    assert!(text.contains("expired"), "{text}");

    // An app removed from the config: its token stops working at the reload.
    gateway.rewrite(
        &tenants(&upstream.url(), "")
            .replace("[[apps]]\nid = \"app-a\"\nsecret = \"a-secret\"\n", ""),
    );
    assert_eq!(gateway.post("/reload").await.status(), 200);
    let answer = call(&gateway, "/api/x", Some(token)).await;
    assert_eq!(answer.status(), 401);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("no longer configured")
    );
}

async fn the_token_endpoint_refuses_what_is_not_a_client_credentials_grant(engine: &'static str) {
    let (upstream, seen) = counting_backend().await;
    let gateway = Gateway::start_on(engine, &tenants(&upstream, ""), &[]);
    let grant = "grant_type=client_credentials";
    for (id, secret, form, status, error) in [
        ("app-a", "wrong", grant, 401, "invalid_client"),
        ("nobody", "a-secret", grant, 401, "invalid_client"),
        ("app-b", "a-secret", grant, 401, "invalid_client"),
        (
            "app-a",
            "a-secret",
            "grant_type=password",
            400,
            "unsupported_grant_type",
        ),
        ("app-a", "a-secret", "", 400, "invalid_request"),
    ] {
        let answer = ask_token(&gateway, id, secret, form).await;
        assert_eq!(answer.status(), status, "{id}:{secret} {form}");
        let json: Value = answer.json().await.unwrap();
        assert_eq!(json["error"], error, "{id}:{secret} {form}");
    }
    let get = client()
        .get(format!("{}/oauth/tokens", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    // A body past the bound is refused, not read whole.
    let big = format!("{grant}&pad={}", "x".repeat(100_000));
    let answer = ask_token(&gateway, "app-a", "a-secret", &big).await;
    assert_eq!(answer.status(), 413);
    // Nothing of it reached an upstream.
    assert_eq!(seen.load(Ordering::SeqCst), 0);

    // Guessing a secret is slow: past a burst, a client is answered 20
    // times a second.
    let mut throttled = 0;
    for guess in 0..100 {
        let answer = ask_token(&gateway, "app-a", &format!("guess-{guess}"), grant).await;
        if answer.status() == 429 {
            let text = answer.text().await.unwrap();
            assert!(text.contains("at most 20 times a second"), "{text}");
            throttled += 1;
        }
    }
    assert!(throttled > 0);
}

async fn an_app_outside_its_allow_is_forbidden(engine: &'static str) {
    let (upstream, seen) = counting_backend().await;
    let gateway = Gateway::start_on(engine, &tenants(&upstream, "allow = [\"10.0.0.0/8\"]"), &[]);
    let a = gateway.app_token("app-a", "a-secret").await;
    let answer = call(&gateway, "/api/x", Some(&a)).await;
    assert_eq!(answer.status(), 403);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("app app-a may not call from 127.0.0.1")
    );
    let b = gateway.app_token("app-b", "b-secret").await;
    assert_eq!(call(&gateway, "/api/x", Some(&b)).await.status(), 200);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

async fn an_app_over_its_qps_or_its_qpd_is_told_which(engine: &'static str) {
    let upstream = backend().await;
    let gateway = Gateway::start_on(engine, &tenants(&upstream.url(), "qpd = 5"), &[]);
    let a = gateway.app_token("app-a", "a-secret").await;
    for _ in 0..5 {
        assert_eq!(call(&gateway, "/api/x", Some(&a)).await.status(), 200);
    }
    let refused = call(&gateway, "/api/x", Some(&a)).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("app app-a is over its qpd: 5 requests a day (UTC)")
    );
    // The other app is not held to app-a's quota.
    let b = gateway.app_token("app-b", "b-secret").await;
    assert_eq!(call(&gateway, "/api/x", Some(&b)).await.status(), 200);

    // qps: 2 a second. Sent within a second, the third is refused (a
    // loaded machine may cross a second's edge once: then the fifth).
    gateway.rewrite(&tenants(&upstream.url(), "qps = 2"));
    assert_eq!(gateway.post("/reload").await.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = call(&gateway, "/api/x", Some(&a)).await;
        let status = answer.status().as_u16();
        if status == 429 {
            let text = answer.text().await.unwrap();
            assert!(text.contains("over its qps: 2 requests a second"), "{text}");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 2,
        "{statuses:?}"
    );
}

async fn stats_count_each_request_per_service_per_app_and_in_total(engine: &'static str) {
    let upstream = backend().await;
    let gateway = Gateway::start_on(engine, &tenants(&upstream.url(), ""), &[]);
    let a = gateway.app_token("app-a", "a-secret").await;
    for _ in 0..3 {
        assert_eq!(call(&gateway, "/api/x", Some(&a)).await.status(), 200);
    }
    assert_eq!(call(&gateway, "/api/x", None).await.status(), 401);
    for _ in 0..2 {
        assert_eq!(call(&gateway, "/page", None).await.status(), 200);
    }
    let counts = stats(&gateway).await;
    // The token request, 3 + 1 to api, 2 to web.
    assert_eq!(counts["total"]["today"], 7, "{counts:#}");
    assert_eq!(counts["services"]["api"]["today"], 4, "{counts:#}");
    assert_eq!(counts["services"]["web"]["today"], 2, "{counts:#}");
    assert_eq!(counts["apps"]["app-a"]["today"], 3, "{counts:#}");
    assert_eq!(counts["apps"]["app-b"]["today"], 0, "{counts:#}");
    for scope in [
        &counts["total"],
        &counts["services"]["api"],
        &counts["apps"]["app-a"],
    ] {
        let hours = scope["hours_today"].as_array().unwrap();
        assert_eq!(hours.len(), 24);
        let sum: u64 = hours.iter().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(sum, scope["today"].as_u64().unwrap());
        assert_eq!(scope["yesterday"], 0);
        assert_eq!(scope["hours_yesterday"].as_array().unwrap().len(), 24);
        assert!(scope["qps"].as_f64().unwrap() > 0.0, "{scope}");
    }
    // The counts survive a reload.
    assert_eq!(gateway.post("/reload").await.status(), 200);
    assert_eq!(stats(&gateway).await["services"]["api"]["today"], 4);
}

#[tokio::test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "redis-server is not installed (apt-get install redis-server)"
)]
async fn two_gateways_sharing_redis_admit_an_apps_qpd_of_100_together_and_count_alike() {
    let redis = RedisServer::start().await;
    let (upstream, seen) = counting_backend().await;
    let config = format!(
        "[redis]\nurl = \"{}\"\n{}",
        redis.url(),
        tenants(&upstream, "qpd = 100")
    );
    let gateways = [
        Gateway::start_on("fast", &config, &[]),
        Gateway::start_on("hyper", &config, &[]),
    ];
    let tokens = [
        gateways[0].app_token("app-a", "a-secret").await,
        gateways[1].app_token("app-a", "a-secret").await,
    ];
    // 150 requests, alternating: 100 admitted in all, whichever took them.
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..150 {
        let at = i % 2;
        match call(&gateways[at], "/api/x", Some(&tokens[at]))
            .await
            .status()
            .as_u16()
        {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    assert_eq!((admitted, refused), (100, 50));
    assert_eq!(seen.load(Ordering::SeqCst), 100);
    // Each /stats writes its own instance's last counts before it reads:
    // once both have asked, either shows every instance's requests.
    stats(&gateways[0]).await;
    let [first, second] = [stats(&gateways[1]).await, stats(&gateways[0]).await];
    for stats in [&first, &second] {
        assert_eq!(stats["total"]["today"], 152, "{stats:#}");
        assert_eq!(stats["services"]["api"]["today"], 150, "{stats:#}");
        assert_eq!(stats["apps"]["app-a"]["today"], 150, "{stats:#}");
        assert_eq!(
            stats["apps"]["app-a"]["hours_today"],
            first["apps"]["app-a"]["hours_today"]
        );
    }
}
