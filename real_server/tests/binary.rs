//! The `real_server` binary as a user runs it: it says where it listens and
//! shuts down gracefully on SIGTERM. Every step binary shares this code
//! (`serving`), so this is the test of the convention for all of them.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_real_server"));
    command.args(["--listen", "127.0.0.1:0"]);
    // Readiness: the log line that names the bound address.
    let (mut child, url) = real_server::start_binary(command, "real server").unwrap();
    // A response that is provably in flight: its first chunk has arrived,
    // the second is 700 ms away.
    let response = reqwest::get(format!("{url}/stream/2?interval_ms=700"))
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    assert_eq!(chunks.next().await.unwrap().unwrap(), "chunk 1 of 2\n");
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest = chunks
        .next()
        .await
        .unwrap()
        .expect("the in-flight response finished");
    assert_eq!(rest, "chunk 2 of 2\n");
    assert!(chunks.next().await.is_none());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        reqwest::get(&url).await.is_err(),
        "still accepting after shutdown"
    );
}
