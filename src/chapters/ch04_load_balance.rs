//! Chapter 4: load balancing — the same 60 requests through every
//! strategy, counted per upstream, and an upstream going down.

use std::collections::HashMap;

use clap::Parser;
use load_balance::Kind;
use serving::Binder;

use crate::Report;

const REQUESTS: usize = 60;

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(4, "load balancing (step04-load-balance)");
    let binder = Binder::ephemeral();
    let backends = real_server::launch(
        real_server::Args::parse_from([
            "real_server",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
        ]),
        &binder,
    )
    .await?;
    let upstreams: Vec<String> = backends
        .servers
        .iter()
        .zip(1..)
        .map(|(s, weight)| format!("{},weight={weight}", s.url()))
        .collect();
    report.line(format!(
        "Three real servers with weights 1, 2, 3; {REQUESTS} requests (/item/0 … /item/59) through each strategy:"
    ));
    let names: Vec<String> = backends
        .servers
        .iter()
        .map(|s| s.addr().to_string())
        .collect();
    report.indented(format!(
        "{:<24}{}",
        "strategy",
        names
            .iter()
            .zip(1..)
            .map(|(n, w)| format!("{:>22}", format!("{n} (w{w})")))
            .collect::<String>()
    ));
    let client = reqwest::Client::builder().no_proxy().build()?;
    for kind in Kind::all() {
        let mut argv = vec![
            "step04-load-balance".to_owned(),
            "--balance".to_owned(),
            kind.to_string(),
        ];
        for upstream in &upstreams {
            argv.extend(["--upstream".to_owned(), upstream.clone()]);
        }
        let proxy =
            step04_load_balance::launch(step04_load_balance::Args::parse_from(argv), &binder)
                .await?;
        let url = proxy.servers[0].url();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for i in 0..REQUESTS {
            let response = client.get(format!("{url}/item/{i}")).send().await?;
            let by = response
                .headers()
                .get("x-served-by")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned();
            *counts.entry(by).or_insert(0) += 1;
        }
        report.indented(format!(
            "{:<24}{}",
            kind.name(),
            names
                .iter()
                .map(|n| format!("{:>22}", counts.get(n).copied().unwrap_or(0)))
                .collect::<String>()
        ));
        proxy.shutdown().await;
    }

    report.blank();
    let mut argv = vec![
        "step04-load-balance".to_owned(),
        "--health-path".to_owned(),
        "/health".to_owned(),
        "--health-interval".to_owned(),
        "50ms".to_owned(),
    ];
    for server in &backends.servers {
        argv.extend(["--upstream".to_owned(), server.url()]);
    }
    let proxy =
        step04_load_balance::launch(step04_load_balance::Args::parse_from(argv), &binder).await?;
    let url = proxy.servers[0].url();
    let sick = &backends.servers[2];
    client
        .post(format!("{}/health/down", sick.url()))
        .send()
        .await?;
    report.line(format!(
        "Round-robin with active checks every 50 ms; POST /health/down to {}:",
        sick.addr()
    ));
    // Poll until the probes have taken it out, for up to 30 s: bounded by
    // time, not by a number of requests, which a slow machine may send
    // before the first probe has even run.
    let started = std::time::Instant::now();
    let mut rounds = 0;
    let gone = loop {
        rounds += 1;
        let mut hit = false;
        for _ in 0..6 {
            let response = client.get(&url).send().await?;
            hit |= response
                .headers()
                .get("x-served-by")
                .and_then(|v| v.to_str().ok())
                == Some(sick.addr().to_string().as_str());
        }
        if !hit || started.elapsed() > std::time::Duration::from_secs(30) {
            break !hit;
        }
    };
    report.indented(if gone {
        format!(
            "after two failed probes it gets no more requests ({} rounds of 6 requests to notice)",
            rounds
        )
    } else {
        "it was still being picked after 30 s: the health checks are not running".to_owned()
    });

    proxy.shutdown().await;
    backends.shutdown().await;
    Ok(())
}
