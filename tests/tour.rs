//! `cargo run` (the tour) works and shows each chapter.

use std::process::Command;

#[test]
fn the_tour_runs_every_chapter_and_exits_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_proxy-workbench"))
        .env("RUST_LOG", "off")
        .output()
        .expect("the tour binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}",
        output.status
    );
    for expected in [
        "Chapter 0 · the real servers, with no proxy in between",
        "    x-forwarded-for: (none)",
        "GET /status/418                → 418 I'm a teapot",
        "GET /flaky?fail_percent=100    → 500 Internal Server Error",
        "    \"chunk 3 of 3\" at ",
        "GET /health → 200; after POST /health/down → 503; after POST /health/up → 200",
        "Chapter 1 · a forward proxy (step01-forward-proxy)",
        "    the server saw x-forwarded-for: 127.0.0.1",
        "    the server saw x-private: (none) — hop-by-hop, stopped at the proxy",
        "    < HTTP/1.1 200 OK",
        "GET through the proxy to the proxy itself → 508 Loop Detected",
        "GET through the proxy to a port nobody listens on → 502 Bad Gateway",
        "Chapter 2 · the minimal reverse proxy (step02-reverse-proxy-minimal)",
        "    the server got GET /base/hello?from=proxy&x=1",
        "    x-private:       for the proxy only   (gap: a hop-by-hop header leaked)",
        "Chapter 3 · the ReverseProxy clone (step03-reverse-proxy)",
        "    x-private:         (none)",
        "got back \"hello through the tunnel\"",
        "    hop-by-hop request headers removed       ✗          ✓",
        "    conflicting Content-Length rejected      ✓          ✓",
        "Chapter 4 · load balancing (step04-load-balance)",
        "    round-robin                                 20                    20                    20",
        "    weighted-round-robin                        10                    20                    30",
        "    after two failed probes it gets no more requests",
        "Chapter 5 · middleware (step05-middleware)",
        "    200 200 200 429 429 429",
        "    proxy_rate_limited_total 3",
        "    four failing requests: 500 500 500 500",
        "    breaker open; the next request gets the fallback at once: 503",
        "and the breaker is closed",
        "Chapter 6 · websockets (step06-websocket)",
        "    < HTTP/1.1 101 Switching Protocols",
        "    accept checks out: base64(sha1(key + GUID))",
        "    < text: hello",
        "    < close: 1001 idle for 300ms",
        "    close: 1001 proxy shutting down",
        "Chapter 7 · HTTPS (step07-https)",
        "    a client offering h2 and http/1.1  → HTTP/2.0; the backend saw x-forwarded-proto: https",
        "    a client offering http/1.1 only    → HTTP/1.1; the backend saw x-forwarded-proto: https",
        "    a client trusting only the system roots: refused: ",
        "    --redirect-http: GET http://…/page?x=1 → 308 Permanent Redirect to https://127.0.0.1:",
        "    verifying against the system roots: 502: upstream request failed: cannot connect: invalid peer certificate: UnknownIssuer",
        "    with --upstream-ca <the first proxy's certificate>: 200",
        "Chapter 8 · a TCP proxy (step08-tcp-proxy)",
        "; the server saw remote addr 127.0.0.1:",
        " and x-forwarded-for: (none)",
        "    PROXY TCP4 127.0.0.1 127.0.0.1 ",
        "Chapter 10 · the fast path (step10-fast-path)",
        "    hop-by-hop request headers removed       ✓          ✓",
        "    conflicting Content-Length rejected      ✓          ✓",
        "Chapter 11 · the gateway (step11-gateway)",
        "    Host localhost         GET /api/users  → 127.0.0.1:",
        " got GET /users",
        "    200 reloaded: 1 service",
        "    400 not reloaded, the old config keeps serving: gateway.toml:2:8: invalid type: integer `1`, expected a string",
        "The admin API without the token: 401 Unauthorized",
        "The service gets a cache (cache = { size = \"1MiB\" }): reloaded: 1 service",
        "    GET /headers (fresh for 60 s)   Cache-Status: gateway; fwd=uri-miss; fwd-status=200; stored; ttl=60",
        "    and again                       Cache-Status: gateway; hit; ttl=",
        "POST /services/web/purge?path=/headers: purged 1 stored URL(s) for /headers (forwarded as /headers) from service web",
        "    and again                       Cache-Status: gateway; fwd=uri-miss; fwd-status=200; stored; ttl=60",
        "The tour is over.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    // Step 10 passes every probe step 03 passes.
    let chapter10 = stdout
        .split("Chapter 10")
        .nth(1)
        .expect("chapter 10 ran")
        .split("Chapter 11")
        .next()
        .unwrap();
    assert!(!chapter10.contains('✗'), "{chapter10}");
    // Sticky: the five placements after "land on:" name one backend;
    // round-robin's name three.
    let placements = |heading: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .skip_while(|l| !l.starts_with(heading))
            .nth(1)
            .unwrap_or_else(|| panic!("no line after {heading:?}"));
        let mut distinct: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        assert_eq!(distinct.len(), 5, "{line}");
        distinct.sort();
        distinct.dedup();
        distinct
    };
    assert_eq!(placements("Five connections from 127.0.0.1").len(), 1);
    assert_eq!(placements("and with --balance round-robin").len(), 3);
}
