use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    proxy_workbench::Cli::parse().run(std::io::stdout()).await
}
