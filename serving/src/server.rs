//! A server on one listener: its options, the handle that stops it, and
//! how it hands connections to hyper or to a stream handler.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::connection::{
    Connection, FirstRequest, H2_MAX_STREAMS, H2_PING_EVERY, H2_STREAM_WINDOW, accept_loop,
};
use crate::engine::{BoxFuture, Engine, EngineSide, EngineStream, HandOver, Rewound};
use crate::guard::Caps;
use crate::guard::{default_max_connections, default_max_connections_per_address};
use crate::streams::Streams;
use crate::{ClientStream, DEFAULT_GRACE};

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
    pub(crate) name: &'static str,
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
    pub(crate) tls: Option<TlsAcceptor>,
    /// Who serves HTTP/1.1 connections, if not hyper.
    engine: Option<Engine>,
}

impl Server {
    pub fn new(listener: TcpListener, name: &'static str) -> Self {
        Self {
            listener,
            options: ServerOptions::default(),
            name,
            tls: None,
            engine: None,
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

    /// Serve HTTP/1.1 connections with an engine of one's own (step 10's)
    /// instead of hyper; HTTP/2 connections, and any the engine hands
    /// over, stay with hyper and the service of [`spawn`](Self::spawn)
    /// (see [`EngineStream`]).
    pub fn http1_engine<F, Fut>(mut self, engine: F) -> Self
    where
        F: Fn(EngineStream, SocketAddr, Stopping) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.engine = Some(Arc::new(move |stream, peer, stopping| {
            Box::pin(engine(stream, peer, stopping))
        }));
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
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let addr = self.listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let name = self.name;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        info!("{name} listening on {scheme}://{addr}");
        let (listener, options, tls) = (self.listener, self.options, self.tls);
        let builder = http_builder(&options);
        let caps = Caps::new(options.max_connections, options.max_connections_per_address);
        let hyper = Hyper {
            name,
            make_service,
            builder,
            caps: caps.clone(),
            options: options.clone(),
        };
        let stopping = Stopping(stopped.clone());
        let serve_one: ServeOne = match self.engine {
            None => {
                let hyper = Arc::new(hyper);
                Box::new(move |stream, peer| {
                    let connection = hyper.connection(peer);
                    Box::pin(connection.serve(
                        stream,
                        hyper.builder.clone(),
                        tls.clone(),
                        stopping.clone(),
                    ))
                })
            }
            Some(engine) => {
                let side = Arc::new(EngineSide {
                    name,
                    tls,
                    header_read_timeout: options.header_read_timeout,
                    hyper: Arc::new(hyper),
                    engine,
                    stopping,
                });
                Box::new(move |stream, peer| side.serve(stream, peer))
            }
        };
        let task = tokio::spawn(streams_until_stopped(
            listener, name, options, caps, stopped, serve_one,
        ));
        Ok(ServerHandle {
            name,
            addr,
            scheme,
            stop,
            task: Some(task),
        })
    }
}

/// Serves one accepted connection.
type ServeOne = Box<dyn Fn(ClientStream, SocketAddr) -> BoxFuture + Send + Sync>;

/// hyper's server side, as every listener configures it.
fn http_builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8192));
    // HTTP/2 has no per-request head timeout after the first, so a
    // peer that vanished is found by pings, and one connection may
    // hold at most 100 streams (hyper would allow 200). The
    // connection's window has room for every stream's: with hyper's
    // (one stream's worth), one upload whose upstream stopped reading
    // blocks every other body on the connection, and those clients
    // would be answered 408 for it. Unread bodies stay bounded: each
    // stream holds a place, so an address buffers at most its share
    // of stream windows, as it did with one connection per place.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_PING_EVERY))
        .keep_alive_timeout(H2_PING_EVERY)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_STREAM_WINDOW * H2_MAX_STREAMS);
    builder
}

/// What a listener's hyper side needs to serve one more connection.
pub(crate) struct Hyper<M> {
    pub(crate) name: &'static str,
    make_service: M,
    pub(crate) builder: auto::Builder<TokioExecutor>,
    caps: Caps,
    options: ServerOptions,
}

impl<M> Hyper<M> {
    /// A connection from `peer`, accepted now.
    fn connection<S>(&self, peer: SocketAddr) -> Connection<S>
    where
        M: Fn(SocketAddr) -> S,
    {
        Connection {
            name: self.name,
            peer,
            // The first request head is due this long after accept.
            deadline: self
                .options
                .header_read_timeout
                .map(|limit| tokio::time::Instant::now() + limit),
            service: FirstRequest::new(Streams::new(
                (self.make_service)(peer),
                self.caps.clone(),
                peer.ip(),
                self.options.send_timeout,
            )),
        }
    }
}

impl<M, S, B> HandOver for Hyper<M>
where
    M: Fn(SocketAddr) -> S + Send + Sync + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn serve(&self, io: Rewound, peer: SocketAddr, stopping: Stopping) -> BoxFuture {
        let connection = self.connection(peer);
        Box::pin(connection.http(io, self.builder.clone(), stopping))
    }
}

/// Accept until stopped, running `serve_one` for each connection on a task
/// of its own; then give those still open the grace period.
async fn streams_until_stopped<F, Fut>(
    listener: TcpListener,
    name: &'static str,
    options: ServerOptions,
    caps: Caps,
    mut stopped: watch::Receiver<bool>,
    serve_one: F,
) where
    F: Fn(ClientStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut open = tokio::task::JoinSet::new();
    accept_loop(
        listener,
        name,
        &options,
        &caps,
        &mut stopped,
        |stream, peer| {
            // Forget the connections that have ended, so the set holds
            // only the open ones.
            while open.try_join_next().is_some() {}
            open.spawn(serve_one(stream, peer));
        },
    )
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
        let (stop, stopped) = watch::channel(false);
        let name = self.name;
        info!("{name} listening on {scheme}://{addr}");
        let (listener, options) = (self.listener, self.options);
        let caps = Caps::new(options.max_connections, options.max_connections_per_address);
        let stopping = Stopping(stopped.clone());
        let serve_one = move |stream, peer| handle(stream, peer, stopping.clone());
        let task = tokio::spawn(streams_until_stopped(
            listener, name, options, caps, stopped, serve_one,
        ));
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
pub struct Stopping(pub(crate) watch::Receiver<bool>);

impl Stopping {
    /// Wait until shutdown begins (at once if it has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
