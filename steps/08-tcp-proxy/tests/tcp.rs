//! Step 08 with real clients and upstreams: redis-cli to a redis-server, a
//! 32 MiB transfer, half-closes both ways, a dead upstream, the PROXY
//! protocol, the idle timeout, silent clients, placement by client
//! address, shutdown.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use serving::{Binder, Launched};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn proxy(upstreams: &[String], extra: &[&str]) -> Launched {
    let mut argv = vec![
        "step08-tcp-proxy".to_owned(),
        "--admin".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    for upstream in upstreams {
        argv.extend(["--upstream".to_owned(), upstream.clone()]);
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    step08_tcp_proxy::launch(
        step08_tcp_proxy::Args::parse_from(argv),
        &Binder::ephemeral(),
    )
    .await
    .unwrap()
}

fn addr(launched: &Launched) -> SocketAddr {
    launched.get("tcp proxy").unwrap().addr()
}

/// An upstream that gives each connection to `handle`.
async fn upstream<F, Fut>(handle: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    address
}

/// Echoes everything back until the client's end of stream.
async fn echo() -> String {
    upstream(|mut stream| async move {
        let (mut reading, mut writing) = stream.split();
        let _ = tokio::io::copy(&mut reading, &mut writing).await;
    })
    .await
}

/// Says its name and closes.
async fn named(name: &'static str) -> String {
    upstream(move |mut stream| async move {
        let _ = stream.write_all(name.as_bytes()).await;
    })
    .await
}

async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the connection ended within 10 s")
        .unwrap();
    bytes
}

async fn metrics(launched: &Launched) -> String {
    let url = format!("{}/metrics", launched.get("admin").unwrap().url());
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

fn redis_cli(port: u16, command: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(command)
        .output()
        .expect("redis-cli (Debian package redis-tools, with redis-server)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "redis-server is not installed (apt-get install redis-server)"
)]
async fn redis_cli_talks_to_redis_server_through_the_proxy() {
    let redis = real_server::redis::RedisServer::start().await;
    let launched = proxy(&[format!("127.0.0.1:{}", redis.port)], &[]).await;
    let port = addr(&launched).port();
    let cli = move |command: &'static [&'static str]| {
        tokio::task::spawn_blocking(move || redis_cli(port, command))
    };
    assert_eq!(
        cli(&["SET", "greeting", "hello through L4"]).await.unwrap(),
        "OK"
    );
    assert_eq!(cli(&["GET", "greeting"]).await.unwrap(), "hello through L4");
    assert_eq!(cli(&["INCR", "visits"]).await.unwrap(), "1");
    assert_eq!(cli(&["INCR", "visits"]).await.unwrap(), "2");
}

