use clap::Parser;
use proxy_workbench::Report;

/// The proxy workbench tour: every step, run in-process, chapter by chapter.
#[derive(Parser)]
#[command(name = "proxy-workbench")]
struct Args {
    /// Instead of the tour, run the probes against this running proxy
    /// (which must have real_server behind it), e.g. http://127.0.0.1:8000.
    #[arg(long, value_name = "URL", conflicts_with = "websocket")]
    target: Option<String>,
    /// Instead of the tour, open this websocket (ws://host:port/path) and
    /// show the handshake byte by byte and every frame.
    #[arg(long, value_name = "URL")]
    websocket: Option<String>,
    /// With --websocket: a text message to send and wait for the echo of (repeatable).
    #[arg(long, value_name = "TEXT", requires = "websocket")]
    send: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = args.websocket {
        return websocket_proxy::handshake::talk(&url, &args.send, &mut std::io::stdout()).await;
    }
    let mut report = Report::new(std::io::stdout());
    match args.target {
        Some(url) => proxy_workbench::probe_target(&mut report, &url).await,
        None => proxy_workbench::run(&mut report).await,
    }
}
