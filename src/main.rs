use clap::Parser;

// One thread: the tour is a sequence of demonstrations, and a single worker
// shows round-robin's cycle (which each worker thread keeps on its own)
// exactly, as `--threads 1` does for a step.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    proxy_workbench::Cli::parse().run(std::io::stdout()).await
}
