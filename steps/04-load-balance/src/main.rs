use clap::Parser;

// The binary, not a library, chooses the allocator. A proxy allocates a few
// dozen small, short-lived objects per request (futures, header maps, body
// frames); glibc's malloc spends about twice as many instructions on each as
// mimalloc (bench/README.md). nginx avoids the question with a memory pool
// per request; in Rust the allocator is the lever.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = step04_load_balance::Args::parse();
    args.proxy.serve.runtime()?.block_on(async {
        serving::init_tracing();
        let launched = step04_load_balance::launch(args, &serving::Binder::exact()).await?;
        launched.serve_until_signal().await;
        Ok(())
    })
}
