//! The soak: step 05 with every middleware on, mixed traffic, and one of
//! three upstreams killed (SIGKILL) and restarted every 30 s. Run by
//! `bench/soak.sh`, which builds the release binaries first:
//!
//! ```sh
//! cargo run --release --example soak -- --seconds 600
//! ```
//!
//! It starts `target/release/real_server` three times and
//! `target/release/step05-middleware` in front of them, as separate
//! processes (a kill must be a real kill), then runs, side by side:
//! keep-alive GETs, 1–8 MiB uploads, slow streamed responses, websocket
//! sessions, and clients that hang up in the middle of a response. Every
//! 10 s it samples the proxy's resident memory and open descriptors. At the
//! end it prints what each kind of traffic saw, and the samples.
//!
//! What must hold: no GET fails (a GET that met a killed upstream is
//! retried on another), memory after the first minute grows by at most 5 %,
//! and the proxy holds as many descriptors at the end as at the start.
//! Uploads and streams that were in flight on an upstream when it died
//! fail visibly — the proxy cannot resend 8 MiB it has already passed on,
//! nor splice a second response onto a half-sent first — and are counted,
//! not hidden.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// One round of one kind of traffic; true if it went as it should.
type Work = Arc<dyn Fn(u64) -> BoxFuture<'static, bool> + Send + Sync>;

fn work<F, Fut>(round: F) -> Work
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Arc::new(move |n| round(n).boxed())
}

/// `soak:secret`, the credentials the proxy asks for.
const AUTHORIZATION: &str = "Basic c29hazpzZWNyZXQ=";

/// Successes and failures of one kind of traffic.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn count(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A child process that is killed when dropped, so that an early error
/// leaves no server behind.
struct Process(Child);

