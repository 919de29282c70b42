//! The `step03-reverse-proxy` command line and how it assembles a proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::header::HeaderValue;
use hyper::{Method, Response, Uri};
use proxy_core::{DEFAULT_CLIENT_BODY_TIMEOUT, ProxyBody, TrustedProxies, complete_response};
use serving::{Binder, Launched, ServeFlags, Server, ServerHandle};

use crate::{
    Director, HttpTransport, ProxyError, ReverseProxy, Transport, TransportOptions, single_host,
};

/// An upstream URL: `http://…`, or `h2c://…` for HTTP/2 in cleartext
/// (what a gRPC server speaks).
pub fn parse_upstream(raw: &str) -> Result<Uri, String> {
    operator_input::upstream_url(raw, &["http", "h2c"])
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
    /// Answer 504 when the upstream sends no response head within this many
    /// seconds (fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = operator_input::seconds)]
    pub timeout: Option<Duration>,
    /// Close pooled upstream connections idle for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub pool_idle_timeout: u64,
    /// Answer 408 and end the upstream request when the client sends no
    /// request body bytes for this many seconds (nginx's
    /// client_body_timeout; fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = operator_input::seconds)]
    pub client_body_timeout: Duration,
    /// Threads, trusted proxies and the limits on clients.
    #[command(flatten)]
    pub serve: ServeFlags,
    /// Show the hooks the way the seed's demo does: a response header added
    /// by ModifyResponse, and a custom error page from ErrorHandler.
    #[arg(long)]
    pub demo_modify: bool,
}

impl ProxyOptions {
    /// What these flags say about forwarding.
    pub fn settings(&self) -> ProxySettings {
        ProxySettings {
            flush_interval: Duration::from_millis(self.flush_interval),
            timeout: self.timeout,
            client_body_timeout: self.client_body_timeout,
            demo_modify: self.demo_modify,
        }
    }

    /// How to reach upstreams: the defaults, with `--pool-idle-timeout`.
    pub fn transport(&self) -> TransportOptions {
        TransportOptions {
            pool_idle_timeout: Duration::from_secs(self.pool_idle_timeout),
            ..TransportOptions::default()
        }
    }
}

/// The longest a seconds flag may say: a year.
const MAX_SECS: u64 = operator_input::MAX_DURATION.as_secs();

/// How a proxy forwards, as plain data: the flags fill it
/// ([`ProxyOptions::settings`]), and so does a gateway service's table.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// Coalesce response writes over this long (zero: every frame as it arrives).
    pub flush_interval: Duration,
    /// Answer 504 when the upstream sends no response head in this time.
    pub timeout: Option<Duration>,
    /// Answer 408 when the client's body stalls this long.
    pub client_body_timeout: Duration,
    /// The seed's demo hooks: a header from ModifyResponse, an HTML error page.
    pub demo_modify: bool,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::ZERO,
            timeout: None,
            client_body_timeout: DEFAULT_CLIENT_BODY_TIMEOUT,
            demo_modify: false,
        }
    }
}

impl ProxySettings {
    /// The proxy these settings describe, sending upstream through
    /// `transport`; without a director, each request brings its own
    /// ([`ReverseProxy::serve_with`]).
    pub fn build<T: Transport>(&self, director: Option<Director>, transport: T) -> ReverseProxy<T> {
        let mut proxy = ReverseProxy::directed_by(director, transport)
            .flush_interval(Some(self.flush_interval))
            .timeout(self.timeout)
            .client_body_timeout(self.client_body_timeout);
        if self.demo_modify {
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
        proxy
    }
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
    let upstream = demo_backends::upstream_or_demo(args.upstream, binder, &mut launched).await?;
    let transport = HttpTransport::new(args.proxy.transport());
    let proxy = Arc::new(
        args.proxy
            .settings()
            .build(Some(single_host(upstream)), transport),
    );
    let listener = binder.bind(args.listen).await?;
    let server = Server::new(listener, "reverse proxy").options(args.proxy.serve.server_options());
    launched.push(serve(proxy, server, args.proxy.serve.trusted_proxies())?);
    Ok(launched)
}

/// Serve `proxy` on `server`, believing the forwarded client addresses of
/// `trusted` peers.
pub fn serve<T: Transport>(
    proxy: Arc<ReverseProxy<T>>,
    server: Server,
    trusted: TrustedProxies,
) -> std::io::Result<ServerHandle> {
    server.serve_clients(trusted, move |client, req| {
        let proxy = proxy.clone();
        async move { proxy.serve(&client, req).await }
    })
}
