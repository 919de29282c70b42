//! A real headless Chromium for tests, driven over its DevTools protocol
//! (JSON over a websocket), so no driver or Node.js is needed: start it,
//! open its page, navigate, evaluate JavaScript, wait for events, take a
//! screenshot. Step 06's browser test and the gateway's dashboard test use
//! it. CI installs Debian's `chromium` (`.ci/run`); elsewhere the tests
//! that need it are ignored without one (`test_programs::chromium`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What chromium's DevTools endpoint lists: `GET /json/list`. The
/// endpoint keeps the connection open after answering, so the body is read
/// by its Content-Length.
async fn devtools_targets(devtools: &str) -> anyhow::Result<Value> {
    let mut stream = TcpStream::connect(devtools).await?;
    let request = format!("GET /json/list HTTP/1.1\r\nHost: {devtools}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("DevTools closed before answering whole");
        }
        answer.extend_from_slice(&chunk[..n]);
        let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .context("DevTools answered without a Content-Length")?
            .trim()
            .parse()?;
        if answer.len() >= end + 4 + length {
            return Ok(serde_json::from_slice(&answer[end + 4..end + 4 + length])?);
        }
    }
}

pub fn find_chromium() -> Option<PathBuf> {
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
pub struct Browser {
    _process: Child,
    profile: PathBuf,
    devtools: String,
}

impl Browser {
    pub async fn start(binary: &Path) -> anyhow::Result<Self> {
        let profile = std::env::temp_dir().join(format!(
            "workbench-chromium-{}-{}",
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
    pub async fn page(&self) -> anyhow::Result<Page> {
        let targets = devtools_targets(&self.devtools).await?;
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

pub struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Send a DevTools command; return its result. Events are passed to
    /// `on_event` while we wait.
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.call_watching(method, params, |_| {}).await
    }

    pub async fn call_watching(
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
    pub async fn event(&mut self, name: &str) -> anyhow::Result<Value> {
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
    pub async fn eval(&mut self, script: &str) -> anyhow::Result<Value> {
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
pub fn when(condition: &str, value: &str, what: &str) -> String {
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

impl Page {
    /// A PNG of what the page shows now, `width` × `height` CSS pixels.
    pub async fn screenshot(&mut self, width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
        use base64::Engine;
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = shot["data"].as_str().context("a screenshot is base64")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }
}
