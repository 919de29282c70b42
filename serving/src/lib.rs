//! How every server in the workbench binds, accepts connections and stops.
//!
//! Each step of the course is a different HTTP program, but they all listen
//! the same way: bind an address, accept TCP connections, hand each one to
//! hyper with a `service_fn`, and on Ctrl-C / SIGTERM stop accepting and let
//! in-flight requests finish for a bounded time. Writing that loop once here
//! keeps every step's code about the one thing that step teaches.
//!
//! Two pieces deserve a note:
//!
//! * [`Binder`] is the single place a listener is created. Binaries use
//!   [`Binder::exact`]; tests, the tour and the NOTES checker use
//!   [`Binder::ephemeral`], which binds port 0 instead of the requested port
//!   and remembers the mapping. That lets a test run the very same launch code
//!   a learner runs with `cargo run -p …`, without ever claiming a fixed port.
//! * [`Server`] serves HTTP/1.1 and HTTP/2 (prior knowledge) on one listener
//!   through `hyper_util::server::conn::auto`, with upgrades enabled, so
//!   CONNECT tunnels and websockets work through any step.
//!
//! TLS is one option of the same loop ([`Server::tls`], step 07): the
//! handshake runs on the connection's own task, bounded by the header read
//! timeout, so a slow or silent TLS client never holds up accepting others.
//! Which HTTP version to speak is still hyper's choice by the connection
//! preface; ALPN, set in the rustls config, only tells the client which
//! ones are on offer.
//!
//! * [`Server::serve_clients`] is how a proxy is served: its handler gets
//!   each request with the client it came from.
//!
//! Left out on purpose: any notion of routing — a server is given one
//! service and that is all it knows.

mod clients;
mod flags;
mod guard;
mod log;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use guard::Caps;

pub use flags::{ConnectionFlags, ServeFlags};
pub use guard::{
    ClientStream, GuardedStream, default_max_connections, default_max_connections_per_address,
};
pub use log::{RequestIdLines, init_tracing, with_request_id};

/// How long in-flight requests get to finish after a shutdown was asked for.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How often an HTTP/2 connection is pinged, and how long an answer may take.
const H2_PING_EVERY: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 connection may have open at once.
const H2_MAX_STREAMS: u32 = 100;

/// The first and the longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Errors that say the process, not the connection, is short of something.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS)
    )
}

/// One accepted connection, on its way to being served.
struct Connection<S> {
    name: &'static str,
    peer: SocketAddr,
    /// When the first request head must have arrived (None: no limit).
    deadline: Option<tokio::time::Instant>,
    /// The client's stream; it holds the connection's place under the caps.
    stream: GuardedStream<TcpStream>,
    service: FirstRequest<S>,
}

impl<S> Connection<S> {
    /// TLS (if configured), then HTTP until the connection ends; the TLS
    /// handshake and the first request head share one deadline.
    async fn serve<B>(
        self,
        builder: auto::Builder<TokioExecutor>,
        tls: Option<TlsAcceptor>,
        watcher: Watcher,
    ) where
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Connection {
            name,
            peer,
            deadline,
            stream,
            service,
        } = self;
        let arrived = service.arrived.clone();
        let before_deadline = |work| async move {
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
                None => Some(work.await),
            }
        };
        let result = match tls {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                first_request_then_rest(watcher.watch(conn), arrived, deadline).await
            }
            Some(tls) => {
                let stream = match before_deadline(tls.accept(stream)).await {
                    Some(Ok(stream)) => stream,
                    Some(Err(e)) => return debug!("{name}: TLS handshake with {peer} failed: {e}"),
                    None => return debug!("{name}: no TLS handshake from {peer} in time"),
                };
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                first_request_then_rest(watcher.watch(conn), arrived, deadline).await
            }
        };
        match result {
            None => debug!("{name}: no request from {peer} in time; closed"),
            Some(Err(e)) => debug!("{name}: connection from {peer} ended: {e}"),
            Some(Ok(())) => {}
        }
    }
}

