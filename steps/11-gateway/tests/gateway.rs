//! Step 09 through its own launch code: routing by prefix and host, the
//! prefix stripped, a limit per service, and config mistakes reported with
//! file, line and column.

mod support;

use real_server::Echo;
use serving::{Launched, ServerHandle};
use support::{
    admin_metrics, backend, client, gateway_on, gateway_with_path, get, localhost_certificate,
    on_both_engines, on_engine, write_config,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

on_both_engines!(
    a_request_no_service_takes_is_a_404_that_says_so,
    each_service_has_its_own_rate_limit,
    a_valid_reload_swaps_the_routes_and_an_invalid_one_changes_nothing,
    the_admin_api_lists_services_and_their_upstreams,
    a_drained_upstream_gets_no_new_requests_until_undrained,
    global_middleware_runs_before_routing,
    a_service_table_sets_its_timeout_auth_and_retries,
    abandoned_uploads_eject_no_upstream,
    stalled_bodies_are_cut_off_and_eject_no_upstream,
    a_timeout_while_the_body_is_still_owed_ejects_no_upstream,
    every_spelling_of_a_private_path_or_host_meets_its_rules,
    each_service_has_its_own_middleware_protocol_and_health,
    a_service_sets_and_removes_headers_both_ways,
);

async fn gateway(config: Option<&str>) -> anyhow::Result<Launched> {
    let file = config.map(write_config);
    gateway_with_path(file.as_ref().and_then(|f| f.to_str())).await
}

#[tokio::test]
async fn the_example_routes_by_prefix_and_host_and_strips_the_prefix() {
    let launched = gateway(None).await.unwrap();
    let api: Echo = get(&launched, "localhost", "/api/users?id=7")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (api.path.as_str(), api.query.as_deref()),
        ("/users", Some("id=7"))
    );
    let web: Echo = get(&launched, "localhost", "/apix")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(web.path, "/apix", "a prefix matches whole segments");
    let statics: Vec<String> = futures_served_by(&launched, "static.localhost", "/page", 4).await;
    assert_eq!(
        statics
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1
    );
    assert_ne!(
        statics[0], api.served_by,
        "the static service has its own upstream"
    );
}

async fn futures_served_by(launched: &Launched, host: &str, path: &str, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let echo: Echo = get(launched, host, path).await.json().await.unwrap();
        seen.push(echo.served_by);
    }
    seen
}

async fn a_request_no_service_takes_is_a_404_that_says_so(engine: &str) {
    let upstream = backend().await;
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[[services]]\nname = \"only\"\nhost = \"api.test\"\nupstreams = [\"{}\"]\n",
        upstream.url()
    );
    let launched = gateway_on(engine, &config).await;
    assert_eq!(get(&launched, "api.test", "/x").await.status(), 200);
    let refused = get(&launched, "www.test", "/x").await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        refused.text().await.unwrap(),
        "no service takes host www.test and path /x\n"
    );
}

async fn each_service_has_its_own_rate_limit(engine: &str) {
    let upstream = backend().await;
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\
         [[services]]\nname = \"limited\"\npath_prefix = \"/limited\"\nupstreams = [\"{0}\"]\n\
         rate_limit = {{ rps = 1, burst = 2 }}\n\
         [[services]]\nname = \"free\"\nupstreams = [\"{0}\"]\n",
        upstream.url()
    );
    let launched = gateway_on(engine, &config).await;
    let mut limited = Vec::new();
    let mut free = Vec::new();
    for _ in 0..5 {
        limited.push(get(&launched, "x", "/limited").await.status().as_u16());
        free.push(get(&launched, "x", "/free").await.status().as_u16());
    }
    assert_eq!(limited, [200, 200, 429, 429, 429]);
    assert_eq!(free, [200; 5]);
}

/// Loading a file holding `text` fails with an error that starts with the
/// file's path and then `expected` (`:LINE:COLUMN: message`).
fn assert_refused_at(text: &str, expected: &str) {
    let path = write_config(text);
    let error = step11_gateway::config::load(&path).unwrap_err().to_string();
    let expected = format!("{}{expected}", path.display());
    assert!(
        error.starts_with(&expected),
        "{error}\n  expected {expected}"
    );
}

