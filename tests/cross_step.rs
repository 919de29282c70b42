//! The same probes through steps 02 and 03: step 02 has exactly the gaps
//! NOTES chapter 2 lists, step 03 closes every one.

use clap::Parser;
use proxy_workbench::probes::{self, Target};
use serving::Binder;
use support::Captured;

mod support;

async fn failed_probes(target: &Target) -> Vec<&'static str> {
    probes::run_all(target)
        .await
        .into_iter()
        .filter(|(_, verdict)| verdict.is_err())
        .map(|(name, _)| name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn step_02_has_its_gaps_and_step_03_closes_them() {
    let binder = Binder::ephemeral();
    let backends = real_server::launch_defaults(&binder).await.unwrap();
    let upstream = backends.servers[0].url();
    let step02 = step02_reverse_proxy_minimal::launch(
        step02_reverse_proxy_minimal::Args::parse_from(["step02", "--upstream", &upstream]),
        &binder,
    )
    .await
    .unwrap();
    let step03 = step03_reverse_proxy::launch(
        step03_reverse_proxy::Args::parse_from(["step03", "--upstream", &upstream]),
        &binder,
    )
    .await
    .unwrap();

    let gaps = failed_probes(&Target::new(&step02.servers[0].url()).unwrap()).await;
    assert_eq!(
        gaps,
        [
            "hop-by-hop request headers removed",
            "hop-by-hop response headers removed",
            "X-Forwarded-For appended",
            "X-Forwarded-Host and -Proto set",
            "X-Real-IP set",
            "Host is the upstream's",
            "websocket upgrade tunnelled",
            // The client's `Connection: close` leaks upstream, so the backend
            // closes every pooled connection: a hop-by-hop leak costs speed.
            "upstream connections reused",
            "two Host headers rejected",
            "Upgrade: h2c not forwarded",
        ]
    );
    let failed = failed_probes(&Target::new(&step03.servers[0].url()).unwrap()).await;
    assert!(failed.is_empty(), "step 03 failed: {failed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn step_10_passes_every_probe_step_03_passes() {
    let binder = Binder::ephemeral();
    let backends = real_server::launch_defaults(&binder).await.unwrap();
    let upstream = backends.servers[0].url();
    let step10 = step10_fast_path::launch(
        step10_fast_path::Args::parse_from(["step10", "--upstream", &upstream]),
        &binder,
    )
    .await
    .unwrap();
    let failed = failed_probes(&Target::new(&step10.servers[0].url()).unwrap()).await;
    assert!(failed.is_empty(), "step 10 failed: {failed:?}");
}

#[tokio::test]
async fn a_direct_connection_to_real_server_fails_the_proxy_probes() {
    // The probes must be able to fail: with no proxy in between, nothing
    // adds forwarding headers.
    let backends = real_server::launch_defaults(&Binder::ephemeral())
        .await
        .unwrap();
    let failed = failed_probes(&Target::new(&backends.servers[0].url()).unwrap()).await;
    assert!(failed.contains(&"X-Forwarded-For appended"), "{failed:?}");
    assert!(failed.contains(&"X-Real-IP set"), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probing_a_proxy_that_adds_a_base_path_says_what_it_cannot_judge() {
    // Chapters 2 and 3 start their proxies with a base path; probed as they
    // are, the endpoint probes would fail for the wrong reason.
    let binder = Binder::ephemeral();
    let backends = real_server::launch_defaults(&binder).await.unwrap();
    let upstream = format!("{}/base?from=proxy", backends.servers[0].url());
    let step03 = step03_reverse_proxy::launch(
        step03_reverse_proxy::Args::parse_from(["step03", "--upstream", &upstream]),
        &binder,
    )
    .await
    .unwrap();
    let url = step03.servers[0].url();
    let target = Target::new(&url).unwrap();
    assert_eq!(
        target.path_mapping().await.unwrap().as_deref(),
        Some("/base/probe/path?from=proxy")
    );
    let plain = Target::new(&backends.servers[0].url()).unwrap();
    assert_eq!(plain.path_mapping().await.unwrap(), None);

    let out = Captured::default();
    let cli = proxy_workbench::Cli::try_parse_from(["proxy-workbench", "--target", &url]).unwrap();
    cli.run(out.clone()).await.unwrap();
    let text = out.text();
    assert!(
        text.contains("sends /probe/path upstream as /base/probe/path?from=proxy"),
        "{text}"
    );
    assert!(
        text.contains("– websocket upgrade tunnelled: not judged"),
        "{text}"
    );
    assert!(!text.contains("✗ websocket upgrade tunnelled"), "{text}");
    // What a base path does not affect is still judged, and passes.
    assert!(!text.contains("✗ X-Forwarded-For appended"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grpc_probes_pass_only_over_an_http2_upstream() {
    let binder = Binder::ephemeral();
    let backends = real_server::launch_defaults(&binder).await.unwrap();
    let addr = backends.servers[0].addr();
    let mut verdicts = Vec::new();
    for upstream in [format!("http://{addr}"), format!("h2c://{addr}")] {
        let step03 = step03_reverse_proxy::launch(
            step03_reverse_proxy::Args::parse_from(["step03", "--upstream", &upstream]),
            &binder,
        )
        .await
        .unwrap();
        let target = Target::new(&step03.servers[0].url()).unwrap();
        let passed: Vec<bool> = probes::run_grpc(&target)
            .await
            .iter()
            .map(|(_, verdict)| verdict.is_ok())
            .collect();
        verdicts.push(passed);
    }
    assert_eq!(verdicts, [vec![false; 3], vec![true; 3]]);
}
