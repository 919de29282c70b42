use clap::Parser;

// The default multi-threaded runtime, as every step binary uses: what the
// tour shows (round-robin's exact cycle included) holds whatever the number
// of worker threads.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    proxy_workbench::Cli::parse().run(std::io::stdout()).await
}
