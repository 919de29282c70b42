fn main() -> anyhow::Result<()> {
    let args = websocket_proxy::Args::parse();
    args.gateway.proxy.runtime()?.block_on(async {
        serving::init_tracing();
        let launched = websocket_proxy::launch(args, &serving::Binder::exact()).await?;
        launched.serve_until_signal().await;
        Ok(())
    })
}
