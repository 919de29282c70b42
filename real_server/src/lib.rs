//! `real_server`: the backends that every step of the course proxies to.
//!
//! A proxy is only as observable as the server behind it, so this crate is a
//! small httpbin: every endpoint makes one proxy behaviour visible from the
//! outside. The echo endpoint reports what actually arrived (headers in
//! order, the client address the server saw, body length and digest), so a
//! test can tell what a proxy added, removed or mangled. The other endpoints
//! produce the awkward traffic a proxy must carry: slow streams, server-sent
//! events, large bodies, trailers, websockets, failures on demand.
//!
//! | path | answer |
//! |---|---|
//! | any other path | echo of the request (JSON; lines with `Accept: text/plain`) |
//! | `/status/{code}` | that status |
//! | `/delay/{ms}` | 200 after waiting `ms` |
//! | `/stream/{n}?interval_ms=` | `n` chunks, each flushed on its own |
//! | `/sse?n=&interval_ms=` | `text/event-stream` |
//! | `/bytes/{n}` | `n` deterministic bytes ([`pattern_byte`]) |
//! | `/trailers?announce=` | chunked body followed by trailers |
//! | `/ws?greet=` | websocket echo |
//! | `/ws-demo` | a page that talks to `/ws` on the host it was loaded from |
//! | `/health`, `POST /health/down`, `POST /health/up` | 200, or 503 while down |
//! | `/flaky?fail_percent=P` | 500 with probability P % |
//! | `/headers` | `ok` (with `set=`, below, the headers a test asks for) |
//! | `/requests` | how many requests this server answered before this one |
//!
//! Every response carries `x-served-by: ip:port`, so load-balancing tests can
//! see which backend answered without parsing bodies. Every endpoint takes
//! `set=Name:Value` (repeatable) and adds that header to its answer; and
//! when it sets an `ETag` that the request's `If-None-Match` names, the
//! answer is `304 Not Modified`, as an origin's would be — what a cache in
//! front of it (chapter 9) needs to see.
//!
//! Left out on purpose: TLS of its own ([`serve`] runs the endpoints on a
//! server the caller may have put behind TLS), persistence, and any
//! configuration beyond the listen address: a test backend should behave the
//! same every time.

pub mod browser;
mod echo;
mod endpoints;
pub mod grpc;
pub mod redis;
mod respond;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use clap::Parser;
use hyper::service::service_fn;
use serving::{Binder, Launched, Server, ServerHandle};
use tokio::net::TcpListener;

pub use echo::Echo;
pub use endpoints::pattern_byte;

/// The name every real server reports in logs and in [`ServerHandle::name`].
pub const NAME: &str = "real server";

/// Where `cargo run -p real_server` and the steps' demo mode listen.
pub const DEFAULT_ADDRS: [&str; 2] = ["127.0.0.1:2003", "127.0.0.1:2004"];

/// Command line of the `real_server` binary.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "real_server",
    about = "Test backends for the proxy workbench: echo, status, delay, stream, sse, bytes, trailers, websocket, health, flaky"
)]
pub struct Args {
    /// Address to listen on; repeat the flag to start several servers.
    #[arg(long = "listen", value_name = "ADDR", default_values = DEFAULT_ADDRS)]
    pub listen: Vec<SocketAddr>,
    /// Register each server's URL in ZooKeeper, as an ephemeral node under
    /// PATH, e.g. zk://127.0.0.1:2181/workbench/services/api; deleted at
    /// SIGTERM before the server stops, and by ZooKeeper when the server
    /// dies and its session expires.
    #[arg(long, value_name = "zk://HOST:PORT/PATH", value_parser = parse_registry)]
    pub register: Option<(String, String)>,
}

/// `zk://HOST:PORT[,HOST:PORT…]/PATH` → (servers, path).
fn parse_registry(raw: &str) -> Result<(String, String), String> {
    let rest = raw
        .strip_prefix("zk://")
        .ok_or_else(|| format!("{raw:?}: expected zk://HOST:PORT/PATH"))?;
    let (servers, path) = rest
        .split_once('/')
        .filter(|(servers, path)| !servers.is_empty() && !path.is_empty())
        .ok_or_else(|| format!("{raw:?}: expected zk://HOST:PORT/PATH, with a path"))?;
    Ok((
        servers.to_owned(),
        format!("/{}", path.trim_end_matches('/')),
    ))
}

