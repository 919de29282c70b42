//! The browser demo, end to end: headless Chromium loads real_server's
//! `/ws-demo` page through step 06, the page opens its websocket through the
//! proxy, we type a message and click Send, and read what the page shows.
//!
//! Chromium is driven over its DevTools protocol (JSON over a websocket),
//! so no driver or Node.js is needed. CI installs Debian's `chromium`
//! (`.ci/run`) and sets PROXY_WORKBENCH_REQUIRE_BROWSER, which makes a
//! missing browser a failure; elsewhere, without one, the build script
//! marks the test ignored, and the summary says so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use serving::Binder;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium with a throwaway profile, killed on drop.
struct Browser {
    _process: Child,
    profile: PathBuf,
    devtools: String,
}

impl Browser {
    async fn start(binary: &Path) -> anyhow::Result<Self> {
        let profile = std::env::temp_dir().join(format!(
            "step06-chromium-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let mut process = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        // Chromium announces its DevTools endpoint on stderr once it listens.
        let mut lines = BufReader::new(process.stderr.take().unwrap()).lines();
        let announced = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("DevTools listening on ws://") {
                    return Ok(url.split('/').next().unwrap_or_default().to_owned());
                }
            }
            bail!("chromium exited before announcing DevTools")
        })
        .await
        .context("chromium did not start within 30 s")??;
        // Keep draining stderr so chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            _process: process,
            profile,
            devtools: announced,
        })
    }

    /// The DevTools connection of the page chromium opened at start.
    async fn page(&self) -> anyhow::Result<Page> {
        let targets: Value = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(format!("http://{}/json/list", self.devtools))
            .send()
            .await?
            .json()
            .await?;
        let url = targets
            .as_array()
            .and_then(|all| all.iter().find(|t| t["type"] == "page"))
            .and_then(|page| page["webSocketDebuggerUrl"].as_str())
            .context("chromium lists no page")?;
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Page { socket, next_id: 0 })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Send a DevTools command; return its result. Events are passed to
    /// `on_event` while we wait.
    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.call_watching(method, params, |_| {}).await
    }

    async fn call_watching(
        &mut self,
        method: &str,
        params: Value,
        mut on_event: impl FnMut(&Value),
    ) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.socket.send(Message::text(command.to_string())).await?;
        loop {
            let message = self.socket.next().await.context("DevTools closed")??;
            let Ok(text) = message.to_text() else {
                continue;
            };
            let reply: Value = serde_json::from_str(text)?;
            if reply["id"] == id {
                if let Some(error) = reply.get("error") {
                    bail!("{method} failed: {error}");
                }
                return Ok(reply["result"].clone());
            }
            on_event(&reply);
        }
    }

    /// Wait for an event by name.
    async fn event(&mut self, name: &str) -> anyhow::Result<Value> {
        loop {
            let message = self.socket.next().await.context("DevTools closed")??;
            let Ok(text) = message.to_text() else {
                continue;
            };
            let event: Value = serde_json::from_str(text)?;
            if event["method"] == name {
                return Ok(event);
            }
        }
    }

    /// Evaluate JavaScript in the page, awaiting a promise if it returns one.
    async fn eval(&mut self, script: &str) -> anyhow::Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": script, "awaitPromise": true, "returnByValue": true }),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("the page threw: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }
}

/// A promise that resolves with `value` once `condition` holds (checked
/// every 20 ms in the page), or rejects after 10 s with `what`.
fn when(condition: &str, value: &str, what: &str) -> String {
    format!(
        "new Promise((resolve, reject) => {{
            const deadline = Date.now() + 10000;
            const check = () => {{
                if ({condition}) resolve({value});
                else if (Date.now() > deadline) reject(new Error({what:?} + ': ' + document.body.innerText));
                else setTimeout(check, 20);
            }};
            check();
        }})"
    )
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(has_chromium),
    ignore = "no chromium on PATH (apt-get install chromium, or set CHROMIUM)"
)]
async fn the_demo_page_echoes_through_the_proxy_in_chromium() -> anyhow::Result<()> {
    let Some(chromium) = find_chromium() else {
        bail!("no chromium on PATH (apt-get install chromium, or set CHROMIUM)");
    };
    let args = step06_websocket::Args::try_parse_from(["step06-websocket"])?;
    let launched = step06_websocket::launch(args, &Binder::ephemeral()).await?;
    let proxy = launched.get("websocket proxy").unwrap().addr();
    let backends: Vec<String> = launched
        .servers
        .iter()
        .filter(|s| s.name() == "real server")
        .map(|s| s.addr().to_string())
        .collect();
    assert_eq!(backends.len(), 3);

    let browser = Browser::start(&chromium).await?;
    let mut page = browser.page().await?;
    page.call("Page.enable", json!({})).await?;
    page.call(
        "Page.navigate",
        json!({ "url": format!("http://{proxy}/ws-demo") }),
    )
    .await?;
    tokio::time::timeout(Duration::from_secs(20), page.event("Page.loadEventFired"))
        .await
        .context("the page did not load within 20 s")??;

    let upstream = page
        .eval(&when(
            "document.getElementById('status').textContent === 'open' \
             && document.getElementById('upstream').textContent.startsWith('127.0.0.1:')",
            "document.getElementById('upstream').textContent",
            "the page never connected",
        ))
        .await?;
    let upstream = upstream.as_str().context("upstream is text")?.to_owned();
    assert!(
        backends.contains(&upstream),
        "{upstream} is not one of {backends:?}"
    );

    // Type a message and click Send, as a person would.
    page.eval(
        "document.getElementById('message').value = 'hello from chromium';
         document.getElementById('send-button').click();",
    )
    .await?;
    let log = page
        .eval(&when(
            "[...document.querySelectorAll('#log li.received')].some(li => li.textContent === '← hello from chromium')",
            "document.getElementById('log').innerText",
            "no echo on the page",
        ))
        .await?;
    let log = log.as_str().unwrap_or_default();
    assert!(log.contains("→ hello from chromium"), "{log}");
    assert!(log.contains("← hello from chromium"), "{log}");
    launched.shutdown().await;
    Ok(())
}
