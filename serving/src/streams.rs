//! HTTP/2 streams: each one holds a place under the caps, and none may
//! stall for longer than the send timeout.
//!
//! Over HTTP/1.1 a connection carries one request at a time, so a proxy
//! holds at most one upstream connection per client connection, and the
//! caps (two descriptors a place) bound the process's descriptors. Over
//! HTTP/2 one connection carries up to 100 streams at once, each of which
//! a proxy may be answering from an upstream connection of its own.
//!
//! HTTP/2 also has flow control: the client grants each stream a window,
//! and the server may send only that many bytes until the client grants
//! more. A client that grants nothing (an initial window of 0, never a
//! `WINDOW_UPDATE`) stalls every response at no cost to itself: no write
//! ever blocks at the socket, so the send timeout never sees it, and the
//! client answers pings, so the connection looks alive. Twelve such
//! connections held 1,200 upstream connections and took every descriptor
//! of a process limited to 1,024 files.
//!
//! Two rules close it:
//!
//! - **Every stream takes a place** under the same caps connections take
//!   (the per-address one and the global one), for as long as its response
//!   is being sent. A stream that finds no place is answered `503` at once,
//!   before it reaches the proxy, so an address holds at most its share of
//!   upstream connections however it multiplexes them.
//! - **A stalled stream ends its connection.** hyper takes a frame from a
//!   response body, waits until the stream has window for it, hands it to
//!   the connection and asks for the next frame; that one waits in turn
//!   until the client has taken most of the last. A body that has given a
//!   frame and is not asked for the next one within the send timeout is
//!   waiting for the client: the connection is closed, as an HTTP/1 client
//!   that stops reading is. A body whose last answer was "nothing yet" is
//!   waiting for its upstream (a quiet event stream), which is not the
//!   client's doing.
//! - **Frames are cut to 16 KiB** (HTTP/2's default frame size), so the
//!   gap between two asks measures the client's progress, not the size of
//!   the upstream's chunks: a client that takes 16 KiB per send timeout
//!   (273 bytes a second at 60 s) is never cut off. An HTTP/1 client is
//!   held to about the same: one write that makes no progress for the
//!   send timeout.
//! - **A `CONNECT` stream's place stays with its tunnel.** hyper drops the
//!   body of a 2xx answer to `CONNECT` and keeps the stream as a byte pipe,
//!   so the place goes in the request as a [`TunnelPlace`] for the tunnel
//!   to keep.
//!
//! Left out on purpose: closing only the stalled stream. A body cannot make
//! hyper reset its stream without an error of hyper's own type, and a
//! client that stalls one stream on purpose has no claim on the others.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::guard::{Caps, Place};

/// A connection's service, with its HTTP/2 streams watched.
pub(crate) struct Streams<S> {
    service: S,
    caps: Caps,
    peer: IpAddr,
    watch: Option<Arc<StallWatch>>,
}

impl<S> Streams<S> {
    /// `send_timeout`: how long a stream may stall (None: no limit).
    pub(crate) fn new(
        service: S,
        caps: Caps,
        peer: IpAddr,
        send_timeout: Option<Duration>,
    ) -> Self {
        Self {
            service,
            caps,
            peer,
            watch: send_timeout.map(|limit| Arc::new(StallWatch::new(limit))),
        }
    }

    /// Resolves when one of this connection's streams has stalled.
    pub(crate) fn stalled(&self) -> impl Future<Output = Duration> + use<S> {
        let watch = self.watch.clone();
        async move {
            match watch {
                Some(watch) => watch.stalled().await,
                None => std::future::pending().await,
            }
        }
    }
}

impl<S, B> Service<Request<Incoming>> for Streams<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    B: Body<Data = Bytes>,
{
    type Response = Response<StreamBody<B>>;
    type Error = S::Error;
    type Future = StreamCall<S::Future>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if req.version() != Version::HTTP_2 {
            return StreamCall::Answering {
                call: self.service.call(req),
                stream: None,
            };
        }
        let Some(place) = self.caps.try_admit(self.peer) else {
            return StreamCall::Refused;
        };
        if req.method() == Method::CONNECT {
            // hyper drops a 2xx CONNECT answer's body: the place rides in
            // the request, for the tunnel to keep.
            req.extensions_mut().insert(TunnelPlace {
                _place: Arc::new(place),
            });
            return StreamCall::Answering {
                call: self.service.call(req),
                stream: None,
            };
        }
        StreamCall::Answering {
            call: self.service.call(req),
            stream: Some((place, self.watch.clone())),
        }
    }
}

pin_project_lite::pin_project! {
    /// The service's answer to one request, its body watched if it is an
    /// HTTP/2 stream's.
    #[project = StreamCallProj]
    pub(crate) enum StreamCall<F> {
        Answering {
            #[pin]
            call: F,
            stream: Option<(Place, Option<Arc<StallWatch>>)>,
        },
        Refused,
    }
}

