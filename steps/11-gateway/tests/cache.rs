//! A service's `cache` through the gateway binary: hits answered from the
//! store on both engines, what `/metrics` counts, `POST
//! /services/NAME/purge`, reloads that keep or empty a store, and a herd
//! of misses made one upstream request.
//!
//! What is asked of the origin is counted at the origin (real_server's
//! `/requests`), not taken from the gateway's word.

mod support;

use support::running::{Gateway, series};
use support::{backend, client, on_both_engines};

/// `api` caches (under `/api`, stripped); `plain` does not.
fn two_services(upstreams: &str, cache: &str) -> String {
    format!(
        "[[services]]\nname = \"api\"\npath_prefix = \"/api\"\nstrip_prefix = true\n\
         upstreams = [{upstreams}]\ncache = {cache}\n\
         [[services]]\nname = \"plain\"\npath_prefix = \"/plain\"\nupstreams = [{upstreams}]\n"
    )
}

const CACHE: &str = "{ size = \"1MiB\" }";

/// A response fresh for a minute.
const FRESH: &str = "/headers?set=Cache-Control:max-age%3D60";

/// Requests the origin at `url` answered before this question.
async fn answered(url: &str) -> u64 {
    let text = client()
        .get(format!("{url}/requests"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.trim().parse().unwrap()
}

/// Requests the origin at `url` saw since `before` (an [`answered`]),
/// less the one that asked.
async fn seen_since(url: &str, before: u64) -> u64 {
    answered(url).await - before - 1
}

fn cache_status(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn a_second_get_is_answered_from_the_store(engine: &'static str) {
    let origin = backend().await;
    let url = origin.url();
    let gateway = Gateway::start_on(engine, &two_services(&format!("\"{url}\""), CACHE), &[]);
    let before = answered(&url).await;
    let first = gateway.get(&format!("/api{FRESH}")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        cache_status(&first),
        "gateway; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    );
    let second = gateway.get(&format!("/api{FRESH}")).await;
    assert_eq!(second.status(), 200);
    assert!(
        cache_status(&second).starts_with("gateway; hit; ttl="),
        "{}",
        cache_status(&second)
    );
    assert!(second.headers().contains_key("age"));
    let body = second.bytes().await.unwrap();
    assert_eq!(&body[..], b"ok\n");
    assert_eq!(seen_since(&url, before).await, 1, "one request upstream");

    // The service without a cache forwards every request, as it did.
    let before = answered(&url).await;
    for _ in 0..2 {
        let plain = gateway.get(&format!("/plain{FRESH}")).await;
        assert_eq!(plain.status(), 200);
        assert_eq!(cache_status(&plain), "");
    }
    assert_eq!(seen_since(&url, before).await, 2);

    let text = gateway.metrics().await;
    let count = |result: &str| {
        series(
            &text,
            &format!("proxy_cache_requests_total{{service=\"api\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(count("hit"), Some(1), "{text}");
    assert_eq!(count("miss"), Some(1), "{text}");
    assert_eq!(
        series(&text, "proxy_cache_served_bytes_total{service=\"api\"}"),
        Some(body.len() as u64)
    );
    let stored = series(&text, "proxy_cache_stored_bytes{service=\"api\"}");
    assert!(stored.is_some_and(|bytes| bytes > 0), "{text}");
    assert!(!text.contains("service=\"plain\""), "{text}");
    let services = gateway.admin_json("/services").await;
    let cache = &services["services"][0]["cache"];
    assert_eq!(cache["size"], 1 << 20);
    assert_eq!(cache["max_entry_size"], 1 << 16);
    assert_eq!(cache["stored_bytes"].as_u64(), stored);
    assert!(services["services"][1]["cache"].is_null());
    // The miss and the two plain requests were the upstream's; the hit
    // was nobody's.
    assert_eq!(
        series(
            &text,
            &format!("proxy_requests_total{{method=\"GET\",status=\"200\",upstream=\"{url}/\"}}")
        ),
        Some(3),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "proxy_requests_total{method=\"GET\",status=\"200\",upstream=\"-\"}"
        ),
        Some(1),
        "{text}"
    );
}

async fn a_purge_drops_what_a_path_stored(engine: &'static str) {
    let origin = backend().await;
    let url = origin.url();
    let rewritten = format!(
        "[[services]]\nname = \"old\"\npath_prefix = \"/old\"\nupstreams = [\"{url}\"]\n\
         rewrite = [\"^/old/(.*)=/$1\"]\ncache = {CACHE}\n"
    );
    let config = two_services(&format!("\"{url}\""), CACHE) + &rewritten;
    let gateway = Gateway::start_on(engine, &config, &[]);
    let other = "/other?set=Cache-Control:max-age%3D60";
    for path in [FRESH, &format!("{FRESH}&v=2"), other] {
        let stored = gateway.get(&format!("/api{path}")).await;
        assert!(cache_status(&stored).contains("stored"), "{path}");
    }

    let purged = gateway.post("/services/api/purge?path=/api/headers").await;
    assert_eq!(purged.status(), 200);
    assert_eq!(
        purged.text().await.unwrap(),
        "purged 2 stored URL(s) for /api/headers (forwarded as /headers) from service api\n"
    );
    let before = answered(&url).await;
    let again = gateway.get(&format!("/api{FRESH}")).await;
    assert!(cache_status(&again).contains("fwd=uri-miss"));
    let kept = gateway.get(&format!("/api{other}")).await;
    assert!(cache_status(&kept).contains("hit"));
    assert_eq!(seen_since(&url, before).await, 1);

    // A query names one URL (not another that starts the same); a final *
    // every path it starts.
    let longer = gateway.get(&format!("/api{FRESH}&v=2")).await;
    assert!(cache_status(&longer).contains("stored"));
    let one = gateway
        .post("/services/api/purge?path=/api/headers%3Fset=Cache-Control:max-age%253D60")
        .await
        .text()
        .await
        .unwrap();
    assert!(one.starts_with("purged 1 "), "{one}");
    let in_static = gateway
        .get("/api/static/a.css?set=Cache-Control:max-age%3D60")
        .await;
    assert!(cache_status(&in_static).contains("stored"));
    let some = gateway.post("/services/api/purge?path=/api/static/*").await;
    assert!(some.text().await.unwrap().starts_with("purged 1 "));
    let kept = gateway.get(&format!("/api{other}")).await;
    assert!(cache_status(&kept).contains("hit"));

    // A path written as a person would, é and all, is the path a client
    // sent encoded.
    let accented = gateway
        .get("/api/caf%C3%A9?set=Cache-Control:max-age%3D60")
        .await;
    assert!(cache_status(&accented).contains("stored"));
    let purged = gateway
        .post("/services/api/purge?path=/api/caf%C3%A9")
        .await;
    let purged = purged.text().await.unwrap();
    assert!(purged.starts_with("purged 1 "), "{purged}");

    let all = gateway.post("/services/api/purge?path=/api/*").await;
    assert!(all.text().await.unwrap().starts_with("purged 2 "));
    let gone = gateway.get(&format!("/api{other}")).await;
    assert!(cache_status(&gone).contains("fwd=uri-miss"));

    // Through a rewrite, a path is mapped; a prefix cannot be.
    let old = gateway
        .get("/old/page?set=Cache-Control:max-age%3D60")
        .await;
    assert!(cache_status(&old).contains("stored"));
    let mapped = gateway.post("/services/old/purge?path=/old/page").await;
    let mapped = mapped.text().await.unwrap();
    assert!(
        mapped.starts_with("purged 1 stored URL(s) for /old/page (forwarded as /page)"),
        "{mapped}"
    );

    for (path, status, said) in [
        (
            "/services/nobody/purge?path=/x",
            404,
            "no service \"nobody\"",
        ),
        (
            "/services/plain/purge?path=/plain/x",
            409,
            "service \"plain\" has no cache",
        ),
        (
            "/services/api/purge?path=/elsewhere",
            400,
            "/elsewhere is not a path of service api",
        ),
        ("/services/api/purge", 400, "purge needs ?path=/a/path"),
        (
            "/services/old/purge?path=/old/*",
            400,
            "service old rewrites its paths, so a prefix (*) cannot be purged",
        ),
    ] {
        let refused = gateway.post(path).await;
        assert_eq!(refused.status(), status, "{path}");
        let text = refused.text().await.unwrap();
        assert!(text.starts_with(said), "{path}: {text}");
    }
}

async fn a_herd_of_misses_makes_one_upstream_request(engine: &'static str) {
    let origin = backend().await;
    let url = origin.url();
    let gateway = Gateway::start_on(engine, &two_services(&format!("\"{url}\""), CACHE), &[]);
    let before = answered(&url).await;
    let slow = format!(
        "{}/api/delay/500?set=Cache-Control:max-age%3D60",
        gateway.url
    );
    let herd: Vec<_> = (0..50)
        .map(|_| {
            let slow = slow.clone();
            tokio::spawn(async move { client().get(slow).send().await.unwrap().status() })
        })
        .collect();
    for request in herd {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(seen_since(&url, before).await, 1);
    let text = gateway.metrics().await;
    let count = |name: &str| series(&text, name).unwrap_or(0);
    let collapsed = count("proxy_cache_collapsed_total{service=\"api\"}");
    let hits = count("proxy_cache_requests_total{service=\"api\",result=\"hit\"}");
    let misses = count("proxy_cache_requests_total{service=\"api\",result=\"miss\"}");
    // Those that came before the answer rode the flight; any later, a hit.
    assert_eq!(misses, 50 - hits, "{text}");
    assert_eq!(collapsed, misses - 1, "{text}");
}

#[tokio::test]
async fn a_purge_also_drops_an_answer_still_on_its_way() {
    let origin = backend().await;
    let url = origin.url();
    let gateway = Gateway::start(&two_services(&format!("\"{url}\""), CACHE), &[]);
    let slow = format!(
        "{}/api/delay/1500?set=Cache-Control:max-age%3D60",
        gateway.url
    );
    // Wait until the origin has the request: it counts requests as they
    // come (each question adds one too).
    let mut quiet = answered(&url).await + 1;
    let on_its_way = tokio::spawn({
        let slow = slow.clone();
        async move { client().get(slow).send().await.unwrap() }
    });
    while answered(&url).await == quiet {
        quiet += 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let purged = gateway
        .post("/services/api/purge?path=/api/delay/1500")
        .await;
    assert!(purged.text().await.unwrap().starts_with("purged 0 "));
    assert_eq!(on_its_way.await.unwrap().status(), 200);
    let after = client().get(slow).send().await.unwrap();
    assert!(
        cache_status(&after).contains("fwd=uri-miss"),
        "{}",
        cache_status(&after)
    );
}

#[tokio::test]
async fn an_open_breaker_refuses_what_would_go_upstream_not_what_is_stored() {
    let origin = backend().await;
    let url = origin.url();
    let config = format!(
        "[[services]]\nname = \"api\"\npath_prefix = \"/api\"\nstrip_prefix = true\n\
         upstreams = [\"{url}\"]\nretries = 0\ncache = {CACHE}\n\
         breaker = {{ error_rate = 50, min_requests = 4, open = \"60s\" }}\n"
    );
    let gateway = Gateway::start(&config, &[]);
    let path = format!("/api{FRESH}");
    assert!(cache_status(&gateway.get(&path).await).contains("stored"));
    // Hits neither count for the upstream nor dilute its errors.
    for _ in 0..5 {
        assert_eq!(gateway.get(&path).await.status(), 200);
    }
    // One success (the miss that stored it) and three errors: 75 %.
    for _ in 0..3 {
        assert_eq!(gateway.get("/api/status/500").await.status(), 500);
    }
    let services = gateway.admin_json("/services").await;
    assert_eq!(services["services"][0]["breaker"], "open", "{services}");
    // Open: what is stored is still answered; what would go upstream is not.
    let hit = gateway.get(&path).await;
    assert_eq!(hit.status(), 200);
    assert!(cache_status(&hit).contains("hit"));
    assert_eq!(gateway.get("/api/status/200").await.status(), 503);
}

on_both_engines!(
    a_second_get_is_answered_from_the_store,
    a_purge_drops_what_a_path_stored,
    a_herd_of_misses_makes_one_upstream_request,
);

#[tokio::test]
async fn metrics_count_stale_revalidated_and_bypassed_answers() {
    let origin = backend().await;
    let url = origin.url();
    let gateway = Gateway::start(&two_services(&format!("\"{url}\""), CACHE), &[]);
    // Stale at once, with a validator: the second GET asks the origin,
    // which answers 304.
    let validated = "/api/headers?set=Cache-Control:max-age%3D0&set=ETag:%22v1%22";
    // Stale at once, but servable while it is revalidated.
    let lenient =
        "/api/headers?set=Cache-Control:max-age%3D0,stale-while-revalidate%3D60&set=ETag:%22v2%22";
    for path in [validated, lenient] {
        for _ in 0..2 {
            assert_eq!(gateway.get(path).await.status(), 200);
        }
    }
    let posted = client()
        .post(format!("{}/api/headers", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(cache_status(&posted), "gateway; fwd=method");
    let text = gateway.metrics().await;
    let count = |result: &str| {
        series(
            &text,
            &format!("proxy_cache_requests_total{{service=\"api\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(count("miss"), Some(2), "{text}");
    assert_eq!(count("revalidated"), Some(1), "{text}");
    assert_eq!(count("stale"), Some(1), "{text}");
    assert_eq!(count("bypass"), Some(1), "{text}");
    assert_eq!(count("hit"), Some(0), "{text}");
}

#[tokio::test]
async fn a_reload_keeps_a_store_whose_settings_stay() {
    let (first, second) = (backend().await, backend().await);
    let one = format!("\"{}\"", first.url());
    let both = format!("\"{}\", \"{}\"", first.url(), second.url());
    let gateway = Gateway::start(&two_services(&one, CACHE), &[]);
    let path = format!("/api{FRESH}");
    assert!(cache_status(&gateway.get(&path).await).contains("stored"));

    // Another upstream, the same cache: what was stored stays.
    gateway.rewrite(&two_services(&both, CACHE));
    assert_eq!(gateway.post("/reload").await.status(), 200);
    let kept = gateway.get(&path).await;
    assert!(
        cache_status(&kept).contains("hit"),
        "{}",
        cache_status(&kept)
    );

    // Another size: a new, empty store.
    gateway.rewrite(&two_services(&both, "{ size = \"2MiB\" }"));
    assert_eq!(gateway.post("/reload").await.status(), 200);
    let emptied = gateway.get(&path).await;
    assert!(cache_status(&emptied).contains("fwd=uri-miss"));

    // Without a cache: forwarded as it came, no Cache-Status.
    gateway.rewrite(
        &two_services(&both, "{ size = \"2MiB\" }").replace("cache = { size = \"2MiB\" }\n", ""),
    );
    assert_eq!(gateway.post("/reload").await.status(), 200);
    assert_eq!(cache_status(&gateway.get(&path).await), "");
}
