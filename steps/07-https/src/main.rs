fn main() -> anyhow::Result<()> {
    let args = tls_proxy::Args::parse();
    args.websocket.gateway.proxy.runtime()?.block_on(async {
        serving::init_tracing();
        let launched = tls_proxy::launch(args, &serving::Binder::exact()).await?;
        launched.serve_until_signal().await;
        Ok(())
    })
}
