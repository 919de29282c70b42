//! Step 02: the minimal reverse proxy — the seed's "simple version".
//!
//! A reverse proxy works for the server: the client never names the target,
//! the proxy picks it. The whole job fits in four moves:
//!
//! 1. take the client's request;
//! 2. point it at the upstream (`proxy_core::target::target_uri`: scheme
//!    and host from the upstream, paths joined with exactly one slash,
//!    queries joined with `&` — every later proxy joins the same way);
//! 3. send it with a pooled client;
//! 4. copy status, headers and body back.
//!
//! That is all this step does, on purpose, so that step 03's additions show
//! as differences. What it lacks, in the seed's list: an error callback and
//! logging, a hook to modify the response, load balancing, URL rewriting,
//! rate limiting / circuit breaking / degradation, statistics, auth. And the
//! protocol gaps a real proxy must close, each pinned by a test in
//! `tests/minimal.rs`: hop-by-hop headers pass straight through (both ways),
//! no `X-Forwarded-For`, the `Host` the upstream sees is the proxy's,
//! protocol upgrades (websockets) are not tunnelled, and there is no
//! defence against a slow or broken upstream beyond a bare 502.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proxy_core::target::target_uri;
use proxy_core::{ProxyBody, error_chain, text_response};
use serving::{Binder, Launched, Server};

/// Command line of `step02-reverse-proxy-minimal`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step02-reverse-proxy-minimal",
    about = "Step 02: the minimal reverse proxy (rewrite the URL, send, copy the answer back)"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2002")]
    pub listen: SocketAddr,
    /// Where to send requests, e.g. http://127.0.0.1:2003/base?key=v. Without
    /// it, real servers start in-process on 127.0.0.1:2003 and :2004 and the
    /// proxy uses the first.
    #[arg(long, value_name = "URL", value_parser = parse_upstream)]
    pub upstream: Option<Uri>,
}

/// An upstream is an `http://` URL with a host; it may carry a path and query.
fn parse_upstream(raw: &str) -> Result<Uri, String> {
    operator_input::upstream_url(raw, &["http"])
}

/// Start the proxy (and the real servers, when no upstream was given).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let upstream = demo_backends::upstream_or_demo(args.upstream, binder, &mut launched).await?;
    let listener = binder.bind(args.listen).await?;
    let proxy = Arc::new(MinimalProxy::new(upstream));
    launched.push(
        Server::new(listener, "minimal reverse proxy").spawn(move |_peer| {
            let proxy = proxy.clone();
            service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req).await) }
            })
        })?,
    );
    Ok(launched)
}

/// The simple proxy: one upstream and a pooled client.
pub struct MinimalProxy {
    upstream: Uri,
    client: Client<HttpConnector, Incoming>,
}

impl MinimalProxy {
    pub fn new(upstream: Uri) -> Self {
        Self {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        // 1. take the request, 2. point it at the upstream…
        let (mut parts, body) = req.into_parts();
        parts.uri = target_uri(&self.upstream, &parts.uri);
        parts.version = Version::HTTP_11;
        // 3. …send it…
        match self.client.request(Request::from_parts(parts, body)).await {
            // 4. …and copy the answer back, headers and all.
            Ok(response) => response.map(|body| body.map_err(Into::into).boxed()),
            Err(e) => text_response(
                StatusCode::BAD_GATEWAY,
                format!("upstream request failed: {}", error_chain(&e)),
            ),
        }
    }
}