#[tokio::test]
async fn a_32_mib_transfer_arrives_intact() {
    let launched = proxy(&[echo().await], &[]).await;
    let stream = TcpStream::connect(addr(&launched)).await.unwrap();
    let (mut reading, mut writing) = stream.into_split();
    let sent: Vec<u8> = (0..32u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let expected = Sha256::digest(&sent);
    let writer = tokio::spawn(async move {
        writing.write_all(&sent).await.unwrap();
        writing.shutdown().await.unwrap();
    });
    let mut received = Vec::with_capacity(32 << 20);
    tokio::time::timeout(Duration::from_secs(60), reading.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(received.len(), 32 << 20);
    assert_eq!(Sha256::digest(&received), expected);
    let metrics = metrics(&launched).await;
    assert!(
        metrics.contains("tcp_proxy_client_bytes_total 33554432"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_half_close_from_the_client_still_gets_its_answer() {
    // Reads until the client's end of stream, then answers and closes.
    let counting = upstream(|mut stream| async move {
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        let answer = format!("got {} bytes", request.len());
        stream.write_all(answer.as_bytes()).await.unwrap();
    })
    .await;
    let launched = proxy(&[counting], &[]).await;
    let mut client = TcpStream::connect(addr(&launched)).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut client).await, b"got 5 bytes");
}

#[tokio::test]
async fn a_half_close_from_the_upstream_still_takes_the_client_bytes() {
    // Says hello and closes its sending side at once, then reads on.
    let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
    let greeting = upstream(move |mut stream| {
        let heard = heard.clone();
        async move {
            stream.write_all(b"banner").await.unwrap();
            stream.shutdown().await.unwrap();
            let mut late = Vec::new();
            stream.read_to_end(&mut late).await.unwrap();
            let _ = heard.send(late);
        }
    })
    .await;
    let launched = proxy(&[greeting], &[]).await;
    let mut client = TcpStream::connect(addr(&launched)).await.unwrap();
    // The upstream's end of stream reaches the client…
    let mut banner = Vec::new();
    client.read_to_end(&mut banner).await.unwrap();
    assert_eq!(banner, b"banner");
    // …and the client can still send.
    client.write_all(b"late words").await.unwrap();
    client.shutdown().await.unwrap();
    let late = tokio::time::timeout(Duration::from_secs(10), hearing.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late, b"late words");
}

#[tokio::test]
async fn a_refused_connect_goes_to_the_next_upstream() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let launched = proxy(&[dead, named("alive").await], &["--max-fails", "100"]).await;
    for _ in 0..6 {
        let mut client = TcpStream::connect(addr(&launched)).await.unwrap();
        assert_eq!(read_to_end(&mut client).await, b"alive");
    }
    let metrics = metrics(&launched).await;
    assert!(
        metrics.contains("tcp_proxy_connect_failures_total 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn consistent_hashing_keeps_a_client_address_on_one_upstream() {
    let upstreams = vec![named("a").await, named("b").await, named("c").await];
    let launched = proxy(&upstreams, &["--balance", "consistent-hash"]).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let mut client = TcpStream::connect(addr(&launched)).await.unwrap();
        seen.insert(read_to_end(&mut client).await);
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let launched = proxy(&upstreams, &[]).await;
    let mut spread = std::collections::HashSet::new();
    for _ in 0..6 {
        let mut client = TcpStream::connect(addr(&launched)).await.unwrap();
        spread.insert(read_to_end(&mut client).await);
    }
    assert_eq!(spread.len(), 3, "round-robin spreads: {spread:?}");
}

#[tokio::test]
async fn the_proxy_protocol_tells_the_upstream_who_the_client_is() {
    // Reads the header line or block and sends it back.
    let reflect = upstream(|mut stream| async move {
        let mut header = vec![0u8; 256];
        let n = stream.read(&mut header).await.unwrap();
        stream.write_all(&header[..n]).await.unwrap();
    })
    .await;
    for (version, check) in [
        ("v1", check_v1 as fn(&[u8], SocketAddr, SocketAddr)),
        ("v2", check_v2),
    ] {
        let launched = proxy(
            std::slice::from_ref(&reflect),
            &["--proxy-protocol", version],
        )
        .await;
        let proxy_addr = addr(&launched);
        let mut client = TcpStream::connect(proxy_addr).await.unwrap();
        let client_addr = client.local_addr().unwrap();
        let header = read_to_end(&mut client).await;
        check(&header, client_addr, proxy_addr);
    }
}

fn check_v1(header: &[u8], client: SocketAddr, proxy: SocketAddr) {
    let expected = format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        client.ip(),
        proxy.ip(),
        client.port(),
        proxy.port()
    );
    assert_eq!(String::from_utf8_lossy(header), expected);
}

fn check_v2(header: &[u8], client: SocketAddr, proxy: SocketAddr) {
    assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&header[12..16], &[0x21, 0x11, 0, 12]);
    assert_eq!(&header[16..20], &[127, 0, 0, 1]);
    assert_eq!(&header[24..26], &client.port().to_be_bytes());
    assert_eq!(&header[26..28], &proxy.port().to_be_bytes());
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let launched = proxy(&[echo().await], &["--idle-timeout", "300ms"]).await;
    // Busy: a message every 100 ms for a second outlives the timeout.
    let mut busy = TcpStream::connect(addr(&launched)).await.unwrap();
    for i in 0..10u8 {
        busy.write_all(&[i]).await.unwrap();
        let mut back = [0u8; 1];
        busy.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [i]);
        // Pacing is the behaviour under test.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    busy.shutdown().await.unwrap();
    assert!(
        read_to_end(&mut busy).await.is_empty(),
        "ended by its client"
    );
    // Idle: closed after the timeout (within 1.25 × 300 ms, with room).
    let mut idle = TcpStream::connect(addr(&launched)).await.unwrap();
    let started = Instant::now();
    assert!(read_to_end(&mut idle).await.is_empty());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    let metrics = metrics(&launched).await;
    assert!(
        metrics.contains("tcp_proxy_idle_closes_total 1"),
        "{metrics}"
    );
}

/// Waits until the proxy has accepted `count` connections in all.
async fn accepted(launched: &Launched, count: usize) {
    let line = format!("tcp_proxy_connections_total {count}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(launched).await.lines().any(|l| l == line) {
        assert!(Instant::now() < deadline, "never saw {line}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The attack: connections that say nothing, up to the cap. They used to
/// lock every other client out until the idle timeout (5 minutes); now the
/// oldest silent one gives its place to the next client, and a client
/// that has spoken keeps its own.
#[tokio::test]
async fn silent_clients_at_the_cap_cannot_lock_others_out() {
    let launched = proxy(
        &[echo().await],
        &["--max-connections", "4", "--max-connections-per-ip", "4"],
    )
    .await;
    let mut talking = TcpStream::connect(addr(&launched)).await.unwrap();
    talking.write_all(b"hi").await.unwrap();
    let mut back = [0u8; 2];
    talking.read_exact(&mut back).await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(addr(&launched)).await.unwrap());
    }
    accepted(&launched, 4).await;
    // Every place is taken; a newcomer is served all the same.
    let mut newcomer = TcpStream::connect(addr(&launched)).await.unwrap();
    newcomer.write_all(b"hello").await.unwrap();
    newcomer.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut newcomer).await, b"hello");
    // The one that had spoken still works.
    talking.write_all(b"yo").await.unwrap();
    talking.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"yo");
    // The oldest silent connection was the one closed.
    assert!(read_to_end(&mut silent[0]).await.is_empty());
    let metrics = metrics(&launched).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tcp_proxy_silent_closes_total ")
                && l != "tcp_proxy_silent_closes_total 0"),
        "{metrics}"
    );
}

