//! The accept loop, and what each accepted connection goes through before
//! it is served: the caps, the deadline for its first request head (TLS
//! included), and backing off when the process runs short of descriptors.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::guard::Caps;
use crate::streams::Streams;
use crate::{ClientStream, GuardedStream, ServerOptions, Stopping};

/// How often an HTTP/2 connection is pinged, and how long an answer may take.
pub(crate) const H2_PING_EVERY: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 connection may have open at once.
pub(crate) const H2_MAX_STREAMS: u32 = 100;
/// How much of one HTTP/2 stream's request body may wait, unread, in the
/// server (hyper's default).
pub(crate) const H2_STREAM_WINDOW: u32 = 1024 * 1024;

/// The first and the longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Errors that say the process, not the connection, is short of something.
pub(crate) fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS)
    )
}

/// One accepted connection, on its way to hyper.
pub(crate) struct Connection<S> {
    pub(crate) name: &'static str,
    pub(crate) peer: SocketAddr,
    /// When the first request head must have arrived (None: no limit).
    pub(crate) deadline: Option<tokio::time::Instant>,
    pub(crate) service: FirstRequest<Streams<S>>,
}

/// Run `conn`; once the server begins to shut down, ask it to finish what
/// it has under way (HTTP/1's last response, HTTP/2's GOAWAY) and end.
async fn until_stopped<C: GracefulConnection>(conn: C, mut stopping: Stopping) -> C::Output {
    let mut conn = std::pin::pin!(conn);
    // The connection first: one poll reads the bytes an engine handed
    // over and knows its protocol, so a shutdown already under way
    // finishes their request instead of cancelling the read.
    tokio::select! {
        biased;
        done = conn.as_mut() => return done,
        () = stopping.wait() => conn.as_mut().graceful_shutdown(),
    }
    conn.await
}

/// The TLS handshake on `stream`, by `deadline` (which the first request
/// head shares). None: it failed or did not come in time (logged).
pub(crate) async fn handshake(
    tls: &TlsAcceptor,
    stream: ClientStream,
    deadline: Option<tokio::time::Instant>,
    name: &str,
    peer: SocketAddr,
) -> Option<TlsStream<ClientStream>> {
    // On the heap: rustls' handshake state is kilobytes, and inline it
    // would make every connection's task that large for its whole life,
    // TLS or not (bench/README.md, "Idle connections").
    let accept = Box::pin(tls.accept(stream));
    let accepted = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, accept).await.ok(),
        None => Some(accept.await),
    };
    match accepted {
        Some(Ok(stream)) => Some(stream),
        Some(Err(e)) => {
            debug!("{name}: TLS handshake with {peer} failed: {e}");
            None
        }
        None => {
            debug!("{name}: no TLS handshake from {peer} in time");
            None
        }
    }
}

impl<S> Connection<S> {
    /// TLS (if configured), then HTTP until the connection ends; the TLS
    /// handshake and the first request head share one deadline.
    pub(crate) async fn serve<B>(
        self,
        stream: ClientStream,
        builder: auto::Builder<TokioExecutor>,
        tls: Option<TlsAcceptor>,
        stopping: Stopping,
    ) where
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match tls {
            None => self.http(stream, builder, stopping).await,
            Some(tls) => {
                if let Some(stream) =
                    handshake(&tls, stream, self.deadline, self.name, self.peer).await
                {
                    self.http(stream, builder, stopping).await;
                }
            }
        }
    }

    /// HTTP on `io` (after TLS, if any) until the connection ends.
    pub(crate) async fn http<IO, B>(
        self,
        io: IO,
        builder: auto::Builder<TokioExecutor>,
        stopping: Stopping,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Connection {
            name,
            peer,
            deadline,
            service,
        } = self;
        let arrived = service.arrived.clone();
        let stalled = service.service.stalled();
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let result = tokio::select! {
            result = first_request_then_rest(until_stopped(conn, stopping), arrived, deadline) => result,
            limit = stalled => {
                return debug!("{name}: {peer} left an HTTP/2 stream unread for {limit:?}; closed");
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
pub(crate) async fn first_request_then_rest<F, E>(
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
pub(crate) struct FirstRequest<S> {
    service: S,
    seen: AtomicBool,
    arrived: Arc<Notify>,
}

impl<S> FirstRequest<S> {
    pub(crate) fn new(service: S) -> Self {
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

/// Accept connections until `stopped`, under the caps of `options`, and
/// give each, wrapped in its guard, to `admitted`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    name: &'static str,
    options: &ServerOptions,
    caps: &Caps,
    stopped: &mut watch::Receiver<bool>,
    mut admitted: impl FnMut(ClientStream, SocketAddr),
) {
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
