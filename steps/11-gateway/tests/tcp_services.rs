//! `[[tcp_services]]` through the real binary: step 08's proxy on
//! listeners of their own, reloaded with the file, with redis-cli and
//! redis-server at the ends, and upstreams discovered in ZooKeeper.

mod support;

use std::process::Command;

use real_server::redis::RedisServer;
use support::running::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An HTTP service the file needs beside its TCP services.
const HTTP: &str = "[[services]]\nname = \"web\"\nupstreams = [\"http://127.0.0.1:1\"]\n";

/// A TCP server that answers each read with `name:` and what it read.
async fn named_echo(name: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0; 1024];
                while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                    let mut answer = format!("{name}:").into_bytes();
                    answer.extend_from_slice(&buffer[..n]);
                    if stream.write_all(&answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// `[[tcp_services]]` entries: (name, upstream, more keys).
fn tcp_services(entries: &[(&str, &str, &str)]) -> String {
    let mut text = HTTP.to_owned();
    for (name, upstream, more) in entries {
        text.push_str(&format!(
            "[[tcp_services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\n{more}\n"
        ));
    }
    text
}

/// Where each TCP service listens, from `/services`.
async fn listening(gateway: &Gateway) -> Vec<(String, String)> {
    let services = gateway.admin_json("/services").await;
    services["tcp_services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap().to_owned();
            (name, s["listen"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn address_of(listening: &[(String, String)], name: &str) -> String {
    listening
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, address)| address.clone())
        .unwrap_or_else(|| panic!("no tcp service {name} in {listening:?}"))
}

/// Send `text` on `stream` and read the answer.
async fn say(stream: &mut TcpStream, text: &str) -> String {
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut buffer = [0; 1024];
    let n = stream.read(&mut buffer).await.unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[tokio::test]
async fn a_reload_adds_changes_and_removes_tcp_services_and_open_connections_go_on() {
    let (a, b) = (named_echo("a").await, named_echo("b").await);
    let gateway = Gateway::start_on(
        "fast",
        &tcp_services(&[("echo", &a, ""), ("gone", &a, "")]),
        &[],
    );
    let before = listening(&gateway).await;
    let echo = address_of(&before, "echo");
    let gone = address_of(&before, "gone");
    let mut open = TcpStream::connect(&echo).await.unwrap();
    assert_eq!(say(&mut open, "one").await, "a:one");

    // echo now goes to b; gone goes away; new comes.
    gateway.rewrite(&tcp_services(&[("echo", &b, ""), ("new", &b, "")]));
    let reloaded = gateway.post("/reload").await;
    assert_eq!(reloaded.status(), 200, "{}", reloaded.text().await.unwrap());
    let after = listening(&gateway).await;
    // echo kept its listener; the connection opened before goes on to a.
    assert_eq!(address_of(&after, "echo"), echo);
    assert_eq!(say(&mut open, "two").await, "a:two");
    let mut fresh = TcpStream::connect(&echo).await.unwrap();
    assert_eq!(say(&mut fresh, "three").await, "b:three");
    let mut new = TcpStream::connect(address_of(&after, "new")).await.unwrap();
    assert_eq!(say(&mut new, "four").await, "b:four");
    assert!(after.iter().all(|(name, _)| name != "gone"));
    // gone's listener is closed.
    assert!(TcpStream::connect(&gone).await.is_err());
}

#[tokio::test]
async fn a_client_outside_allow_or_inside_deny_is_closed_at_once() {
    let a = named_echo("a").await;
    let gateway = Gateway::start_on(
        "fast",
        &tcp_services(&[
            ("allowed", &a, "allow = [\"127.0.0.0/8\"]"),
            ("not-allowed", &a, "allow = [\"10.0.0.0/8\"]"),
            ("denied", &a, "deny = [\"127.0.0.1/32\"]"),
        ]),
        &[],
    );
    let at = listening(&gateway).await;
    let mut allowed = TcpStream::connect(address_of(&at, "allowed"))
        .await
        .unwrap();
    assert_eq!(say(&mut allowed, "hi").await, "a:hi");
    for name in ["not-allowed", "denied"] {
        let mut refused = TcpStream::connect(address_of(&at, name)).await.unwrap();
        let _ = refused.write_all(b"hi").await;
        let mut buffer = [0; 16];
        // Closed without a byte from the upstream.
        assert!(
            matches!(refused.read(&mut buffer).await, Ok(0) | Err(_)),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_bad_tcp_service_is_refused_at_its_line_at_start_and_on_reload() {
    let bad = tcp_services(&[("echo", "no-port", "")]);
    let refused = step11_gateway::config::parse(&bad, "gateway.toml").unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("gateway.toml:7:14: \"no-port\": expected HOST:PORT"),
        "{refused}"
    );
    let a = named_echo("a").await;
    let gateway = Gateway::start_on("fast", &tcp_services(&[("echo", &a, "")]), &[]);
    gateway.rewrite(&bad);
    let answer = gateway.post("/reload").await;
    assert_eq!(answer.status(), 400);
    let text = answer.text().await.unwrap();
    // The binary's file has five lines more: the engine, listen and [admin].
    assert!(text.contains(":12:14: \"no-port\""), "{text}");
    // The old one keeps serving.
    let at = listening(&gateway).await;
    let mut stream = TcpStream::connect(address_of(&at, "echo")).await.unwrap();
    assert_eq!(say(&mut stream, "still").await, "a:still");
}

#[tokio::test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "redis-server is not installed (apt-get install redis-server)"
)]
async fn redis_cli_talks_to_redis_server_through_a_tcp_service() {
    let redis = RedisServer::start().await;
    let upstream = format!("127.0.0.1:{}", redis.port);
    let gateway = Gateway::start_on("fast", &tcp_services(&[("redis", &upstream, "")]), &[]);
    let at = address_of(&listening(&gateway).await, "redis");
    let (host, port) = at.rsplit_once(':').unwrap();
    let cli = |args: &[&str]| {
        let output = Command::new("redis-cli")
            .args(["-h", host, "-p", port])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(cli(&["SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello");
}

/// A fresh connection to `at`: what it answers to `text` (empty if it was
/// closed first).
async fn answer_of_a_new_connection(at: &str, text: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(at).await else {
        return String::new();
    };
    if stream.write_all(text.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut buffer = [0; 1024];
    let n = stream.read(&mut buffer).await.unwrap_or(0);
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// Open connections to `at` until one answers `wanted` to `text`.
async fn until_answered(at: &str, text: &str, wanted: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer = answer_of_a_new_connection(at, text).await;
        if answer == wanted {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {wanted:?}: {answer:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(has_zookeeper),
    ignore = "ZooKeeper is not installed (apt-get install zookeeper)"
)]
async fn a_tcp_service_follows_the_upstreams_registered_under_its_path() {
    use discovery::registration::register;
    const PATH: &str = "/workbench/tcp/echo";
    let zookeeper = test_programs::zookeeper::ZooKeeper::start();
    let (a, b) = (named_echo("a").await, named_echo("b").await);
    let text = format!(
        "[zookeeper]\nservers = \"{}\"\n{HTTP}\
         [[tcp_services]]\nname = \"echo\"\nlisten = \"127.0.0.1:0\"\ndiscover = \"{PATH}\"\n",
        zookeeper.servers()
    );
    let gateway = Gateway::start_on("fast", &text, &[]);
    let at = address_of(&listening(&gateway).await, "echo");
    let registered_a = register(zookeeper.servers(), PATH.into(), a.clone());
    until_answered(&at, "hi", "a:hi").await;
    let services = gateway.admin_json("/services").await;
    assert_eq!(
        services["tcp_services"][0]["upstreams"][0]["source"],
        format!("zookeeper:{PATH}")
    );
    let _registered_b = register(zookeeper.servers(), PATH.into(), b.clone());
    registered_a.leave().await;
    until_answered(&at, "hi", "b:hi").await;
    for _ in 0..5 {
        assert_eq!(answer_of_a_new_connection(&at, "hi").await, "b:hi");
    }
}