/// The dodge: connections that each say one byte, then nothing, are not
/// silent. When nobody is, the address holding the most places gives one up.
#[tokio::test]
async fn clients_that_say_one_byte_at_the_cap_cannot_lock_others_out() {
    let launched = proxy(
        &[echo().await],
        &["--max-connections", "4", "--max-connections-per-ip", "4"],
    )
    .await;
    let mut crowd = Vec::new();
    for _ in 0..4 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(addr(&launched)).await.unwrap();
        stream.write_all(b"x").await.unwrap();
        let mut back = [0u8; 1];
        stream.read_exact(&mut back).await.unwrap();
        crowd.push(stream);
    }
    let mut newcomer = TcpStream::connect(addr(&launched)).await.unwrap();
    newcomer.write_all(b"hello").await.unwrap();
    newcomer.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut newcomer).await, b"hello");
    let metrics = metrics(&launched).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tcp_proxy_crowd_closes_total ")
                && l != "tcp_proxy_crowd_closes_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_client_silent_past_the_first_byte_timeout_is_closed() {
    let launched = proxy(&[echo().await], &["--first-byte-timeout", "300ms"]).await;
    let mut silent = TcpStream::connect(addr(&launched)).await.unwrap();
    let started = Instant::now();
    assert!(read_to_end(&mut silent).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(300));
    // One that spoke in time stays past the timeout (no pacing to it: it
    // is asked for its echo after the timeout has long passed).
    let mut talking = TcpStream::connect(addr(&launched)).await.unwrap();
    talking.write_all(b"a").await.unwrap();
    let mut back = [0u8; 1];
    talking.read_exact(&mut back).await.unwrap();
    let mut another = TcpStream::connect(addr(&launched)).await.unwrap();
    assert!(read_to_end(&mut another).await.is_empty());
    talking.write_all(b"b").await.unwrap();
    talking.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"b");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_open_connections_finish() {
    let launched = proxy(&[echo().await], &[]).await;
    let proxy_addr = addr(&launched);
    let mut open = TcpStream::connect(proxy_addr).await.unwrap();
    open.write_all(b"before").await.unwrap();
    let mut back = [0u8; 6];
    open.read_exact(&mut back).await.unwrap();
    let stopping = tokio::spawn(launched.shutdown());
    // The listener closes at once…
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(proxy_addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …while the open connection keeps working until its client ends it.
    open.write_all(b"after").await.unwrap();
    let mut back = [0u8; 5];
    open.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"after");
    open.shutdown().await.unwrap();
    assert!(read_to_end(&mut open).await.is_empty());
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown returns once the last connection ended")
        .unwrap();
}

#[test]
fn bad_upstreams_and_versions_are_clear_cli_errors() {
    for (flags, says) in [
        (vec!["--upstream", "localhost"], "expected HOST:PORT"),
        (vec!["--upstream", "127.0.0.1:0"], "expected HOST:PORT"),
        (
            vec!["--upstream", "127.0.0.1:6379,weight=0"],
            "weight=N with N from 1 to",
        ),
        (
            vec!["--upstream", "http://127.0.0.1:80"],
            "expected HOST:PORT",
        ),
        (vec!["--proxy-protocol", "v3"], "expected v1 or v2"),
    ] {
        let error = step08_tcp_proxy::Args::try_parse_from(
            std::iter::once("step08-tcp-proxy").chain(flags.iter().copied()),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains(says), "{flags:?}: {error}");
    }
}

#[tokio::test]
async fn without_upstreams_it_relays_to_in_process_real_servers() {
    let launched = step08_tcp_proxy::launch(
        step08_tcp_proxy::Args::parse_from(["step08-tcp-proxy"]),
        &Binder::ephemeral(),
    )
    .await
    .unwrap();
    let url = format!("http://{}/hello", addr(&launched));
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-served-by"));
}
