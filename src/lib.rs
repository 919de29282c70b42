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
pub mod probes;
mod report;

pub use report::Report;

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
    report.blank();
    report.line("The tour is over. NOTES.md explains each chapter; `cargo run -p <step>` runs one step on its own.");
    Ok(())
}

/// `cargo run -- --target URL`: the probes against one running proxy.
pub async fn probe_target(report: &mut Report, url: &str) -> anyhow::Result<()> {
    let target = probes::Target::new(url)?;
    report.title(&format!("probes against {url}"));
    report.line("The target must proxy to real_server (cargo run -p real_server).");
    let results = probes::run_all(&target).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, verdict)| verdict.as_ref().err().map(|e| format!("✗ {name}: {e:#}")))
        .collect();
    chapters::ch03_reverse_proxy::probe_table(report, &[("target", results)]);
    if !failures.is_empty() {
        report.blank();
        report.line("Why the failures failed:");
        report.indented(failures.join("\n"));
    }
    Ok(())
}
