//! The gateway's plain HTTP/1.1 listener on step 10's engine
//! (`engine = "fast"`).
//!
//! The routes are the same [`Routes`] the hyper engine serves, swapped by
//! the same reload; what changes is who moves the bytes. Step 10's engine
//! asks its hooks at each decision, and the gateway answers with the
//! decisions hyper's path takes through its middleware, written once over
//! the request-head view (`proxy_core::view`): the request id
//! (`middleware::request_id::choose`), statistics (`Counted`), the global
//! and the service's rate limit (`RateLimit::check`) and auth
//! (`Auth::check`), the breaker (`Breaker::enter`), rewrites, header
//! transforms (`HeaderEdits`, as the engine's `Edits`), the route
//! (`Table::route`), the upstream and its retries and health (step 04's
//! `Journey`). The order is the hyper chain's: request id, statistics,
//! global limit, route, service limit, upstream.
//!
//! Websockets tunnel through step 06's tunnels, as on hyper's listener
//! (`Tunnels::carry`); response bytes are counted as the engine sends them
//! (`Hooks::finished`).
//!
//! What the engine does not speak goes to hyper behind it, on the same
//! listener (`serving`'s `EngineStream`): HTTP/2 clients (ALPN `h2`, or
//! the h2c preface), and a connection whose request is for a service with
//! an upstream that is not `http://` — the engine speaks HTTP/1.1 over TCP
//! to upstreams. [`FastGateway::admit`] finds those before it counts or
//! limits anything, so hyper's chain counts them once.
//!
//! gRPC statuses are hyper's alone: gRPC is HTTP/2.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use middleware::auth::Auth;
use middleware::breaker::{Breaker, Ticket};
use middleware::headers::HeaderEdits;
use middleware::rate_limit::Limit;
use middleware::request_id::{X_REQUEST_ID, choose};
use middleware::stats::{Counted, Metrics};
use proxy_core::{HeadView, Refusal};
use step04_load_balance::BalancedProxy;
use step04_load_balance::journey::Journey;
use step07_https::upstream_tls::HttpsTransport;
use step10_fast_path::exchange::Client;
use step10_fast_path::forward::{Edits, Hop};
use step10_fast_path::hooks::{Declined, Destination, Head, Hooks};
use tokio::net::TcpStream;

use crate::apps::TOKEN_PATH;
use crate::gateway::{Gateway, LiveService, Routed, Routes};

/// The gateway, as step 10's engine asks it.
pub(crate) struct FastGateway(pub(crate) Arc<Gateway>);

/// One request the gateway admitted, until its exchange ends.
pub(crate) struct Admitted {
    /// The routes it was routed on: a reload while it is under way leaves
    /// them (and its service) alive until it ends.
    _routes: Arc<Routes>,
    service: Arc<LiveService>,
    /// The path it is forwarded with, if not the one it came with.
    path: Option<String>,
    journey: Journey<Arc<BalancedProxy<HttpsTransport>>>,
    destination: Arc<Destination>,
    /// Its hold on the service's breaker, if it has one.
    breaker: Option<Ticket<Arc<Breaker>>>,
    counted: Counted<Arc<Metrics>>,
    /// `X-Request-Id`, both ways.
    id: [(HeaderName, HeaderValue); 1],
    /// With the service's header transforms, the headers set each way:
    /// the id and theirs (empty without).
    request_set: Vec<(HeaderName, HeaderValue)>,
    response_set: Vec<(HeaderName, HeaderValue)>,
}

impl FastGateway {
    /// The hyper chain's decisions, in its order: request id, statistics,
    /// the global limit and auth, the route, the service's limit, auth,
    /// breaker and rewrite, then the upstream. Only a limit kept in Redis
    /// waits.
    async fn admit_now(
        &self,
        routes: Arc<Routes>,
        routed: Result<(Arc<LiveService>, Option<String>), Refusal>,
        head: &Head<'_>,
        who: &Hop,
    ) -> Result<Admitted, Refusal> {
        let gateway = &self.0;
        let id = choose(head.header(&X_REQUEST_ID));
        let mut counted = Counted::arrived(gateway.metrics.clone(), head.method());
        let mut refused = |refusal: Refusal| {
            counted.answered(refusal.status.as_u16(), None);
            refusal
        };
        check_limit_and_auth(&routes.global_limit, &routes.global_auth, head, who)
            .await
            .map_err(&mut refused)?;
        let (service, path) = routed.map_err(&mut refused)?;
        service.tally.count();
        if service.spec.open_auth {
            let shared = routes.table.shared.as_deref();
            routes
                .table
                .apps
                .admit(head, who.client, shared)
                .await
                .map_err(&mut refused)?;
        }
        check_limit_and_auth(&service.rate_limit, &service.auth, head, who)
            .await
            .map_err(&mut refused)?;
        let breaker = match &service.breaker {
            Some(breaker) => Some(Breaker::enter(breaker.clone()).map_err(&mut refused)?),
            None => None,
        };
        let path = match &service.rewrite {
            Some(rewrite) => {
                let current = path.as_deref().unwrap_or_else(|| {
                    std::str::from_utf8(head.path()).expect("a routed path is UTF-8")
                });
                rewrite.apply(current).filter(|new| is_path(new)).or(path)
            }
            None => path,
        };
        let forwarded = path.as_deref().map_or(head.path(), str::as_bytes);
        let journey = Journey::begin(service.proxy.clone(), head, forwarded, who.client)
            .map_err(&mut refused)?;
        let destination = service.destination(journey.upstream());
        let transforms = service.headers.as_deref();
        let request_set = with_id(&id, transforms.map(|h| &h.request));
        let response_set = with_id(&id, transforms.map(|h| &h.response));
        Ok(Admitted {
            _routes: routes,
            service,
            path,
            journey,
            destination,
            breaker,
            counted,
            id: [(X_REQUEST_ID, id)],
            request_set,
            response_set,
        })
    }
}

