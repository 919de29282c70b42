use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    serving::init_tracing();
    let args = reverse_proxy_minimal::Args::parse();
    let launched = reverse_proxy_minimal::launch(args, &serving::Binder::exact()).await?;
    launched.serve_until_signal().await;
    Ok(())
}
