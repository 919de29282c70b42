//! Serving a proxy: a handler called with each request and the client it
//! came from.
//!
//! Every reverse proxy here answers a request the same way: it needs the
//! request and *who asked* — the TCP peer, or, when that peer is a trusted
//! proxy, the client it forwarded — and how the client reached us (`http`
//! or `https`, for `X-Forwarded-Proto`). [`Server::serve_clients`] works
//! that out once per connection and per request, so a step's launch code
//! says only what it does with a request.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use proxy_core::{ClientConn, ProxyBody, TrustedProxies};

use crate::{Server, ServerHandle};

impl Server {
    /// Serve `handler` on a background task: each request is passed with
    /// its client — the peer, or whom a `trusted` peer forwarded.
    pub fn serve_clients<H, F>(
        self,
        trusted: TrustedProxies,
        handler: H,
    ) -> io::Result<ServerHandle>
    where
        H: Fn(ClientConn, Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let (trusted, handler) = (Arc::new(trusted), Arc::new(handler));
        self.spawn(move |peer| {
            let (trusted, handler) = (trusted.clone(), handler.clone());
            let conn = ClientConn::new(peer, scheme);
            service_fn(move |req: Request<Incoming>| {
                let client = trusted
                    .client_of(&conn, req.headers())
                    .unwrap_or_else(|| conn.clone());
                let handler = handler.clone();
                // The handler is called inside the block, so its future —
                // a proxy's is kilobytes — is built where it is polled;
                // built outside and moved in, it would be copied twice a
                // request (callgrind measured 20,000 instructions of
                // memcpy a request that way).
                async move { Ok::<_, Infallible>(handler(client, req).await) }
            })
        })
    }
}
