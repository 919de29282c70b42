//! The transport: Go's `RoundTripper`, one request in, one response out.
//!
//! The default, [`HttpTransport`], is [`Pool`](crate::pool::Pool) over
//! hyper-util's TCP connector: keep-alive connections per upstream, an idle
//! limit and timeout, a connect timeout, and `TCP_NODELAY`, because a
//! proxy's small writes must not wait for Nagle's algorithm. Reusing
//! upstream connections is most of what makes a proxy fast: a new TCP
//! connection per request costs a handshake and a slow-start, and leaves
//! sockets in TIME_WAIT by the thousand.
//!
//! The trait is generic (no boxed futures), so the default transport costs
//! nothing over calling the pool directly. Step 07 plugs in a TLS one.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::pool::{Connector, Pool, PooledBody};

/// What a transport's failure carries.
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

/// Tuning for [`HttpTransport`].
#[derive(Debug, Clone)]
pub struct TransportOptions {
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections are kept per upstream.
    pub pool_max_idle_per_host: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 1024,
        }
    }
}

impl TransportOptions {
    /// The TCP connector these options describe (step 07 wraps it in TLS).
    pub fn connector(&self) -> HttpConnector {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.connect_timeout));
        connector.set_nodelay(true);
        connector
    }

    /// A connection pool over `connector`, tuned by these options.
    pub fn pool<C: Connector>(&self, connector: C) -> Pool<C> {
        Pool::new(
            connector,
            self.pool_idle_timeout,
            self.pool_max_idle_per_host,
        )
    }
}

/// The default transport: pooled HTTP/1.1 over TCP.
#[derive(Clone)]
pub struct HttpTransport {
    pool: Pool<HttpConnector>,
}

impl HttpTransport {
    pub fn new(options: TransportOptions) -> Self {
        Self {
            pool: options.pool(options.connector()),
        }
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new(TransportOptions::default())
    }
}

impl Transport for HttpTransport {
    type Body = PooledBody;

    fn round_trip(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<PooledBody>, TransportError>> + Send {
        self.pool.round_trip(request)
    }
}
