//! A listener whose HTTP/1.1 connections an engine of one's own serves
//! (step 10's, in the gateway), with hyper behind it for the rest.
//!
//! hyper speaks HTTP/1.1 and HTTP/2; an engine built for proxying HTTP/1.1
//! costs less and speaks only that. On such a listener
//! ([`Server::http1_engine`](crate::Server::http1_engine)):
//!
//! - a TLS client that chose `h2` by ALPN goes to hyper at once;
//! - every other connection goes to the engine as an [`EngineStream`]. An
//!   HTTP/2 client without TLS announces itself with the connection
//!   preface (`PRI * HTTP/2.0`), which the engine's parser is the first to
//!   see; the engine then hands the stream over
//!   ([`EngineStream::hand_over`]) with the bytes it has read, and hyper
//!   serves the connection from its first byte. An engine may hand over a
//!   connection between two requests the same way (the gateway does, for
//!   a service whose upstreams speak HTTP/2 or TLS).
//!
//! A connection handed over is hyper's to its end, with all hyper's
//! listener gives one: the first-head deadline, HTTP/2's stream caps and
//! stall watch, graceful shutdown. It keeps its place under the caps.
//!
//! Left out on purpose: handing a connection back to the engine.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::connection::handshake;
use crate::{ClientStream, Stopping};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The engine: serves one HTTP/1.1 connection.
pub(crate) type Engine = Arc<dyn Fn(EngineStream, SocketAddr, Stopping) -> BoxFuture + Send + Sync>;

/// Serves a connection with hyper (`crate::server::Hyper`).
pub(crate) trait HandOver: Send + Sync {
    fn serve(&self, io: Rewound, peer: SocketAddr, stopping: Stopping) -> BoxFuture;
}

/// A client connection given to an engine: TCP, or TLS over it.
pub struct EngineStream {
    io: Io,
    peer: SocketAddr,
    hyper: Arc<dyn HandOver>,
    stopping: Stopping,
}

enum Io {
    Plain(ClientStream),
    /// Boxed: rustls' state is a kilobyte, and plain connections should
    /// not carry room for it.
    Tls(Box<TlsStream<ClientStream>>),
}

impl EngineStream {
    /// The client spoke TLS (for `X-Forwarded-Proto`).
    pub fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    /// Ready when a read would find something — bytes, or the end — without
    /// reading: what a connection between two requests waits on. Over TLS,
    /// plaintext rustls already holds counts, though the socket has none.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.io {
            Io::Plain(stream) => stream.get_ref().poll_read_ready(cx),
            Io::Tls(stream) => {
                let (tcp, tls) = stream.get_ref();
                // rustls wants no more while it holds unread plaintext
                // (or has seen the client's close_notify).
                if !tls.wants_read() {
                    return Poll::Ready(Ok(()));
                }
                tcp.get_ref().poll_read_ready(cx)
            }
        }
    }

    /// Let hyper serve the rest of this connection, starting with `read`:
    /// the bytes the engine read from it and did not use.
    pub fn hand_over(self, read: Bytes) -> impl Future<Output = ()> + Send {
        let io = Rewound { read, io: self.io };
        self.hyper.serve(io, self.peer, self.stopping)
    }
}

/// A connection handed over: the bytes already read, then the rest.
pub(crate) struct Rewound {
    read: Bytes,
    io: Io,
}

/// Where the engine's connections come from: accept, TLS, and the choice
/// between the engine and hyper.
pub(crate) struct EngineSide {
    pub(crate) name: &'static str,
    pub(crate) tls: Option<TlsAcceptor>,
    /// The TLS handshake must be done this long after accept.
    pub(crate) header_read_timeout: Option<Duration>,
    pub(crate) hyper: Arc<dyn HandOver>,
    pub(crate) engine: Engine,
    pub(crate) stopping: Stopping,
}

impl EngineSide {
    /// Serve one accepted connection. A plain one goes straight to the
    /// engine: its task holds the engine's future and nothing more (an
    /// idle connection's memory is that task; bench/README.md, "Idle
    /// connections").
    pub(crate) fn serve(self: &Arc<Self>, stream: ClientStream, peer: SocketAddr) -> BoxFuture {
        match &self.tls {
            None => (self.engine)(
                self.stream(Io::Plain(stream), peer),
                peer,
                self.stopping.clone(),
            ),
            Some(_) => Box::pin(self.clone().serve_tls(stream, peer)),
        }
    }

    /// The TLS handshake (by the head deadline), then hyper for a client
    /// that chose `h2`, the engine for the rest.
    async fn serve_tls(self: Arc<Self>, stream: ClientStream, peer: SocketAddr) {
        let Some(tls) = &self.tls else { return };
        let deadline = self
            .header_read_timeout
            .map(|limit| tokio::time::Instant::now() + limit);
        let Some(stream) = handshake(tls, stream, deadline, self.name, peer).await else {
            return;
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let stream = self.stream(Io::Tls(Box::new(stream)), peer);
        if h2 {
            stream.hand_over(Bytes::new()).await;
        } else {
            (self.engine)(stream, peer, self.stopping.clone()).await;
        }
    }

    fn stream(&self, io: Io, peer: SocketAddr) -> EngineStream {
        EngineStream {
            io,
            peer,
            hyper: self.hyper.clone(),
            stopping: self.stopping.clone(),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(stream) => stream.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for EngineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncRead for Rewound {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.has_remaining() {
            let n = this.read.len().min(buf.remaining());
            buf.put_slice(&this.read[..n]);
            this.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

/// Writes go to the connection as they are: the two types differ in
/// reading only.
macro_rules! writes_to_io {
    ($type:ty) => {
        impl AsyncWrite for $type {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().io).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
            }
        }
    };
}

writes_to_io!(EngineStream);
writes_to_io!(Rewound);
