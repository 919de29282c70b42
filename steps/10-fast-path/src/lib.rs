//! Step 10: `step10_fast_path`, step 03's reverse proxy on a data path built
//! for proxying.
//!
//! Step 03 costs about 1.3 times nginx's CPU per request, and profiles put
//! most of it in machinery a proxy does not need: a general HTTP library
//! that turns every head into a header map and back, a body channel between
//! two connections' state machines, a task per upstream connection. This
//! step keeps step 03's behaviour — DESIGN.md's list — and moves the bytes
//! itself:
//!
//! - [`head`]: heads parsed by `httparse` into offsets in the connection's
//!   buffer, checked once against RFC 9112's smuggling rules;
//! - [`forward`]: the outgoing head written by copying byte ranges, with
//!   only the edits a proxy must make;
//! - [`chunked`]: chunked bodies followed without decoding, strictly;
//! - [`exchange`]: one task per client connection drives its upstream
//!   connection too, one buffer each way;
//! - [`pool`]: idle upstream connections.
//!
//! The serving side (accept loop, connection caps, send timeout, graceful
//! shutdown) is the one every step shares (`serving`). NOTES chapter 10
//! says what each choice saved, measured.
//!
//! Left out on purpose: HTTP/2 (from clients and to upstreams), TLS, and
//! the hooks step 03 exposes (director, modify-response, error handler):
//! this step is one fixed behaviour, the one step 03 shows by default.

pub mod chunked;
pub mod exchange;
pub mod forward;
pub mod head;
pub mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::Uri;
use serving::{Binder, ConnectionFlags, Launched, Server};

use exchange::{FastPath, Settings};
use forward::Upstream;

/// Command line of `step10-fast-path`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step10-fast-path",
    about = "Step 10: step 03's reverse proxy on a data path built for proxying (HTTP/1.1)"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2002")]
    pub listen: SocketAddr,
    /// Where to send requests (http:// only); may carry a path and query.
    /// Without it, real servers start in-process on 127.0.0.1:2003 and
    /// :2004 and the first is used.
    #[arg(long, value_name = "URL", value_parser = parse_upstream)]
    pub upstream: Option<Uri>,
    /// Answer 504 when the upstream sends no response head within this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Close pooled upstream connections idle for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 90)]
    pub pool_idle_timeout: u64,
    /// A proxy (or load balancer) in front of this one, whose
    /// X-Forwarded-For names the client; repeat for several.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Runtime worker threads (default: the cores this process may use).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub connections: ConnectionFlags,
}

/// An http:// URL (this step speaks HTTP/1.1 only).
fn parse_upstream(raw: &str) -> Result<Uri, String> {
    step02_reverse_proxy_minimal::parse_upstream_with(raw, &[hyper::http::uri::Scheme::HTTP])
}

impl Args {
    /// The runtime `--threads` asks for ([`serving::runtime`]).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        serving::runtime(self.threads)
    }
}

/// Start the fast path (and the real servers, when no upstream was given).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let upstream = match args.upstream.clone() {
        Some(upstream) => upstream,
        None => {
            let backends = step02_reverse_proxy_minimal::start_backends(
                binder,
                &step02_reverse_proxy_minimal::DEMO_ADDRS,
            )
            .await?;
            let first = backends.servers[0].url().parse()?;
            launched.extend(backends);
            first
        }
    };
    tracing::info!("proxying every request to {upstream}");
    let authority = upstream
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| anyhow::anyhow!("{upstream}: no host"))?;
    let connect_to = if upstream.port().is_some() {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let base_path = match upstream.path() {
        "/" => String::new(),
        path => path.to_owned(),
    };
    let options = args.connections.server_options();
    let settings = Settings {
        upstream: Upstream {
            authority,
            base_path,
            base_query: upstream.query().map(str::to_owned),
        },
        connect_to,
        connect_timeout: Duration::from_secs(5),
        header_timeout: options
            .header_read_timeout
            .unwrap_or(Duration::from_secs(3600)),
        response_timeout: args.timeout.map(Duration::from_secs_f64),
        trusted: proxy_core::TrustedProxies::new(args.trusted_proxies.clone()),
    };
    let path = Arc::new(FastPath {
        settings,
        pool: pool::Pool::new(1024, Duration::from_secs(args.pool_idle_timeout)),
    });
    let listener = binder.bind(args.listen).await?;
    let server = Server::new(listener, "fast path").options(options);
    launched.push(server.spawn_streams("http", move |stream, peer, stopping| {
        exchange::serve(path.clone(), stream, peer, stopping)
    })?);
    Ok(launched)
}
