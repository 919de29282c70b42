//! How every server in the workbench binds, accepts connections and stops.
//!
//! Each step of the course is a different HTTP program, but they all listen
//! the same way: bind an address, accept TCP connections, hand each one to
//! hyper with a `service_fn`, and on Ctrl-C / SIGTERM stop accepting and let
//! in-flight requests finish for a bounded time. Writing that loop once here
//! keeps every step's code about the one thing that step teaches.
//!
//! The rooms: `binder` (where listeners come from), `server` (a server, its
//! options and its handle), `connection` (the accept loop and what each
//! connection goes through before hyper has it), `guard` (the limits on
//! hostile clients), `engine` (HTTP/1.1 served by an engine of one's own,
//! the rest by hyper), `streams` (the same limits for HTTP/2's streams), `clients` (serving a proxy's handler with each
//! request's client), `launched` (what a launch started, and stopping it),
//! `flags` and `log`.
//!
//! Three pieces deserve a note:
//!
//! * [`Binder`] is the single place a listener is created. Binaries use
//!   [`Binder::exact`]; tests, the tour and the NOTES checker use
//!   [`Binder::ephemeral`], which binds port 0 instead of the requested port
//!   and remembers the mapping. That lets a test run the very same launch code
//!   a learner runs with `cargo run -p …`, without ever claiming a fixed port.
//! * [`Server`] serves HTTP/1.1 and HTTP/2 (prior knowledge) on one listener
//!   through `hyper_util::server::conn::auto`, with upgrades enabled, so
//!   CONNECT tunnels and websockets work through any step.
//! * [`Server::serve_clients`] is how a proxy is served: its handler gets
//!   each request with the client it came from.
//!
//! TLS is one option of the same loop ([`Server::tls`], step 07): the
//! handshake runs on the connection's own task, bounded by the header read
//! timeout, so a slow or silent TLS client never holds up accepting others.
//! Which HTTP version to speak is hyper's choice by the connection
//! preface; ALPN, set in the rustls config, tells the client which ones
//! are on offer. With [`Server::http1_engine`] (the gateway), HTTP/1.1
//! clients go to an engine of one's own instead, and HTTP/2 ones — ALPN
//! `h2`, or a preface the engine spots — to hyper (`engine`).
//!
//! Left out on purpose: any notion of routing — a server is given one
//! service and that is all it knows.

mod binder;
mod clients;
mod connection;
mod engine;
mod flags;
mod guard;
mod launched;
mod log;
mod server;
mod streams;

use std::time::Duration;

pub use binder::Binder;
pub use engine::EngineStream;
pub use flags::{ConnectionFlags, ServeFlags};
pub use guard::{
    ClientStream, GuardedStream, default_max_connections, default_max_connections_per_address,
};
pub use launched::{Launched, runtime, shutdown_signal};
pub use log::{RequestIdLines, init_tracing, log_filter, with_request_id};
pub use server::{Server, ServerHandle, ServerOptions, Stopping};
pub use streams::{StreamBody, TunnelPlace};

/// How long in-flight requests get to finish after a shutdown was asked for.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
