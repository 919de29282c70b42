//! Chapter 0: the real servers — what a backend answers when nothing stands
//! between it and the client. Every later chapter is read against this one.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serving::Binder;

use crate::Report;

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(0, "the real servers, with no proxy in between");
    let launched = real_server::launch_defaults(&Binder::ephemeral()).await?;
    let [a, b] = [&launched.servers[0], &launched.servers[1]];
    report.line(format!(
        "Started two real servers: {} and {}.",
        a.addr(),
        b.addr()
    ));
    let client = reqwest::Client::builder().no_proxy().build()?;

    report.blank();
    report.line(format!(
        "GET {}/hello?from=tour  (Accept: text/plain)",
        a.url()
    ));
    let echo = client
        .get(format!("{}/hello?from=tour", a.url()))
        .header("accept", "text/plain")
        .header("user-agent", "tour")
        .send()
        .await?
        .text()
        .await?;
    report.indented(echo);
    report.line("The echo shows what arrived: no X-Forwarded-For, and the remote address is the client itself.");

    report.blank();
    for path in ["/status/418", "/flaky?fail_percent=100", "/delay/50"] {
        let response = client.get(format!("{}{path}", b.url())).send().await?;
        let status = response.status();
        let served_by = response
            .headers()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned();
        let body = response.text().await?;
        report.line(format!(
            "GET {path:<26} → {status}, x-served-by {served_by}, body {:?}",
            body.trim_end()
        ));
    }

    report.blank();
    let started = Instant::now();
    let mut chunks = client
        .get(format!("{}/stream/3?interval_ms=200", a.url()))
        .send()
        .await?
        .bytes_stream();
    let mut arrivals = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.context("stream broke off")?;
        arrivals.push(format!(
            "{:?} at {} ms",
            String::from_utf8_lossy(&chunk).trim_end(),
            round_to_100(started.elapsed())
        ));
    }
    report.line("GET /stream/3?interval_ms=200 — each chunk arrives when it is written:");
    report.indented(arrivals.join("\n"));

    report.blank();
    let health = format!("{}/health", a.url());
    let mut seen = Vec::new();
    for step in ["GET", "POST /health/down", "GET", "POST /health/up", "GET"] {
        if let Some(path) = step.strip_prefix("POST ") {
            client.post(format!("{}{path}", a.url())).send().await?;
        } else {
            seen.push(
                client
                    .get(&health)
                    .send()
                    .await?
                    .status()
                    .as_u16()
                    .to_string(),
            );
        }
    }
    report.line(format!(
        "GET /health → {}; after POST /health/down → {}; after POST /health/up → {}",
        seen[0], seen[1], seen[2]
    ));

    launched.shutdown().await;
    Ok(())
}

/// Timings in the tour are rounded so the output reads the same every run.
fn round_to_100(elapsed: Duration) -> u128 {
    (elapsed.as_millis() + 50) / 100 * 100
}
