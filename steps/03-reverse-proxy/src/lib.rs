//! Step 03: `step03_reverse_proxy`, a clone of Go's `httputil.ReverseProxy`.
//!
//! Step 02 showed the four moves of a reverse proxy and everything they get
//! wrong. This crate keeps the moves and gets the protocol right, with the
//! same shape as Go's type so the seed's walkthrough reads beside it:
//!
//! | Go | here |
//! |---|---|
//! | `Director func(*Request)` | [`Director`], e.g. [`single_host`] |
//! | `Transport RoundTripper` | [`Transport`]; default [`HttpTransport`], pooled |
//! | `FlushInterval` | [`ReverseProxy::flush_interval`]; streaming by default |
//! | `ErrorLog` | `tracing` |
//! | `BufferPool` | not needed: bodies move as reference-counted `Bytes` frames, never copied into a buffer |
//! | `ModifyResponse func(*Response) error` | [`ModifyResponse`]; an error goes to the error handler |
//! | `ErrorHandler` | [`ErrorHandler`]; default 502, 504 on timeout |
//!
//! [`ReverseProxy::serve_with`] follows the 13 steps of Go's `ServeHTTP`,
//! in order, each marked with a comment; [`ReverseProxy::serve`] calls it
//! with the proxy's own director. Later steps build on this type: step 04
//! builds a proxy without a director of its own and serves each request
//! with a director aimed at the upstream it picked (Go's `Rewrite` plays
//! that part), and step 05 puts step 04's proxy at the end of a middleware
//! chain.
//!
//! A failed attempt can be sent again when the [`Route`] a request is
//! served with has somewhere else to send it: step 03's directors have
//! not, step 04's balancer has (retries, and why a POST is different, are
//! chapter 4's).
//!
//! The transport speaks HTTP/1.1 to `http://` upstreams and HTTP/2 to
//! `h2c://` ones (what gRPC servers speak).
//!
//! Left out on purpose: HTTPS (step 07), caching.

mod cli;
pub mod director;
pub mod error;
pub mod flush;
pub mod forwarded;
pub mod transport;
pub mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode, Uri, Version};
use proxy_core::headers::{is_idempotent, remove_hop_by_hop, request_host, te_lists_trailers};
use proxy_core::refusal::UpgradeRefusal;
use proxy_core::{
    ClientBodyFailed, ClientConn, DEFAULT_CLIENT_BODY_TIMEOUT, IntoRequestBody, ProxyBody,
    RequestBody, RoundTripError, SentBytes, Transport, body_timeout, text_response,
};

pub use cli::{Args, ProxyOptions, ProxySettings, launch, parse_upstream, serve};
pub use director::{Director, Route, single_host};
pub use error::{ErrorHandler, ProxyError, default_error_handler};
pub use transport::{HttpTransport, TransportOptions};
pub use upgrade::{Upgrade, UpgradeHandler};

/// Go's `ModifyResponse func(*http.Response) error`.
pub type ModifyResponse = Arc<
    dyn Fn(&mut Response<ProxyBody>) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
        + Send
        + Sync,
>;

/// The reverse proxy: a director, a transport and the optional hooks.
pub struct ReverseProxy<T = HttpTransport> {
    /// None for a proxy whose requests each bring their own director
    /// ([`serve_with`](Self::serve_with)), as Go's `Rewrite` replaces `Director`.
    director: Option<Director>,
    transport: T,
    flush_interval: Option<Duration>,
    timeout: Option<Duration>,
    client_body_timeout: Duration,
    modify_response: Option<ModifyResponse>,
    error_handler: ErrorHandler,
    upgrade_handler: UpgradeHandler,
}

impl ReverseProxy<HttpTransport> {
    /// A proxy with the default pooled transport.
    pub fn new(director: Director) -> Self {
        Self::with_transport(director, HttpTransport::default())
    }
}

impl<T: Transport> ReverseProxy<T> {
    pub fn with_transport(director: Director, transport: T) -> Self {
        Self::directed_by(Some(director), transport)
    }

