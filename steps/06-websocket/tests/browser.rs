//! The browser demo, end to end: headless Chromium loads real_server's
//! `/ws-demo` page through step 06, the page opens its websocket through the
//! proxy, we type a message and click Send, and read what the page shows.
//!
//! Chromium is driven over its DevTools protocol (`real_server::browser`),
//! so no driver or Node.js is needed. CI installs Debian's `chromium`
//! (`.ci/run`) and sets PROXY_WORKBENCH_REQUIRE_BROWSER, which makes a
//! missing browser a failure; elsewhere, without one, the build script
//! marks the test ignored, and the summary says so.

use std::time::Duration;

use anyhow::{Context, bail};
use real_server::browser::{Browser, find_chromium, when};
use serde_json::json;
use serving::Binder;

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
