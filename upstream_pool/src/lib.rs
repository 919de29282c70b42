//! `upstream_pool`: keep-alive HTTP/1.1 connections, each
//! driven by the request that is using it.
//!
//! A hyper client connection is two halves: a `SendRequest` handle that
//! queues a request, and a `Connection` future that must be polled for any
//! bytes to move. hyper-util's general-purpose client spawns every
//! connection future as a task of its own, so each proxied request hops
//! tasks: into the connection's task through a channel, back through
//! another, and, when the response has a body, through one more task
//! spawned per response to notice when the connection is free again. For a
//! proxy that is the whole job, so this pool keeps the halves together and
//! lets the request's own task poll the connection — first while waiting
//! for the response head, then from inside the response body
//! ([`PooledBody`]), which hands the connection back to the pool the moment
//! the body has ended. One task, no hop, no spawn per request: with the
//! polling kept to what is needed (below), step 03 runs about a fifth fewer
//! user-space instructions per request than with hyper-util's client:
//! 35,036 with hyper-util's pooled client, 28,489 with this pool (callgrind,
//! `wrk -c64`; the method and the steps in between are in
//! `bench/README.md`). That measured difference is why the workbench keeps
//! a pool of its own instead of the kept crate; chapter 3 uses it as a
//! black box ("connections are kept and reused").
//!
//! What a pool must get right, and where it is done here:
//! - Each poll of a hyper connection is a read attempt. The body polls the
//!   connection only when it has no frame ready, and an idle connection is
//!   polled once, at checkout: that lets hyper finish the previous exchange
//!   and shows whether the upstream closed the connection while it sat in
//!   the pool.
//! - A request the connection never started (it closed first) is safe to
//!   send again on a fresh connection; [`Pool::send`] does, once. A request
//!   that was sent is never resent: that would duplicate a POST. One that
//!   never left (no connection could be made) is handed back to the caller
//!   ([`RoundTripError::unsent`]), which may send it to another upstream.
//! - A connection goes back only after its response ended cleanly; a body
//!   abandoned half way (the client went away) closes it, because the rest
//!   of that response would otherwise arrive as the next one's head.
//! - Idle connections are closed after the idle timeout, and at most
//!   `max_idle_per_upstream` are kept.
//! - A 101 response hands the connection to the upgrade: it is polled on a
//!   task of its own until hyper passes the raw bytes to the tunnel.
//!
//! HTTP/2 to upstreams (`h2c://HOST:PORT`, cleartext with prior
//! knowledge, or over TLS when the upstream chooses `h2` by ALPN — the
//! connector says which, [`Connector::chose_http2`]) works differently: one connection carries many requests at
//! once, so there is nothing to check out or give back. The pool keeps one
//! connection per upstream, driven by a task of its own (it serves every
//! stream on it, not one request), and sends each request as a stream on
//! it; a connection that closed (the upstream said GOAWAY, or it failed) is
//! replaced by the next request. A client that goes away resets its stream,
//! not the connection: dropping the response body does that.
//!
//! Left out on purpose: a cap on connections per upstream (Go's
//! `MaxConnsPerHost`, off by default there too), and more than one HTTP/2
//! connection per upstream (one carries hundreds of concurrent streams).

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper::header::{HOST, HeaderValue};
use hyper::http::uri::{Authority, Scheme};
use hyper::rt::{Read, Write};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::Connection as ConnectionInfo;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thiserror::Error;
use tower_service::Service;

use proxy_core::{Observed, RequestBody, RoundTripError, SentBytes, TransportError};

/// Opens the byte stream to an upstream: TCP in step 03, TLS over TCP in step 07.
/// Every tower service from a URI to a hyper IO is one, which covers
/// hyper-util's `HttpConnector` and hyper-rustls's `HttpsConnector`.
pub trait Connector: Clone + Send + Sync + 'static {
    type Io: Read + Write + Unpin + Send + Sync + 'static;

    fn connect(&self, uri: Uri) -> impl Future<Output = Result<Self::Io, TransportError>> + Send;

    /// Did the upstream choose HTTP/2 on this connection (TLS's ALPN)?
    fn chose_http2(io: &Self::Io) -> bool;
}

impl<S> Connector for S
where
    S: Service<Uri> + Clone + Send + Sync + 'static,
    S::Response: Read + Write + ConnectionInfo + Unpin + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<TransportError>,
{
    type Io = S::Response;

    fn chose_http2(io: &Self::Io) -> bool {
        io.connected().is_negotiated_h2()
    }

    fn connect(&self, uri: Uri) -> impl Future<Output = Result<Self::Io, TransportError>> + Send {
        let mut service = self.clone();
        async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            service.call(uri).await.map_err(Into::into)
        }
    }
}

