//! Chapter 3: the ReverseProxy clone — the same request as chapter 2, now
//! right, and the probe table that puts steps 02 and 03 side by side.

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serving::Binder;
use tokio_tungstenite::tungstenite::Message;

use crate::Report;
use crate::probes::{self, Target};

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(3, "the ReverseProxy clone (step03-reverse-proxy)");
    let binder = Binder::ephemeral();
    let backends = real_server::launch_defaults(&binder).await?;
    let upstream = backends.servers[0].url();
    let step03 = step03_reverse_proxy::launch(
        step03_reverse_proxy::Args::parse_from(["step03-reverse-proxy", "--upstream", &upstream]),
        &binder,
    )
    .await?;
    let step02 = step02_reverse_proxy_minimal::launch(
        step02_reverse_proxy_minimal::Args::parse_from([
            "step02-reverse-proxy-minimal",
            "--upstream",
            &upstream,
        ]),
        &binder,
    )
    .await?;
    let proxy_url = step03.servers[0].url();
    report.line(format!(
        "Reverse proxy on {proxy_url}, upstream {upstream}."
    ));

    report.blank();
    report.line(format!(
        "GET {proxy_url}/hello with Connection: X-Private (as in chapter 2):"
    ));
    let client = reqwest::Client::builder().no_proxy().build()?;
    let echo: real_server::Echo = client
        .get(format!("{proxy_url}/hello"))
        .header("connection", "x-private")
        .header("x-private", "for the proxy only")
        .send()
        .await?
        .json()
        .await?;
    for name in [
        "host",
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-private",
    ] {
        report.indented(format!(
            "{:<19}{}",
            format!("{name}:"),
            echo.header(name).unwrap_or("(none)")
        ));
    }

    report.blank();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws", step03.servers[0].addr())).await?;
    ws.send(Message::text("hello through the tunnel")).await?;
    let reply = ws.next().await.transpose()?;
    report.line(format!(
        "websocket through step 03: sent \"hello through the tunnel\", got back {}",
        match reply {
            Some(Message::Text(text)) => format!("{:?}", text.as_str()),
            other => format!("{other:?}"),
        }
    ));
    ws.close(None).await?;

    report.blank();
    report.line("The probes (cargo run -- --target URL runs them against any proxy):");
    let targets = [
        ("step 02", Target::new(&step02.servers[0].url())?),
        ("step 03", Target::new(&proxy_url)?),
    ];
    let mut columns = Vec::new();
    for (name, target) in &targets {
        columns.push((*name, probes::run_all(target).await));
    }
    probe_table(report, &columns);

    step02.shutdown().await;
    step03.shutdown().await;
    backends.shutdown().await;
    Ok(())
}

/// Print probes as rows, targets as columns: ✓ passed, ✗ failed.
pub fn probe_table(report: &mut Report, columns: &[(&str, Vec<(&'static str, probes::Verdict)>)]) {
    let width = probes::PROBES
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let header: String = columns
        .iter()
        .map(|(name, _)| format!("  {name:^9}"))
        .collect();
    report.indented(format!("{:<width$}{header}", "probe").trim_end());
    for (row, (name, _)) in probes::PROBES.iter().enumerate() {
        let cells: String = columns
            .iter()
            .map(|(_, results)| {
                let verdict = &results[row].1;
                let mark = match verdict {
                    Ok(()) => "✓",
                    Err(_) if probes::not_judged(verdict) => "–",
                    Err(_) => "✗",
                };
                format!("  {mark:^9}")
            })
            .collect();
        report.indented(format!("{name:<width$}{cells}").trim_end());
    }
}