/// Drive `conn` until its first request head has arrived, within
/// `deadline`, then to its end. None: the deadline passed first (dropping
/// the connection closes it).
async fn first_request_then_rest<F, E>(
    conn: F,
    arrived: Arc<Notify>,
    deadline: Option<tokio::time::Instant>,
) -> Option<Result<(), E>>
where
    F: Future<Output = Result<(), E>>,
{
    let mut conn = std::pin::pin!(conn);
    let first = async {
        tokio::select! {
            biased;
            () = arrived.notified() => None,
            done = conn.as_mut() => Some(done),
        }
    };
    let first = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, first).await.ok()?,
        None => first.await,
    };
    match first {
        Some(done) => Some(done),
        None => Some(conn.await),
    }
}

/// A connection's service, which also says when its first request head
/// has been read (hyper calls the service only then).
struct FirstRequest<S> {
    service: S,
    seen: AtomicBool,
    arrived: Arc<Notify>,
}

impl<S> FirstRequest<S> {
    fn new(service: S) -> Self {
        Self {
            service,
            seen: AtomicBool::new(false),
            arrived: Arc::new(Notify::new()),
        }
    }
}

impl<S: Service<Request<Incoming>>> Service<Request<Incoming>> for FirstRequest<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if !self.seen.load(Ordering::Relaxed) && !self.seen.swap(true, Ordering::Relaxed) {
            self.arrived.notify_one();
        }
        self.service.call(req)
    }
}

/// Creates every listener of a launch, optionally remapping ports.
#[derive(Clone, Debug, Default)]
pub struct Binder {
    ephemeral: bool,
    bound: Arc<Mutex<Vec<(SocketAddr, SocketAddr)>>>,
}

impl Binder {
    /// Bind exactly the address asked for (what binaries do).
    pub fn exact() -> Self {
        Self::default()
    }

    /// Bind port 0 on the requested IP and remember requested → actual
    /// (what tests do, so that no test depends on a free fixed port).
    pub fn ephemeral() -> Self {
        Self {
            ephemeral: true,
            ..Self::default()
        }
    }

    /// Bind a listener for `requested`.
    pub async fn bind(&self, requested: SocketAddr) -> io::Result<TcpListener> {
        let target = if self.ephemeral {
            SocketAddr::new(requested.ip(), 0)
        } else {
            requested
        };
        let listener = TcpListener::bind(target)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {requested}: {e}")))?;
        let actual = listener.local_addr()?;
        self.bound
            .lock()
            .expect("binder mutex poisoned")
            .push((requested, actual));
        Ok(listener)
    }

    /// Every `(requested, actual)` pair bound so far, in bind order.
    pub fn bound(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.bound.lock().expect("binder mutex poisoned").clone()
    }
}

/// Per-connection settings for the HTTP server side, and the limits that
/// keep one client from taking the server down ([`guard`] explains each).
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Close a connection whose request head has not fully arrived within
    /// this time (the slowloris defence), counted from accept for the first
    /// request (TLS and protocol detection included). `None` disables it.
    pub header_read_timeout: Option<Duration>,
    /// Accept at most this many connections at once; more wait in the
    /// kernel's backlog until one closes.
    pub max_connections: usize,
    /// At most this many open connections from one client address; more
    /// are closed as soon as they are accepted.
    pub max_connections_per_address: usize,
    /// Close a connection when a write to it has made no progress for this
    /// long (the client stopped reading). `None` disables it.
    pub send_timeout: Option<Duration>,
    /// Largest request head hyper will buffer before answering 431.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run on after shutdown starts.
    pub grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(10)),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            send_timeout: Some(Duration::from_secs(60)),
            max_header_bytes: 64 * 1024,
            grace: DEFAULT_GRACE,
        }
    }
}

/// A running server: its address, and the means to stop it.
///
/// Dropping the handle stops the server too (without waiting), so a test that
/// panics never leaves a listener behind.
#[derive(Debug)]
pub struct ServerHandle {
    name: &'static str,
    addr: SocketAddr,
    scheme: &'static str,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server actually listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port` (`https://` with TLS), handy for clients.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// What the server is (for logs: "real server", "reverse proxy", …).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Stop accepting, let in-flight requests finish (bounded), then return.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// An HTTP server on one listener.
pub struct Server {
    listener: TcpListener,
    options: ServerOptions,
    name: &'static str,
    tls: Option<TlsAcceptor>,
}

impl Server {
    pub fn new(listener: TcpListener, name: &'static str) -> Self {
        Self {
            listener,
            options: ServerOptions::default(),
            name,
            tls: None,
        }
    }

    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Speak TLS on this listener (HTTPS), with this rustls configuration.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(TlsAcceptor::from(config));
        self
    }