/// Why the pool could not deliver a response head.
#[derive(Debug, Error)]
pub enum PoolError {
    #[error("the upstream URL {0} has no scheme and authority")]
    NotAbsolute(Uri),
    #[error("cannot connect")]
    Connect(#[source] TransportError),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("cannot name the HTTP/2 target: {0}")]
    Target(#[from] hyper::http::Error),
}

/// Which connections can serve a request: same scheme, same host and port.
/// Hashed as two byte strings in one go; http's own `Hash` for an
/// authority lowercases and feeds it byte by byte, which cost more than the
/// rest of the pool. (Names differing only in case get separate idle lists,
/// which is harmless.)
#[derive(Debug, Clone)]
struct Key {
    scheme: Scheme,
    authority: Authority,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.scheme.as_str() == other.scheme.as_str()
            && self.authority.as_str() == other.authority.as_str()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.scheme.as_str().hash(state);
        self.authority.as_str().hash(state);
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// The connection future, boxed once per connection. Its type cannot be
/// named (hyper's `UpgradeableConnection`) and boxing also erases the IO
/// type, so plain and TLS connections share [`PooledBody`].
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send + Sync>>;

/// One upstream connection: the handle that sends and the future that
/// moves the bytes.
struct Connection {
    sender: http1::SendRequest<Counted>,
    driver: Driver,
    key: Arc<Key>,
}

impl Connection {
    /// Poll the connection without anyone to wake. `false` if it has
    /// finished: the upstream closed it, or it failed.
    fn is_alive(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.driver.as_mut().poll(&mut cx).is_pending()
    }
}

struct Idle {
    connection: Connection,
    since: Instant,
}

struct Shared {
    idle: Mutex<HashMap<Arc<Key>, Vec<Idle>, foldhash::fast::RandomState>>,
    /// The one HTTP/2 connection to each `h2c://` upstream, shared by all
    /// its requests.
    multiplexed: Mutex<HashMap<Key, http2::SendRequest<Counted>, foldhash::fast::RandomState>>,
    /// Held while an HTTP/2 connection to the key is being opened, so that
    /// requests arriving at once share one instead of each opening its own.
    opening: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>, foldhash::fast::RandomState>>,
    idle_timeout: Duration,
    max_idle_per_upstream: usize,
    reaper_started: AtomicBool,
}

impl Shared {
    fn idle(&self) -> MutexGuard<'_, HashMap<Arc<Key>, Vec<Idle>, foldhash::fast::RandomState>> {
        // A panic elsewhere while holding the lock leaves only a list of
        // idle connections behind, which is still valid.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take the warmest idle connection to `key` that is still usable: one
    /// poll lets hyper finish the previous exchange and see whether the
    /// upstream has closed the connection meanwhile.
    fn checkout(&self, key: &Key) -> Option<Connection> {
        loop {
            let Idle { mut connection, .. } = self.idle().get_mut(key)?.pop()?;
            if connection.is_alive() && connection.sender.is_ready() {
                return Some(connection);
            }
        }
    }

    /// Keep a connection whose exchange has ended, if it can take another.
    fn put(self: &Arc<Self>, connection: Connection) {
        // The poll that delivered the body's end also left hyper ready for
        // the next request — unless it is still sending this request's
        // body (the upstream answered early): that connection is closed,
        // not parked half way through an exchange. A `Connection: close`
        // or a close by the upstream shows at checkout's poll; polling
        // here as well would cost a read attempt per request.
        if self.max_idle_per_upstream == 0 || !connection.sender.is_ready() {
            return;
        }
        let since = Instant::now();
        {
            let mut idle = self.idle();
            let list = idle.entry(connection.key.clone()).or_default();
            if list.len() >= self.max_idle_per_upstream {
                return;
            }
            list.push(Idle { connection, since });
        }
        self.start_reaper();
    }

    /// Close idle connections that timed out or that the upstream closed,
    /// so they do not linger in CLOSE_WAIT until the next request.
    fn reap(&self) {
        // Polling and closing happen outside the lock every request's
        // checkout takes: the lists are taken out, sorted, and what
        // survives goes back under the connections returned meanwhile
        // (it is older, so it belongs at the cold end).
        let taken = std::mem::take(&mut *self.idle());
        let now = Instant::now();
        let mut survivors = Vec::new();
        for (key, mut list) in taken {
            list.retain_mut(|idle| {
                now.duration_since(idle.since) < self.idle_timeout && idle.connection.is_alive()
            });
            if !list.is_empty() {
                survivors.push((key, list));
            }
        }
        let mut idle = self.idle();
        for (key, mut older) in survivors {
            let list = idle.entry(key).or_default();
            older.append(list);
            let excess = older.len().saturating_sub(self.max_idle_per_upstream);
            older.drain(..excess);
            *list = older;
        }
    }

    fn start_reaper(self: &Arc<Self>) {
        if self.reaper_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.reaper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(self);
        let every = (self.idle_timeout / 2).max(Duration::from_millis(100));
        runtime.spawn(reap_every(pool, every));
    }
}

/// The reaper lives as long as the pool: it holds it weakly.
async fn reap_every(pool: Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.reap(),
            None => return,
        }
    }
}

/// A pool of keep-alive HTTP/1.1 connections to any number of upstreams.
pub struct Pool<C> {
    connector: C,
    handshake: http1::Builder,
    shared: Arc<Shared>,
}

impl<C: Clone> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self {
            connector: self.connector.clone(),
            handshake: self.handshake.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// The most an upstream connection reads ahead: the largest response head
/// it accepts (as the serving side accepts request heads), and the largest
/// body chunk it hands on at once. hyper's default lets a fast upstream's
/// reads grow to 400 KiB each; behind a client that reads slowly, that
/// chunk waits in memory until the client has taken it, so 1,000 slow
/// readers of 1 MB responses held 180–280 MiB. At 64 KiB they hold
/// 75 MiB (bench/README.md, "Slow readers").
pub const READ_AHEAD: usize = 64 * 1024;

impl<C: Connector> Pool<C> {
    pub fn new(connector: C, idle_timeout: Duration, max_idle_per_upstream: usize) -> Self {
        let mut handshake = http1::Builder::new();
        handshake.max_buf_size(READ_AHEAD);
        Self {
            connector,
            handshake,
            shared: Arc::new(Shared {
                idle: Mutex::default(),
                multiplexed: Mutex::default(),
                opening: Mutex::default(),
                idle_timeout,
                max_idle_per_upstream,
                reaper_started: AtomicBool::new(false),
            }),
        }
    }

