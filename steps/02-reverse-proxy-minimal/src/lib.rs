//! Step 02: the minimal reverse proxy — the seed's "simple version".
//!
//! A reverse proxy works for the server: the client never names the target,
//! the proxy picks it. The whole job fits in four moves:
//!
//! 1. take the client's request;
//! 2. point it at the upstream ([`target_uri`]: scheme and host from the
//!    upstream, paths joined with exactly one slash, queries joined with `&`);
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
use hyper::http::uri::{PathAndQuery, Scheme};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
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
pub fn parse_upstream(raw: &str) -> Result<Uri, String> {
    parse_upstream_with(raw, &[Scheme::HTTP])
}

/// The same, for steps that also speak other schemes upstream (`https`
/// from step 04 on, where the transport decides what it can reach).
pub fn parse_upstream_with(raw: &str, schemes: &[Scheme]) -> Result<Uri, String> {
    let uri: Uri = raw
        .parse()
        .map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    let known = uri.scheme().is_some_and(|s| schemes.contains(s));
    if !known || uri.authority().is_none() {
        let names: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(format!(
            "{raw:?}: an upstream must be a {} URL with a host, e.g. http://127.0.0.1:2003",
            names.join(" or ")
        ));
    }
    Ok(uri)
}

/// Where the demo backends listen when no `--upstream` is given.
pub const DEMO_ADDRS: [&str; 2] = ["127.0.0.1:2003", "127.0.0.1:2004"];

/// What a step does when no `--upstream` was given: start real servers on
/// `addrs` in-process, so `cargo run -p stepNN-…` alone shows the step
/// working. The test backends are a default feature (`backends`): a crate
/// that uses a chapter's library leaves them out with
/// `default-features = false`, and then a missing `--upstream` is an error.
pub async fn start_backends(binder: &Binder, addrs: &[&str]) -> anyhow::Result<Launched> {
    #[cfg(feature = "backends")]
    return real_server::launch_for_step(binder, addrs).await;
    #[cfg(not(feature = "backends"))]
    {
        let _ = (binder, addrs);
        anyhow::bail!(
            "no --upstream given, and this build has no test backends to start in-process (the `backends` feature is off)"
        )
    }
}

/// Start the proxy (and the real servers, when no upstream was given).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let upstream = match args.upstream {
        Some(upstream) => upstream,
        None => {
            let backends = start_backends(binder, &DEMO_ADDRS).await?;
            let first = backends.servers[0].url().parse()?;
            launched.extend(backends);
            first
        }
    };
    let listener = binder.bind(args.listen).await?;
    tracing::info!("proxying every request to {upstream}");
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

/// Join two URL paths with exactly one slash between them (Go's
/// `singleJoiningSlash`): `/base` + `/x`, `/base/` + `/x` and `/base` + `x`
/// all give `/base/x`.
pub fn join_paths(base: &str, path: &str) -> String {
    match (base.ends_with('/'), path.starts_with('/')) {
        (true, true) => format!("{base}{}", &path[1..]),
        (false, false) => format!("{base}/{path}"),
        _ => format!("{base}{path}"),
    }
}

/// The URL of `incoming` moved onto `upstream`: the upstream's scheme and
/// host, the two paths joined, the two queries joined with `&` (upstream's
/// first).
pub fn target_uri(upstream: &Uri, incoming: &Uri) -> Uri {
    let mut parts = upstream.clone().into_parts();
    // The common case — an upstream without path or query — needs no
    // joining: the incoming path and query move over as they are.
    if upstream.path() == "/" && upstream.query().is_none() {
        parts.path_and_query = incoming.path_and_query().cloned();
        if let Ok(uri) = Uri::from_parts(parts) {
            return uri;
        }
        parts = upstream.clone().into_parts();
    }
    let path = join_paths(upstream.path(), incoming.path());
    let path_and_query = match join_queries(upstream.query(), incoming.query()) {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    parts.path_and_query = Some(
        PathAndQuery::try_from(path_and_query)
            .expect("joining two valid paths and queries stays valid"),
    );
    Uri::from_parts(parts).expect("scheme and authority come from a valid upstream")
}

/// The upstream's query and the request's, joined with `&` (upstream's
/// first); an empty query counts as none, so no stray `&` or `?` appears.
pub fn join_queries(upstream: Option<&str>, incoming: Option<&str>) -> Option<String> {
    let (upstream, incoming) = (
        upstream.filter(|q| !q.is_empty()),
        incoming.filter(|q| !q.is_empty()),
    );
    match (upstream, incoming) {
        (Some(a), Some(b)) => Some(format!("{a}&{b}")),
        (Some(q), None) | (None, Some(q)) => Some(q.to_owned()),
        (None, None) => None,
    }
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
            Ok(response) => response.map(BodyExt::boxed),
            Err(e) => text_response(
                StatusCode::BAD_GATEWAY,
                format!("upstream request failed: {}", error_chain(&e)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_with_exactly_one_slash() {
        assert_eq!(join_paths("/base", "/x"), "/base/x");
        assert_eq!(join_paths("/base/", "/x"), "/base/x");
        assert_eq!(join_paths("/base", "x"), "/base/x");
        assert_eq!(join_paths("/", "/x"), "/x");
    }

    #[test]
    fn queries_join_with_an_ampersand() {
        let upstream: Uri = "http://10.0.0.1:9000/base?a=1".parse().unwrap();
        let cases = [
            ("/x?b=2", "http://10.0.0.1:9000/base/x?a=1&b=2"),
            ("/x", "http://10.0.0.1:9000/base/x?a=1"),
        ];
        for (incoming, expected) in cases {
            assert_eq!(target_uri(&upstream, &incoming.parse().unwrap()), expected);
        }
        let bare: Uri = "http://10.0.0.1:9000".parse().unwrap();
        assert_eq!(
            target_uri(&bare, &"/x?b=2".parse().unwrap()),
            "http://10.0.0.1:9000/x?b=2"
        );
    }

    #[test]
    fn an_upstream_must_be_http_with_a_host() {
        assert!(parse_upstream("http://127.0.0.1:2003/base?x=1").is_ok());
        for bad in ["ftp://host", "/just/a/path", "https://host", "not a url"] {
            assert!(parse_upstream(bad).is_err(), "{bad}");
        }
    }
}
