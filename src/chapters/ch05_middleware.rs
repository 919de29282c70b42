//! Chapter 5: middleware — a burst limited, a breaker opening and closing,
//! and the metrics page.

use std::time::Duration;

use clap::Parser;
use serving::{Binder, Launched};

use crate::Report;

async fn middleware_proxy(
    binder: &Binder,
    upstream: &str,
    flags: &[&str],
) -> anyhow::Result<Launched> {
    let argv = [
        "step05-middleware",
        "--upstream",
        upstream,
        "--admin",
        "127.0.0.1:0",
    ]
    .into_iter()
    .chain(flags.iter().copied());
    step05_middleware::launch(step05_middleware::Args::parse_from(argv), binder).await
}

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(5, "middleware (step05-middleware)");
    let binder = Binder::ephemeral();
    let backends = real_server::launch(
        real_server::Args::parse_from(["real_server", "--listen", "127.0.0.1:0"]),
        &binder,
    )
    .await?;
    let upstream = backends.servers[0].url();
    let client = reqwest::Client::builder().no_proxy().build()?;

    // One token a second: the next refill is a whole second away, far more
    // than six concurrent requests take even in a debug build on a busy
    // machine, so exactly three get through.
    let limited =
        middleware_proxy(&binder, &upstream, &["--rate-limit", "1", "--burst", "3"]).await?;
    let url = limited
        .get("middleware proxy")
        .map(|s| s.url())
        .unwrap_or_default();
    let answers = futures_util::future::join_all((0..6).map(|_| client.get(&url).send())).await;
    let mut statuses = Vec::new();
    for answer in answers {
        statuses.push(answer?.status().as_u16());
    }
    statuses.sort_unstable();
    report.line("--rate-limit 1 --burst 3, six requests at once:");
    report.indented(
        statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let admin = limited.get("admin").map(|s| s.url()).unwrap_or_default();
    let metrics = client
        .get(format!("{admin}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut lines: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("proxy_requests_total") || l.starts_with("proxy_rate_limited_total")
        })
        .collect();
    lines.sort_unstable();
    report.line("and what /metrics on the admin listener says about them:");
    report.indented(lines.join("\n"));
    limited.shutdown().await;

    report.blank();
    let guarded = middleware_proxy(
        &binder,
        &upstream,
        &[
            "--breaker-error-rate",
            "50",
            "--breaker-min-requests",
            "4",
            "--breaker-open",
            "1s",
            "--max-fails",
            "100",
        ],
    )
    .await?;
    let url = guarded
        .get("middleware proxy")
        .map(|s| s.url())
        .unwrap_or_default();
    let admin = guarded.get("admin").map(|s| s.url()).unwrap_or_default();
    report.line(
        "A breaker (50% errors over ≥4 requests, open for 1 s) in front of a failing backend:",
    );
    let mut seen = Vec::new();
    for _ in 0..4 {
        let status = client
            .get(format!("{url}/flaky?fail_percent=100"))
            .send()
            .await?
            .status();
        seen.push(status.as_u16().to_string());
    }
    report.indented(format!("four failing requests: {}", seen.join(" ")));
    let state = |admin: String, client: reqwest::Client| async move {
        let stats: serde_json::Value = client
            .get(format!("{admin}/stats"))
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(stats["breaker_state"].as_str().unwrap_or("?").to_owned())
    };
    let fallback = client.get(format!("{url}/status/200")).send().await?;
    report.indented(format!(
        "breaker {}; the next request gets the fallback at once: {} {:?}",
        state(admin.clone(), client.clone()).await?,
        fallback.status().as_u16(),
        fallback.text().await?.trim_end()
    ));
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let probe = client
        .get(format!("{url}/status/200"))
        .send()
        .await?
        .status();
    report.indented(format!(
        "after the open window a probe goes through ({}), and the breaker is {}",
        probe.as_u16(),
        state(admin, client.clone()).await?
    ));
    guarded.shutdown().await;
    backends.shutdown().await;
    Ok(())
}
