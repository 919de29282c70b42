//! 1,000 websocket sessions open at once through step 06, every message
//! echoed, none lost or reordered.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serving::Binder;
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;

const SESSIONS: usize = 1000;
const MESSAGES: usize = 20;

/// Each session costs four descriptors in this one process (client, proxy
/// in, proxy out, backend); some machines start with a soft limit of 1024.
fn raise_open_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_sessions_echo_every_message() {
    raise_open_file_limit(16_384);
    // Round-robin over the three demo backends, so all of them carry load.
    // Every session comes from 127.0.0.1: the per-address cap (a quarter
    // of a cap that follows the open-files limit) must not be what fails.
    let args = step06_websocket::Args::try_parse_from([
        "step06-websocket",
        "--balance",
        "round-robin",
        "--max-connections-per-ip",
        "4000",
    ])
    .unwrap();
    let launched = step06_websocket::launch(args, &Binder::ephemeral())
        .await
        .unwrap();
    let url = format!(
        "ws://{}/ws",
        launched.get("websocket proxy").unwrap().addr()
    );
    let all_open = Arc::new(Barrier::new(SESSIONS));
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|session| {
            let (url, all_open) = (url.clone(), all_open.clone());
            tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
                // Nobody talks until every session is open: 1,000 at once.
                all_open.wait().await;
                for n in 0..MESSAGES {
                    let text = format!("session {session} message {n}");
                    ws.send(Message::text(text.clone())).await.unwrap();
                    let echo = ws.next().await.unwrap().unwrap();
                    assert_eq!(echo, Message::text(text));
                }
                ws.close(None).await.unwrap();
                MESSAGES
            })
        })
        .collect();
    let mut echoed = 0;
    for session in sessions {
        echoed += tokio::time::timeout(Duration::from_secs(120), session)
            .await
            .expect("every session finishes within 120 s")
            .expect("no session failed");
    }
    assert_eq!(echoed, SESSIONS * MESSAGES);
}
