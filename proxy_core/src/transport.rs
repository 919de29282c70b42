//! The transport: Go's `RoundTripper`, one request in, one response out.
//!
//! A reverse proxy decides *what* to send; a transport decides *how* it
//! reaches the upstream (plain TCP, TLS, a pool of kept-alive connections).
//! Keeping the two apart is what lets step 07 swap in TLS without touching
//! step 03's request handling, and lets tests plug in a stub.
//!
//! The trait is generic (no boxed futures), so a transport costs nothing
//! over calling it directly.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Frame;
use hyper::{Request, Response};

use crate::body::{OnFrame, RequestBody};

/// What a transport's failure carries: any error, with its causes.
pub type TransportError = Box<dyn std::error::Error + Send + Sync>;

/// A failed round trip, and the request back when it never left this
/// process (the connection could not be made, or closed before taking it):
/// such a request can go to another upstream whatever its method, because
/// no upstream can have acted on it.
#[derive(Debug)]
pub struct RoundTripError {
    pub error: TransportError,
    pub unsent: Option<Request<RequestBody>>,
}

impl<E: Into<TransportError>> From<E> for RoundTripError {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            unsent: None,
        }
    }
}

/// A request extension: whoever wants to know how many request body bytes
/// really went upstream (statistics) puts one in, and the transport calls it
/// with each chunk's length as it sends it. Counting what was sent, not what
/// `Content-Length` claimed, keeps a client from inflating (or wrapping) a
/// byte counter with a number it made up.
#[derive(Clone)]
pub struct SentBytes(pub Arc<dyn Fn(u64) + Send + Sync>);

/// A transport's request body reports to the request's counter, if any.
impl OnFrame for Option<SentBytes> {
    fn on_frame(&mut self, frame: &Frame<Bytes>) {
        if let (Some(sent), Some(data)) = (self, frame.data_ref()) {
            (sent.0)(data.len() as u64);
        }
    }
}

/// Sends one request upstream and returns the response head; the body
/// streams afterwards. A transport is a handle (a pool behind an `Arc`):
/// cloning it shares its connections, so health checks can use the same.
pub trait Transport: Clone + Send + Sync + 'static {
    /// The upstream response's body.
    type Body: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + Sync + Unpin + 'static;

    /// Sends `request`; if it carries a [`SentBytes`], reports the body's
    /// bytes to it as they go.
    fn round_trip(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<Self::Body>, RoundTripError>> + Send;

    /// Can this transport reach upstreams of this URL scheme? Checked once
    /// at start, so a misconfigured upstream is an error, not a 502 per request.
    fn speaks(&self, scheme: &str) -> bool {
        scheme == "http"
    }
}
