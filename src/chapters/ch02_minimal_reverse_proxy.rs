//! Chapter 2: the minimal reverse proxy — it works, and the echo shows what
//! it gets wrong.

use clap::Parser;
use serving::Binder;

use crate::Report;

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(
        2,
        "the minimal reverse proxy (step02-reverse-proxy-minimal)",
    );
    let binder = Binder::ephemeral();
    let backends = real_server::launch_defaults(&binder).await?;
    let upstream = format!("{}/base?from=proxy", backends.servers[0].url());
    let proxy = step02_reverse_proxy_minimal::launch(
        step02_reverse_proxy_minimal::Args::parse_from([
            "step02-reverse-proxy-minimal",
            "--upstream",
            &upstream,
        ]),
        &binder,
    )
    .await?;
    let proxy_url = proxy.servers[0].url();
    report.line(format!(
        "Minimal reverse proxy on {proxy_url}, upstream {upstream}."
    ));

    let client = reqwest::Client::builder().no_proxy().build()?;
    report.blank();
    report.line(format!(
        "GET {proxy_url}/hello?x=1 with Connection: X-Private:"
    ));
    let echo: real_server::Echo = client
        .get(format!("{proxy_url}/hello?x=1"))
        .header("connection", "x-private")
        .header("x-private", "for the proxy only")
        .send()
        .await?
        .json()
        .await?;
    let uri = match &echo.query {
        Some(q) => format!("{}?{q}", echo.path),
        None => echo.path.clone(),
    };
    report.indented(format!(
        "the server got {} {uri}   (paths joined with one slash, queries with &)\n\
         host:            {}   (gap: still the proxy's)\n\
         x-forwarded-for: {}   (gap: nobody said who the client was)\n\
         x-private:       {}   (gap: a hop-by-hop header leaked)",
        echo.method,
        echo.header("host").unwrap_or("(none)"),
        echo.header("x-forwarded-for").unwrap_or("(none)"),
        echo.header("x-private").unwrap_or("(none)"),
    ));
    report.line("Chapter 3's proxy closes each of these gaps.");

    proxy.shutdown().await;
    backends.shutdown().await;
    Ok(())
}