/// A rate limit's and an auth's decision, either of which may be absent.
async fn check_limit_and_auth(
    limit: &Option<Limit>,
    auth: &Option<Arc<Auth>>,
    head: &Head<'_>,
    who: &Hop,
) -> Result<(), Refusal> {
    match limit {
        Some(Limit::Local(limit)) => limit.check(head, who.client, None)?,
        Some(shared) => shared.check(head, who.client).await?,
        None => {}
    }
    if let Some(auth) = auth {
        auth.check(head, who.client)?;
    }
    Ok(())
}

/// The request id and the headers `edits` set, if it sets any (the engine
/// takes one list; most services have no transforms, and no list is made).
fn with_id(id: &HeaderValue, edits: Option<&HeaderEdits>) -> Vec<(HeaderName, HeaderValue)> {
    match edits {
        Some(edits) if !edits.set.is_empty() => std::iter::once((X_REQUEST_ID, id.clone()))
            .chain(edits.set.iter().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// One direction's edits: the request id, then the service's transforms.
fn edits<'a>(
    request: &'a Admitted,
    set: &'a [(HeaderName, HeaderValue)],
    edits: Option<&'a HeaderEdits>,
) -> Edits<'a> {
    Edits {
        set: if set.is_empty() { &request.id } else { set },
        remove: edits.map_or(&[], |edits| &edits.remove),
    }
}

/// Is `target` (a request line's, query included) the token endpoint?
fn is_token_path(target: &[u8]) -> bool {
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    path == TOKEN_PATH.as_bytes()
}

/// A rewritten path the request line can carry (the hyper engine checks
/// the same by making a URI of it).
fn is_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic())
}

impl Hooks for FastGateway {
    type Request = Admitted;

    /// A request for a service the engine cannot send to goes to hyper
    /// before anything counts it.
    fn admit(
        &self,
        head: &Head<'_>,
        who: &Hop,
    ) -> impl Future<Output = Result<Admitted, Declined>> + Send {
        let routes = self.0.routes.load_full();
        // Routed once, here: the answer says whether the engine serves the
        // request at all, and the admission goes on with it.
        let routed = routes.table.route(head).map(|Routed { service, path }| {
            let changed = path.as_bytes() != head.path();
            (service.clone(), changed.then(|| path.into_owned()))
        });
        async move {
            // hyper serves the token endpoint and the services the engine
            // cannot send to, and counts their requests.
            let for_tokens = routes.table.apps.issues_tokens() && is_token_path(head.path());
            if for_tokens
                || routed
                    .as_ref()
                    .is_ok_and(|(service, _)| !service.on_fast_engine())
            {
                return Err(Declined::HandOver);
            }
            self.0.statistics.total().count();
            Ok(self.admit_now(routes, routed, head, who).await?)
        }
    }

    fn destination<'a>(&'a self, request: &'a Admitted) -> &'a Destination {
        &request.destination
    }

    fn path<'a>(&'a self, request: &'a Admitted, path: &'a str) -> &'a str {
        request.path.as_deref().unwrap_or(path)
    }

    fn failed(&self, request: &mut Admitted, cause: &str, resendable: bool) -> bool {
        let service = &request.service.spec.name;
        if !request
            .journey
            .failed(cause, resendable, format_args!("service {service}"))
        {
            return false;
        }
        request.destination = request.service.destination(request.journey.upstream());
        true
    }

    fn answered(&self, request: &mut Admitted, status: u16) {
        request.journey.answered(status);
        if let Some(breaker) = &mut request.breaker {
            breaker.answered(status);
        }
        request
            .counted
            .answered(status, Some(&request.journey.upstream().name));
    }

    /// As on hyper: the upstream hears nothing of it, the statistics and
    /// the breaker hear the answer the client got.
    fn client_failed(&self, request: &mut Admitted, status: Option<u16>) {
        request.journey.abandon();
        if let Some(status) = status {
            self.answered(request, status);
        }
    }

    fn finished(&self, request: &mut Admitted, body_bytes: u64) {
        request.counted.sent(body_bytes);
    }

    fn response_timeout(&self, request: &Admitted, _: Option<Duration>) -> Option<Duration> {
        request.service.spec.proxy.timeout
    }

    fn client_body_timeout(&self, request: &Admitted, _: Duration) -> Duration {
        request.service.spec.proxy.client_body_timeout
    }

    /// Step 06's tunnels, as on hyper's listener: the idle timeout, the cap
    /// and close frames at shutdown.
    fn tunnel<'a, C: Client>(
        &'a self,
        client: &'a mut C,
        upstream: TcpStream,
        protocol: &'a [u8],
        peer: IpAddr,
    ) -> impl Future<Output = ()> + Send + 'a {
        self.0
            .tunnels
            .carry(client, upstream, peer, "its upstream", protocol)
    }

    fn request_headers<'a>(&'a self, request: &'a Admitted) -> Edits<'a> {
        let transforms = request.service.headers.as_ref().map(|h| &h.request);
        edits(request, &request.request_set, transforms)
    }

    fn response_headers<'a>(&'a self, request: &'a Admitted) -> Edits<'a> {
        let transforms = request.service.headers.as_ref().map(|h| &h.response);
        edits(request, &request.response_set, transforms)
    }
}
