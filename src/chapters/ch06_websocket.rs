//! Chapter 6: websockets — the handshake as it crosses the proxy, sticky
//! placement, an idle tunnel timed out, and a shutdown that says goodbye.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serving::{Binder, Launched};
use tokio_tungstenite::tungstenite::Message;

use crate::Report;

async fn proxy(binder: &Binder, flags: &[&str]) -> anyhow::Result<Launched> {
    let argv = ["step06-websocket"]
        .into_iter()
        .chain(flags.iter().copied());
    step06_websocket::launch(step06_websocket::Args::try_parse_from(argv)?, binder).await
}

fn ws_url(launched: &Launched, path: &str) -> String {
    let addr = launched
        .get("websocket proxy")
        .map(|s| s.addr().to_string())
        .unwrap_or_default();
    format!("ws://{addr}{path}")
}

/// Where `n` fresh connections land, as the greeting of each names it.
async fn placements(url: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        if let Some(Ok(Message::Text(hello))) = ws.next().await {
            seen.push(hello.as_str().replace("connected to real server ", ""));
        }
        ws.close(None).await?;
    }
    Ok(seen)
}

async fn talk(url: &str, send: &[&str], quiet: Option<Duration>) -> anyhow::Result<String> {
    let send: Vec<String> = send.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    step06_websocket::handshake::talk(url, &send, quiet, &mut out).await?;
    Ok(String::from_utf8(out)?)
}

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(6, "websockets (step06-websocket)");
    let binder = Binder::ephemeral();
    let sticky = proxy(&binder, &[]).await?;
    report.line("A websocket through step 06, byte by byte (> we send, < we receive):");
    report.indented(talk(&ws_url(&sticky, "/ws?greet=1"), &["hello"], None).await?);

    let seen = placements(&ws_url(&sticky, "/ws?greet=1"), 5).await?;
    report.line("Five connections from 127.0.0.1 with the default --hash-key client-ip land on:");
    report.indented(seen.join(" "));
    let scattered = proxy(&binder, &["--balance", "round-robin"]).await?;
    let seen = placements(&ws_url(&scattered, "/ws?greet=1"), 5).await?;
    report.line("and with --balance round-robin (a reconnect loses its backend):");
    report.indented(seen.join(" "));
    scattered.shutdown().await;
    sticky.shutdown().await;

    report.blank();
    let impatient = proxy(&binder, &["--idle-timeout", "300ms"]).await?;
    report.line("--idle-timeout 300ms, then a client that says nothing:");
    let idle = talk(
        &ws_url(&impatient, "/ws"),
        &["one"],
        Some(Duration::from_secs(3)),
    )
    .await?;
    let tail: Vec<&str> = idle
        .lines()
        .skip_while(|l| !l.starts_with("> text"))
        .collect();
    report.indented(tail.join("\n"));

    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&impatient, "/ws")).await?;
    ws.send(Message::text("still here")).await?;
    ws.next().await;
    let shutdown = tokio::spawn(impatient.shutdown());
    report.line("Shutting the proxy down with a websocket open; the client receives:");
    if let Some(Ok(Message::Close(Some(close)))) = ws.next().await {
        report.indented(format!(
            "close: {} {}",
            u16::from(close.code),
            close.reason.as_str()
        ));
    }
    ws.close(None).await.ok();
    shutdown.await?;
    report.line(
        "The browser demo: cargo run -p step06-websocket, then open http://127.0.0.1:2002/ws-demo",
    );
    Ok(())
}
