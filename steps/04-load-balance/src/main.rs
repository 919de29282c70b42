use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = balanced_proxy::Args::parse();
    args.proxy.runtime()?.block_on(async {
        serving::init_tracing();
        let launched = balanced_proxy::launch(args, &serving::Binder::exact()).await?;
        launched.serve_until_signal().await;
        Ok(())
    })
}
