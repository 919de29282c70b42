use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = gateway::Args::parse();
    args.proxy.runtime()?.block_on(async {
        serving::init_tracing();
        let launched = gateway::launch(args, &serving::Binder::exact()).await?;
        launched.serve_until_signal().await;
        Ok(())
    })
}
