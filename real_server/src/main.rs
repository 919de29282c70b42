use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    serving::init_tracing();
    let args = real_server::Args::parse();
    let launched = real_server::launch(args, &serving::Binder::exact()).await?;
    launched.serve_until_signal().await;
    Ok(())
}