    /// Send `request` (absolute URI) upstream; the response body streams
    /// afterwards and returns the connection when it ends. A request that
    /// never left comes back in the error, as it was given.
    pub async fn send(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, RoundTripError> {
        let key = key_of(request.uri())?;
        if key.scheme.as_str() == "h2c" {
            return match self.multiplexed(&key).await {
                Ok(sender) => self.send_as_stream(sender, &key, request).await,
                Err(error) => Err(RoundTripError {
                    error: error.into(),
                    unsent: Some(request),
                }),
            };
        }
        // An https upstream that chose HTTP/2 when it was first reached.
        if let Some(sender) = self.open_multiplexed(&key) {
            return self.send_as_stream(sender, &key, request).await;
        }
        let mut request = counted(request);
        let target = request.uri().clone();
        to_origin_form(&mut request);
        if let Some(connection) = self.shared.checkout(&key) {
            match exchange(connection, request, &self.shared).await {
                Exchange::Done(result) => return result.map_err(Into::into),
                // Closed before it took the request: a fresh one will.
                Exchange::NotStarted(returned) => request = returned,
            }
        }
        let failure = match self.connect(key.clone(), target.clone()).await {
            Ok(Connected::Http1(connection)) => {
                match exchange(connection, request, &self.shared).await {
                    Exchange::Done(result) => return result.map_err(Into::into),
                    Exchange::NotStarted(returned) => {
                        request = returned;
                        PoolError::Connect("closed before the request was sent".into())
                    }
                }
            }
            Ok(Connected::Http2(sender)) => {
                let request = uncounted(request, target);
                return self.send_as_stream(sender, &key, request).await;
            }
            Err(error) => error,
        };
        Err(RoundTripError {
            error: failure.into(),
            unsent: Some(uncounted(request, target)),
        })
    }

    /// [`send`](Self::send) as a [`Transport`](proxy_core::Transport)'s round
    /// trip, for the transports built on this pool.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep its argument twice, see below"
    )]
    pub fn round_trip(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<PooledBody>, RoundTripError>> + Send {
        // Futures are copied whole when they move, so their size costs time
        // on every request. This block captures the request, not a ready
        // `send` future: a block keeps what it captured *and* what it
        // awaits, so capturing the future would hold it twice (1.7 KB more
        // in every future that holds this one). An `async fn` would keep
        // the request twice (argument and local).
        async move { self.send(request).await }
    }

    /// Send `request` as one stream on an HTTP/2 connection to `key`.
    async fn send_as_stream(
        &self,
        mut sender: http2::SendRequest<Counted>,
        key: &Key,
        request: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, RoundTripError> {
        let target = request.uri().clone();
        let mut request = counted(request);
        // HTTP/2 names the target in :scheme, :authority and :path; the
        // authority is what the director put in Host (RFC 9113 §8.3.1).
        let host = request.headers_mut().remove(HOST);
        let authority = host
            .as_ref()
            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| key.authority.clone());
        let scheme = if key.scheme == Scheme::HTTPS {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let path = target.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(PoolError::Target)?;
        *request.version_mut() = Version::HTTP_2;
        let unsent = |mut request: Request<Counted>| {
            if let Some(host) = &host {
                request.headers_mut().insert(HOST, host.clone());
            }
            uncounted(request, target.clone())
        };
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response.map(|body| PooledBody {
                body,
                connection: None,
                pool: self.shared.clone(),
            })),
            Err(mut error) => Err(match error.take_message() {
                // Refused before it became a stream (the connection was
                // closing): it never left.
                Some(request) => RoundTripError {
                    error: error.into_error().into(),
                    unsent: Some(unsent(request)),
                },
                None => error.into_error().into(),
            }),
        }
    }

