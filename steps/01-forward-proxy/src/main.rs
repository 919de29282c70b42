use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    serving::init_tracing();
    let args = forward_proxy::Args::parse();
    let launched = forward_proxy::launch(args, &serving::Binder::exact()).await?;
    launched.serve_until_signal().await;
    Ok(())
}