#[tokio::test]
async fn config_mistakes_name_the_file_line_and_column() {
    for (text, expected) in [
        (
            "listen = \"127.0.0.1:0\"\nlisen = 1\n",
            ":2:1: unknown field `lisen`",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"ftp://x\"]\n",
            ":3:14: \"ftp://x\": an upstream must be a",
        ),
        (
            "[[services]]\nname = \"a\"\nbalance = \"fastest\"\nupstreams = [\"http://127.0.0.1:1\"]\n",
            ":3:11: unknown balance \"fastest\"; expected one of random, round-robin",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\n[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\n",
            ":5:8: service names must be unique",
        ),
        (
            "[[services]]\nname = \"a\"\npath_prefix = \"api\"\nupstreams = [\"http://127.0.0.1:1\"]\n",
            ":3:15: path_prefix must start with /",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\nrate_limit = { rps = 0 }\n",
            ":4:14: rate_limit rps must be at least 1",
        ),
        ("listen = \"127.0.0.1:0\"\n", ":1:1: no [[services]]"),
        (
            "[redis]\nurl = \"redis://127.0.0.1:6379\"\nfail = \"maybe\"\n",
            ":3:8: redis fail: \"maybe\": expected \"open\" or \"closed\"",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\nhealth = { interval = \"soon\" }\n",
            ":4:10: health: \"soon\": expected a whole number and a unit",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\nbreaker = { error_rate = 150 }\n",
            ":4:11: breaker error_rate is a percentage from 1 to 100, not 150",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\nauth = { allow = [\"everyone\"] }\n",
            ":4:8: auth allow: expected a network like 10.0.0.0/8, not \"everyone\"",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\nrewrite = [\"^/(=/x\"]\n",
            ":4:12: rewrite: ",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\nhealth = { every = \"1s\" }\n",
            ":4:12: unknown field `every`, expected one of `path`, `interval`",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\ncache = { size = \"lots\" }\n",
            ":4:18: cache size: \"lots\": expected a size such as 65536",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\ncache = { size = \"1MiB\", max_entry_size = \"2MiB\" }\n",
            ":4:43: cache max_entry_size: one response may take 2097152 bytes, more than the whole cache (1048576)",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\ncache = { size = \"1MiB\", rewrite_body = [\"nothing\"] }\n",
            ":4:42: cache rewrite_body: \"nothing\": expected REGEX=REPLACEMENT",
        ),
        (
            "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\ncache = { bytes = \"1MiB\" }\n",
            ":4:11: unknown field `bytes`, expected one of `size`",
        ),
    ] {
        assert_refused_at(text, expected);
    }
}

#[tokio::test]
async fn a_missing_config_file_is_a_clear_error() {
    let error = gateway_with_path(Some("/nonexistent/gateway.toml"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("/nonexistent/gateway.toml") && error.contains("cannot read it"),
        "{error}"
    );
}

#[test]
fn the_example_config_is_valid() {
    let config = step11_gateway::config::parse(step11_gateway::EXAMPLE, "gateway.toml").unwrap();
    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["orders", "api", "static", "h2", "web"]);
    let apps: Vec<&str> = config.apps.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(apps, ["app-a", "app-b"]);
    assert_eq!(config.tcp_services[0].name, "raw");
}

fn routed_to(upstream: &ServerHandle, admin: bool) -> String {
    let admin = if admin {
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"\n"
    } else {
        ""
    };
    format!(
        "listen = \"127.0.0.1:0\"\n{admin}[[services]]\nname = \"web\"\nupstreams = [\"{}\"]\n",
        upstream.url()
    )
}

async fn a_valid_reload_swaps_the_routes_and_an_invalid_one_changes_nothing(engine: &str) {
    let (first, second) = (backend().await, backend().await);
    let path = write_config(&on_engine(engine, &routed_to(&first, true)));
    let launched = gateway_with_path(Some(&path.display().to_string()))
        .await
        .unwrap();
    let admin = launched.get("admin").unwrap().url();
    let served_by = async || -> String {
        get(&launched, "x", "/")
            .await
            .json::<Echo>()
            .await
            .unwrap()
            .served_by
    };
    assert_eq!(served_by().await, first.addr().to_string());
    let reload = |token: &'static str| {
        client()
            .post(format!("{admin}/reload"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    std::fs::write(&path, on_engine(engine, &routed_to(&second, true))).unwrap();
    assert_eq!(
        reload("wrong").await.unwrap().status(),
        401,
        "the token is required"
    );
    assert_eq!(served_by().await, first.addr().to_string());
    let reloaded = reload("s3cret").await.unwrap();
    assert_eq!(reloaded.status(), 200);
    assert_eq!(reloaded.text().await.unwrap(), "reloaded: 1 service\n");
    assert_eq!(served_by().await, second.addr().to_string());
    // A broken file: the old routes keep serving, and the answer says where.
    std::fs::write(&path, "[[services]]\nname = 1\n").unwrap();
    let refused = reload("s3cret").await.unwrap();
    assert_eq!(refused.status(), 400);
    let why = refused.text().await.unwrap();
    assert!(
        why.starts_with("not reloaded, the old config keeps serving: ") && why.contains(":2:8: "),
        "{why}"
    );
    assert_eq!(served_by().await, second.addr().to_string());
}

async fn the_admin_api_lists_services_and_their_upstreams(engine: &str) {
    let upstream = backend().await;
    let launched = gateway_on(engine, &routed_to(&upstream, true)).await;
    let admin = launched.get("admin").unwrap().url();
    let anonymous = client()
        .get(format!("{admin}/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let services: serde_json::Value = client()
        .get(format!("{admin}/services"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let service = &services["services"][0];
    assert_eq!(service["name"], "web");
    assert_eq!(service["balance"], "round-robin");
    assert_eq!(
        service["upstreams"][0]["url"],
        format!("{}/", upstream.url())
    );
    assert_eq!(service["upstreams"][0]["healthy"], true);
}

#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    use std::process::Command;
    use std::time::{Duration, Instant};

    let (first, second) = (backend().await, backend().await);
    let path = write_config(&routed_to(&first, false));
    let mut command = Command::new(env!("CARGO_BIN_EXE_step11-gateway"));
    command.args(["--config", &path.display().to_string()]);
    let (mut child, url) = real_server::start_binary(command, "gateway").unwrap();
    let served_by = async || -> String {
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .json::<Echo>()
            .await
            .unwrap()
            .served_by
    };
    assert_eq!(served_by().await, first.addr().to_string());
    std::fs::write(&path, routed_to(&second, false)).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_by().await != second.addr().to_string() {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn a_drained_upstream_gets_no_new_requests_until_undrained(engine: &str) {
    let (first, second) = (backend().await, backend().await);
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"\n\
         [[services]]\nname = \"web\"\nupstreams = [\"{}\", \"{}\"]\n",
        first.url(),
        second.url()
    );
    let launched = gateway_on(engine, &config).await;
    let admin = launched.get("admin").unwrap().url();
    let act = |action: &'static str, upstream: String| {
        client()
            .post(format!("{admin}/services/web/{action}"))
            .query(&[("upstream", upstream)])
            .bearer_auth("s3cret")
            .send()
    };
    let drained = act("drain", first.url()).await.unwrap();
    assert_eq!(drained.status(), 200);
    let served: std::collections::HashSet<String> = futures_served_by(&launched, "x", "/", 6)
        .await
        .into_iter()
        .collect();
    assert_eq!(served, [second.addr().to_string()].into());
    assert_eq!(act("undrain", first.url()).await.unwrap().status(), 200);
    let served: std::collections::HashSet<String> = futures_served_by(&launched, "x", "/", 6)
        .await
        .into_iter()
        .collect();
    assert_eq!(served.len(), 2, "both serve again");
    let unknown = act("drain", "http://127.0.0.1:1".to_owned()).await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.text().await.unwrap(),
        "service \"web\" has no upstream http://127.0.0.1:1\n"
    );
}

/// A self-signed certificate for localhost, as cert.pem and key.pem in a
/// fresh directory.
/// On the fast engine, the h2c and https services and the HTTP/2 clients
/// are served by hyper behind it; HTTP/1.1 over TLS by the engine.
async fn each_service_has_its_own_middleware_protocol_and_health(engine: &str) {
    let (cert, key) = localhost_certificate();
    let live = backend().await;
    // An https upstream: a real server behind the same certificate.
    let tls_upstream = real_server::serve(
        serving::Server::new(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            "tls upstream",
        )
        .tls(
            step07_https::certificates::server_config(
                step07_https::certificates::from_files(&cert, &key).unwrap(),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    let config = format!(
        r#"engine = "{engine}"
listen = "127.0.0.1:0"
upstream_ca = "{cert}"
[tls]
listen = "127.0.0.1:0"
cert = "{cert}"
key = "{key}"
[admin]
listen = "127.0.0.1:0"
token = "s3cret"

[[services]]
name = "private"
path_prefix = "/private"
auth = {{ basic = ["alice:secret"] }}
rewrite = ["^/private/old/(.*)=/private/new/$1"]
upstreams = ["{live}"]

[[services]]
name = "h2"
path_prefix = "/h2"
upstreams = ["h2c://{live_addr}"]

[[services]]
name = "tls"
path_prefix = "/tls"
upstreams = ["https://localhost:{tls_port}"]

[[services]]
name = "failing"
path_prefix = "/failing"
retries = 0
upstreams = ["http://127.0.0.1:1"]
breaker = {{ error_rate = 50, min_requests = 2, open = "60s" }}

[[services]]
name = "checked"
path_prefix = "/checked"
upstreams = ["{live}", "http://127.0.0.1:1"]
health = {{ path = "/health", interval = "100ms" }}
"#,
        cert = cert.display(),
        key = key.display(),
        live = live.url(),
        live_addr = live.addr(),
        tls_port = tls_upstream.addr().port(),
    );
    let launched = gateway(Some(&config)).await.unwrap();

    // Auth, then the rewrite, for this service only.
    assert_eq!(get(&launched, "x", "/private/old/a").await.status(), 401);
    let url = format!("{}/private/old/a", launched.get("gateway").unwrap().url());
    let echo: Echo = client()
        .get(url)
        .basic_auth("alice", Some("secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.path, "/private/new/a");
    // HTTP/2 without TLS to one upstream, https to another.
    let h2: Echo = get(&launched, "x", "/h2").await.json().await.unwrap();
    assert_eq!(h2.version, "HTTP/2.0");
    let tls = get(&launched, "x", "/tls").await;
    assert_eq!(tls.status(), 200, "{:?}", tls.text().await);

    // HTTP/2 clients without TLS (prior knowledge).
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let gateway_url = launched.get("gateway").unwrap().url();
    for path in ["/checked", "/h2"] {
        let answer = h2c
            .get(format!("{gateway_url}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.version(), reqwest::Version::HTTP_2, "{path}");
    }

    // The same routes over the https listener, in HTTP/2 (ALPN) and in
    // HTTP/1.1, telling the upstream how the client came.
    let https = |builder: reqwest::ClientBuilder| {
        builder
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
            )
            .resolve("localhost", launched.get("gateway https").unwrap().addr())
            .no_proxy()
            .build()
            .unwrap()
    };
    let port = launched.get("gateway https").unwrap().addr().port();
    for (client, version) in [
        (https(reqwest::Client::builder()), reqwest::Version::HTTP_2),
        (
            https(reqwest::Client::builder().http1_only()),
            reqwest::Version::HTTP_11,
        ),
    ] {
        for path in ["/checked", "/h2"] {
            let answer = client
                .get(format!("https://localhost:{port}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.version(), version, "{path}");
            let over_tls: Echo = answer.json().await.unwrap();
            let forwarded_proto = over_tls
                .headers
                .iter()
                .find(|(name, _)| name == "x-forwarded-proto")
                .map(|(_, value)| value.as_str());
            assert_eq!(forwarded_proto, Some("https"), "{path} in {version:?}");
        }
    }

    // The failing service's breaker opens, and /services says so; its
    // active checks eject the dead upstream of "checked".
    let admin = launched.get("admin").unwrap().url();
    let services = async || -> serde_json::Value {
        client()
            .get(format!("{admin}/services"))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = get(&launched, "x", "/failing").await.status();
        let listed = services().await;
        let breaker = &listed["services"][3]["breaker"];
        let dead = &listed["services"][4]["upstreams"][1]["healthy"];
        if status == 503 && breaker == "open" && dead == false {
            assert_eq!(listed["services"][0]["breaker"], serde_json::Value::Null);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status {status}, breaker {breaker}, dead upstream healthy: {dead}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn global_middleware_runs_before_routing(engine: &str) {
    let upstream = backend().await;
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[global]\nrate_limit = {{ rps = 1, burst = 2, key = \"global\" }}\n\
         [[services]]\nname = \"a\"\npath_prefix = \"/a\"\nupstreams = [\"{0}\"]\n\
         [[services]]\nname = \"b\"\npath_prefix = \"/b\"\nupstreams = [\"{0}\"]\n",
        upstream.url()
    );
    let launched = gateway_on(engine, &config).await;
    assert_eq!(get(&launched, "x", "/a").await.status(), 200);
    assert_eq!(get(&launched, "x", "/b").await.status(), 200);
    // The third request, whichever service and even none, is over the one
    // limit every request shares.
    assert_eq!(get(&launched, "x", "/a").await.status(), 429);
    assert_eq!(get(&launched, "x", "/nowhere").await.status(), 429);
}

/// A service's table says how it forwards, whom it admits and how often it
/// retries, with the keys step 03, 04 and 05's flags have: here a timeout
/// of its own, RS256 tokens from one issuer for one audience, and retries
/// that `/metrics` counts.
async fn a_service_table_sets_its_timeout_auth_and_retries(engine: &str) {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let upstream = backend().await;
    let public = proxy_test_cases::jwt_keys::public_key_file();
    let config = format!(
        r#"listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "s3cret"

[[services]]
name = "slow"
path_prefix = "/delay"
timeout = "300ms"
upstreams = ["{live}"]

[[services]]
name = "guarded"
path_prefix = "/guarded"
auth = {{ jwt_public_key = "{public}", jwt_issuer = "workbench", jwt_audience = "orders" }}
upstreams = ["{live}"]

[[services]]
name = "retried"
path_prefix = "/retried"
upstreams = ["http://127.0.0.1:1", "{live}"]
"#,
        live = upstream.url(),
        public = public.display(),
    );
    let launched = gateway_on(engine, &config).await;

    // The service's own timeout: 504 for a slow answer, a quick one passes.
    assert_eq!(get(&launched, "x", "/delay/2000").await.status(), 504);
    assert_eq!(get(&launched, "x", "/delay/10").await.status(), 200);

    // A token from the right issuer for the right audience passes; one for
    // another audience does not.
    let token = |audience: &str| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        encode(
            &Header::new(Algorithm::RS256),
            &serde_json::json!({"iss": "workbench", "aud": audience, "exp": exp}),
            &EncodingKey::from_rsa_pem(proxy_test_cases::jwt_keys::PRIVATE_PEM.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let url = format!("{}/guarded", launched.get("gateway").unwrap().url());
    let status = |token: String| {
        let url = url.clone();
        async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(token("orders")).await, 200);
    assert_eq!(status(token("billing")).await, 401);

    // Round-robin sends the first request to the dead upstream, and the
    // retry to the live one: served, and counted.
    for _ in 0..2 {
        assert_eq!(get(&launched, "x", "/retried").await.status(), 200);
    }
    let metrics = admin_metrics(&launched).await;
    let retried = metrics
        .lines()
        .find(|l| l.starts_with("proxy_retries_total "))
        .unwrap_or_else(|| panic!("no retry counter in\n{metrics}"));
    assert_eq!(retried, "proxy_retries_total 1");
}

#[tokio::test]
async fn config_mistakes_in_the_new_keys_are_refused_where_they_are() {
    let upstream = "upstreams = [\"http://127.0.0.1:1\"]";
    for (entry, expected) in [
        (
            "timeout = \"0s\"",
            ":4:11: timeout: \"0s\": must be more than zero",
        ),
        (
            "timeout = \"3333333333333333333s\"",
            ":4:11: timeout: \"3333333333333333333s\": longer than",
        ),
        (
            "flush_interval = \"fast\"",
            ":4:18: flush_interval: \"fast\":",
        ),
        (
            "client_body_timeout = \"0s\"",
            ":4:23: client_body_timeout: \"0s\": must be more than zero",
        ),
        (
            "health = { max_fails = 0 }",
            ":4:10: health max_fails must be at least 1, not 0",
        ),
        (
            "breaker = { max_concurrent = 0 }",
            ":4:11: breaker max_concurrent must be at least 1, not 0",
        ),
        (
            "auth = { jwt_public_key = \"/nonexistent.pem\" }",
            ":4:8: auth jwt_public_key: cannot read /nonexistent.pem",
        ),
        (
            "auth = { jwt_issuer = \"me\" }",
            ":4:8: auth jwt_issuer and jwt_audience need jwt_secret or jwt_public_key",
        ),
        (
            "upstreams = [\"http://a:1,weight=0\"]",
            ":4:14: \"weight=0\": expected weight=N with N from 1 to",
        ),
        (
            "request_headers = { set = { \"Content-Length\" = \"5\" } }",
            ":4:29: content-length cannot be set or removed here: the proxy frames and addresses the message",
        ),
        (
            "response_headers = { remove = [\"X-Request-Id\"] }",
            ":4:32: x-request-id cannot be set or removed here: the proxy writes it itself",
        ),
        (
            "request_headers = { set = { \"bad name\" = \"x\" } }",
            ":4:29: \"bad name\" is not a header name",
        ),
        (
            "request_headers = { set = { \"X-Env\" = \"a\\nb\" } }",
            ":4:39: \"a\\nb\" is not a header value",
        ),
    ] {
        let text = if entry.starts_with("upstreams") {
            format!("[[services]]\nname = \"a\"\n\n{entry}\n")
        } else {
            format!("[[services]]\nname = \"a\"\n{upstream}\n{entry}\n")
        };
        assert_refused_at(&text, expected);
    }
}

#[tokio::test]
async fn config_mistakes_in_apps_and_tokens_are_refused_where_they_are() {
    let service = "[[services]]\nname = \"a\"\nupstreams = [\"http://127.0.0.1:1\"]\n";
    let tokens = "[tokens]\nsecret = \"s\"\n";
    for (text, expected) in [
        (
            format!("[[apps]]\nid = \"a\"\nsecret = \"x\"\n{service}"),
            ":2:6: [[apps]] need [tokens]",
        ),
        (
            format!("{service}open_auth = true\n"),
            ":4:13: open_auth needs [tokens]",
        ),
        (
            format!("[tokens]\nsecret = \"\"\n{service}"),
            ":2:10: the tokens secret may not be empty",
        ),
        (
            format!("[tokens]\nsecret = \"s\"\nttl = \"0s\"\n{service}"),
            ":3:7: tokens ttl: \"0s\": must be more than zero",
        ),
        (
            format!("{tokens}[[apps]]\nid = \"a:b\"\nsecret = \"x\"\n{service}"),
            ":4:6: an app id is letters, digits",
        ),
        (
            format!("{tokens}[[apps]]\nid = \"a\"\nsecret = \"\"\n{service}"),
            ":5:10: app \"a\": the secret may not be empty",
        ),
        (
            format!("{tokens}[[apps]]\nid = \"a\"\nsecret = \"x\"\nqps = 0\n{service}"),
            ":6:7: qps must be at least 1, not 0",
        ),
        (
            format!("{tokens}[[apps]]\nid = \"a\"\nsecret = \"x\"\nqpd = -1\n{service}"),
            ":6:7:",
        ),
        (
            format!(
                "{tokens}[[apps]]\nid = \"a\"\nsecret = \"x\"\nallow = [\"nowhere\"]\n{service}"
            ),
            ":6:10: allow: expected a network like 10.0.0.0/8, not \"nowhere\"",
        ),
        (
            format!(
                "{tokens}[[apps]]\nid = \"a\"\nsecret = \"x\"\n[[apps]]\nid = \"a\"\nsecret = \"y\"\n{service}"
            ),
            ":7:6: app ids must be unique: \"a\"",
        ),
        (
            format!("{tokens}[[apps]]\nid = \"a\"\nsecret = \"x\"\nqpm = 5\n{service}"),
            ":6:1: unknown field `qpm`",
        ),
    ] {
        assert_refused_at(&text, expected);
    }
}

#[tokio::test]
async fn config_mistakes_in_discovery_are_refused_where_they_are() {
    let zookeeper = "[zookeeper]\nservers = \"127.0.0.1:2181\"\n";
    // A gateway needs one HTTP service: cases about other parts add this one.
    let service = "[[services]]\nname = \"s\"\nupstreams = [\"http://127.0.0.1:1\"]\n";
    let tcp = format!("{service}[[tcp_services]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\n");
    for (text, expected) in [
        (
            "[[services]]\nname = \"a\"\ndiscover = \"/workbench/a\"\n".to_owned(),
            ":3:12: discover needs [zookeeper]",
        ),
        (
            format!("{tcp}discover = \"/workbench/t\"\n"),
            ":7:12: discover needs [zookeeper]",
        ),
        (
            format!("{zookeeper}[[services]]\nname = \"a\"\ndiscover = \"workbench/a\"\n"),
            ":5:12: discover is a ZooKeeper path like /workbench/services/api, not \"workbench/a\"",
        ),
        (
            format!("{zookeeper}[[services]]\nname = \"a\"\ndiscover = \"/workbench//a\"\n"),
            ":5:12: discover is a ZooKeeper path",
        ),
        (
            format!("{zookeeper}{tcp}discover = \"/\"\n"),
            ":9:12: discover is a ZooKeeper path",
        ),
        (
            format!("{zookeeper}[[services]]\nname = \"a\"\n"),
            ":4:8: a service needs at least one upstream, or discover = a ZooKeeper path",
        ),
        (
            format!("{zookeeper}{tcp}"),
            ":7:8: a tcp service needs at least one upstream, or discover = a ZooKeeper path",
        ),
        (
            format!("[zookeeper]\nservers = \"zk1:2181,zk2\"\n{service}"),
            ":2:11: zookeeper servers: expected host:port[,host:port…], not \"zk1:2181,zk2\"",
        ),
        (
            format!("[zookeeper]\nservers = \"\"\n{service}"),
            ":2:11: zookeeper servers: expected host:port",
        ),
        (
            format!("[zookeeper]\nserver = \"zk:2181\"\n{service}"),
            ":2:1: unknown field `server`",
        ),
    ] {
        assert_refused_at(&text, expected);
    }
}

/// A gateway whose one service, `uploads` (with `keys`, each ending in a
/// newline), balances over two upload sinks ([`upload_sinks`]), with its
/// admin API; where it listens; and the sinks' announcements.
///
/// [`upload_sinks`]: proxy_test_cases::wire::upload_sinks
async fn uploads_gateway(
    engine: &str,
    keys: &str,
) -> (
    Launched,
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let (sinks, heads) = proxy_test_cases::wire::upload_sinks(2).await;
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"\n\
         [[services]]\nname = \"uploads\"\n{keys}upstreams = [\"http://{}\", \"http://{}\"]\n",
        sinks[0], sinks[1]
    );
    let launched = gateway_on(engine, &config).await;
    let addr = launched.get("gateway").unwrap().addr();
    (launched, addr, heads)
}

/// Both upstreams of the first service are healthy, says the admin API.
async fn assert_both_upstreams_healthy(launched: &Launched) {
    let services: serde_json::Value = client()
        .get(format!("{}/services", launched.get("admin").unwrap().url()))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upstreams = services["services"][0]["upstreams"].as_array().unwrap();
    assert_eq!(upstreams.len(), 2);
    for upstream in upstreams {
        assert_eq!(upstream["healthy"], true, "{upstream}");
    }
}

/// Abandoned uploads are the clients' failures: twelve of them, spread
/// over two upstreams, used to eject both (three failures in a row each).
async fn abandoned_uploads_eject_no_upstream(engine: &str) {
    let (launched, addr, mut heads) = uploads_gateway(engine, "").await;
    // Round-robin: six for each upstream.
    for _ in 0..12 {
        proxy_test_cases::wire::abandon_upload(addr, "x", &mut heads).await;
    }
    assert_both_upstreams_healthy(&launched).await;
}

/// A client that announces a body and never sends it is cut off after the
/// service's `client_body_timeout` (408), and that is its failure: twelve
/// of them, over two upstreams, eject neither. Before the timeout, each
/// held an upstream connection for as long as it stayed connected.
async fn stalled_bodies_are_cut_off_and_eject_no_upstream(engine: &str) {
    let (launched, addr, mut heads) =
        uploads_gateway(engine, "client_body_timeout = \"1s\"\n").await;
    let mut stalled = Vec::new();
    for _ in 0..12 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        heads.recv().await.expect("the request reached an upstream");
        stalled.push(stream);
    }
    for mut stream in stalled {
        let answer = proxy_test_cases::wire::read_all(&mut stream).await;
        let answer = answer.trim_start_matches("HTTP/1.1 100 Continue\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_both_upstreams_healthy(&launched).await;
    // Counted as what their clients were answered.
    let metrics = admin_metrics(&launched).await;
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("proxy_requests_total{method=\"POST\",status=\"408\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, 12, "{metrics}");
}

/// A service whose `timeout` is shorter than its `client_body_timeout`:
/// a client that announces a body and sends none reaches the timeout
/// first. The upstream was waiting for that body, so the timeout is no
/// failure of the upstream's: 408, and twelve such clients eject neither
/// upstream (they used to get 504, counted against each in turn).
async fn a_timeout_while_the_body_is_still_owed_ejects_no_upstream(engine: &str) {
    let (launched, addr, mut heads) = uploads_gateway(engine, "timeout = \"300ms\"\n").await;
    for _ in 0..12 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
            .await
            .unwrap();
        heads.recv().await.expect("the request reached an upstream");
        let answer = proxy_test_cases::wire::read_all(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_both_upstreams_healthy(&launched).await;
}

/// However a client spells a path or a host, the gateway routes (and
/// forwards) one: every spelling below reached the catch-all service with
/// 200 — and, behind a backend that decodes paths, the private resource —
/// before the gateway routed on the canonical form. Now each meets the
/// private service's allow-list (403), or is refused outright (400).
async fn every_spelling_of_a_private_path_or_host_meets_its_rules(engine: &str) {
    let upstream = backend().await;
    let config = format!(
        r#"listen = "127.0.0.1:0"
[[services]]
name = "private"
path_prefix = "/private"
auth = {{ allow = ["10.0.0.0/8"] }}
upstreams = ["{live}"]

[[services]]
name = "internal"
host = "internal.localhost"
auth = {{ allow = ["10.0.0.0/8"] }}
upstreams = ["{live}"]

[[services]]
name = "public"
upstreams = ["{live}"]
"#,
        live = upstream.url()
    );
    let launched = gateway_on(engine, &config).await;
    let addr = launched.get("gateway").unwrap().addr();
    let status_of = |target: &'static str, host: &'static str| async move {
        let answer = proxy_test_cases::wire::raw(
            addr,
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        answer.split(' ').nth(1).unwrap_or("none").to_owned()
    };
    assert_eq!(
        status_of("/public", "x").await,
        "200",
        "the catch-all serves"
    );
    for path in [
        "/private/x",
        "//private/x",
        "/x/../private/x",
        "/./private/x",
        "/%70rivate/x",
        "/private;x=1/x",
    ] {
        assert_eq!(status_of(path, "x").await, "403", "{path}");
    }
    assert_eq!(
        status_of("/private%2fx", "x").await,
        "400",
        "an encoded slash"
    );
    for host in [
        "internal.localhost",
        "INTERNAL.localhost",
        "internal.localhost.",
        "internal.localhost.:80",
    ] {
        assert_eq!(status_of("/", host).await, "403", "{host}");
    }
}

/// A client guessing the admin token is answered at most 20 times a second
/// (bursts of 40), not the 24,000 guesses a second it used to get.
#[tokio::test]
async fn guessing_the_admin_token_is_throttled() {
    let upstream = backend().await;
    let launched = gateway(Some(&routed_to(&upstream, true))).await.unwrap();
    let admin = launched.get("admin").unwrap().url();
    let mut statuses = Vec::new();
    for guess in 0..100 {
        let status = client()
            .get(format!("{admin}/services"))
            .bearer_auth(format!("guess-{guess}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        statuses.push(status);
    }
    assert_eq!(statuses[0], 401);
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        throttled >= 40,
        "{throttled} of 100 guesses throttled: {statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429));
}

/// The admin throttle is the operator's to set: `rps` and `burst` under
/// `[admin]`, each at least 1.
#[tokio::test]
async fn the_admin_throttle_follows_its_keys() {
    let upstream = backend().await;
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"\n\
         rps = 1\nburst = 2\n[[services]]\nname = \"a\"\nupstreams = [\"{}\"]\n",
        upstream.url()
    );
    let launched = gateway(Some(&config)).await.unwrap();
    let admin = launched.get("admin").unwrap().url();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client()
            .get(format!("{admin}/services"))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_refused_at(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\nrps = 0\n",
        ":4:7: admin rps must be at least 1",
    );
}

/// A service's header transforms, each way, on either engine; the
/// gateway's own `X-Request-Id` still goes both ways.
async fn a_service_sets_and_removes_headers_both_ways(engine: &str) {
    let upstream = backend().await;
    let config = format!(
        r#"listen = "127.0.0.1:0"
[[services]]
name = "web"
upstreams = ["{url}"]
request_headers = {{ set = {{ "X-Env" = "prod" }}, remove = ["X-Debug"] }}
response_headers = {{ set = {{ "X-Gateway" = "yes" }}, remove = ["X-Served-By"] }}
"#,
        url = upstream.url()
    );
    let launched = gateway_on(engine, &config).await;
    let answer = client()
        .get(format!("{}/x", launched.get("gateway").unwrap().url()))
        .header("x-env", "dev")
        .header("x-debug", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-gateway"], "yes");
    assert!(answer.headers().get("x-served-by").is_none());
    assert!(answer.headers().get("x-request-id").is_some());
    let seen: Echo = answer.json().await.unwrap();
    let sent = |name: &str| -> Vec<&str> {
        seen.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(sent("x-env"), ["prod"]);
    assert!(sent("x-debug").is_empty());
    assert_eq!(sent("x-request-id").len(), 1);
}
