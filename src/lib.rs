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
    report.blank();
    report.line("The tour is over. NOTES.md explains each chapter; `cargo run -p <step>` runs one step on its own.");
    Ok(())
}
