use clap::Parser;
use proxy_workbench::Report;

/// The proxy workbench tour: every step, run in-process, chapter by chapter.
#[derive(Parser)]
#[command(name = "proxy-workbench")]
struct Args {
    /// Instead of the tour, run the probes against this running proxy
    /// (which must have real_server behind it), e.g. http://127.0.0.1:8000.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut report = Report::new(std::io::stdout());
    match args.target {
        Some(url) => proxy_workbench::probe_target(&mut report, &url).await,
        None => proxy_workbench::run(&mut report).await,
    }
}
