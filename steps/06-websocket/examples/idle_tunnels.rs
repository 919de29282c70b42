//! Memory per idle websocket tunnel, and echo throughput, of a running
//! step06-websocket process (`bench/websocket.sh` builds and runs this).
//!
//! The proxy runs as its own process so that its resident memory (VmRSS)
//! counts only the proxy; the backend (real_server) and the clients live
//! here. Usage: `idle_tunnels PROXY_BINARY [SESSIONS] [MESSAGES]`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

type Session = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(url: &str, n: usize) -> anyhow::Result<Vec<Session>> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        // One round trip: the tunnel is fully set up on both sides.
        ws.send(Message::text("x")).await?;
        ws.next().await.context("closed")??;
        sessions.push(ws);
    }
    Ok(sessions)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .context("usage: idle_tunnels PROXY_BINARY [SESSIONS] [MESSAGES]")?;
    let sessions: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let messages: usize = args.next().map_or(Ok(100), |s| s.parse())?;

    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await?)?;
    let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let mut proxy = tokio::process::Command::new(&binary)
        .args([
            "--listen",
            &listen,
            "--upstream",
            &backend.url(),
            "--threads",
            "1",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {binary}"))?;
    let pid = proxy.id().context("proxy exited")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&listen).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the proxy did not listen within 10 s"
        );
        tokio::task::yield_now().await;
    }
    let url = format!("ws://{listen}/ws");

    // Warm up allocator and runtime, then measure against that baseline.
    drop(open(&url, 100).await?);
    let before = rss_kib(pid)?;
    let open_sessions = open(&url, sessions).await?;
    let after = rss_kib(pid)?;
    let per_tunnel = (after.saturating_sub(before) as f64) * 1024.0 / sessions as f64;
    println!("proxy RSS: {before} KiB before, {after} KiB with {sessions} idle tunnels");
    println!("memory per idle tunnel: {:.1} KiB", per_tunnel / 1024.0);

    let started = Instant::now();
    let tasks: Vec<_> = open_sessions
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                for n in 0..messages {
                    let text = format!("message {n}");
                    if ws.send(Message::text(text)).await.is_err() {
                        return false;
                    }
                    if !matches!(ws.next().await, Some(Ok(_))) {
                        return false;
                    }
                }
                true
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        ok += usize::from(task.await?);
    }
    let elapsed = started.elapsed();
    println!(
        "{ok}/{sessions} sessions echoed {messages} messages each: {:.0} round trips/s ({elapsed:.2?})",
        (ok * messages) as f64 / elapsed.as_secs_f64()
    );
    proxy.kill().await?;
    Ok(())
}
