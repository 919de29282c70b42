//! Step 04 over real backends: the strategies' distributions as a client
//! sees them (by `x-served-by`), health taking upstreams out and back, and
//! the refusals.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use serving::{Binder, Launched, ServerHandle};
use support::{client, proxy};
use tokio::net::TcpListener;

mod support;

async fn backends(n: usize) -> Vec<ServerHandle> {
    let mut servers = Vec::new();
    for _ in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        servers.push(real_server::spawn(listener).unwrap());
    }
    servers
}

/// Which backend served each of `n` requests to `path`, counted.
async fn served_by(proxy: &Launched, path: &str, n: usize) -> HashMap<String, usize> {
    let url = format!("{}{path}", proxy.get("balanced proxy").unwrap().url());
    let mut counts = HashMap::new();
    for _ in 0..n {
        let response = client().get(&url).send().await.unwrap();
        let by = response.headers()["x-served-by"]
            .to_str()
            .unwrap()
            .to_owned();
        *counts.entry(by).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn weighted_round_robin_follows_the_weights_exactly() {
    let servers = backends(3).await;
    let upstreams: Vec<String> = servers
        .iter()
        .zip(1..)
        .map(|(s, w)| format!("{},weight={w}", s.url()))
        .collect();
    let proxy = proxy(&upstreams, &["--balance", "weighted-round-robin"]).await;
    let counts = served_by(&proxy, "/", 60).await;
    for (server, expected) in servers.iter().zip([10, 20, 30]) {
        assert_eq!(counts[&server.addr().to_string()], expected, "{counts:?}");
    }
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let servers = backends(3).await;
    let upstreams: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let proxy = proxy(&upstreams, &[]).await;
    let counts = served_by(&proxy, "/", 30).await;
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");
}

#[tokio::test]
async fn consistent_hashing_keeps_a_url_on_one_upstream() {
    let servers = backends(4).await;
    let upstreams: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let proxy = proxy(&upstreams, &["--balance", "consistent-hash"]).await;
    let mut owners = HashMap::new();
    for i in 0..40 {
        let counts = served_by(&proxy, &format!("/item/{i}"), 3).await;
        assert_eq!(counts.len(), 1, "/item/{i} moved between upstreams");
        owners.insert(i, counts.into_keys().next().unwrap());
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(
        distinct.len() >= 3,
        "40 URLs landed on {} upstreams",
        distinct.len()
    );
}

#[tokio::test]
async fn hashing_a_header_keeps_a_user_on_one_upstream() {
    let servers = backends(4).await;
    let upstreams: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let proxy = proxy(
        &upstreams,
        &[
            "--balance",
            "consistent-hash",
            "--hash-key",
            "header:x-user",
        ],
    )
    .await;
    let url = proxy.get("balanced proxy").unwrap().url();
    for user in ["ada", "grace", "linus"] {
        let mut seen = std::collections::HashSet::new();
        for path in ["/a", "/b", "/c", "/d"] {
            let response = client()
                .get(format!("{url}{path}"))
                .header("x-user", user)
                .send()
                .await
                .unwrap();
            seen.insert(
                response.headers()["x-served-by"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(seen.len(), 1, "user {user} was spread over {seen:?}");
    }
}

#[tokio::test]
async fn a_dead_upstream_is_ejected_after_consecutive_failures() {
    let servers = backends(1).await;
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let upstreams = vec![servers[0].url(), format!("http://{dead}")];
    // Without retries, the failures reach the client (with them, see
    // tests/retries.rs, they do not).
    let proxy = proxy(
        &upstreams,
        &[
            "--max-fails",
            "3",
            "--fail-cooldown",
            "60s",
            "--retries",
            "0",
        ],
    )
    .await;
    let url = proxy.get("balanced proxy").unwrap().url();
    let mut failures = 0;
    for _ in 0..6 {
        if client().get(&url).send().await.unwrap().status() == 502 {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 3,
        "round-robin sends every other request to the dead one, three times"
    );
    for _ in 0..20 {
        assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn active_checks_take_a_down_upstream_out_and_bring_it_back() {
    let servers = backends(2).await;
    let upstreams: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let proxy = proxy(
        &upstreams,
        &["--health-path", "/health", "--health-interval", "50ms"],
    )
    .await;
    let sick = servers[1].addr().to_string();
    client()
        .post(format!("{}/health/down", servers[1].url()))
        .send()
        .await
        .unwrap();
    // Probes run every 50 ms and need two failures: poll until the sick
    // upstream stops appearing (bounded), instead of sleeping a guess.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = served_by(&proxy, "/", 10).await;
        if !counts.contains_key(&sick) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still served by {sick}: {counts:?}"
        );
    }
    client()
        .post(format!("{}/health/up", servers[1].url()))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served_by(&proxy, "/", 10).await.contains_key(&sick) {
        assert!(Instant::now() < deadline, "{sick} never came back");
    }
}

#[tokio::test]
async fn a_lone_upstream_answering_errors_is_still_asked() {
    // It used to be ejected, and every request then got a 503 without the
    // upstream being asked; now there is nowhere better to send them.
    let servers = backends(1).await;
    let proxy = proxy(
        &[servers[0].url()],
        &[
            "--max-fails",
            "1",
            "--fail-cooldown",
            "60s",
            "--fail-status",
            "500",
        ],
    )
    .await;
    let url = proxy.get("balanced proxy").unwrap().url();
    for _ in 0..3 {
        let response = client()
            .get(format!("{url}/status/500"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
    }
    let response = client()
        .get(format!("{url}/status/200"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the upstream was asked");
}

#[tokio::test]
async fn a_client_cannot_eject_upstreams_by_asking_for_errors() {
    // By default only failed connections and timeouts count: any client
    // can ask for a 503.
    let servers = backends(2).await;
    let upstreams: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let by_default = proxy(&upstreams, &["--max-fails", "1", "--fail-cooldown", "60s"]).await;
    for _ in 0..6 {
        served_by(&by_default, "/status/503", 1).await;
    }
    assert_eq!(
        served_by(&by_default, "/", 10).await.len(),
        2,
        "both still serve"
    );
    // Listed statuses count, but can take out at most half of the set.
    let counting = proxy(
        &upstreams,
        &[
            "--max-fails",
            "1",
            "--fail-cooldown",
            "60s",
            "--fail-status",
            "503",
        ],
    )
    .await;
    for _ in 0..6 {
        served_by(&counting, "/status/503", 1).await;
    }
    assert_eq!(
        served_by(&counting, "/", 10).await.len(),
        1,
        "one of two is out, not both"
    );
}

#[tokio::test]
async fn when_every_upstream_is_out_all_of_them_are_asked() {
    let servers = backends(2).await;
    let upstreams: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let proxy = proxy(
        &upstreams,
        &["--health-path", "/health", "--health-interval", "50ms"],
    )
    .await;
    let down = |server: &ServerHandle| {
        client()
            .post(format!("{}/health/down", server.url()))
            .send()
    };
    // First one: the checks take it out (so they are running)…
    down(&servers[0]).await.unwrap();
    let first = servers[0].addr().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_by(&proxy, "/", 10).await.contains_key(&first) {
        assert!(Instant::now() < deadline, "{first} never taken out");
    }
    // …then the other: within a few intervals neither is healthy, and
    // requests go to both again (panic mode), never a 503.
    down(&servers[1]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut both = false;
    while Instant::now() < deadline {
        both |= served_by(&proxy, "/", 10).await.len() == 2;
    }
    assert!(both, "panic mode never routed to both");
}

#[tokio::test]
async fn without_upstreams_three_weighted_real_servers_start() {
    let binder = Binder::ephemeral();
    let args = step04_load_balance::Args::parse_from([
        "step04-load-balance",
        "--balance",
        "weighted-round-robin",
    ]);
    let launched = step04_load_balance::launch(args, &binder).await.unwrap();
    let counts = served_by(&launched, "/", 12).await;
    let shares: Vec<usize> = launched.servers[..3]
        .iter()
        .map(|s| counts[&s.addr().to_string()])
        .collect();
    assert_eq!(shares, [2, 4, 6]);
}

#[test]
fn bad_flags_are_clear_cli_errors() {
    let error = |args: &[&str]| {
        step04_load_balance::Args::try_parse_from(
            std::iter::once("step04-load-balance").chain(args.iter().copied()),
        )
        .unwrap_err()
        .to_string()
    };
    let unknown = error(&["--balance", "fastest"]);
    for name in load_balance::Kind::names() {
        assert!(unknown.contains(name), "{unknown} lacks {name}");
    }
    assert!(
        error(&["--upstream", "http://127.0.0.1:1,weight=0"]).contains("weight=N with N from 1 to")
    );
    assert!(error(&["--hash-key", "cookie"]).contains("expected url, client-ip or header:NAME"));
    assert!(error(&["--health-interval", "soon"]).contains("expected a whole number and a unit"));
    assert!(error(&["--upstream", "ftp://127.0.0.1:1"]).contains("http:// or h2c:// or https://"));
}

#[tokio::test]
async fn an_https_upstream_is_refused_at_start_by_a_plain_http_step() {
    let args = step04_load_balance::Args::try_parse_from([
        "step04-load-balance",
        "--upstream",
        "https://127.0.0.1:1",
    ])
    .unwrap();
    let error = step04_load_balance::launch(args, &Binder::ephemeral())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("https upstreams need step07-https"),
        "{error}"
    );
}

#[tokio::test]
async fn least_connections_avoids_the_upstream_still_streaming_a_response() {
    use futures_util::StreamExt;
    let servers = backends(2).await;
    let upstreams: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let proxy = proxy(&upstreams, &["--balance", "least-connections"]).await;
    let url = proxy.get("balanced proxy").unwrap().url();
    // A response whose body is still coming: its request stays in flight.
    let slow = client()
        .get(format!("{url}/stream/2?interval_ms=2000"))
        .send()
        .await
        .unwrap();
    let busy = slow.headers()["x-served-by"].to_str().unwrap().to_owned();
    let mut body = slow.bytes_stream();
    body.next().await.unwrap().unwrap();
    let counts = served_by(&proxy, "/", 10).await;
    assert_eq!(
        counts.get(&busy),
        None,
        "sent to the busy upstream: {counts:?}"
    );
    drop(body);
}
