//! Chapter 7: HTTPS — termination with a generated certificate, ALPN, a
//! client that does not trust it, verified upstreams, the redirect.

use std::net::SocketAddr;
use std::path::Path;

use serving::{Binder, Launched};

use crate::Report;

async fn proxy(binder: &Binder, flags: &[&str]) -> anyhow::Result<Launched> {
    let argv = ["step07-https"].into_iter().chain(flags.iter().copied());
    step07_https::launch(step07_https::Args::try_parse_from(argv)?, binder).await
}

fn addr(launched: &Launched) -> anyhow::Result<SocketAddr> {
    Ok(launched
        .get("https proxy")
        .ok_or_else(|| anyhow::anyhow!("no https proxy"))?
        .addr())
}

/// A client trusting only the certificate in `pem`; `http1` limits its ALPN offer.
fn client(pem: &Path, http1: bool) -> anyhow::Result<reqwest::Client> {
    let root = reqwest::Certificate::from_pem(&std::fs::read(pem)?)?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if http1 {
        builder = builder.http1_only();
    }
    Ok(builder.build()?)
}

pub async fn run(report: &mut Report) -> anyhow::Result<()> {
    report.chapter(7, "HTTPS (step07-https)");
    let binder = Binder::ephemeral();
    let dir = std::env::temp_dir().join(format!("proxy-workbench-tour-{}", std::process::id()));
    let cert = dir.join("front.pem");
    let cert_flag = cert.display().to_string();
    let front = proxy(
        &binder,
        &["--cert-out", &cert_flag, "--redirect-http", "127.0.0.1:0"],
    )
    .await?;
    let url = format!("https://{}", addr(&front)?);
    report.line(
        "No --tls-cert: a self-signed certificate for localhost and 127.0.0.1 was generated.",
    );
    for (offer, http1) in [("h2 and http/1.1", false), ("http/1.1 only", true)] {
        let response = client(&cert, http1)?
            .get(format!("{url}/hello"))
            .header("accept", "text/plain")
            .send()
            .await?;
        let version = response.version();
        let text = response.text().await?;
        let proto = text
            .lines()
            .find(|l| l.trim_start().starts_with("x-forwarded-proto"))
            .unwrap_or("")
            .trim();
        report.indented(format!(
            "a client offering {offer:<16} → {version:?}; the backend saw {proto}"
        ));
    }
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .build()?;
    let refused = match untrusting.get(&url).send().await {
        Ok(response) => format!("answered {}", response.status()),
        Err(e) => format!("refused: {}", proxy_core::error_chain(&e)),
    };
    report.indented(format!(
        "a client trusting only the system roots: {refused}"
    ));
    let redirect = front
        .get("https redirect")
        .map(|s| s.addr().to_string())
        .unwrap_or_default();
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?
        .get(format!("http://{redirect}/page?x=1"))
        .send()
        .await?;
    report.indented(format!(
        "--redirect-http: GET http://…/page?x=1 → {} to {}",
        response.status(),
        response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("?")
    ));

    report.blank();
    report.line("A second proxy with the first as its https upstream:");
    let upstream = url.clone();
    for (label, extra) in [
        ("verifying against the system roots", None),
        (
            "with --upstream-ca <the first proxy's certificate>",
            Some(cert_flag.as_str()),
        ),
    ] {
        let back_cert = dir.join("back.pem").display().to_string();
        let mut flags = vec![
            "--upstream",
            upstream.as_str(),
            "--cert-out",
            back_cert.as_str(),
        ];
        if let Some(ca) = extra {
            flags.extend(["--upstream-ca", ca]);
        }
        let back = proxy(&binder, &flags).await?;
        let response = client(Path::new(&back_cert), false)?
            .get(format!("https://{}/", addr(&back)?))
            .send()
            .await?;
        let status = response.status();
        let why = if status.is_success() {
            String::new()
        } else {
            format!(": {}", response.text().await?.trim_end())
        };
        report.indented(format!("{label}: {}{why}", status.as_u16()));
        back.shutdown().await;
    }
    front.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