    /// The open HTTP/2 connection to `key`, if there is one.
    fn open_multiplexed(&self, key: &Key) -> Option<http2::SendRequest<Counted>> {
        self.shared
            .multiplexed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    /// The open HTTP/2 connection to an `h2c://` upstream, or a new one.
    async fn multiplexed(&self, key: &Key) -> Result<http2::SendRequest<Counted>, PoolError> {
        if let Some(sender) = self.open_multiplexed(key) {
            return Ok(sender);
        }
        let opening = self
            .shared
            .opening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = opening.lock().await;
        // Whoever held the turn before may have opened it meanwhile.
        if let Some(sender) = self.open_multiplexed(key) {
            return Ok(sender);
        }
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(key.authority.clone())
            .path_and_query("/")
            .build()?;
        let io = self
            .connector
            .connect(uri)
            .await
            .map_err(PoolError::Connect)?;
        self.start_http2(key, io).await
    }

    /// HTTP/2 over `io`: the connection runs on a task of its own and is
    /// kept as the one connection to `key`.
    async fn start_http2(
        &self,
        key: &Key,
        io: C::Io,
    ) -> Result<http2::SendRequest<Counted>, PoolError> {
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await?;
        let name = key.to_string();
        tracing::debug!("new HTTP/2 upstream connection to {name}");
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("HTTP/2 connection to {name} ended: {e}");
            }
        });
        self.shared
            .multiplexed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), sender.clone());
        Ok(sender)
    }

    /// A new connection to `key`: HTTP/1.1, or HTTP/2 if the upstream chose
    /// it by ALPN in the TLS handshake.
    async fn connect(&self, key: Key, target: Uri) -> Result<Connected, PoolError> {
        let io = self
            .connector
            .connect(target)
            .await
            .map_err(PoolError::Connect)?;
        if C::chose_http2(&io) {
            return self.start_http2(&key, io).await.map(Connected::Http2);
        }
        let (sender, connection) = self.handshake.handshake(io).await?;
        tracing::debug!("new upstream connection to {key}");
        Ok(Connected::Http1(Connection {
            sender,
            driver: Box::pin(connection.with_upgrades()),
            key: Arc::new(key),
        }))
    }
}

/// A new upstream connection, in the version the upstream chose.
enum Connected {
    Http1(Connection),
    Http2(http2::SendRequest<Counted>),
}

enum Exchange {
    Done(Result<Response<PooledBody>, PoolError>),
    NotStarted(Request<Counted>),
}