/// Start one real server per `--listen` address.
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    for addr in args.listen {
        launched.push(spawn(binder.bind(addr).await?)?);
    }
    if let Some((servers, path)) = args.register {
        let registrations: Vec<_> = launched
            .servers
            .iter()
            .map(|server| {
                discovery::registration::register(servers.clone(), path.clone(), server.url())
            })
            .collect();
        launched.before_shutdown(move || async move {
            for registration in registrations {
                registration.leave().await;
            }
        });
    }
    Ok(launched)
}

/// The `real_server` binary: its command line, served until SIGTERM or
/// Ctrl-C.
pub async fn run_command_line() -> anyhow::Result<()> {
    serving::init_tracing();
    let launched = launch(Args::parse(), &Binder::exact()).await?;
    launched.serve_until_signal().await;
    Ok(())
}

/// Start the two servers on their default addresses.
pub async fn launch_defaults(binder: &Binder) -> anyhow::Result<Launched> {
    launch(Args::parse_from(["real_server"]), binder).await
}

/// What a step does when no `--upstream` was given: start real servers on
/// `addrs` in-process and say so, so `cargo run -p stepNN-…` alone works.
pub async fn launch_for_step(binder: &Binder, addrs: &[&str]) -> anyhow::Result<Launched> {
    let args = Args::parse_from(
        std::iter::once("real_server").chain(addrs.iter().flat_map(|addr| ["--listen", addr])),
    );
    let launched = launch(args, binder).await?;
    let addrs: Vec<String> = launched
        .servers
        .iter()
        .map(|s| s.addr().to_string())
        .collect();
    tracing::info!(
        "no --upstream given: started real servers on {} in-process",
        addrs.join(" and ")
    );
    Ok(launched)
}

/// Serve the real server's endpoints on `listener`.
pub fn spawn(listener: TcpListener) -> std::io::Result<ServerHandle> {
    serve(Server::new(listener, NAME))
}

/// Serve the endpoints on a server set up by the caller — step 07's tests
/// put one behind TLS to play an HTTPS upstream.
pub fn serve(server: Server) -> std::io::Result<ServerHandle> {
    let state = Arc::new(State {
        addr: server.local_addr()?,
        healthy: AtomicBool::new(true),
        requests: AtomicU64::new(0),
    });
    server.spawn(move |peer| {
        let state = state.clone();
        service_fn(move |req| endpoints::route(state.clone(), peer, req))
    })
}

/// What one server instance shares between its connections.
struct State {
    addr: SocketAddr,
    healthy: AtomicBool,
    /// Requests answered so far (`/requests`).
    requests: AtomicU64,
}

/// Start `command` — a workbench binary, as an operator runs it — with
/// info logs, and wait for its line "`server` listening on URL". Returns
/// the child and the URL; the rest of the log is read (and dropped) on a
/// thread of its own, so the child never blocks on a full pipe. For tests
/// of what only the real process does: signals, exit codes.
pub fn start_binary(
    command: std::process::Command,
    server: &str,
) -> std::io::Result<(std::process::Child, String)> {
    let (child, mut urls, _log) = start_binary_logged(command, &[server])?;
    Ok((child, urls.remove(0)))
}

/// The lines a binary logged after it started listening.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// [`start_binary`] waiting for each of `servers` to listen (URLs in that
/// order), and keeping the rest of the log for the test to read.
pub fn start_binary_logged(
    mut command: std::process::Command,
    servers: &[&str],
) -> std::io::Result<(std::process::Child, Vec<String>, Log)> {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut log = BufReader::new(child.stderr.take().expect("stderr was piped"));
    let markers: Vec<String> = servers
        .iter()
        .map(|server| format!("{server} listening on "))
        .collect();
    let mut urls: Vec<Option<String>> = vec![None; servers.len()];
    while urls.iter().any(Option::is_none) {
        let mut line = String::new();
        if log.read_line(&mut line)? == 0 {
            let _ = child.kill();
            return Err(std::io::Error::other(format!(
                "exited before \"{}…\"",
                markers.join("…\", \"")
            )));
        }
        for (marker, url) in markers.iter().zip(&mut urls) {
            if let Some((_, found)) = line.split_once(marker.as_str()) {
                *url = Some(found.trim().to_owned());
            }
        }
    }
    let kept: Log = Default::default();
    let writer = kept.clone();
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            writer.lock().expect("log lock").push(line);
        }
    });
    Ok((child, urls.into_iter().flatten().collect(), kept))
}
