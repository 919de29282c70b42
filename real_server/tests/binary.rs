//! The `real_server` binary as a user runs it: it says where it listens and
//! shuts down gracefully on SIGTERM. Every step binary shares this code
//! (`serving`), so this is the test of the convention for all of them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_real_server"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Readiness: the log line that names the bound address.
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            log.read_line(&mut line).unwrap() > 0,
            "exited before listening"
        );
        if let Some((_, url)) = line.split_once("listening on ") {
            break url.trim().to_owned();
        }
    };
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
