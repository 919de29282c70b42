use proxy_workbench::Report;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut report = Report::new(std::io::stdout());
    proxy_workbench::run(&mut report).await
}
