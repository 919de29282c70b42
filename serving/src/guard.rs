//! What every server here does against clients that mean harm.
//!
//! An HTTP server's cheapest attack is to do nothing: open a connection and
//! stay silent (slowloris), or ask for a large answer and never read it.
//! Each such connection costs the server a file descriptor, a task and, for
//! a proxy, an upstream connection with its buffers. Three limits bound
//! what one client can hold:
//!
//! - **a deadline from accept to the first complete request head**, counted
//!   from the moment the connection is accepted, so it covers the TLS
//!   handshake and the few bytes hyper reads to tell HTTP/1.1 from HTTP/2.
//!   hyper's own `header_read_timeout` starts only once HTTP/1 parsing has
//!   begun, so a client that sent nothing, one byte, or half an HTTP/2
//!   preface would otherwise stay for ever. After the first request,
//!   hyper's timeout guards each further HTTP/1 request head;
//! - **connection caps**: a global one, at which the server stops accepting
//!   (connections wait in the kernel's backlog, as HAProxy's `maxconn`
//!   does) so the process never runs out of file descriptors; and one per
//!   client address, past which a new connection is closed at once;
//! - **a send timeout** ([`GuardedStream`]): a write that cannot make progress
//!   for that long fails, and the connection closes (nginx's `send_timeout`).
//!   Without it a client that stops reading keeps its response, and the
//!   upstream connection feeding it, for ever.
//!
//! HTTP/2 streams take places under the same caps, and a stream the client
//! leaves unread for the send timeout ends its connection (`streams.rs`);
//! a request body that stalls is the proxies' to time
//! (`proxy_core::client_body`), since only they know a body is owed.
//!
//! Left out on purpose: per-address request rates (that is the rate
//! limiter's job, in the middleware chain).
//!
//! Known limit, for HTTP/2: after the first request hyper has no head
//! timeout for it, so a live but silent HTTP/2 connection stays (pings
//! every 20 s close a dead one); it holds one place, and no stream.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// A default for the global connection cap: 10,000, or fewer when the
/// process may not open that many files. A proxied connection costs two
/// descriptors (client and upstream), and a few hundred are kept back for
/// listeners, logs and health checks.
pub fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (files.saturating_sub(256) / 2).clamp(64, 10_000)
}

/// A default for the cap per client address: a quarter of the global cap,
/// so that no one address can take every place, however low the
/// open-files limit made the global cap.
pub fn default_max_connections_per_address() -> usize {
    (default_max_connections() / 4).max(8)
}

/// The connection caps of one listener, shared by its accept loop and
/// every connection it accepted.
#[derive(Clone)]
pub(crate) struct Caps {
    global: Arc<Semaphore>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_address: usize,
}

/// One connection's place under the caps, given back when it is dropped.
pub struct Place {
    _global: OwnedSemaphorePermit,
    address: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Caps {
    pub(crate) fn new(max: usize, max_per_address: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(max.max(1))),
            per_address: Arc::default(),
            max_per_address: max_per_address.max(1),
        }
    }

    /// Wait until the global cap has room (the accept loop calls this
    /// before accepting, so a full server leaves new connections queued).
    pub(crate) async fn room(&self) -> OwnedSemaphorePermit {
        self.global
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Admit a connection from `address`, or refuse it when that address
    /// already holds its share. The table holds only addresses with an
    /// open connection, so it is bounded by the global cap.
    pub(crate) fn admit(&self, room: OwnedSemaphorePermit, address: IpAddr) -> Option<Place> {
        let mut table = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let address = proxy_core::client::client_share(address);
        let open = table.entry(address).or_insert(0);
        if *open >= self.max_per_address {
            return None;
        }
        *open += 1;
        Some(Place {
            _global: room,
            address,
            per_address: self.per_address.clone(),
        })
    }
}

impl Caps {
    /// A place for an HTTP/2 stream from `address`, if there is one now —
    /// under the global cap and the address's share alike. A stream cannot
    /// wait in a backlog as a connection does: without a place, it is
    /// refused.
    pub(crate) fn try_admit(&self, address: IpAddr) -> Option<Place> {
        let room = self.global.clone().try_acquire_owned().ok()?;
        self.admit(room, address)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut table = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = table.get_mut(&self.address) {
            *open -= 1;
            if *open == 0 {
                table.remove(&self.address);
            }
        }
    }
}

/// An accepted client connection, as a server's handler gets it.
pub type ClientStream = GuardedStream<tokio::net::TcpStream>;

/// A client's byte stream, holding its place under the caps for as long as
/// the socket lives — through an upgrade too, when hyper hands the stream
/// to a tunnel and the HTTP connection is long gone — and failing writes
/// that have been unable to make progress for `limit`: the client stopped
/// reading.
pub struct GuardedStream<T> {
    inner: T,
    limit: Option<Duration>,
    /// Armed while a write is pending; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
    _place: Place,
}

impl<T> GuardedStream<T> {
    /// The stream underneath (for its addresses).
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    pub(crate) fn new(inner: T, limit: Option<Duration>, place: Place) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
            _place: place,
        }
    }

    /// A pending write: start the clock if it is not running, and fail when
    /// it has run out.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(
        &mut self,
        polled: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progressed(polled, cx)
    }
}
