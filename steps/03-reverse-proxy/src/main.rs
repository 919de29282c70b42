use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = reverse_proxy::Args::parse();
    // Default: as many workers as cores this process may run on (taskset
    // and cgroup limits count). One worker means one core, and then a
    // current-thread runtime skips work-stealing that only pays off with several.
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        serving::init_tracing();
        let launched = reverse_proxy::launch(args, &serving::Binder::exact()).await?;
        launched.serve_until_signal().await;
        Ok(())
    })
}
