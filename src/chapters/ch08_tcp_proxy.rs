//! Chapter 8: the TCP proxy — connections balanced, bytes relayed, and
//! what an L4 proxy cannot tell the upstream unless it speaks the PROXY
//! protocol.

use clap::Parser;
use serving::Binder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Report;

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(8, "a TCP proxy (step08-tcp-proxy)");
    let binder = Binder::ephemeral();
    let proxy = step08_tcp_proxy::launch(
        step08_tcp_proxy::Args::parse_from(["step08-tcp-proxy"]),
        &binder,
    )
    .await?;
    let proxy_addr = proxy.get("tcp proxy").expect("launched").addr();
    report.line(format!(
        "TCP proxy on {proxy_addr}, round-robin over two real servers started in-process."
    ));
    report.blank();
    report.line("Two HTTP requests, each on a connection of its own:");
    for _ in 0..2 {
        // A client that keeps no connection: each request picks again.
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()?;
        let echo: real_server::Echo = client
            .get(format!("http://{proxy_addr}/hello"))
            .send()
            .await?
            .json()
            .await?;
        report.indented(format!(
            "served by {}; the server saw remote addr {} and x-forwarded-for: {}",
            echo.served_by,
            echo.remote_addr,
            echo.header("x-forwarded-for").unwrap_or("(none)")
        ));
    }
    report
        .line("The bytes went through unread: no header added, the client unknown to the server.");

    // An upstream that sends back the first bytes it receives.
    let reflector = TcpListener::bind("127.0.0.1:0").await?;
    let reflector_addr = reflector.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = reflector.accept().await {
            let mut first = [0u8; 128];
            if let Ok(n) = stream.read(&mut first).await {
                let _ = stream.write_all(&first[..n]).await;
            }
        }
    });
    let with_header = step08_tcp_proxy::launch(
        step08_tcp_proxy::Args::parse_from([
            "step08-tcp-proxy",
            "--upstream",
            &reflector_addr.to_string(),
            "--proxy-protocol",
            "v1",
        ]),
        &binder,
    )
    .await?;
    let mut client =
        TcpStream::connect(with_header.get("tcp proxy").expect("launched").addr()).await?;
    let mut header = Vec::new();
    client.read_to_end(&mut header).await?;
    report.blank();
    report.line(format!(
        "With --proxy-protocol v1, the upstream's first bytes name the client (here {}):",
        client.local_addr()?
    ));
    report.indented(String::from_utf8_lossy(&header).trim_end());

    with_header.shutdown().await;
    proxy.shutdown().await;
    Ok(())
}
