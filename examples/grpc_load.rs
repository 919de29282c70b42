//! gRPC unary calls under load, straight to real_server and through step 03
//! (`--upstream h2c://…`): calls per second and latency percentiles, the
//! ghz way (a fixed number of concurrent callers for a fixed time).
//!
//! ```sh
//! cargo run --release --example grpc_load -- [SECONDS] [CONCURRENCY]
//! ```
//!
//! Everything runs in this one process on one runtime — the load, the
//! proxy and the server share the machine's cores — so the absolute figures
//! are low; the comparison of the two rows is the point.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hyper::http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use real_server::grpc::{EchoReply, EchoRequest, UNARY};
use serving::Binder;
use tokio::net::TcpListener;
use tonic::client::Grpc;
use tonic::codec::ProstCodec;

type Channel = Grpc<Client<HttpConnector, tonic::body::BoxBody>>;

fn channel(origin: &str) -> Channel {
    // Without TCP_NODELAY, a call's small frames wait for Nagle's algorithm
    // and the peer's delayed ACK: every call would take about 40 ms.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    Grpc::with_origin(client, origin.parse().expect("an origin"))
}

/// `concurrency` callers, each on its own HTTP/2 connection, calling for
/// `seconds`: every call's latency.
async fn load(origin: &str, seconds: u64, concurrency: usize) -> Vec<Duration> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let callers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut grpc = channel(origin);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    let ready = grpc.ready().await;
                    let call = tonic::Request::new(EchoRequest {
                        message: "load".to_owned(),
                        count: 0,
                    });
                    let answered = match ready {
                        Ok(()) => grpc
                            .unary::<_, EchoReply, _>(
                                call,
                                PathAndQuery::from_static(UNARY),
                                ProstCodec::default(),
                            )
                            .await
                            .is_ok(),
                        Err(_) => false,
                    };
                    assert!(answered, "a call failed");
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for caller in callers {
        all.extend(caller.await.expect("a caller panicked"));
    }
    all.sort_unstable();
    all
}

fn report(name: &str, latencies: &[Duration], seconds: u64) {
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{name:<22} {:>9.0} calls/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        latencies.len() as f64 / seconds as f64,
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let seconds = args.first().copied().unwrap_or(5);
    let concurrency = args.get(1).copied().unwrap_or(32) as usize;
    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await?)?;
    let upstream = format!("h2c://{}", backend.addr());
    let proxy = step03_reverse_proxy::launch(
        step03_reverse_proxy::Args::parse_from([
            "step03-reverse-proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
        ]),
        &Binder::exact(),
    )
    .await?;
    let proxy_url = Arc::new(proxy.servers[0].url());
    println!("gRPC unary, {concurrency} concurrent callers, {seconds} s each:");
    // Warm up both paths (connections, allocator).
    let _ = load(&backend.url(), 1, concurrency).await;
    let _ = load(&proxy_url, 1, concurrency).await;
    report(
        "direct",
        &load(&backend.url(), seconds, concurrency).await,
        seconds,
    );
    report(
        "through step 03 (h2c)",
        &load(&proxy_url, seconds, concurrency).await,
        seconds,
    );
    Ok(())
}
