use clap::Parser;

// The binary, not a library, chooses the allocator (see step 03's main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = step10_fast_path::Args::parse();
    args.serve.runtime()?.block_on(async {
        serving::init_tracing();
        let launched = step10_fast_path::launch(args, &serving::Binder::exact()).await?;
        launched.serve_until_signal().await;
        Ok(())
    })
}