    /// A proxy with `director` as its own, or with none: then every request
    /// is served through [`serve_with`](Self::serve_with) with a director of
    /// its own (step 04 directs each request at the upstream picked for it).
    pub fn directed_by(director: Option<Director>, transport: T) -> Self {
        Self {
            director,
            transport,
            flush_interval: None,
            timeout: None,
            client_body_timeout: DEFAULT_CLIENT_BODY_TIMEOUT,
            modify_response: None,
            error_handler: Arc::new(default_error_handler),
            upgrade_handler: Arc::new(upgrade::spawn_tunnel),
        }
    }

    /// Coalesce response frames over this interval instead of writing each
    /// as it arrives (see [`flush`]).
    pub fn flush_interval(mut self, interval: Option<Duration>) -> Self {
        self.flush_interval = interval.filter(|i| !i.is_zero());
        self
    }

    /// Give up on an upstream that has not sent its response head in time (504).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Give up on a client that sends no body bytes for this long (408):
    /// it would hold the upstream request open for as long as it liked
    /// (see [`proxy_core::client_body`]).
    pub fn client_body_timeout(mut self, timeout: Duration) -> Self {
        self.client_body_timeout = timeout;
        self
    }

    pub fn modify_response(mut self, hook: ModifyResponse) -> Self {
        self.modify_response = Some(hook);
        self
    }

    pub fn error_handler(mut self, handler: ErrorHandler) -> Self {
        self.error_handler = handler;
        self
    }

    /// What to do with the connections of an accepted upgrade (default:
    /// [`upgrade::spawn_tunnel`], a plain byte copy).
    pub fn on_upgrade(mut self, handler: UpgradeHandler) -> Self {
        self.upgrade_handler = handler;
        self
    }

    /// Proxy one request — Go's `ServeHTTP`, with the proxy's own director.
    pub async fn serve(&self, client: &ClientConn, req: Request<Incoming>) -> Response<ProxyBody> {
        match &self.director {
            Some(director) => {
                self.serve_with(client, req, &mut |parts: &mut Parts| director(parts))
                    .await
            }
            // Go's ServeHTTP reports the same mistake to its error handler
            // (a 502 by default) when neither Director nor Rewrite is set.
            None => (self.error_handler)(req.method(), req.uri(), ProxyError::NoDirector),
        }
    }

    /// [`serve`](Self::serve), with `route` deciding where this one
    /// request goes — the role of Go's per-request `Rewrite` — and where it
    /// goes next if the attempt fails. Step 04 picks an upstream per
    /// request and directs the request at it this way.
    ///
    /// The numbered comments are the 13 steps of Go's `ServeHTTP`.
    pub async fn serve_with(
        &self,
        client: &ClientConn,
        req: Request<impl IntoRequestBody>,
        route: &mut impl Route,
    ) -> Response<ProxyBody> {
        // Before step 1: what RFC 9112 says to reject and hyper lets through.
        // Ambiguous input must never reach a backend.
        if let Err(reason) = check_request(&req) {
            return refuse(reason);
        }

        // 1. Stop when the client goes away. Go wires a CloseNotifier to a
        //    context; here nothing is needed: hyper drops this future when
        //    the client disconnects, which drops the upstream request with it
        //    and closes that connection.

        // 2. Set up the outgoing request: the client's parts become its
        //    parts. (The client's side of a protocol upgrade travels with
        //    them, in the extensions, until step 5 claims it.)
        // 3. "Deep copy" the header: the request is ours, so we take its
        //    parts instead of copying them, noting first what the rules
        //    below need from the client's original headers.
        let (mut parts, body) = req.into_parts();
        let noted = ClientHeaders::note(&parts);
        let body_timeout = body_timeout(&parts, self.client_body_timeout);

        // 4. Let the director rewrite the request.
        route.direct(&mut parts);
        let (method, uri) = (parts.method.clone(), parts.uri.clone());

        // 5. Upgrade header special handling, then the hop-by-hop headers go.
        let upgrade = match upgrade::claim(&mut parts) {
            Ok(upgrade) => upgrade,
            Err(error) => return (self.error_handler)(&method, &uri, error),
        };
        remove_hop_by_hop(&mut parts.headers);
        noted.restore(&mut parts.headers);
        if let Some(upgrade) = &upgrade {
            upgrade::restore_upgrade_headers(&mut parts.headers, upgrade.protocol.clone());
        }

        // 6. Append the client's address (X-Forwarded-For and friends).
        forwarded::set_forwarded_headers(&mut parts.headers, client, noted.host);
        parts.version = Version::HTTP_11;

        // 7. Send the request upstream — and, if that fails, wherever the
        //    route sends it next (Go's transport has no second attempt).
        let (body, client_body) = body.into_request_body(body_timeout);
        let request = Request::from_parts(parts, body);
        let response = match self.send(request, route, &client_body).await {
            Ok(response) => response,
            Err(error) => return (self.error_handler)(&method, &uri, error),
        };

        // 8. A 101 Switching Protocols response becomes a tunnel.
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return match self.switch_protocols(client, response, upgrade, &uri) {
                Ok(response) => response,
                Err(error) => (self.error_handler)(&method, &uri, error),
            };
        }

