//! A request head as a policy reads it, whichever engine parsed it; and a
//! policy's refusal, whichever engine writes it.
//!
//! The gateway decides the same things on both of its engines — which
//! service takes a request, whether a rate limit admits it — and those
//! decisions are written once, over [`HeadView`]. hyper gives a
//! `request::Parts` (a `HeaderMap` of owned values); step 10 gives offsets
//! into the bytes it read. Both answer the few questions a policy asks,
//! lending what they hold: nothing is copied to ask.
//!
//! Left out on purpose: a view of the body. No decision here reads one.

use std::borrow::Cow;

use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use crate::body::{ProxyBody, text_response};

/// What a policy may read of a request head.
pub trait HeadView {
    /// The method, as sent.
    fn method(&self) -> &[u8];
    /// The path of the request target, without its query (`/` for an
    /// absolute-form target without one).
    fn path(&self) -> &[u8];
    /// The query of the request target, if it has one.
    fn query(&self) -> Option<&[u8]>;
    /// Where the client sent it: the target's authority (absolute form,
    /// HTTP/2's `:authority`), else `Host`, as sent.
    fn authority(&self) -> Option<&[u8]>;
    /// The first value of header `name`.
    fn header(&self, name: &HeaderName) -> Option<&[u8]>;
}

impl HeadView for Parts {
    fn method(&self) -> &[u8] {
        self.method.as_str().as_bytes()
    }

    fn path(&self) -> &[u8] {
        self.uri.path().as_bytes()
    }

    fn query(&self) -> Option<&[u8]> {
        self.uri.query().map(str::as_bytes)
    }

    fn authority(&self) -> Option<&[u8]> {
        authority(&self.uri, &self.headers)
    }

    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers.get(name).map(HeaderValue::as_bytes)
    }
}

impl<B> HeadView for hyper::Request<B> {
    fn method(&self) -> &[u8] {
        self.method().as_str().as_bytes()
    }

    fn path(&self) -> &[u8] {
        self.uri().path().as_bytes()
    }

    fn query(&self) -> Option<&[u8]> {
        self.uri().query().map(str::as_bytes)
    }

    fn authority(&self) -> Option<&[u8]> {
        authority(self.uri(), self.headers())
    }

    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers().get(name).map(HeaderValue::as_bytes)
    }
}

/// The target's authority, else `Host`.
fn authority<'a>(uri: &'a hyper::Uri, headers: &'a hyper::HeaderMap) -> Option<&'a [u8]> {
    match uri.authority() {
        Some(authority) => Some(authority.as_str().as_bytes()),
        None => headers.get(hyper::header::HOST).map(HeaderValue::as_bytes),
    }
}

/// An answer a policy gives instead of the upstream's: a status, a reason
/// for the body, and at most one header that goes with it (`Retry-After`
/// with a 429, `WWW-Authenticate` with a 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: Cow<'static, str>,
    pub header: Option<(HeaderName, HeaderValue)>,
}

impl Refusal {
    pub fn new(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            reason: reason.into(),
            header: None,
        }
    }

    /// The refusal with `name: value` among its headers.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.header = Some((name, value));
        self
    }

    /// The refusal as hyper's response (plain text, as every refusal here).
    pub fn into_response(self) -> Response<ProxyBody> {
        let mut response = text_response(self.status, self.reason);
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: hyper::Request<()>) -> Parts {
        request.into_parts().0
    }

    #[test]
    fn a_parts_view_answers_from_the_head() {
        let head = parts(
            hyper::Request::post("/api/x?y=1")
                .header("host", "Example.com:8080")
                .header("x-key", "a")
                .header("x-key", "b")
                .body(())
                .unwrap(),
        );
        assert_eq!(head.method(), b"POST");
        assert_eq!(head.path(), b"/api/x");
        assert_eq!(head.query(), Some(&b"y=1"[..]));
        assert_eq!(head.authority(), Some(&b"Example.com:8080"[..]));
        let key = HeaderName::from_static("x-key");
        assert_eq!(head.header(&key), Some(&b"a"[..]));
        // An absolute-form target's authority wins over Host.
        let absolute = parts(
            hyper::Request::get("http://target.example/p")
                .header("host", "other")
                .body(())
                .unwrap(),
        );
        assert_eq!(absolute.authority(), Some(&b"target.example"[..]));
        assert_eq!(absolute.path(), b"/p");
    }

    #[test]
    fn a_refusal_becomes_a_response_with_its_header() {
        let response = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "slow down")
            .with_header(hyper::header::RETRY_AFTER, HeaderValue::from(3))
            .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
    }
}
