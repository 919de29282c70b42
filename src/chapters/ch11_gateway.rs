//! Chapter 11: the gateway — services from a file, routed by host and path
//! prefix, reloaded while it serves, an admin API, and a cache in front of
//! a service.

use clap::Parser;
use serving::{Binder, Launched};
use tokio::net::TcpListener;

use crate::Report;

const TOKEN: &str = "tour";

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(11, "the gateway (step11-gateway)");
    let binder = Binder::ephemeral();
    let example = step11_gateway::launch(
        step11_gateway::Args::parse_from(["step11-gateway"]),
        &binder,
    )
    .await?;
    let url = example.get("gateway").expect("launched").url();
    report.line(format!(
        "The example config (steps/11-gateway/gateway.toml) on {url}, with three real servers:"
    ));
    let client = reqwest::Client::builder().no_proxy().build()?;
    for (host, path) in [
        ("localhost", "/api/users"),
        ("static.localhost", "/page"),
        ("localhost", "/page"),
    ] {
        let echo: real_server::Echo = client
            .get(format!("{url}{path}"))
            .header("host", host)
            .send()
            .await?
            .json()
            .await?;
        report.indented(format!(
            "Host {host:<17} GET {path:<11} → {} got {} {}",
            echo.served_by, echo.method, echo.path
        ));
    }
    report.line("/api was taken off for the api service; the host picked the static one.");
    example.shutdown().await;

    // A config file of our own, with an admin API, reloaded while serving.
    let (first, second) = (backend().await?, backend().await?);
    let file = std::env::temp_dir().join(format!("tour-gateway-{}.toml", std::process::id()));
    std::fs::write(&file, config(&first.url()))?;
    let gateway = step11_gateway::launch(
        step11_gateway::Args::parse_from([
            "step11-gateway",
            "--config",
            &file.display().to_string(),
        ]),
        &binder,
    )
    .await?;
    let mut outcome = reload_demo(report, &client, &gateway, &file, &second.url()).await;
    if outcome.is_ok() {
        outcome = cache_demo(report, &client, &gateway, &file, &second.url()).await;
    }
    let _ = std::fs::remove_file(&file);
    gateway.shutdown().await;
    outcome
}

async fn backend() -> anyhow::Result<serving::ServerHandle> {
    Ok(real_server::spawn(TcpListener::bind("127.0.0.1:0").await?)?)
}

fn config(upstream: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
         [[services]]\nname = \"web\"\nupstreams = [\"{upstream}\"]\n"
    )
}

async fn reload_demo(
    report: &mut Report,
    client: &reqwest::Client,
    gateway: &Launched,
    file: &std::path::Path,
    second: &str,
) -> anyhow::Result<()> {
    let url = gateway.get("gateway").expect("launched").url();
    let admin = gateway.get("admin").expect("launched").url();
    let served_by = async || -> anyhow::Result<String> {
        let echo: real_server::Echo = client.get(&url).send().await?.json().await?;
        Ok(echo.served_by)
    };
    let reload = async || admin_post(client, &format!("{admin}/reload")).await;
    report.blank();
    report.line(format!(
        "A config file with one service; requests go to {}.",
        served_by().await?
    ));
    std::fs::write(file, config(second))?;
    let (status, said) = reload().await?;
    report.line("The file now names another server; POST /reload (with the admin token):");
    report.indented(format!("{status} {}", said.trim_end()));
    report.indented(format!("requests now go to {}", served_by().await?));
    std::fs::write(file, "[[services]]\nname = 1\n")?;
    let (status, said) = reload().await?;
    report.line("A broken file is refused whole, and the old config keeps serving:");
    report.indented(format!(
        "{status} {}",
        said.trim_end()
            .replace(&file.display().to_string(), "gateway.toml")
    ));
    report.indented(format!("requests still go to {}", served_by().await?));
    let anonymous = client.get(format!("{admin}/services")).send().await?;
    report.line(format!(
        "The admin API without the token: {}",
        anonymous.status()
    ));
    Ok(())
}

/// The service gets step 09's cache by a reload; a second GET is a hit,
/// and a purge makes the next a miss again.
async fn cache_demo(
    report: &mut Report,
    client: &reqwest::Client,
    gateway: &Launched,
    file: &std::path::Path,
    upstream: &str,
) -> anyhow::Result<()> {
    let url = gateway.get("gateway").expect("launched").url();
    let admin = gateway.get("admin").expect("launched").url();
    std::fs::write(file, config(upstream) + "cache = { size = \"1MiB\" }\n")?;
    let (_, reloaded) = admin_post(client, &format!("{admin}/reload")).await?;
    report.blank();
    report.line(format!(
        "The service gets a cache (cache = {{ size = \"1MiB\" }}): {}",
        reloaded.trim_end()
    ));
    let fresh = format!("{url}/headers?set=Cache-Control:max-age%3D60");
    let cache_status = async || -> anyhow::Result<String> {
        let response = client.get(&fresh).send().await?;
        let status = response.headers().get("cache-status");
        Ok(status
            .and_then(|s| s.to_str().ok())
            .unwrap_or("-")
            .to_owned())
    };
    report.indented(format!(
        "GET /headers (fresh for 60 s)   Cache-Status: {}",
        cache_status().await?
    ));
    report.indented(format!(
        "and again                       Cache-Status: {}",
        cache_status().await?
    ));
    let (_, purged) =
        admin_post(client, &format!("{admin}/services/web/purge?path=/headers")).await?;
    report.line(format!(
        "POST /services/web/purge?path=/headers: {}",
        purged.trim_end()
    ));
    report.indented(format!(
        "and again                       Cache-Status: {}",
        cache_status().await?
    ));
    Ok(())
}

/// POST `url` on the admin API, with the token: the status and the text.
async fn admin_post(client: &reqwest::Client, url: &str) -> anyhow::Result<(u16, String)> {
    let response = client.post(url).bearer_auth(TOKEN).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}
