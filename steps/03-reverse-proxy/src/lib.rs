//! Step 03: `reverse_proxy`, a clone of Go's `httputil.ReverseProxy`.
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
//! [`ReverseProxy::serve`] follows the 13 steps of Go's `ServeHTTP`, in
//! order, each marked with a comment. Later steps build on this type: step
//! 04 swaps in a load-balancing director, step 05 wraps `serve` in
//! middleware.
//!
//! Left out on purpose: HTTP/2 to upstreams (hyper's pool speaks HTTP/1.1
//! to them; clients may use either), HTTPS (step 07), caching, retries (a
//! retried POST is a duplicated POST; step 04's health checks are the safe
//! answer to a dead upstream).

mod cli;
pub mod director;
pub mod error;
pub mod flush;
pub mod forwarded;
pub mod transport;
pub mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use proxy_core::headers::remove_hop_by_hop;
use proxy_core::{ClientConn, ProxyBody, Transport, text_response};

pub use cli::{Args, ProxyOptions, launch, serve};
pub use director::{Director, single_host};
pub use error::{ErrorHandler, ProxyError, default_error_handler};
pub use forwarded::Forwarding;
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
    director: Director,
    transport: T,
    flush_interval: Option<Duration>,
    timeout: Option<Duration>,
    modify_response: Option<ModifyResponse>,
    error_handler: ErrorHandler,
    forwarding: Forwarding,
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
        Self {
            director,
            transport,
            flush_interval: None,
            timeout: None,
            modify_response: None,
            error_handler: Arc::new(default_error_handler),
            forwarding: Forwarding::Edge,
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

    pub fn modify_response(mut self, hook: ModifyResponse) -> Self {
        self.modify_response = Some(hook);
        self
    }

    pub fn error_handler(mut self, handler: ErrorHandler) -> Self {
        self.error_handler = handler;
        self
    }

    pub fn forwarding(mut self, forwarding: Forwarding) -> Self {
        self.forwarding = forwarding;
        self
    }

    /// What to do with the connections of an accepted upgrade (default:
    /// [`upgrade::spawn_tunnel`], a plain byte copy).
    pub fn on_upgrade(mut self, handler: UpgradeHandler) -> Self {
        self.upgrade_handler = handler;
        self
    }

    /// Proxy one request — Go's `ServeHTTP`.
    pub async fn serve(&self, client: &ClientConn, req: Request<Incoming>) -> Response<ProxyBody> {
        self.serve_with(client, req, |parts| (self.director)(parts))
            .await
    }

    /// [`serve`](Self::serve), with `director` in place of the proxy's own
    /// for this one request. Step 04 picks an upstream per request and
    /// hands it to the director this way, instead of stashing it in the
    /// request's extensions (which costs three allocations a request).
    pub async fn serve_with(
        &self,
        client: &ClientConn,
        req: Request<Incoming>,
        director: impl FnOnce(&mut hyper::http::request::Parts),
    ) -> Response<ProxyBody> {
        // Before Go's step 1: what RFC 9112 says to reject and hyper lets
        // through. Ambiguous input must never reach a backend.
        if let Err(reason) = check_request(&req) {
            let mut refusal = text_response(StatusCode::BAD_REQUEST, reason);
            // A client that sent this may mean something else by what follows
            // on the connection; don't read any more of it.
            refusal
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return refusal;
        }

        // 1. Stop when the client goes away. Go wires a CloseNotifier to a
        //    context; here nothing is needed: hyper drops this future when the
        //    client disconnects, which drops the upstream request with it and
        //    closes that connection.

        // 2. Set up the outgoing request: the client's parts become the
        //    outgoing request's parts. (Its side of a protocol upgrade travels
        //    with them, in the extensions, until step 5 claims it.)

        // 3. "Deep copy" the header: the request is ours, so we take its parts
        //    instead of copying them, noting first what the rules below need
        //    from the client's original headers.
        let (mut parts, body) = req.into_parts();
        let client_wants_trailers = te_has_trailers(&parts.headers);
        let announced_trailers = parts.headers.get(header::TRAILER).cloned();
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });

        // 4. Let the director rewrite the request.
        director(&mut parts);
        let (method, uri) = (parts.method.clone(), parts.uri.clone());

        // 5. Upgrade header special handling, then the hop-by-hop headers go.
        let requested_protocol = upgrade::requested_protocol(&parts.headers);
        if let Some(protocol) = &requested_protocol
            && !upgrade::is_printable(protocol)
        {
            let shown = String::from_utf8_lossy(protocol.as_bytes()).into_owned();
            return (self.error_handler)(&method, &uri, ProxyError::InvalidUpgrade(shown));
        }
        let requested_protocol = requested_protocol.filter(|p| !upgrade::is_h2c(p));
        let client_upgrade = requested_protocol
            .as_ref()
            .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
        remove_hop_by_hop(&mut parts.headers);
        if client_wants_trailers {
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if let Some(trailers) = announced_trailers {
            // Not hop-by-hop in meaning: it tells the backend which trailer
            // fields follow the body, and hyper only sends the ones announced.
            parts.headers.insert(header::TRAILER, trailers);
        }
        if let Some(protocol) = &requested_protocol {
            upgrade::restore_upgrade_headers(&mut parts.headers, protocol.clone());
        }

        // 6. Append the client's address (X-Forwarded-For and friends).
        forwarded::set_forwarded_headers(
            &mut parts.headers,
            client,
            original_host,
            self.forwarding,
        );
        parts.version = Version::HTTP_11;

        // 7. Send the request upstream.
        let round_trip = self.transport.round_trip(Request::from_parts(parts, body));
        let result = match self.timeout {
            Some(limit) => match tokio::time::timeout(limit, round_trip).await {
                Ok(result) => result.map_err(ProxyError::Upstream),
                Err(_) => Err(ProxyError::Timeout(limit)),
            },
            None => round_trip.await.map_err(ProxyError::Upstream),
        };
        let mut response = match result {
            Ok(response) => response,
            Err(e) => return (self.error_handler)(&method, &uri, e),
        };

        // 8. A 101 Switching Protocols response becomes a tunnel.
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            let got = upgrade::requested_protocol(response.headers());
            let (requested, client_upgrade) = match (requested_protocol, client_upgrade) {
                (Some(requested), Some(client_upgrade))
                    if got.as_ref().is_some_and(|g| {
                        g.as_bytes().eq_ignore_ascii_case(requested.as_bytes())
                    }) =>
                {
                    (requested, client_upgrade)
                }
                (requested, _) => {
                    let show = |v: Option<HeaderValue>| {
                        v.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                            .unwrap_or_default()
                    };
                    let error = ProxyError::UpgradeMismatch {
                        requested: show(requested),
                        got: show(got),
                    };
                    return (self.error_handler)(&method, &uri, error);
                }
            };
            let (mut head, _) = response.into_parts();
            remove_hop_by_hop(&mut head.headers);
            upgrade::restore_upgrade_headers(&mut head.headers, requested.clone());
            let mut response = Response::from_parts(head, ProxyBody::default());
            if let Err(e) = self.run_modify_response(&mut response) {
                return (self.error_handler)(&method, &uri, e);
            }
            (self.upgrade_handler)(Upgrade {
                client: client_upgrade,
                backend: backend_upgrade,
                peer: client.peer,
                target: uri,
                protocol: requested,
            });
            return response;
        }

        // 9. Remove hop-by-hop headers from the response.
        let (mut head, body) = response.into_parts();
        let response_trailers = head.headers.get(header::TRAILER).cloned();
        remove_hop_by_hop(&mut head.headers);
        let body = match self.flush_interval {
            Some(interval) => flush::Coalesce::new(body, interval).boxed(),
            None => body.boxed(),
        };
        let mut response = Response::from_parts(head, body);

        // 10. Let the modify-response hook change it; its error is ours.
        if let Err(e) = self.run_modify_response(&mut response) {
            return (self.error_handler)(&method, &uri, e);
        }

        // 11. Copy the headers — they move with the response — and announce
        //     the trailers again, so hyper sends them after the body.
        if let Some(trailers) = response_trailers {
            response.headers_mut().insert(header::TRAILER, trailers);
        }

        // 12. Write the status code: hyper writes it with the headers when
        //     this response is returned.

        // 13. Copy the body: hyper writes each frame as it arrives (or as
        //     flush::Coalesce releases it), trailers last.
        response
    }

    fn run_modify_response(&self, response: &mut Response<ProxyBody>) -> Result<(), ProxyError> {
        match &self.modify_response {
            Some(hook) => hook(response).map_err(ProxyError::ModifyResponse),
            None => Ok(()),
        }
    }
}

fn te_has_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().split(|b| *b == b';').next() == Some(b"trailers"))
    })
}

/// Requests RFC 9112 says to reject that hyper accepts. hyper itself
/// answers 400 to conflicting Content-Length, a Transfer-Encoding that does
/// not end in chunked, obs-fold and whitespace before a colon, and 431 to
/// oversized heads; a request with both Content-Length and
/// Transfer-Encoding it frames by the latter, drops Content-Length and
/// closes the connection after answering (RFC 9112 §6.3), so nothing can be
/// smuggled behind it.
fn check_request(req: &Request<Incoming>) -> Result<(), &'static str> {
    if req.headers().get_all(header::HOST).iter().count() > 1 {
        return Err("a request must have at most one Host header (RFC 9112 §3.2)");
    }
    Ok(())
}
