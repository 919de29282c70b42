//! An HTTP/2 client that does what chapter 3's defences against hostile
//! clients are for: it opens many streams at once on one connection, and
//! with `--no-window` it grants no flow-control window, so nothing of any
//! response can reach it. It prints each stream's status (sorted), and,
//! with `--no-window`, how long the server let the connection stand.
//!
//! ```sh
//! cargo run -q --example h2_streams -- http://127.0.0.1:2034/delay/300 --streams 5
//! cargo run -q --example h2_streams -- http://127.0.0.1:2034/bytes/100000 --no-window
//! ```
//!
//! Left out on purpose: TLS (the attacks do not need it) and reading any
//! response body.

use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use hyper::{Request, Uri};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// An http:// URL on a server that speaks HTTP/2 without TLS.
    url: Uri,
    /// Streams to open at once on the one connection.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Grant no flow-control window, ever.
    #[arg(long)]
    no_window: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let authority = args.url.authority().context("the URL names no host")?;
    let tcp = TcpStream::connect(authority.as_str()).await?;
    let mut builder = h2::client::Builder::new();
    if args.no_window {
        builder.initial_window_size(0);
    }
    let (mut sender, connection) = builder.handshake::<_, Bytes>(tcp).await?;
    let started = Instant::now();
    // The connection answers pings and settings on its own task, as a live
    // client's does.
    let connection = tokio::spawn(connection);
    let mut pending = Vec::new();
    for _ in 0..args.streams {
        sender = sender.ready().await?;
        let (response, _) = sender.send_request(Request::get(args.url.clone()).body(())?, true)?;
        pending.push(response);
    }
    // Responses are kept, unread: dropping one would cancel its stream. A
    // stream whose connection the server closed first has no status.
    let (mut statuses, mut kept) = (Vec::new(), Vec::new());
    for response in pending {
        match response.await {
            Ok(response) => {
                statuses.push(response.status().as_u16().to_string());
                kept.push(response);
            }
            Err(_) => statuses.push("closed before its answer".to_owned()),
        }
    }
    statuses.sort_unstable();
    for status in statuses {
        println!("{status}");
    }
    if args.no_window {
        let _ = connection.await;
        println!(
            "the server closed the connection after {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