    /// Serve on a background task. `make_service` is called once per
    /// connection with the peer's address, because most of what a proxy
    /// writes into forwarded headers starts from that address.
    pub fn spawn<M, S, B>(self, make_service: M) -> io::Result<ServerHandle>
    where
        M: Fn(SocketAddr) -> S + Send + Sync + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let addr = self.listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let name = self.name;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        info!("{name} listening on {scheme}://{addr}");
        let (listener, options, tls) = (self.listener, self.options, self.tls);
        let task = tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_read_timeout)
                .max_buf_size(options.max_header_bytes.max(8192));
            // HTTP/2 has no per-request head timeout after the first, so a
            // peer that vanished is found by pings, and one connection may
            // hold at most 100 streams (hyper would allow 200).
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(H2_PING_EVERY))
                .keep_alive_timeout(H2_PING_EVERY)
                .max_concurrent_streams(H2_MAX_STREAMS);
            let graceful = GracefulShutdown::new();
            accept_loop(listener, name, &options, &mut stopped, |stream, peer| {
                let connection = Connection {
                    name,
                    peer,
                    // The first request head is due this long after accept.
                    deadline: options
                        .header_read_timeout
                        .map(|limit| tokio::time::Instant::now() + limit),
                    stream,
                    service: FirstRequest::new(make_service(peer)),
                };
                let (builder, tls, watcher) = (builder.clone(), tls.clone(), graceful.watcher());
                tokio::spawn(connection.serve(builder, tls, watcher));
            })
            .await;
            tokio::select! {
                _ = graceful.shutdown() => debug!("{name}: all connections closed"),
                _ = tokio::time::sleep(options.grace) => {
                    warn!("{name}: connections still open after {:?}; not waiting for them", options.grace);
                }
            }
        });
        Ok(ServerHandle {
            name,
            addr,
            scheme,
            stop,
            task: Some(task),
        })
    }
}

impl Server {
    /// Serve raw byte streams instead of HTTP (step 08's TCP proxy, step
    /// 10's own HTTP/1): each accepted connection, under the same caps and
    /// send timeout, goes to `handle` with its peer's address and a
    /// [`Stopping`] that says when shutdown begins (an HTTP server closes
    /// its idle keep-alive connections then). On shutdown the listener
    /// closes at once and open connections get the grace period to finish.
    ///
    /// `scheme` is what the handler speaks on those streams (`tcp` for
    /// step 08's bytes, `http` for step 10's own HTTP/1): the handle's URL
    /// and the "listening on" line use it.
    pub fn spawn_streams<F, Fut>(self, scheme: &'static str, handle: F) -> io::Result<ServerHandle>
    where
        F: Fn(ClientStream, SocketAddr, Stopping) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = self.listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let name = self.name;
        info!("{name} listening on {scheme}://{addr}");
        let (listener, options) = (self.listener, self.options);
        let stopping = Stopping(stopped.clone());
        let task = tokio::spawn(async move {
            let mut open = tokio::task::JoinSet::new();
            accept_loop(listener, name, &options, &mut stopped, |stream, peer| {
                // Forget the connections that have ended, so the set holds
                // only the open ones.
                while open.try_join_next().is_some() {}
                open.spawn(handle(stream, peer, stopping.clone()));
            })
            .await;
            let finished = tokio::time::timeout(options.grace, async {
                while open.join_next().await.is_some() {}
            });
            match finished.await {
                Ok(()) => debug!("{name}: all connections closed"),
                Err(_) => warn!(
                    "{name}: {} connections still open after {:?}; closing them",
                    open.len(),
                    options.grace
                ),
            }
        });
        Ok(ServerHandle {
            name,
            addr,
            scheme,
            stop,
            task: Some(task),
        })
    }
}

