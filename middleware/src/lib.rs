//! `middleware`: what a proxy does around the proxying itself.
//!
//! The seed extends its proxy with a gin-style router: a list of handlers,
//! each receiving the request and the means to call the rest of the list.
//! This crate is that design in Rust. A [`Middleware`] gets the request and
//! a [`Next`]; it may answer by itself (abort: a 429, a 401) without calling
//! `next`, or call `next.run(...)` and work on the response it returns. The
//! reverse proxy is the [`Endpoint`] at the end of the [`Chain`].
//!
//! ```text
//! request → request_id → stats → rate_limit → auth → breaker → rewrite → headers → proxy
//! response ←────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! That is the order step 05 builds (rate limiting before auth, so a flood
//! of bad credentials is refused cheaply before any signature is checked).
//! Each middleware is an independent module and the chain takes them in any
//! order; NOTES chapter 5 explains the choice.
//!
//! Left out on purpose: body-rewriting middleware (it would have to buffer,
//! and streaming is a property the proxy keeps) and per-route chains.

pub mod auth;
pub mod breaker;
pub mod grpc;
pub mod headers;
mod per_second;
pub mod rate_limit;
pub mod request_id;
pub mod rewrite;
pub mod settings;
pub mod stats;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response};
pub use proxy_core::ClientConn;
use proxy_core::ProxyBody;

/// What a middleware knows about the request besides the request itself:
/// the client's connection, and what the chain learns while it handles the
/// request. One per request.
#[derive(Debug)]
pub struct Ctx {
    pub client: ClientConn,
    upstream: OnceLock<Arc<str>>,
}

impl Ctx {
    pub fn new(client: ClientConn) -> Self {
        Self {
            client,
            upstream: OnceLock::new(),
        }
    }

    /// The client's TCP peer.
    pub fn peer(&self) -> SocketAddr {
        self.client.peer
    }

    /// The endpoint says which upstream answered. A slot in the context,
    /// not a response extension: the extension map would cost two
    /// allocations per request to carry one name back up the chain.
    pub fn set_upstream(&self, name: Arc<str>) {
        // The endpoint runs once per request; a second name is ignored.
        let _ = self.upstream.set(name);
    }

    /// The upstream that answered, once the endpoint has said so.
    pub fn upstream(&self) -> Option<&Arc<str>> {
        self.upstream.get()
    }
}

/// The end of the chain: the thing that actually answers (the proxy).
pub trait Endpoint: Send + Sync {
    fn call<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>>;
}

/// One link of the chain.
pub trait Middleware: Send + Sync {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>>;
}

/// The rest of the chain after the current middleware.
pub struct Next<'a> {
    rest: &'a [Arc<dyn Middleware>],
    endpoint: &'a dyn Endpoint,
}

impl<'a> Next<'a> {
    /// Call the next middleware, or the endpoint when none is left.
    pub fn run(self, req: Request<Incoming>, ctx: &'a Ctx) -> BoxFuture<'a, Response<ProxyBody>> {
        match self.rest.split_first() {
            Some((first, rest)) => first.handle(
                req,
                ctx,
                Next {
                    rest,
                    endpoint: self.endpoint,
                },
            ),
            None => self.endpoint.call(req, ctx),
        }
    }
}

/// Middlewares in order, then the endpoint.
pub struct Chain {
    middlewares: Vec<Arc<dyn Middleware>>,
    endpoint: Arc<dyn Endpoint>,
}

impl Chain {
    pub fn new(endpoint: Arc<dyn Endpoint>) -> Self {
        Self {
            middlewares: Vec::new(),
            endpoint,
        }
    }

    /// Append a middleware: it runs after the ones added before it.
    pub fn with(mut self, middleware: Arc<dyn Middleware>) -> Self {
        self.middlewares.push(middleware);
        self
    }

    pub fn len(&self) -> usize {
        self.middlewares.len()
    }

    pub fn is_empty(&self) -> bool {
        self.middlewares.is_empty()
    }

    /// Run one request through the chain.
    pub async fn serve(&self, req: Request<Incoming>, ctx: &Ctx) -> Response<ProxyBody> {
        Next {
            rest: &self.middlewares,
            endpoint: self.endpoint.as_ref(),
        }
        .run(req, ctx)
        .await
    }
}
