//! Chapter 1: the forward proxy — the client names the target, the proxy
//! goes there; CONNECT turns the proxy into a byte pipe.

use anyhow::Context;
use clap::Parser;
use serving::Binder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Report;

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(1, "a forward proxy (step01-forward-proxy)");
    let binder = Binder::ephemeral();
    let backends = real_server::launch_defaults(&binder).await?;
    let backend = &backends.servers[0];
    let proxy = step01_forward_proxy::launch(
        // The real servers are on loopback, which the proxy refuses to
        // reach by default (NOTES chapter 1 says why).
        step01_forward_proxy::Args::parse_from([
            "step01-forward-proxy",
            "--allow-private",
            "--connect-ports",
            "any",
        ]),
        &binder,
    )
    .await?;
    let proxy_addr = proxy.servers[0].addr();
    report.line(format!(
        "Forward proxy on {proxy_addr}; real server on {}.",
        backend.addr()
    ));

    let through = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy.servers[0].url())?)
        .build()?;
    report.blank();
    report.line(format!(
        "GET {}/hello through the proxy (absolute form), with Connection: X-Private:",
        backend.url()
    ));
    let echo: real_server::Echo = through
        .get(format!("{}/hello", backend.url()))
        .header("connection", "x-private")
        .header("x-private", "for the proxy only")
        .send()
        .await?
        .json()
        .await?;
    report.indented(format!(
        "the server saw x-forwarded-for: {}\nthe server saw x-private: {}\nthe server saw via: {}",
        echo.header("x-forwarded-for").unwrap_or("(none)"),
        echo.header("x-private")
            .unwrap_or("(none) — hop-by-hop, stopped at the proxy"),
        echo.header("via").unwrap_or("(none)"),
    ));

    report.blank();
    report.line("CONNECT, by hand: ask for a tunnel, then speak HTTP through it:");
    let mut stream = TcpStream::connect(proxy_addr).await?;
    let target = backend.addr();
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await?;
    let reply = read_head(&mut stream).await?;
    report.indented(format!(
        "> CONNECT {target} HTTP/1.1\n< {}",
        first_line(&reply)
    ));
    stream
        .write_all(
            format!("GET /status/200 HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    report.indented(format!(
        "> GET /status/200 HTTP/1.1   (inside the tunnel)\n< {}",
        first_line(&answer)
    ));

    report.blank();
    let direct = reqwest::Client::builder().no_proxy().build()?;
    let refusals = [
        (
            "GET /hello sent to the proxy as if it were a server",
            direct.get(format!("{}/hello", proxy.servers[0].url())),
        ),
        (
            "GET through the proxy to the proxy itself",
            through.get(format!("{}/again", proxy.servers[0].url())),
        ),
        (
            "GET through the proxy to a port nobody listens on",
            through.get("http://127.0.0.1:1/"),
        ),
    ];
    for (what, request) in refusals {
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        report.line(format!("{what} → {status}"));
        report.indented(text.trim_end());
    }

    proxy.shutdown().await;
    backends.shutdown().await;
    Ok(())
}

/// Read up to the end of a response head.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await?;
        anyhow::ensure!(n == 1, "the proxy closed the connection mid-answer");
        head.push(byte[0]);
    }
    String::from_utf8(head).context("the answer head is not text")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