/// Resolves when the server begins to shut down: what a stream handler
/// waits on beside its reads.
#[derive(Clone, Debug)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// Wait until shutdown begins (at once if it has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Accept connections until `stopped`, under the caps of `options`, and
/// give each, wrapped in its guard, to `admitted`.
async fn accept_loop(
    listener: TcpListener,
    name: &'static str,
    options: &ServerOptions,
    stopped: &mut watch::Receiver<bool>,
    mut admitted: impl FnMut(ClientStream, SocketAddr),
) {
    let caps = Caps::new(options.max_connections, options.max_connections_per_address);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        // Room under the global cap first: at the cap, new connections
        // wait in the backlog instead of taking a file descriptor each.
        let room = tokio::select! {
            room = caps.room() => room,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = ACCEPT_BACKOFF_MIN;
                pair
            }
            Err(e) if out_of_resources(&e) => {
                // Out of descriptors or memory: back off, longer each time,
                // instead of spinning on the error and flooding the log;
                // connections closing will make room.
                warn!("{name}: accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
            Err(e) => {
                // One connection's trouble (reset before it was accepted,
                // say): the next may be fine.
                debug!("{name}: accept failed: {e}");
                continue;
            }
        };
        let Some(place) = caps.admit(room, peer.ip()) else {
            debug!(
                "{name}: {peer} already holds {} connections; closing the new one",
                options.max_connections_per_address
            );
            continue;
        };
        // Small exchanges must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        admitted(
            GuardedStream::new(stream, options.send_timeout, place),
            peer,
        );
    }
}

/// The runtime for `threads` workers (default: as many as cores this
/// process may run on — taskset and cgroup limits count). One worker means
/// one core, and then a current-thread runtime skips work-stealing that
/// only pays off with several (bench/README.md measured it: about 8 % of a
/// proxy's CPU per request on one core).
pub fn runtime(threads: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Closes something the servers do not track; see [`Launched::on_shutdown`].
type Closer = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Everything one launch (one `cargo run -p …`) started: servers,
/// background tasks (health checks) that stop with them, and closers for
/// connections that outlive HTTP (upgraded websockets).
#[derive(Default)]
pub struct Launched {
    pub servers: Vec<ServerHandle>,
    tasks: Vec<JoinHandle<()>>,
    closers: Vec<Closer>,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launched")
            .field("servers", &self.servers)
            .field("tasks", &self.tasks.len())
            .field("closers", &self.closers.len())
            .finish()
    }
}

impl Launched {
    pub fn push(&mut self, server: ServerHandle) {
        self.servers.push(server);
    }

    /// A background task that is aborted when the launch shuts down or drops.
    pub fn push_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// At shutdown, call `close` and wait (at most [`DEFAULT_GRACE`]) for
    /// what it returns, while the servers finish their requests. For
    /// connections the servers no longer see: once hyper hands an upgraded
    /// connection over, it is not an HTTP exchange any more and graceful
    /// shutdown would not wait for it — or tell it anything.
    pub fn on_shutdown<F>(&mut self, close: impl FnOnce() -> F + Send + 'static)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.closers.push(Box::new(move || Box::pin(close())));
    }

    /// Take over everything `other` started.
    pub fn extend(&mut self, mut other: Launched) {
        self.servers.append(&mut other.servers);
        self.tasks.append(&mut other.tasks);
        self.closers.append(&mut other.closers);
    }

    /// The first server whose name is `name`.
    pub fn get(&self, name: &str) -> Option<&ServerHandle> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Wait for Ctrl-C / SIGTERM, then shut every server down gracefully.
    pub async fn serve_until_signal(self) {
        shutdown_signal().await;
        info!("shutting down: no new connections, finishing requests in flight");
        self.shutdown().await;
    }

    pub async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let closers = std::mem::take(&mut self.closers);
        let closing = async move {
            for close in closers {
                if tokio::time::timeout(DEFAULT_GRACE, close()).await.is_err() {
                    warn!("a closer took longer than {DEFAULT_GRACE:?}; not waiting for it");
                }
            }
        };
        let servers = std::mem::take(&mut self.servers);
        let stopping = async move {
            for server in servers {
                server.shutdown().await;
            }
        };
        tokio::join!(closing, stopping);
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
