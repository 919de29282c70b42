//! Step 06: websockets through the balanced, middleware-guarded proxy.
//!
//! Step 03 already tunnels a 101 and step 05 puts the chain in front of it,
//! so a websocket works through step 05 as it is. What this step adds is
//! what a websocket service needs from a proxy beyond "it connects":
//!
//! * **sticky placement** — the default is `--balance consistent-hash
//!   --hash-key client-ip`. A websocket session keeps state on the backend
//!   that accepted it (subscriptions, a game room, a half-sent upload); when
//!   the connection drops and the browser reconnects, it should land on the
//!   same backend, and hashing the client address does that without any
//!   shared session store. Round-robin would scatter the reconnects;
//! * **tunnels that end well** ([`tunnel`]): an idle timeout, and close
//!   frames to both sides at shutdown instead of a dropped socket;
//! * the **handshake made visible** ([`handshake`]): the client behind
//!   `cargo run -- --websocket URL`, and real_server's `/ws-demo` page for a
//!   browser.
//!
//! Every step 05 flag works here too (a websocket passes the chain like any
//! request: it is rate limited, authenticated and counted at its handshake).
//!
//! Left out on purpose: inspecting or rewriting messages, and websockets
//! over HTTP/2 (RFC 8441's extended CONNECT; browsers fall back to HTTP/1.1).

pub mod frames;
pub mod handshake;
pub mod tunnel;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args as _, Command, FromArgMatches};
use middleware::Chain;
use proxy_core::Transport;
use serving::{Binder, Launched, Server};
use step03_reverse_proxy::HttpTransport;

pub use tunnel::Tunnels;

/// Command line of `step06-websocket`: step 05's, plus the tunnel settings.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "websocket")]
pub struct Args {
    #[command(flatten)]
    pub middleware: step05_middleware::Args,
    /// Close a websocket when nothing has crossed it, either way, for this
    /// long (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = operator_input::duration)]
    pub idle_timeout: Duration,
    /// Keep at most this many websockets open; more are closed right after
    /// their handshake with 1013 (try again later).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = operator_input::count)]
    pub max_tunnels: usize,
}

impl Args {
    /// The command line with this step's defaults (sticky placement).
    pub fn command() -> Command {
        sticky_defaults(Self::augment_args(Command::new("step06-websocket")))
            .about("Step 06: websockets through the balanced, guarded proxy — sticky by client IP, idle timeouts, clean closes")
    }

    pub fn try_parse_from<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::from_arg_matches(&Self::command().try_get_matches_from(argv)?)
    }

    /// Parse the process's arguments; print help or the error and exit as clap does.
    pub fn parse() -> Self {
        Self::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }
}

/// Start the proxy (and three real servers, when no upstream was given).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let transport = HttpTransport::new(args.middleware.proxy.transport());
    let chain = build(&args, binder, &mut launched, transport).await?;
    let server = Server::new(
        binder.bind(args.middleware.listen).await?,
        "websocket proxy",
    )
    .options(args.middleware.proxy.serve.server_options());
    launched.push(step05_middleware::serve(
        chain,
        server,
        args.middleware.proxy.serve.trusted_proxies(),
    )?);
    tracing::info!("a browser demo is at /ws-demo");
    Ok(launched)
}

/// Step 05's chain with websocket-aware tunnels, which `launched` closes
/// at shutdown. Step 07 serves the same chain over TLS.
pub async fn build<T: Transport>(
    args: &Args,
    binder: &Binder,
    launched: &mut Launched,
    transport: T,
) -> anyhow::Result<Arc<Chain>> {
    let tunnels = Tunnels::new(args.idle_timeout, args.max_tunnels);
    let handler = tunnels.handler();
    let chain = step05_middleware::build(&args.middleware, binder, launched, transport, |proxy| {
        proxy.on_upgrade(handler)
    })
    .await?;
    tracing::info!("websocket tunnels close after {:?} idle", args.idle_timeout);
    launched.on_shutdown(move || async move { tunnels.close_all().await });
    Ok(chain)
}

/// This step's defaults on a command line that flattens [`Args`]: sticky
/// placement by client address.
pub fn sticky_defaults(command: Command) -> Command {
    command
        .mut_arg("balance", |arg| arg.default_value("consistent-hash"))
        .mut_arg("hash_key", |arg| arg.default_value("client-ip"))
}