        // 9. Remove hop-by-hop headers from the response (keeping the
        //    trailer announcement, step 11). A response framed by
        //    Transfer-Encoding that also claims a Content-Length is framed
        //    by the former (RFC 9112 §6.3): the length is dropped, or the
        //    client would wait for bytes that never come.
        let (mut head, body) = response.into_parts();
        let response_trailers = head.headers.get(header::TRAILER).cloned();
        if head.headers.contains_key(header::TRANSFER_ENCODING) {
            head.headers.remove(header::CONTENT_LENGTH);
        }
        remove_hop_by_hop(&mut head.headers);
        let mut response = Response::from_parts(head, body.map_err(Into::into).boxed());

        // 10. Let the modify-response hook change it; its error is ours.
        if let Err(error) = self.run_modify_response(&mut response) {
            return (self.error_handler)(&method, &uri, error);
        }

        // 11. Copy the headers — they move with the response — and announce
        //     the trailers again, so hyper sends them after the body.
        if let Some(trailers) = response_trailers {
            response.headers_mut().insert(header::TRAILER, trailers);
        }

        // 12. Write the status code: hyper writes it with the headers when
        //     this response is returned.

        // 13. Copy the body: hyper writes each frame as it arrives, trailers
        //     last — or as flush::Coalesce releases them, with an interval.
        match self.flush_interval {
            Some(interval) => response.map(|body| flush::Coalesce::new(body, interval).boxed()),
            None => response,
        }
    }

    /// Step 7: send `request`; after a failure, send it again wherever
    /// `route` says, as long as the request is at hand — it never left, or
    /// a copy was kept because the route asked for copies.
    ///
    /// An attempt that failed because the client's own body did (it hung
    /// up mid-upload) is the client's failure: the route is told it was
    /// abandoned, not that the upstream failed, and the client gets a 400.
    async fn send(
        &self,
        mut request: Request<RequestBody>,
        route: &mut impl Route,
        client_body: &ClientBodyFailed,
    ) -> Result<Response<T::Body>, ProxyError> {
        loop {
            let copy = if route.keeps_copies() {
                match keep_copy(&mut request).await {
                    Ok(copy) => copy,
                    Err(error) => {
                        route.abandoned();
                        return Err(error);
                    }
                }
            } else {
                None
            };
            let (error, unsent) = match self.round_trip(request).await {
                Ok(response) => return Ok(response),
                // The upstream's time ran out while the client was still
                // sending: the upstream may have been waiting for the body.
                Err((ProxyError::Timeout(limit), _)) if client_body.owed() => {
                    route.abandoned();
                    return Err(ProxyError::BodyUnfinished(limit));
                }
                Err((ProxyError::Upstream(_), _)) if client_body.stalled() => {
                    route.abandoned();
                    return Err(ProxyError::ClientStalled(self.client_body_timeout));
                }
                Err((ProxyError::Upstream(error), _)) if client_body.is_set() => {
                    route.abandoned();
                    return Err(ProxyError::ClientAborted(error));
                }
                Err(failed) => failed,
            };
            let Some(again) = unsent.or(copy) else {
                route.failed(&error, None);
                return Err(error);
            };
            let (mut parts, body) = again.into_parts();
            if !route.failed(&error, Some(&mut parts)) {
                return Err(error);
            }
            request = Request::from_parts(parts, body);
        }
    }

    /// One attempt: the transport's round trip, bounded by the timeout.
    /// A request that never left comes back with the error.
    async fn round_trip(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<T::Body>, (ProxyError, Option<Request<RequestBody>>)> {
        let failed = |RoundTripError { error, unsent }| (ProxyError::Upstream(error), unsent);
        let round_trip = self.transport.round_trip(request);
        match self.timeout {
            Some(limit) => match tokio::time::timeout(limit, round_trip).await {
                Ok(result) => result.map_err(failed),
                Err(_) => Err((ProxyError::Timeout(limit), None)),
            },
            None => round_trip.await.map_err(failed),
        }
    }

    /// Step 8: the backend said 101. If it switched to what the client asked
    /// for, answer the client's 101 and hand both connections to the upgrade
    /// handler; otherwise it is a 502, not a tunnel to who-knows-what.
    fn switch_protocols(
        &self,
        client: &ClientConn,
        mut response: Response<T::Body>,
        requested: Option<upgrade::Requested>,
        target: &Uri,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let backend = hyper::upgrade::on(&mut response);
        let switched_to = upgrade::requested_protocol(response.headers());
        let (protocol, client_side) = match requested {
            Some(requested) if requested.accepts(switched_to.as_ref()) => {
                let client_side = requested.client.expect("accepts() checked it is there");
                (requested.protocol, client_side)
            }
            requested => {
                return Err(UpgradeRefusal::mismatch(
                    requested.as_ref().map_or(b"", |r| r.protocol.as_bytes()),
                    switched_to.as_ref().map_or(b"", HeaderValue::as_bytes),
                )
                .into());
            }
        };
        let (mut head, _) = response.into_parts();
        remove_hop_by_hop(&mut head.headers);
        upgrade::restore_upgrade_headers(&mut head.headers, protocol.clone());
        let mut response = Response::from_parts(head, ProxyBody::default());
        self.run_modify_response(&mut response)?;
        (self.upgrade_handler)(Upgrade {
            client: client_side,
            backend,
            peer: client.peer,
            target: target.clone(),
            protocol,
        });
        Ok(response)
    }

    fn run_modify_response(&self, response: &mut Response<ProxyBody>) -> Result<(), ProxyError> {
        match &self.modify_response {
            Some(hook) => hook(response).map_err(ProxyError::ModifyResponse),
            None => Ok(()),
        }
    }
}

