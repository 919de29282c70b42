//! What can go wrong between the proxy and its upstream, and what the
//! client is told.
//!
//! Go's `ErrorHandler` receives every error from the transport and from
//! `ModifyResponse`; when none is set, the client gets a bare 502. Ours does
//! the same with one distinction the seed asks for: a timeout is a 504
//! Gateway Timeout, because "the upstream is slow" and "the upstream is
//! broken" call for different fixes.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, Response, StatusCode, Uri};
use proxy_core::{ProxyBody, error_chain, text_response};
use thiserror::Error;
use tracing::warn;

use proxy_core::refusal::UpgradeRefusal;
use proxy_core::{ClientBodyError, TransportError};

/// Everything that turns a proxied request into an error response.
#[derive(Debug, Error)]
pub enum ProxyError {
    #[error("upstream request failed: {}", error_chain(.0.as_ref()))]
    Upstream(TransportError),
    #[error("upstream sent no response within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Upgrade(#[from] UpgradeRefusal),
    #[error("modify-response hook failed: {0}")]
    ModifyResponse(Box<dyn std::error::Error + Send + Sync>),
    #[error("this proxy has no director of its own: serve it with serve_with")]
    NoDirector,
    #[error("could not read the request body: {0}")]
    ClientBody(ClientBodyError),
    /// The client's body broke off while it was being sent upstream: the
    /// client's failure, not the upstream's.
    #[error("the client's request body broke off: {}", error_chain(.0.as_ref()))]
    ClientAborted(TransportError),
    /// The client stopped sending its body: the client's failure too.
    #[error("the client sent no request body bytes for {0:?}")]
    ClientStalled(Duration),
    /// The upstream's time ran out while the client's body was still
    /// arriving: no failure of the upstream's yet.
    #[error("the request body was still arriving when the upstream's {0:?} were up")]
    BodyUnfinished(Duration),
}

impl ProxyError {
    /// The status the default handler answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::ClientStalled(_)
            | ProxyError::BodyUnfinished(_)
            | ProxyError::ClientBody(proxy_core::ClientBodyError::Stalled(_)) => {
                StatusCode::REQUEST_TIMEOUT
            }
            ProxyError::ClientBody(_) | ProxyError::ClientAborted(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// Go's `ErrorHandler func(http.ResponseWriter, *http.Request, error)`.
pub type ErrorHandler = Arc<dyn Fn(&Method, &Uri, ProxyError) -> Response<ProxyBody> + Send + Sync>;

/// Log the error, answer 502 (504 on timeout) with the reason.
pub fn default_error_handler(method: &Method, uri: &Uri, error: ProxyError) -> Response<ProxyBody> {
    warn!("{method} {uri}: {error}");
    text_response(error.status(), error.to_string())
}
