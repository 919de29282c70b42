//! The body every proxy here answers with, and the few ways they make one.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header;
use hyper::{Response, StatusCode};

use crate::client_body::{ClientBody, ClientBodyError, ClientBodyFailed};

/// The body of every response a proxy in this course sends: the upstream's
/// body streamed through, or a short text the proxy wrote itself.
pub type ProxyBody = BoxBody<Bytes, BodyError>;

/// Why a response body broke off. Mostly hyper's error from the upstream
/// connection; but a body may come from elsewhere — a cache hands one
/// upstream body to many clients, and each must fail when it fails.
pub type BodyError = Box<dyn StdError + Send + Sync>;

/// A text response written by the proxy itself (errors, refusals).
pub fn text_response(status: StatusCode, message: impl Into<String>) -> Response<ProxyBody> {
    let mut body = message.into();
    body.push('\n');
    complete_response(status, "text/plain; charset=utf-8", body)
}

/// A whole response the proxy writes itself, of any content type (an error
/// page, a metrics page).
pub fn complete_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// `body`, with `on_frame` called on every frame as it passes and dropped
/// with the body. Used to count bytes, and to hold a guard (a request
/// counted in flight) until the body has been sent.
pub fn observe(
    body: ProxyBody,
    on_frame: impl FnMut(&Frame<Bytes>) + Send + Sync + Unpin + 'static,
) -> ProxyBody {
    Observed::new(body, on_frame).boxed()
}

/// Whatever watches the frames of an [`Observed`] body: any closure, or a
/// type of its own where the body's type must be named (the pool's request
/// bodies, whose byte counter is optional).
pub trait OnFrame {
    fn on_frame(&mut self, frame: &Frame<Bytes>);
}

impl<F: FnMut(&Frame<Bytes>)> OnFrame for F {
    fn on_frame(&mut self, frame: &Frame<Bytes>) {
        self(frame)
    }
}

/// A body whose frames pass by an [`OnFrame`] on their way.
pub struct Observed<B, F> {
    body: B,
    on_frame: F,
}

impl<B, F> Observed<B, F> {
    pub fn new(body: B, on_frame: F) -> Self {
        Self { body, on_frame }
    }

    /// The body and its observer, apart again.
    pub fn into_parts(self) -> (B, F) {
        (self.body, self.on_frame)
    }
}

impl<B, F> Body for Observed<B, F>
where
    B: Body<Data = Bytes> + Unpin,
    F: OnFrame + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            this.on_frame.on_frame(frame);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body on its way upstream: the client's stream, passed on as it
/// arrives, or bytes the proxy kept — so that a request can be sent again,
/// to another upstream, when the first attempt failed (a retry), and so
/// that a request can be made up by the proxy itself (a health check).
#[derive(Debug)]
pub enum RequestBody {
    /// The client's stream, watched for breaking off and for stalling.
    Client(ClientBody),
    /// The whole body; `None` once it has been sent.
    Kept(Option<Bytes>),
}

impl RequestBody {
    /// No body at all.
    pub fn empty() -> Self {
        Self::Kept(None)
    }

    /// The client's body, failing after `timeout` without bytes (None:
    /// never), and the flag its failure will set.
    pub fn from_client(body: Incoming, timeout: Option<Duration>) -> (Self, ClientBodyFailed) {
        let (body, failed) = ClientBody::new(body, timeout);
        (Self::Client(body), failed)
    }
}

/// What a proxy can send upstream as a request's body: a client's stream
/// ([`Incoming`]), or a [`RequestBody`] the proxy made itself (a cache's
/// revalidation has no client behind it).
pub trait IntoRequestBody {
    /// This body, failing after `timeout` without bytes if it is a
    /// client's; and the flag its failure will set.
    fn into_request_body(self, timeout: Option<Duration>) -> (RequestBody, ClientBodyFailed);
}

impl IntoRequestBody for Incoming {
    fn into_request_body(self, timeout: Option<Duration>) -> (RequestBody, ClientBodyFailed) {
        RequestBody::from_client(self, timeout)
    }
}

impl IntoRequestBody for RequestBody {
    fn into_request_body(self, _: Option<Duration>) -> (RequestBody, ClientBodyFailed) {
        let failed = match &self {
            Self::Client(body) => body.failed(),
            Self::Kept(_) => ClientBodyFailed::whole(),
        };
        (self, failed)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.get_mut() {
            Self::Client(body) => Pin::new(body).poll_frame(cx),
            Self::Kept(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Client(body) => body.is_end_stream(),
            Self::Kept(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Client(body) => body.size_hint(),
            Self::Kept(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// An error and all its causes, `outer: inner: innermost`, because hyper's
/// top-level messages ("client error (Connect)") say little on their own.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
