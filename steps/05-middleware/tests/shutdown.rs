//! The step 05 binary as an operator runs it, every middleware on: SIGTERM
//! while slow responses stream lets every one of them finish, then the
//! process exits 0.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn sigterm_lets_slow_requests_finish_then_exits_zero() {
    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_step05-middleware"));
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &backend.url(),
        "--admin",
        "127.0.0.1:0",
        "--rate-limit",
        "100",
        "--breaker-error-rate",
        "50",
        "--basic-auth",
        "alice:secret",
        "--rewrite",
        "^/slow/(.*)=/stream/$1",
    ]);
    let (mut child, url) = real_server::start_binary(command, "middleware proxy").unwrap();
    let client = reqwest::Client::new();
    // Three responses provably in flight: each has sent its first chunk,
    // and the second is 700 ms away.
    let mut streams = Vec::new();
    for _ in 0..3 {
        let response = client
            .get(format!("{url}/slow/2?interval_ms=700"))
            .basic_auth("alice", Some("secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut chunks = response.bytes_stream();
        assert_eq!(chunks.next().await.unwrap().unwrap(), "chunk 1 of 2\n");
        streams.push(chunks);
    }
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for mut chunks in streams {
        let rest = chunks.next().await.unwrap().expect("the response finished");
        assert_eq!(rest, "chunk 2 of 2\n");
        assert!(chunks.next().await.is_none());
    }
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        client.get(&url).send().await.is_err(),
        "still accepting after shutdown"
    );
}
