//! The same probes through steps 02 and 03: step 02 has exactly the gaps
//! NOTES chapter 2 lists, step 03 closes every one.

use clap::Parser;
use proxy_workbench::probes::{self, Target};
use serving::Binder;

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