/// Send one request on `connection`, polling the connection ourselves
/// until the response head is in.
async fn exchange(
    connection: Connection,
    request: Request<Counted>,
    pool: &Arc<Shared>,
) -> Exchange {
    let Connection {
        mut sender,
        driver,
        key,
    } = connection;
    let tunnel_if_accepted = request.method() == Method::CONNECT;
    let mut response = pin!(sender.try_send_request(request));
    let mut driver = Some(driver);
    let head = poll_fn(|cx| {
        if let Some(running) = &mut driver
            && running.as_mut().poll(cx).is_ready()
        {
            // Drop it at once: hyper may end a connection the upstream
            // closed without taking the request queued on it, and only
            // dropping the connection hands that request back (as not
            // started, so `send` retries it) instead of leaving it waiting.
            driver = None;
        }
        response.as_mut().poll(cx)
    })
    .await;
    let response = match head {
        Ok(response) => response,
        Err(mut error) => {
            return match error.take_message() {
                Some(request) => Exchange::NotStarted(request),
                None => Exchange::Done(Err(error.into_error().into())),
            };
        }
    };
    let status = response.status();
    let upgraded =
        status == StatusCode::SWITCHING_PROTOCOLS || (tunnel_if_accepted && status.is_success());
    let connection = match driver {
        // hyper hands the connection's bytes to `hyper::upgrade::on` only
        // while the connection future is polled.
        Some(driver) if upgraded => {
            tokio::spawn(driver);
            None
        }
        Some(driver) => Some(Connection {
            sender,
            driver,
            key,
        }),
        None => None,
    };
    Exchange::Done(Ok(response.map(|body| PooledBody {
        body,
        connection,
        pool: pool.clone(),
    })))
}

fn key_of(uri: &Uri) -> Result<Key, PoolError> {
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok(Key {
            scheme: scheme.clone(),
            authority: authority.clone(),
        }),
        _ => Err(PoolError::NotAbsolute(uri.clone())),
    }
}

/// HTTP/1.1 to an origin server names the target by path (origin form),
/// CONNECT by host and port; the host travels in `Host`.
fn to_origin_form(request: &mut Request<Counted>) {
    if !request.headers().contains_key(HOST)
        && let Some(host) = request
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        request.headers_mut().insert(HOST, host);
    }
    let uri = request.uri();
    let mut target = hyper::http::uri::Parts::default();
    if request.method() == Method::CONNECT {
        target.authority = uri.authority().cloned();
    } else {
        target.path_and_query = uri.path_and_query().cloned();
    }
    *request.uri_mut() = Uri::from_parts(target).unwrap_or_else(|_| Uri::from_static("/"));
}

/// An upstream response body that keeps its connection moving and returns
/// it to the pool once the body has ended.
pub struct PooledBody {
    body: Incoming,
    connection: Option<Connection>,
    pool: Arc<Shared>,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        // hyper often reads a small response's head and body in one go, so
        // the frame may be here already; only when it is not does the
        // connection need driving (each poll of it costs a read attempt).
        let frame = match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if let Some(connection) = &mut this.connection
                    && connection.driver.as_mut().poll(cx).is_ready()
                {
                    // Finished: what it read is already in `body`.
                    this.connection = None;
                }
                ready!(Pin::new(&mut this.body).poll_frame(cx))
            }
        };
        // Trailers are the last frame of an HTTP/1 body, and hyper writes
        // them without asking for the end that follows.
        let ended = match &frame {
            None => true,
            Some(Ok(frame)) => frame.is_trailers(),
            Some(Err(_)) => false,
        };
        if ended {
            this.release(true);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl PooledBody {
    /// `ended`: the body has said so. (A chunked body only knows at its
    /// last frame; one with a length knows as soon as the bytes are in.)
    fn release(&mut self, ended: bool) {
        if let Some(connection) = self.connection.take()
            && (ended || self.body.is_end_stream())
        {
            self.pool.put(connection);
        }
    }
}

impl Drop for PooledBody {
    /// hyper drops a body without reading past its end, so the clean end is
    /// often seen here. Anything short of the end closes the connection.
    fn drop(&mut self) {
        self.release(false);
    }
}

/// A request body that reports each data frame's length to the request's
/// [`SentBytes`], if it has one, as hyper takes the frame to send it.
pub type Counted = Observed<RequestBody, Option<SentBytes>>;

/// The request, its body wrapped to count what is sent.
fn counted(request: Request<RequestBody>) -> Request<Counted> {
    let (mut parts, body) = request.into_parts();
    let sent = parts.extensions.remove::<SentBytes>();
    Request::from_parts(parts, Observed::new(body, sent))
}

/// [`counted`] undone, for a request that never left: its absolute target
/// and its counter back where the caller put them.
fn uncounted(request: Request<Counted>, target: Uri) -> Request<RequestBody> {
    let (mut parts, body) = request.into_parts();
    let (body, sent) = body.into_parts();
    if let Some(sent) = sent {
        parts.extensions.insert(sent);
    }
    parts.uri = target;
    Request::from_parts(parts, body)
}
