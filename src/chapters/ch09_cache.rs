//! Chapter 9: the shared cache — a miss stored, a hit with its age, a
//! stale answer revalidated with a 304, and a herd of misses that makes one
//! upstream request.

use clap::Parser;
use serving::Binder;

use crate::Report;

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(9, "a shared HTTP cache (step09-cache)");
    let binder = Binder::ephemeral();
    let origin = real_server::spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let cache = step09_cache::launch(
        step09_cache::Args::parse_from(["step09-cache", "--upstream", &origin.url()]),
        &binder,
    )
    .await?;
    let base = cache.get("cache").expect("launched").url();
    report.line(format!("Cache on {base}, in front of one real server."));
    let client = reqwest::Client::builder().no_proxy().build()?;
    let show = |answer: &reqwest::Response| {
        let header = |name| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        format!(
            "{} age: {}; cache-status: {}",
            answer.status().as_u16(),
            header("age"),
            header("cache-status")
        )
    };
    report.blank();
    report.line("A response that may be kept a minute, asked for twice:");
    let fresh = format!("{base}/headers?set=Cache-Control:max-age=60");
    for _ in 0..2 {
        let answer = client.get(&fresh).send().await?;
        report.indented(show(&answer));
    }
    report.blank();
    report.line(
        "One that is stale at once but has an ETag: each use asks the origin, which says 304:",
    );
    let validated = format!("{base}/headers?set=Cache-Control:max-age=0&set=ETag:%22v1%22");
    for _ in 0..2 {
        let answer = client.get(&validated).send().await?;
        report.indented(show(&answer));
    }
    report.blank();
    let before = requests(&client, &origin.url()).await?;
    let herd: Vec<_> = (0..100)
        .map(|_| {
            let (client, url) = (
                client.clone(),
                format!("{base}/delay/300?set=Cache-Control:max-age=60"),
            );
            tokio::spawn(async move { client.get(url).send().await?.bytes().await })
        })
        .collect();
    for client in herd {
        client.await??;
    }
    let after = requests(&client, &origin.url()).await?;
    report.line(format!(
        "100 clients at once for one cold URL: the origin was asked {} time(s).",
        after - before - 1
    ));
    Ok(())
}

/// How many requests the real server at `url` had answered.
async fn requests(client: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{url}/requests"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text.trim().parse()?)
}
