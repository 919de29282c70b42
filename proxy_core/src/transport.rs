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

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};

/// What a transport's failure carries: any error, with its causes.
pub type TransportError = Box<dyn std::error::Error + Send + Sync>;

/// Sends one request upstream and returns the response head; the body
/// streams afterwards.
pub trait Transport: Send + Sync + 'static {
    /// The upstream response's body.
    type Body: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + Sync + Unpin + 'static;

    fn round_trip(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<Self::Body>, TransportError>> + Send;

    /// Can this transport reach upstreams of this URL scheme? Checked once
    /// at start, so a misconfigured upstream is an error, not a 502 per request.
    fn speaks(&self, scheme: &str) -> bool {
        scheme == "http"
    }
}
