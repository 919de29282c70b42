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
use hyper_util::server::graceful::Watcher;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::guard::Caps;
use crate::streams::Streams;
use crate::{ClientStream, GuardedStream, ServerOptions};

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

/// One accepted connection, on its way to being served.
pub(crate) struct Connection<S> {
    pub(crate) name: &'static str,
    pub(crate) peer: SocketAddr,
    /// When the first request head must have arrived (None: no limit).
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// The client's stream; it holds the connection's place under the caps.
    pub(crate) stream: GuardedStream<TcpStream>,
    pub(crate) service: FirstRequest<Streams<S>>,
}

impl<S> Connection<S> {
    /// TLS (if configured), then HTTP until the connection ends; the TLS
    /// handshake and the first request head share one deadline.
    pub(crate) async fn serve<B>(
        self,
        builder: auto::Builder<TokioExecutor>,
        tls: Option<TlsAcceptor>,
        watcher: Watcher,
    ) where
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
            stream,
            service,
        } = self;
        let arrived = service.arrived.clone();
        let stalled = service.service.stalled();
        let before_deadline = |work| async move {
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
                None => Some(work.await),
            }
        };
        let serving = async {
            match tls {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    first_request_then_rest(watcher.watch(conn), arrived, deadline).await
                }
                Some(tls) => {
                    let stream = match before_deadline(tls.accept(stream)).await {
                        Some(Ok(stream)) => stream,
                        Some(Err(e)) => {
                            debug!("{name}: TLS handshake with {peer} failed: {e}");
                            return Some(Ok(()));
                        }
                        None => {
                            debug!("{name}: no TLS handshake from {peer} in time");
                            return Some(Ok(()));
                        }
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    first_request_then_rest(watcher.watch(conn), arrived, deadline).await
                }
            }
        };
        let result = tokio::select! {
            result = serving => result,
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