/// The most of a request body kept for a second attempt. A larger body, or
/// one of unknown length, streams through once, as it arrives.
pub const MAX_KEPT_BODY: u64 = 64 * 1024;

/// A copy of `request` to send again after a failure, if sending it twice
/// does no harm (an idempotent method) and its body is small. A body still
/// to come is read whole first, and `request` then sends it from memory.
async fn keep_copy(
    request: &mut Request<RequestBody>,
) -> Result<Option<Request<RequestBody>>, ProxyError> {
    if !is_idempotent(request.method().as_str().as_bytes()) {
        return Ok(None);
    }
    let kept: Option<Bytes> = match request.body() {
        RequestBody::Kept(bytes) => bytes.clone(),
        RequestBody::Client(body) if body.is_end_stream() => None,
        RequestBody::Client(body) => {
            if body.size_hint().exact().is_none_or(|n| n > MAX_KEPT_BODY) {
                return Ok(None);
            }
            let RequestBody::Client(body) =
                std::mem::replace(request.body_mut(), RequestBody::empty())
            else {
                unreachable!("matched above");
            };
            let bytes = body
                .collect()
                .await
                .map_err(ProxyError::ClientBody)?
                .to_bytes();
            *request.body_mut() = RequestBody::Kept(Some(bytes.clone()));
            Some(bytes)
        }
    };
    let mut copy = Request::new(RequestBody::Kept(kept));
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    if let Some(sent) = request.extensions().get::<SentBytes>() {
        copy.extensions_mut().insert(sent.clone());
    }
    Ok(Some(copy))
}