impl Process {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()?;
        self.0.wait().map(drop)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn release_binary(name: &str) -> anyhow::Result<String> {
    let path = format!("{}/target/release/{name}", env!("CARGO_MANIFEST_DIR"));
    if !std::path::Path::new(&path).exists() {
        bail!("{path} is missing: run `cargo build --release --workspace` (bench/soak.sh does)");
    }
    Ok(path)
}

fn start_backend(port: u16) -> anyhow::Result<Process> {
    Ok(Process(
        Command::new(release_binary("real_server")?)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ))
}

/// Wait until something accepts connections on `addr`.
async fn ready(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Resident memory (KiB) and open descriptors of process `pid`.
fn sample(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => 600,
        [flag, n] if flag == "--seconds" => n.parse().context("--seconds N")?,
        _ => bail!("usage: soak [--seconds N]"),
    };
    let ports = [free_port()?, free_port()?, free_port()?];
    let mut backends = Vec::new();
    for port in ports {
        backends.push(start_backend(port)?);
    }
    for port in ports {
        ready(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    }
    let (listen, admin) = (free_port()?, free_port()?);
    let mut proxy_args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{listen}"),
        "--admin".to_owned(),
        format!("127.0.0.1:{admin}"),
        "--rate-limit".to_owned(),
        "100000".to_owned(),
        "--breaker-error-rate".to_owned(),
        "90".to_owned(),
        "--basic-auth".to_owned(),
        "soak:secret".to_owned(),
        "--rewrite".to_owned(),
        "^/soak/(.*)=/$1".to_owned(),
        "--health-path".to_owned(),
        "/health".to_owned(),
        "--health-interval".to_owned(),
        "1s".to_owned(),
        // Idle upstream connections close after 5 s, so that the count of
        // descriptors at the end is not inflated by the pool.
        "--pool-idle-timeout".to_owned(),
        "5".to_owned(),
    ];
    for port in ports {
        proxy_args.extend(["--upstream".to_owned(), format!("http://127.0.0.1:{port}")]);
    }
    let mut proxy = Process(
        Command::new(release_binary("step05-middleware")?)
            .args(&proxy_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    ready(SocketAddr::from(([127, 0, 0, 1], listen))).await?;
    let pid = proxy.0.id();
    let base = format!("http://127.0.0.1:{listen}/soak");
    println!("soak: {seconds} s through step 05 (pid {pid}), upstreams on {ports:?}");
    // The baseline: listening, health checks connected, no client yet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, fds_start) = sample(pid);

    let running = Arc::new(AtomicBool::new(true));
    let tallies: Arc<BTreeMap<&'static str, Tally>> = Arc::new(
        [
            "keep-alive GET",
            "upload 1-8 MiB (PUT)",
            "slow stream",
            "websocket session",
            "hang-up mid-response",
        ]
        .into_iter()
        .map(|name| (name, Tally::default()))
        .collect(),
    );
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut workers = tokio::task::JoinSet::new();
    let spawn_loop = |workers: &mut tokio::task::JoinSet<()>, name: &'static str, work: Work| {
        let (running, tallies) = (running.clone(), tallies.clone());
        workers.spawn(async move {
            let mut round = 0u64;
            while running.load(Ordering::Relaxed) {
                let ok = work(round).await;
                tallies[name].count(ok);
                round += 1;
            }
        });
    };
    for _ in 0..8 {
        let (client, base) = (client.clone(), base.clone());
        spawn_loop(
            &mut workers,
            "keep-alive GET",
            work(move |_| {
                let request = client
                    .get(format!("{base}/hello"))
                    .header("authorization", AUTHORIZATION);
                async move {
                    match request.send().await {
                        Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                        Err(_) => false,
                    }
                }
            }),
        );
    }
    {
        let (client, base) = (client.clone(), base.clone());
        spawn_loop(
            &mut workers,
            "upload 1-8 MiB (PUT)",
            work(move |round| {
                let size = (1 + (round % 8) as usize) << 20;
                let request = client
                    .put(format!("{base}/upload"))
                    .header("authorization", AUTHORIZATION)
                    .body(vec![b'x'; size]);
                async move {
                    match request.send().await {
                        Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                        Err(_) => false,
                    }
                }
            }),
        );
    }
    for _ in 0..2 {
        let (client, base) = (client.clone(), base.clone());
        spawn_loop(
            &mut workers,
            "slow stream",
            work(move |_| {
                let request = client
                    .get(format!("{base}/stream/5?interval_ms=200"))
                    .header("authorization", AUTHORIZATION);
                async move {
                    match request.send().await {
                        Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                        Err(_) => false,
                    }
                }
            }),
        );
    }
    for _ in 0..2 {
        let url = format!("ws://127.0.0.1:{listen}/soak/ws");
        spawn_loop(
            &mut workers,
            "websocket session",
            work(move |_| {
                let url = url.clone();
                async move { websocket_session(&url).await.is_ok() }
            }),
        );
    }
    {
        let (client, base) = (client.clone(), base.clone());
        spawn_loop(
            &mut workers,
            "hang-up mid-response",
            work(move |_| {
                let request = client
                    .get(format!("{base}/bytes/4194304"))
                    .header("authorization", AUTHORIZATION);
                async move {
                    match request.send().await {
                        // Read one chunk, then go away with the rest unread.
                        Ok(mut response) => response.chunk().await.is_ok(),
                        Err(_) => false,
                    }
                }
            }),
        );
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut kills = 0;
    let mut next_kill = Duration::from_secs(30);
    let mut next_sample = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(seconds) {
        let now = started.elapsed();
        if now >= next_sample {
            let (rss, fds) = sample(pid);
            samples.push((now.as_secs(), rss, fds));
            next_sample += Duration::from_secs(10);
        }
        if now >= next_kill {
            let victim = kills % backends.len();
            backends[victim].kill()?;
            kills += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            backends[victim] = start_backend(ports[victim])?;
            next_kill += Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.store(false, Ordering::Relaxed);
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    // Idle connections to the proxy close with the client; idle upstream
    // connections after the pool's idle timeout (5 s here).
    drop(client);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss_end, fds_end) = sample(pid);
    samples.push((started.elapsed().as_secs(), rss_end, fds_end));
    let metrics = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await?
        .text()
        .await?;

    println!("\n{:<24} {:>10} {:>10}", "traffic", "ok", "failed");
    for (name, tally) in tallies.iter() {
        println!(
            "{name:<24} {:>10} {:>10}",
            tally.ok.load(Ordering::Relaxed),
            tally.failed.load(Ordering::Relaxed)
        );
    }
    println!("\nupstream kills: {kills} (one every 30 s, restarted 2 s later)");
    for line in metrics.lines().filter(|l| l.starts_with("proxy_retries")) {
        println!("{line}");
    }
    println!("\n{:>6} {:>10} {:>6}", "second", "RSS KiB", "fds");
    for (second, rss, fds) in &samples {
        println!("{second:>6} {rss:>10} {fds:>6}");
    }
    let at_one_minute = samples
        .iter()
        .find(|(s, _, _)| *s >= 60)
        .map_or(samples[0].1, |(_, rss, _)| *rss);
    let growth = (rss_end as f64 / at_one_minute.max(1) as f64 - 1.0) * 100.0;
    println!(
        "\nRSS after 1 min {at_one_minute} KiB, at the end {rss_end} KiB: {growth:+.1} %; descriptors {fds_start} at the start, {fds_end} at the end"
    );
    if fds_end != fds_start {
        // Say which sockets are left, by state and peer, before the kill.
        let sockets = Command::new("ss")
            .args(["-tanp"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for line in sockets
            .lines()
            .filter(|l| l.contains(&format!("pid={pid},")))
        {
            println!("  {line}");
        }
    }
    let get_failures = tallies["keep-alive GET"].failed.load(Ordering::Relaxed);
    proxy.kill()?;
    drop(backends);
    if drained.is_err() {
        bail!("workers still busy 30 s after the end");
    }
    if get_failures > 0 || growth > 5.0 || fds_end != fds_start {
        bail!(
            "the soak failed: {get_failures} GETs failed, RSS {growth:+.1} %, fds {fds_start} -> {fds_end}"
        );
    }
    println!("held: no GET failed, memory flat, no descriptor leaked");
    Ok(())
}

/// Open a websocket, echo ten messages, close.
async fn websocket_session(url: &str) -> anyhow::Result<()> {
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
    request
        .headers_mut()
        .insert("authorization", AUTHORIZATION.parse()?);
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await??;
    for i in 0..10 {
        socket.send(Message::text(format!("soak {i}"))).await?;
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await? {
            Some(Ok(Message::Text(text))) if text.as_str() == format!("soak {i}") => {}
            other => bail!("unexpected {other:?}"),
        }
    }
    socket.close(None).await?;
    Ok(())
}
