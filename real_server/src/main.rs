#[tokio::main]
async fn main() -> anyhow::Result<()> {
    real_server::run_command_line().await
}
