//! The dashboard in headless Chromium, through the real binary: the page
//! loads from the admin listener with nothing from elsewhere, takes the
//! token from its fragment, and shows the services, the apps, today's
//! count and the chart's two series.
//!
//! With DASHBOARD_SCREENSHOT=FILE, the test also writes a PNG of the page
//! there (NOTES chapter 11's picture is made so).

mod support;

use std::time::Duration;

use anyhow::{Context, bail};
use real_server::browser::{Browser, Page, find_chromium, when};
use serde_json::json;
use support::backend;
use support::running::{Gateway, TOKEN, two_apps};

/// Two apps, an open_auth service `api` and a `web` with a cache, all in
/// front of `upstream`.
fn config(upstream: &str) -> String {
    format!(
        r#"{}
[[services]]
name = "api"
path_prefix = "/api"
upstreams = ["{upstream}"]
open_auth = true
[[services]]
name = "web"
path_prefix = "/"
upstreams = ["{upstream}", "http://127.0.0.1:1"]
cache = {{ size = "1MiB" }}
"#,
        two_apps("")
    )
}

async fn open(page: &mut Page, url: &str) -> anyhow::Result<()> {
    page.call("Page.enable", json!({})).await?;
    page.call("Page.navigate", json!({ "url": url })).await?;
    tokio::time::timeout(Duration::from_secs(20), page.event("Page.loadEventFired"))
        .await
        .context("the page did not load within 20 s")??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(has_chromium),
    ignore = "no chromium on PATH (apt-get install chromium, or set CHROMIUM)"
)]
async fn the_dashboard_shows_services_apps_todays_count_and_both_days_in_chromium()
-> anyhow::Result<()> {
    let Some(chromium) = find_chromium() else {
        bail!("no chromium on PATH (apt-get install chromium, or set CHROMIUM)");
    };
    let upstream = backend().await;
    let gateway = Gateway::start_on("fast", &config(&upstream.url()), &[]);
    let client = support::client();
    let token = gateway.app_token("app-a", "a-secret").await;
    for _ in 0..4 {
        let answer = client
            .get(format!("{}/api/x", gateway.url))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(answer.status(), 200);
    }
    // The second is answered from web's cache.
    for _ in 0..2 {
        let page = "/page?set=Cache-Control:max-age%3D60";
        client.get(format!("{}{page}", gateway.url)).send().await?;
    }

    let browser = Browser::start(&chromium).await?;
    let mut page = browser.page().await?;

    // Without a token, the page asks for one, and shows nothing.
    open(&mut page, &format!("{}/dashboard", gateway.admin)).await?;
    let asked = page
        .eval(&when(
            "!document.getElementById('login').hidden",
            "document.getElementById('board').hidden",
            "the page did not ask for the token",
        ))
        .await?;
    assert_eq!(asked, true);

    // With it, in the fragment: the token request and 6 requests today.
    // (From a blank page: a change of fragment alone is not a load.)
    open(&mut page, "about:blank").await?;
    open(
        &mut page,
        &format!("{}/dashboard#token={TOKEN}", gateway.admin),
    )
    .await?;
    let today = page
        .eval(&when(
            "document.getElementById('today').textContent === '7'",
            "document.getElementById('today').textContent",
            "today's count never showed 7",
        ))
        .await?;
    assert_eq!(today, "7");
    let shown = page
        .eval(
            "JSON.stringify({
                services: document.getElementById('service-count').textContent,
                apps: document.getElementById('app-count').textContent,
                serviceRows: [...document.querySelectorAll('#services tr')].map(r => r.dataset.service + '=' + r.lastChild.textContent),
                appRows: [...document.querySelectorAll('#apps tr')].map(r => r.dataset.app + '=' + r.children[1].textContent),
                unhealthy: document.querySelectorAll('#services .unhealthy').length,
                sources: [...document.querySelectorAll('#services .source')].map(s => s.textContent.trim()),
                caches: [...document.querySelectorAll('#services .cache')].map(c => c.closest('tr').dataset.service + ': ' + c.textContent),
                series: [...document.querySelectorAll('#chart polyline')].map(p => p.dataset.series + ':' + p.getAttribute('points').split(' ').length),
            })",
        )
        .await?;
    let shown: serde_json::Value = serde_json::from_str(shown.as_str().context("JSON")?)?;
    assert_eq!(shown["services"], "2", "{shown}");
    assert_eq!(shown["apps"], "2", "{shown}");
    assert_eq!(shown["serviceRows"], json!(["api=4", "web=2"]), "{shown}");
    assert_eq!(shown["appRows"], json!(["app-a=4", "app-b=0"]), "{shown}");
    assert_eq!(shown["sources"], json!(["file", "file", "file"]), "{shown}");
    // web's cache holds the page it stored: some bytes of its 1 MiB.
    let caches = shown["caches"].as_array().context("caches")?;
    let [cache] = &caches[..] else {
        panic!("one service has a cache: {shown}");
    };
    let cache = cache.as_str().context("text")?;
    assert!(
        cache.starts_with("web: cache ") && cache.ends_with(" of 1 MiB") && !cache.contains(" 0 B"),
        "{shown}"
    );
    assert_eq!(
        shown["series"],
        json!(["yesterday:24", "today:24"]),
        "{shown}"
    );

    if let Some(file) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        std::fs::write(file, page.screenshot(1000, 900).await?)?;
    }
    Ok(())
}
