//! Step 03's default transport (Go's `RoundTripper`; the trait is
//! [`proxy_core::Transport`]).
//!
//! [`HttpTransport`] is an [`upstream_pool::Pool`] over hyper-util's TCP
//! connector: keep-alive connections per upstream, an idle
//! limit and timeout, a connect timeout, and `TCP_NODELAY`, because a
//! proxy's small writes must not wait for Nagle's algorithm. Reusing
//! upstream connections is most of what makes a proxy fast: a new TCP
//! connection per request costs a handshake and a slow-start, and leaves
//! sockets in TIME_WAIT by the thousand.
//!
//! How the pool works, and why it is not hyper-util's general-purpose
//! client, is `upstream_pool`'s story; this chapter only needs to know that
//! connections are kept and reused. Step 07 plugs in a TLS transport.

use std::future::Future;
use std::time::Duration;

use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;

use proxy_core::{RequestBody, RoundTripError, Transport};
use upstream_pool::{Connector, Pool, PooledBody};

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
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<PooledBody>, RoundTripError>> + Send {
        self.pool.round_trip(request)
    }

    fn speaks(&self, scheme: &str) -> bool {
        scheme == "http" || scheme == "h2c"
    }
}
