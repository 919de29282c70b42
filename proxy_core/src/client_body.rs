//! The client's request body on its way upstream, watched on two counts:
//! whether it broke off, and whether it still moves.
//!
//! A proxy opens the upstream request as soon as the head has arrived and
//! streams the body after it. A client that announces a body and never
//! sends it — a `POST` with `Expect: 100-continue` that ignores the
//! `100 Continue`, or an upload that stops half-way — would hold that
//! upstream connection for as long as it keeps its own open. nginx's answer
//! is `client_body_timeout` (60 s by default): the time allowed *between
//! two reads* of the body, not for the whole body, so a slow but steady
//! upload of any size still gets through. Ours is the same rule: no bytes
//! for the body timeout and the body fails with [`ClientBodyError::Stalled`];
//! the upstream request ends with it, and the client is answered `408`.
//!
//! Either failure is the client's doing, and [`ClientBodyFailed`] says so to
//! whoever has to decide whose failure a failed attempt was: an upstream is
//! never ejected, and a breaker never opens, because of what a client did.
//!
//! A gRPC call over HTTP/2 is exempt: a streaming call may be quiet between
//! messages for as long as it lasts (a chat, a subscription), and that is
//! no sign of a broken client. It is bounded otherwise: every HTTP/2 stream
//! holds a place under the connection caps (`serving::streams`), and pings
//! find a peer that has gone. (nginx applies `client_body_timeout` to gRPC
//! too, and its users raise it to keep streaming calls alive.)
//!
//! Left out on purpose: a minimum rate (bytes a second). A client can keep
//! a body alive with one byte every minute; the connection caps bound how
//! many such bodies one address can hold.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use thiserror::Error;
use tokio::time::{Instant, Sleep};

/// nginx's `client_body_timeout` default.
pub const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The body timeout for a request with `head`: `timeout`, except for a gRPC
/// call over HTTP/2, whose body may pause between messages for as long as
/// the call lasts.
pub fn body_timeout(head: &hyper::http::request::Parts, timeout: Duration) -> Option<Duration> {
    let grpc = head.version == hyper::Version::HTTP_2
        && head
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"));
    (!grpc).then_some(timeout)
}

/// Why the client's body did not arrive whole.
#[derive(Debug, Error)]
pub enum ClientBodyError {
    /// The client hung up, or sent a broken body.
    #[error("the client's body broke off: {0}")]
    Broken(#[source] hyper::Error),
    /// No bytes of the body for this long.
    #[error("the client sent no body bytes for {0:?}")]
    Stalled(Duration),
}

/// Set when the client's body fails, so that the proxy can tell, once an
/// attempt has failed, whose failure it was.
#[derive(Debug, Clone, Default)]
pub struct ClientBodyFailed(Arc<AtomicU8>);

const BROKEN: u8 = 1;
const STALLED: u8 = 2;
/// The body arrived whole.
const ENDED: u8 = 4;

impl ClientBodyFailed {
    /// For a body the proxy holds whole: nothing is owed, nothing can fail.
    pub fn whole() -> Self {
        let failed = Self::default();
        failed.ended();
        failed
    }

    /// Did the client's body fail (either way)?
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed) & (BROKEN | STALLED) != 0
    }

    /// Did it fail by stalling (rather than breaking off)?
    pub fn stalled(&self) -> bool {
        self.0.load(Ordering::Relaxed) & STALLED != 0
    }

    /// Is some of the body still to come? An upstream that has not
    /// answered by then may be waiting for it: its silence is not yet its
    /// own failure.
    pub fn owed(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }

    fn ended(&self) {
        self.0.fetch_or(ENDED, Ordering::Relaxed);
    }

    fn set(&self, error: &ClientBodyError) {
        let kind = match error {
            ClientBodyError::Broken(_) => BROKEN,
            ClientBodyError::Stalled(_) => STALLED,
        };
        self.0.fetch_or(kind, Ordering::Relaxed);
    }
}

/// The client's body stream, failing when it breaks off or stalls.
#[derive(Debug)]
pub struct ClientBody {
    incoming: Incoming,
    failed: ClientBodyFailed,
    /// None: the body may pause for as long as it likes.
    timeout: Option<Duration>,
    /// The stall timer, made at the first wait (a body that is all there
    /// when asked for never needs one).
    idle: Option<Pin<Box<Sleep>>>,
    /// Bytes arrived since the timer was last set.
    moved: bool,
}

impl ClientBody {
    /// `incoming`, failing after `timeout` without bytes (None: never); and
    /// the flag its failure will set.
    pub fn new(incoming: Incoming, timeout: Option<Duration>) -> (Self, ClientBodyFailed) {
        let failed = ClientBodyFailed::default();
        if incoming.is_end_stream() {
            failed.ended();
        }
        let body = Self {
            incoming,
            failed: failed.clone(),
            timeout,
            idle: None,
            moved: false,
        };
        (body, failed)
    }

    /// The flag this body's failure sets.
    pub fn failed(&self) -> ClientBodyFailed {
        self.failed.clone()
    }

    fn fail(
        &mut self,
        error: ClientBodyError,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        self.failed.set(&error);
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => this.fail(ClientBodyError::Broken(error)),
            Poll::Ready(frame) => {
                this.moved = true;
                // hyper may not ask again once the announced length is in.
                let last = match &frame {
                    None => true,
                    Some(Ok(frame)) => frame.is_trailers() || this.incoming.is_end_stream(),
                    Some(Err(_)) => false,
                };
                if last {
                    this.failed.ended();
                }
                Poll::Ready(frame.map(|frame| frame.map_err(ClientBodyError::Broken)))
            }
            Poll::Pending => {
                let Some(timeout) = this.timeout else {
                    return Poll::Pending;
                };
                // The clock starts at the first wait, and again at the
                // first wait after bytes arrived — so time the proxy spent
                // not asking (an upstream slow to take the body) is never
                // counted against the client.
                let deadline = Instant::now() + timeout;
                let idle = this
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if std::mem::take(&mut this.moved) {
                    idle.as_mut().reset(deadline);
                }
                match idle.as_mut().poll(cx) {
                    Poll::Ready(()) => this.fail(ClientBodyError::Stalled(timeout)),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