/// What the hop-by-hop rules need from the client's original headers, noted
/// before the director and the stripping change them.
struct ClientHeaders {
    /// `Te: trailers` is the one `Te` value a proxy passes on (Go does too):
    /// without it, a gRPC backend would not send its status trailers.
    wants_trailers: bool,
    /// `Trailer` names the trailer fields that follow the body; hyper sends
    /// only announced ones, so the announcement must survive.
    announced_trailers: Option<HeaderValue>,
    /// The `Host` the client asked for, for `X-Forwarded-Host`.
    host: Option<HeaderValue>,
}

impl ClientHeaders {
    fn note(parts: &Parts) -> Self {
        Self {
            wants_trailers: te_has_trailers(&parts.headers),
            // Only a chunked body has trailers to announce (Go drops the
            // header otherwise too).
            announced_trailers: parts
                .headers
                .get(header::TRAILER)
                .filter(|_| parts.headers.contains_key(header::TRANSFER_ENCODING))
                .cloned(),
            // The request line's authority wins over Host (RFC 9112
            // §3.2.2); both were checked to be a host and port.
            host: parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .or_else(|| parts.headers.get(header::HOST).cloned()),
        }
    }

    /// Put back what the hop-by-hop stripping removed but the backend needs.
    fn restore(&self, headers: &mut HeaderMap) {
        if self.wants_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if let Some(trailers) = &self.announced_trailers {
            headers.insert(header::TRAILER, trailers.clone());
        }
    }
}

/// A 400 for a request that may mean something else to another parser. The
/// connection closes after it: a client that sent this may mean something
/// else by what follows on the connection too.
fn refuse(reason: &'static str) -> Response<ProxyBody> {
    let mut refusal = text_response(StatusCode::BAD_REQUEST, reason);
    refusal
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    refusal
}

/// Did the client send `TE: trailers` (in any `TE` header)? Only then are
/// trailers its to read ([`te_lists_trailers`] says what counts).
pub fn te_has_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .any(|v| te_lists_trailers(v.as_bytes()))
}

/// Requests RFC 9112 says to reject that hyper accepts. hyper itself
/// answers 400 to conflicting Content-Length, a Transfer-Encoding that does
/// not end in chunked, obs-fold and whitespace before a colon, and 431 to
/// oversized heads; a request with both Content-Length and
/// Transfer-Encoding it frames by the latter, drops Content-Length and
/// closes the connection after answering (RFC 9112 §6.3), so nothing can be
/// smuggled behind it.
fn check_request<B>(req: &Request<B>) -> Result<(), &'static str> {
    if req.headers().get_all(header::HOST).iter().count() > 1 {
        return Err("a request must have at most one Host header (RFC 9112 §3.2)");
    }
    // It goes upstream as X-Forwarded-Host, and into logs: a host and port only.
    let host = request_host(req.headers(), req.uri())?;
    // An HTTP/2 request names its host in :authority; a Host header that
    // names another makes two hosts for one request (RFC 9113 §8.3.1),
    // and the proxy would route by one while a backend reads the other.
    if req.version() == Version::HTTP_2
        && let (Some(authority), Some(host_header)) = (&host, req.headers().get(header::HOST))
        && !host_header
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes())
    {
        return Err("the Host header and :authority name different hosts (RFC 9113 §8.3.1)");
    }
    Ok(())
}
