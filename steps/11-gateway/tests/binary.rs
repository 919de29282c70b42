//! Step 09 as operators run it: the real binary, a config file, real
//! redis-servers, requests under load while it reloads.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use real_server::Echo;
use real_server::redis::RedisServer;
use serving::ServerHandle;
use support::running::Gateway;
use support::{backend, client, on_both_engines};
use tokio_tungstenite::tungstenite::Message;

on_both_engines!(
    the_binary_routes_drains_and_keeps_its_config_through_a_bad_reload,
    no_request_fails_while_the_config_is_reloaded_under_load,
    a_websocket_opened_before_a_reload_finishes_on_the_config_it_started_with,
    watch_reloads_when_the_file_changes,
);

async fn served_by(gateway: &Gateway, path: &str) -> String {
    let echo: Echo = gateway.get(path).await.json().await.unwrap();
    echo.served_by
}

async fn the_binary_routes_drains_and_keeps_its_config_through_a_bad_reload(engine: &'static str) {
    let (a, b) = (backend().await, backend().await);
    let services = format!(
        r#"
[[services]]
name = "api"
path_prefix = "/api"
strip_prefix = true
upstreams = ["{}", "{}"]
[[services]]
name = "web"
host = "web.localhost"
upstreams = ["{}"]
"#,
        a.url(),
        b.url(),
        b.url()
    );
    let gateway = Gateway::start_on(engine, &services, &[]);
    let echo: Echo = gateway.get("/api/x").await.json().await.unwrap();
    assert_eq!(echo.path, "/x");
    let web: Echo = client()
        .get(format!("{}/page", gateway.url))
        .header("host", "web.localhost")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(web.served_by, b.addr().to_string());
    assert_eq!(gateway.get("/other").await.status(), 404);

    // Drain a: b takes everything.
    let drained = gateway
        .post(&format!("/services/api/drain?upstream={}", a.url()))
        .await;
    assert_eq!(drained.status(), 200);
    for _ in 0..4 {
        assert_eq!(served_by(&gateway, "/api/x").await, b.addr().to_string());
    }

    // A broken file: 400 naming the line; the old routes keep serving.
    gateway.rewrite(&format!(
        "{services}\n[[services]]\nname = \"api\"\nupstreams = []\n"
    ));
    let refused = gateway.post("/reload").await;
    assert_eq!(refused.status(), 400);
    let why = refused.text().await.unwrap();
    // Line 17 of the services, after the engine line.
    assert!(why.contains(".toml:18:"), "{why}");
    assert_eq!(served_by(&gateway, "/api/x").await, b.addr().to_string());
}

