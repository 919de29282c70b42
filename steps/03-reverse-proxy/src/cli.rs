//! The `step03-reverse-proxy` command line and how it assembles a proxy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::header::HeaderValue;
use hyper::http::uri::Scheme;
use hyper::service::service_fn;
use hyper::{Method, Response, Uri};
use ipnet::IpNet;
use proxy_core::{ProxyBody, TrustedProxies, complete_response};
use serving::{Binder, ConnectionFlags, Launched, Server, ServerHandle, ServerOptions};
use step02_reverse_proxy_minimal::{DEMO_ADDRS, parse_upstream_with, start_backends};

use crate::{
    ClientConn, Director, HttpTransport, ProxyError, ReverseProxy, Transport, TransportOptions,
    single_host,
};

/// An upstream URL: `http://…`, or `h2c://…` for HTTP/2 in cleartext
/// (what a gRPC server speaks).
pub fn parse_upstream(raw: &str) -> Result<Uri, String> {
    parse_upstream_with(raw, &[Scheme::HTTP, h2c()])
}

/// `h2c`: HTTP/2 over TCP without TLS, with prior knowledge (RFC 9113 §3.3).
pub fn h2c() -> Scheme {
    Scheme::try_from("h2c").expect("h2c is a valid scheme")
}

/// Command line of `step03-reverse-proxy`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step03-reverse-proxy",
    about = "Step 03: a clone of Go's httputil.ReverseProxy (hop-by-hop rules, X-Forwarded-*, upgrades, trailers, streaming, pooling)"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2002")]
    pub listen: SocketAddr,
    /// Where to send requests; may carry a path and query
    /// (http://127.0.0.1:2003/base?x=1); h2c://HOST:PORT speaks HTTP/2
    /// (cleartext, prior knowledge) to it. Without it, real servers start
    /// in-process on 127.0.0.1:2003 and :2004 and the first is used.
    #[arg(long, value_name = "URL", value_parser = parse_upstream)]
    pub upstream: Option<Uri>,
    #[command(flatten)]
    pub proxy: ProxyOptions,
}

/// The flags every reverse-proxy step shares (steps 04 and later flatten
/// them into their own command lines).
#[derive(clap::Args, Debug, Clone)]
pub struct ProxyOptions {
    /// Coalesce response writes over this many milliseconds (0: write every
    /// frame as it arrives).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub flush_interval: u64,
    /// Answer 504 when the upstream sends no response head within this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Close pooled upstream connections idle for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 90)]
    pub pool_idle_timeout: u64,
    /// Runtime worker threads (default: the cores this process may use).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The limits every server here puts on its clients.
    #[command(flatten)]
    pub connections: ConnectionFlags,
    /// A proxy (or load balancer) in front of this one, whose
    /// X-Forwarded-For names the client; repeat for several. The client is
    /// then the right-most address no trusted proxy wrote, for forwarding
    /// headers, allow/deny lists, rate limits and hashing.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<IpNet>,
    /// Show the hooks the way the seed's demo does: a response header added
    /// by ModifyResponse, and a custom error page from ErrorHandler.
    #[arg(long)]
    pub demo_modify: bool,
}

impl ProxyOptions {
    /// The runtime `--threads` asks for ([`serving::runtime`]).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        serving::runtime(self.threads)
    }

    /// The peers whose forwarded client addresses are believed.
    pub fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies::new(self.trusted_proxies.clone())
    }

    /// Connection settings for the listening side.
    pub fn server_options(&self) -> ServerOptions {
        self.connections.server_options()
    }

    /// The proxy these options describe, around `director`.
    pub fn build(&self, director: Director) -> anyhow::Result<ReverseProxy> {
        self.build_with(Some(director), HttpTransport::new(self.transport()))
    }

    /// How to reach upstreams: the defaults, with `--pool-idle-timeout`.
    pub fn transport(&self) -> TransportOptions {
        TransportOptions {
            pool_idle_timeout: Duration::from_secs(self.pool_idle_timeout),
            ..TransportOptions::default()
        }
    }

    /// The same, sending upstream through `transport` (step 07's speaks
    /// TLS); without a director, each request brings its own
    /// ([`ReverseProxy::serve_with`]).
    pub fn build_with<T: Transport>(
        &self,
        director: Option<Director>,
        transport: T,
    ) -> anyhow::Result<ReverseProxy<T>> {
        build(self, director, transport)
    }
}

fn build<T: Transport>(
    args: &ProxyOptions,
    director: Option<Director>,
    transport: T,
) -> anyhow::Result<ReverseProxy<T>> {
    let timeout = match args.timeout {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => anyhow::bail!("--timeout must be a positive number of seconds, got {secs}"),
        None => None,
    };
    let mut proxy = ReverseProxy::directed_by(director, transport)
        .flush_interval(Some(Duration::from_millis(args.flush_interval)))
        .timeout(timeout);
    if args.demo_modify {
        proxy = proxy
            .modify_response(Arc::new(|response| {
                response.headers_mut().insert(
                    "x-modified-by",
                    HeaderValue::from_static("step03-reverse-proxy"),
                );
                Ok(())
            }))
            .error_handler(Arc::new(demo_error_page));
    }
    Ok(proxy)
}

/// The `--demo-modify` error handler: an HTML page instead of plain text.
fn demo_error_page(method: &Method, uri: &Uri, error: ProxyError) -> Response<ProxyBody> {
    tracing::warn!("{method} {uri}: {error}");
    let page = format!(
        "<!doctype html><title>upstream trouble</title><h1>{} — the upstream could not answer</h1><p>{error}</p>\n",
        error.status().as_u16()
    );
    complete_response(error.status(), "text/html; charset=utf-8", page)
}

/// Start the proxy (and the real servers, when no upstream was given).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let upstream = match args.upstream.clone() {
        Some(upstream) => upstream,
        None => {
            let backends = start_backends(binder, &DEMO_ADDRS).await?;
            let first = backends.servers[0].url().parse()?;
            launched.extend(backends);
            first
        }
    };
    tracing::info!("proxying every request to {upstream}");
    let proxy = Arc::new(args.proxy.build(single_host(upstream))?);
    let listener = binder.bind(args.listen).await?;
    let server = Server::new(listener, "reverse proxy").options(args.proxy.server_options());
    launched.push(serve(proxy, server, args.proxy.trusted_proxies())?);
    Ok(launched)
}

/// Serve `proxy` to plain-HTTP clients on `server`, believing the
/// forwarded client addresses of `trusted` peers.
pub fn serve<T: Transport>(
    proxy: Arc<ReverseProxy<T>>,
    server: Server,
    trusted: TrustedProxies,
) -> std::io::Result<ServerHandle> {
    let trusted = Arc::new(trusted);
    server.spawn(move |peer| {
        let (proxy, trusted) = (proxy.clone(), trusted.clone());
        let conn = ClientConn::new(peer, "http");
        service_fn(move |req| {
            let client = trusted
                .client_of(&conn, req.headers())
                .unwrap_or_else(|| conn.clone());
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.serve(&client, req).await) }
        })
    })
}