impl<F, B, E> Future for StreamCall<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<StreamBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StreamCallProj::Refused => Poll::Ready(Ok(refused())),
            StreamCallProj::Answering { call, stream } => {
                let response = ready!(call.poll(cx))?;
                Poll::Ready(Ok(response.map(|body| match stream.take() {
                    None => StreamBody::Plain { body },
                    Some((place, watch)) => {
                        let waiting = match watch {
                            // A body with nothing to send is never asked.
                            Some(watch) if !body.is_end_stream() => Some(Waiting::new(watch)),
                            _ => None,
                        };
                        StreamBody::Stream {
                            body,
                            rest: Bytes::new(),
                            _place: place,
                            waiting,
                        }
                    }
                })))
            }
        }
    }
}

/// The longest data frame a stream's body gives hyper.
const FRAME: usize = 16 * 1024;

/// The place of an HTTP/2 `CONNECT` stream, in its request's extensions.
///
/// A tunnel outlives its answer (hyper keeps the stream open as a byte
/// pipe and drops the answer's body), so whoever opens the tunnel takes
/// this from the request and holds it for as long as the tunnel is open.
/// Dropped with the request (and any clone), the place is given back.
#[derive(Clone)]
pub struct TunnelPlace {
    _place: Arc<Place>,
}

/// The 503 for a stream that found no place.
fn refused<B>() -> Response<StreamBody<B>> {
    let mut response = Response::new(StreamBody::Refused {
        text: Some(Bytes::from_static(
            b"too many requests in flight from your address\n",
        )),
    });
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pin_project_lite::pin_project! {
    /// A response body: an HTTP/1 one as it is, an HTTP/2 stream's with its
    /// place and its stall watch, or the refusal.
    #[project = StreamBodyProj]
    pub enum StreamBody<B> {
        Plain {
            #[pin]
            body: B,
        },
        Stream {
            #[pin]
            body: B,
            // What is left of a data frame longer than `FRAME`.
            rest: Bytes,
            _place: Place,
            waiting: Option<Waiting>,
        },
        Refused {
            text: Option<Bytes>,
        },
    }
}

impl<B: Body<Data = Bytes>> Body for StreamBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            StreamBodyProj::Plain { body } => body.poll_frame(cx),
            StreamBodyProj::Stream {
                body,
                rest,
                waiting,
                ..
            } => {
                let polled = if rest.is_empty() {
                    body.poll_frame(cx).map_ok(|frame| match frame.into_data() {
                        Ok(mut data) => {
                            if data.len() > FRAME {
                                *rest = data.split_off(FRAME);
                            }
                            Frame::data(data)
                        }
                        Err(frame) => frame,
                    })
                } else {
                    let piece = rest.split_to(rest.len().min(FRAME));
                    Poll::Ready(Some(Ok(Frame::data(piece))))
                };
                if let Some(waiting) = waiting {
                    match &polled {
                        // It has more to give the moment hyper asks again.
                        Poll::Ready(Some(Ok(frame))) if frame.is_data() => waiting.start(),
                        // Waiting for its upstream, or done.
                        _ => waiting.clear(),
                    }
                }
                polled
            }
            StreamBodyProj::Refused { text } => {
                Poll::Ready(text.take().map(|text| Ok(Frame::data(text))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Plain { body } => body.is_end_stream(),
            Self::Stream { body, rest, .. } => rest.is_empty() && body.is_end_stream(),
            Self::Refused { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Plain { body } => body.size_hint(),
            Self::Stream { body, rest, .. } => {
                let (mut hint, rest) = (body.size_hint(), rest.len() as u64);
                hint.set_lower(hint.lower() + rest);
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper + rest);
                }
                hint
            }
            Self::Refused { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}

/// One connection's HTTP/2 bodies that have something to send, and since
/// when.
pub(crate) struct StallWatch {
    limit: Duration,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Instant>>,
    /// Told when the first body starts waiting: until then (and on every
    /// HTTP/1 connection) nothing ticks.
    first: Notify,
}

impl StallWatch {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            next: AtomicU64::new(0),
            waiting: Mutex::default(),
            first: Notify::new(),
        }
    }

    /// Resolves once a body has waited `limit` to be asked for its next frame.
    async fn stalled(&self) -> Duration {
        self.first.notified().await;
        loop {
            tokio::time::sleep(self.limit / 4).await;
            let oldest = self.lock().values().min().copied();
            if oldest.is_some_and(|since| since.elapsed() >= self.limit) {
                return self.limit;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One body's entry in its connection's [`StallWatch`].
pub struct Waiting {
    watch: Arc<StallWatch>,
    id: u64,
}

impl Waiting {
    /// A new body waits from the start: hyper has not asked it yet.
    fn new(watch: Arc<StallWatch>) -> Self {
        let id = watch.next.fetch_add(1, Ordering::Relaxed);
        let waiting = Self { watch, id };
        waiting.start();
        waiting.watch.first.notify_one();
        waiting
    }

    fn start(&self) {
        self.watch.lock().insert(self.id, Instant::now());
    }

    fn clear(&self) {
        self.watch.lock().remove(&self.id);
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.clear();
    }
}
