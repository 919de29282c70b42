//! The tour: `cargo run` at the root of the workspace.
//!
//! It starts the real servers and each step in-process on free ports, sends
//! a few requests through them and prints, chapter by chapter, what came
//! back — so a learner sees every step work before reading any code. Each
//! chapter lives in its own module under `chapters/` and mirrors the chapter
//! of the same number in NOTES.md.
//!
//! The tour only observes; it never asserts. What it shows is pinned down by
//! the tests in `tests/`, which run the same binary.

pub mod chapters;
pub mod exercises;
pub mod probes;
mod report;

use std::io::Write;
use std::time::Duration;

pub use report::Report;

/// The root command line: the tour, or one of the tools beside it.
#[derive(clap::Parser, Debug)]
#[command(
    name = "proxy-workbench",
    about = "The proxy workbench tour: every step, run in-process, chapter by chapter"
)]
pub struct Cli {
    /// Instead of the tour, run the probes against this running proxy
    /// (which must have real_server behind it), e.g. http://127.0.0.1:8000.
    #[arg(long, value_name = "URL", conflicts_with = "websocket")]
    pub target: Option<String>,
    /// Instead of the tour, open this websocket (ws://host:port/path) and
    /// show the handshake byte by byte and every frame.
    #[arg(long, value_name = "URL")]
    pub websocket: Option<String>,
    /// With --websocket: a text message to send and wait for the echo of (repeatable).
    #[arg(long, value_name = "TEXT", requires = "websocket")]
    pub send: Vec<String>,
    /// With --websocket: after the messages, stay quiet this long (e.g. 2s)
    /// and show what the other side does, before closing.
    #[arg(long, value_name = "DURATION", requires = "websocket", value_parser = operator_input::duration)]
    pub quiet: Option<Duration>,
}

impl Cli {
    /// Do what the command line asks, printing to `out`.
    pub async fn run(self, mut out: impl Write + Send + 'static) -> anyhow::Result<()> {
        if let Some(url) = &self.websocket {
            return step06_websocket::handshake::talk(url, &self.send, self.quiet, &mut out).await;
        }
        let mut report = Report::new(out);
        match &self.target {
            Some(url) => probe_target(&mut report, url).await,
            None => run(&mut report).await,
        }
    }
}

/// Run every chapter in order, writing to `report`.
pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.title("proxy workbench — the tour");
    report.line(
        "Every server below runs inside this process on a free port; nothing else is needed.",
    );
    chapters::ch00_real_servers::run(report).await?;
    chapters::ch01_forward_proxy::run(report).await?;
    chapters::ch02_minimal_reverse_proxy::run(report).await?;
    chapters::ch03_reverse_proxy::run(report).await?;
    chapters::ch04_load_balance::run(report).await?;
    chapters::ch05_middleware::run(report).await?;
    chapters::ch06_websocket::run(report).await?;
    chapters::ch07_https::run(report).await?;
    chapters::ch08_tcp_proxy::run(report).await?;
    chapters::ch09_cache::run(report).await?;
    chapters::ch10_fast_path::run(report).await?;
    chapters::ch11_gateway::run(report).await?;
    report.blank();
    report.line("The tour is over. NOTES.md explains each chapter; `cargo run -p <step>` runs one step on its own.");
    Ok(())
}

/// `cargo run -- --target URL`: the probes against one running proxy.
pub async fn probe_target(report: &mut Report, url: &str) -> anyhow::Result<()> {
    let target = probes::Target::new(url)?;
    report.title(&format!("probes against {url}"));
    report.line("The target must proxy to real_server (cargo run -p real_server).");
    let mapping = target.path_mapping().await.ok().flatten();
    let mut results = probes::run_all(&target).await;
    if let Some(seen) = &mapping {
        // Those probes would fail for the wrong reason: say so instead.
        report.line(format!(
            "The target sends /probe/path upstream as {seen}: real_server's endpoints are out of reach, so {} cannot be judged. Point the target at real_server without a base path for them.",
            probes::NEED_ENDPOINTS.join(", ")
        ));
        for (name, verdict) in &mut results {
            if probes::NEED_ENDPOINTS.contains(name) {
                *verdict =
                    Err(probes::NotJudged(format!("the target rewrites paths to {seen}")).into());
            }
        }
    }
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, verdict)| {
            let mark = if probes::not_judged(verdict) {
                "–"
            } else {
                "✗"
            };
            verdict
                .as_ref()
                .err()
                .map(|e| format!("{mark} {name}: {e:#}"))
        })
        .collect();
    chapters::ch03_reverse_proxy::probe_table(report, &[("target", results)]);
    if !failures.is_empty() {
        report.blank();
        report.line("Why the failures failed (– : not judged):");
        report.indented(failures.join("\n"));
    }
    report.blank();
    report.line(
        "gRPC, which needs HTTP/2 all the way to real_server (step 03 on: --upstream h2c://…):",
    );
    for (name, verdict) in probes::run_grpc(&target).await {
        report.indented(match verdict {
            Ok(()) => format!("✓ {name}"),
            Err(e) => format!("✗ {name}: {e:#}"),
        });
    }
    Ok(())
}
