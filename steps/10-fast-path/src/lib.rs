//! Step 10: `step10_fast_path`, step 03's reverse proxy on a data path built
//! for proxying.
//!
//! Step 03 costs about 1.3 times nginx's CPU per request, and profiles put
//! most of it in machinery a proxy does not need: a general HTTP library
//! that turns every head into a header map and back, a body channel between
//! two connections' state machines, a task per upstream connection. This
//! step keeps step 03's behaviour — NOTES chapter 3's list — and moves the bytes
//! itself:
//!
//! - [`head`]: heads parsed by `httparse` into offsets in the connection's
//!   buffer, checked once against RFC 9112's smuggling rules;
//! - [`forward`]: the outgoing head written by copying byte ranges, with
//!   only the edits a proxy must make;
//! - [`chunked`]: chunked bodies followed without decoding, strictly;
//! - [`exchange`]: one task per client connection drives its upstream
//!   connection too, one buffer each way;
//! - [`pool`]: idle upstream connections;
//! - [`hooks`]: where a proxy on this engine decides (step 10's own decide
//!   nothing: one upstream for everything; the gateway's route, limit and
//!   balance).
//!
//! The serving side (accept loop, connection caps, send timeout, graceful
//! shutdown) is the one every step shares (`serving`). NOTES chapter 10
//! says what each choice saved, measured.
//!
//! Step 10's binary serves plain HTTP/1.1. The engine serves whatever
//! client stream it is given ([`exchange::Client`]): the gateway gives it
//! TLS ones too, and hands to hyper behind it the HTTP/2 clients it spots.
//!
//! Left out on purpose: HTTP/2 (from clients and to upstreams), and
//! step 03's hooks for a learner's own code (director, modify-response,
//! error handler): this step is one fixed behaviour, the one step 03
//! shows by default.

pub mod buffers;
pub mod chunked;
pub mod exchange;
pub mod forward;
pub mod head;
pub mod hooks;
pub mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::Uri;
use serving::{Binder, Launched, ServeFlags, Server};

use exchange::{FastPath, Settings};
use hooks::{Destination, Fixed};

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
    /// Answer 504 when the upstream sends no response head within this many
    /// seconds (fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = operator_input::seconds)]
    pub timeout: Option<Duration>,
    /// Close pooled upstream connections idle for this many seconds.
    #[arg(long, value_name = "SECS", default_value = "90", value_parser = operator_input::seconds)]
    pub pool_idle_timeout: Duration,
    /// Answer 408 and end the upstream request when the client sends no
    /// request body bytes for this many seconds (nginx's
    /// client_body_timeout; fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = operator_input::seconds)]
    pub client_body_timeout: Duration,
    /// Threads, trusted proxies and the limits on clients.
    #[command(flatten)]
    pub serve: ServeFlags,
}

/// An http:// URL (this step speaks HTTP/1.1 only).
fn parse_upstream(raw: &str) -> Result<Uri, String> {
    operator_input::upstream_url(raw, &["http"])
}

/// Start the fast path (and the real servers, when no upstream was given).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let upstream = demo_backends::upstream_or_demo(args.upstream, binder, &mut launched).await?;
    let options = args.serve.server_options();
    let destination =
        Destination::for_url(&upstream, pool::Pool::new(1024, args.pool_idle_timeout))
            .ok_or_else(|| anyhow::anyhow!("{upstream}: no host"))?;
    let settings = Settings {
        connect_timeout: Duration::from_secs(5),
        header_timeout: options
            .header_read_timeout
            .unwrap_or(Duration::from_secs(3600)),
        response_timeout: args.timeout,
        client_body_timeout: args.client_body_timeout,
        trusted: args.serve.trusted_proxies(),
    };
    let path = Arc::new(FastPath {
        settings,
        hooks: Fixed(destination),
        buffers: buffers::Store::default(),
    });
    let listener = binder.bind(args.listen).await?;
    let server = Server::new(listener, "fast path").options(options);
    launched.push(server.spawn_streams("http", move |stream, peer, stopping| {
        exchange::serve(path.clone(), stream, peer, stopping)
    })?);
    Ok(launched)
}
