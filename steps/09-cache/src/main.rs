use clap::Parser;

// The binary, not a library, chooses the allocator (see step 05's main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = step09_cache::Args::parse();
    args.proxy.serve.runtime()?.block_on(async {
        serving::init_tracing();
        let launched = step09_cache::launch(args, &serving::Binder::exact()).await?;
        launched.serve_until_signal().await;
        Ok(())
    })
}