async fn no_request_fails_while_the_config_is_reloaded_under_load(engine: &'static str) {
    let (a, b, c) = (backend().await, backend().await, backend().await);
    let version = |upstreams: [&ServerHandle; 2], rps: u32| {
        format!(
            "[[services]]\nname = \"api\"\nupstreams = [\"{}\", \"{}\"]\nrate_limit = {{ rps = {rps}, burst = {rps} }}\n",
            upstreams[0].url(),
            upstreams[1].url()
        )
    };
    let gateway = Arc::new(Gateway::start_on(
        engine,
        &version([&a, &b], 1_000_000),
        &[],
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (gateway, stop, ok, failed) =
            (gateway.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::Relaxed) {
                match client.get(format!("{}/slow", gateway.url)).send().await {
                    Ok(response) if response.status() == 200 => {
                        // Read the whole body: a reload must not cut one.
                        match response.bytes().await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // 20 reloads, each changing the upstream set (and the service, so it is
    // rebuilt), while eight clients keep requesting.
    for round in 0..20 {
        let services = if round % 2 == 0 {
            version([&b, &c], 1_000_000 + round)
        } else {
            version([&a, &b], 1_000_000 + round)
        };
        gateway.rewrite(&services);
        let reloaded = gateway.post("/reload").await;
        assert_eq!(reloaded.status(), 200, "{:?}", reloaded.text().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 100, "only {ok} requests answered");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert_eq!(gateway.logged("reloaded, 1 service"), 20);
}

async fn a_websocket_opened_before_a_reload_finishes_on_the_config_it_started_with(
    engine: &'static str,
) {
    let backend = backend().await;
    let with_ws = format!(
        "[[services]]\nname = \"ws\"\npath_prefix = \"/ws\"\nupstreams = [\"{}\"]\n",
        backend.url()
    );
    let gateway = Gateway::start_on(engine, &with_ws, &[]);
    let url = format!("{}/ws", gateway.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    socket.send(Message::text("before")).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("before")
    );
    // The new config has no websocket service at all.
    gateway.rewrite(&format!(
        "[[services]]\nname = \"other\"\npath_prefix = \"/other\"\nupstreams = [\"{}\"]\n",
        backend.url()
    ));
    assert_eq!(gateway.post("/reload").await.status(), 200);
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "a new handshake follows the new config (404)"
    );
    for n in 0..3 {
        let text = format!("after {n}");
        socket.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::text(text));
    }
}

async fn watch_reloads_when_the_file_changes(engine: &'static str) {
    let (a, b) = (backend().await, backend().await);
    let on = |backend: &ServerHandle| {
        format!(
            "[[services]]\nname = \"api\"\nupstreams = [\"{}\"]\n",
            backend.url()
        )
    };
    let gateway = Gateway::start_on(engine, &on(&a), &["--watch"]);
    assert_eq!(served_by(&gateway, "/").await, a.addr().to_string());
    gateway.rewrite(&on(&b));
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_by(&gateway, "/").await != b.addr().to_string() {
        assert!(Instant::now() < deadline, "the change was never picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The new routes serve a moment before the reload is logged.
    while gateway.logged("the file changed: reloaded") == 0 {
        assert!(Instant::now() < deadline, "the reload was never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gateway.logged("the file changed: reloaded"), 1);
}

/// Config for a service limited to `rps` with bursts of 1, shared through
/// `redis` with `fail` mode.
fn limited(backend: &ServerHandle, redis: &str, rps: u32, fail: &str) -> String {
    format!(
        "[redis]\nurl = \"{redis}\"\nfail = \"{fail}\"\n[[services]]\nname = \"api\"\nupstreams = [\"{}\"]\nrate_limit = {{ rps = {rps}, burst = 1, key = \"global\" }}\n",
        backend.url()
    )
}

#[tokio::test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "redis-server is not installed (apt-get install redis-server)"
)]
async fn two_instances_sharing_a_limit_of_10_per_second_admit_about_10_per_second_together() {
    let redis = RedisServer::start().await;
    let backend = backend().await;
    let services = limited(&backend, &redis.url(), 10, "open");
    let gateways = [
        Arc::new(Gateway::start(&services, &[])),
        Arc::new(Gateway::start(&services, &[])),
    ];
    // Each instance is asked 50 times a second for 3 seconds: 300 requests
    // in all. Alone, each would admit 10/s; sharing, both admit 10/s.
    let started = Instant::now();
    let mut askers = Vec::new();
    for gateway in &gateways {
        let gateway = gateway.clone();
        askers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut ticks = tokio::time::interval(Duration::from_millis(20));
            for _ in 0..150 {
                ticks.tick().await;
                statuses.push(gateway.get("/").await.status().as_u16());
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for asker in askers {
        statuses.extend(asker.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    let admitted = statuses.iter().filter(|s| **s == 200).count() as f64;
    let refused = statuses.iter().filter(|s| **s == 429).count() as f64;
    assert_eq!(admitted + refused, 300.0, "{statuses:?}");
    // 10/s over the run, plus the burst of 1; the bounds leave room for a
    // loaded machine, and exclude the 20/s two separate limits would allow.
    let expected = 10.0 * seconds + 1.0;
    assert!(
        admitted >= expected * 0.7 && admitted <= expected * 1.3,
        "{admitted} admitted in {seconds:.1} s, expected about {expected:.0}"
    );
    for gateway in &gateways {
        assert_eq!(gateway.logged("unavailable"), 0);
    }
}

#[tokio::test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "redis-server is not installed (apt-get install redis-server)"
)]
async fn redis_killed_mid_run_fails_open_at_once_logs_once_and_sharing_resumes() {
    let redis = RedisServer::start().await;
    let port = redis.port;
    let backend = backend().await;
    // One request a minute: the second request is refused while shared.
    let gateway = Gateway::start(&limited(&backend, &redis.url(), 1, "open"), &[]);
    let status = |gateway: &Gateway| {
        let url = format!("{}/", gateway.url);
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    };
    // (The first request connects; retry until Redis has answered once.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&gateway).await != 429 {
        assert!(Instant::now() < deadline, "the limit never held");
    }

    redis.kill();
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(status(&gateway).await, 200, "fail open: admitted");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "50 requests took {:?} without Redis",
        started.elapsed()
    );
    assert_eq!(
        gateway.logged("unavailable"),
        1,
        "logged once, not per request"
    );

    let _back = RedisServer::start_on(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&gateway).await != 429 {
        assert!(Instant::now() < deadline, "sharing never resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gateway.logged("answers again"), 1);
    let metrics = gateway.metrics().await;
    let unavailable: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("proxy_rate_limit_store_unavailable_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(unavailable >= 50, "{unavailable} counted");
}

#[tokio::test]
async fn fail_closed_refuses_with_503_while_redis_is_down() {
    let backend = backend().await;
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = Gateway::start(
        &limited(
            &backend,
            &format!("redis://127.0.0.1:{port}"),
            100,
            "closed",
        ),
        &[],
    );
    let refused = gateway.get("/").await;
    assert_eq!(refused.status(), 503);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Redis is unavailable")
    );
}
