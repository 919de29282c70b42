//! `real_server`'s command line, built with this package's tests: the
//! discovery tests start backends as processes (`--register`) so that they
//! can SIGTERM and SIGKILL them, and a test sees only its own package's
//! binaries and examples.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    real_server::run_command_line().await
}
