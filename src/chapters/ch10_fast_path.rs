//! Chapter 10: the fast path — step 03's behaviour on an HTTP/1 engine of
//! its own, held to the same probes.

use clap::Parser;
use serving::Binder;

use crate::Report;
use crate::chapters::ch03_reverse_proxy::probe_table;
use crate::probes::{self, Target};

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(10, "the fast path (step10-fast-path)");
    let binder = Binder::ephemeral();
    let backends = real_server::launch_defaults(&binder).await?;
    let upstream = backends.servers[0].url();
    let step03 = step03_reverse_proxy::launch(
        step03_reverse_proxy::Args::parse_from(["step03-reverse-proxy", "--upstream", &upstream]),
        &binder,
    )
    .await?;
    let step10 = step10_fast_path::launch(
        step10_fast_path::Args::parse_from(["step10-fast-path", "--upstream", &upstream]),
        &binder,
    )
    .await?;
    report.line(
        "Step 10 parses HTTP/1 itself (httparse into offsets, heads forwarded as byte ranges, one task and one buffer each way per connection). The same probes, through step 03 and step 10:",
    );
    let targets = [
        ("step 03", Target::new(&step03.servers[0].url())?),
        ("step 10", Target::new(&step10.servers[0].url())?),
    ];
    let mut columns = Vec::new();
    for (name, target) in &targets {
        columns.push((*name, probes::run_all(target).await));
    }
    probe_table(report, &columns);
    report.line(
        "What it costs per request — instructions and system calls against nginx and step 03 — is in NOTES chapter 10 and bench/README.md (speed is measured by benchmarks, not here).",
    );
    step10.shutdown().await;
    step03.shutdown().await;
    backends.shutdown().await;
    Ok(())
}
