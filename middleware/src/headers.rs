//! Header transforms: headers set or removed on the way to the upstream
//! and on the way back (a gateway's `request_headers` and
//! `response_headers`).
//!
//! The course's gateway rewrites headers per service — an `X-Env` the
//! backends read, a `Server` header the world need not see. Each direction
//! is one [`HeaderEdits`]: every header named in `remove` or in `set` goes,
//! then `set`'s are added. gRPC metadata is headers, so it is edited too
//! (trailers are not).
//!
//! Some names are not the transform's to touch ([`not_editable`]): the
//! ones that frame the message or belong to one connection (a wrong
//! `Content-Length` would desynchronise the connection), and the ones the
//! proxy writes itself (`X-Forwarded-*`, `X-Real-IP`, `X-Request-Id`),
//! which would otherwise go out twice. A config naming one is refused.
//!
//! Left out on purpose: values computed per request (a template language),
//! and appending to a header instead of replacing it.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use proxy_core::ProxyBody;

use crate::{Ctx, Middleware, Next};

/// Headers set (in place of any of the same name) and removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderEdits {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Apply the edits to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Why `name` may not be set or removed by a transform, if it may not.
pub fn not_editable(name: &HeaderName) -> Option<&'static str> {
    match name.as_str() {
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer"
        | "transfer-encoding" | "upgrade" => Some("it belongs to one connection"),
        "content-length" | "host" => Some("the proxy frames and addresses the message"),
        "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto" | "x-real-ip"
        | "x-request-id" => Some("the proxy writes it itself"),
        _ => None,
    }
}

/// The transforms as a link of the chain (hyper's engine; step 10's asks
/// the same edits through its hooks).
pub struct EditHeaders {
    pub request: HeaderEdits,
    pub response: HeaderEdits,
}

impl Middleware for EditHeaders {
    fn handle<'a>(
        &'a self,
        mut req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        self.request.apply(req.headers_mut());
        next.run(req, ctx)
            .map(move |mut response| {
                self.response.apply(response.headers_mut());
                response
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_or_set_name_goes_and_a_set_one_comes() {
        let edits = HeaderEdits {
            set: vec![(
                HeaderName::from_static("x-env"),
                HeaderValue::from_static("prod"),
            )],
            remove: vec![HeaderName::from_static("x-debug")],
        };
        let mut headers = HeaderMap::new();
        headers.append("x-env", HeaderValue::from_static("dev"));
        headers.append("x-env", HeaderValue::from_static("test"));
        headers.append("x-debug", HeaderValue::from_static("1"));
        headers.append("x-kept", HeaderValue::from_static("yes"));
        edits.apply(&mut headers);
        assert_eq!(
            headers.get_all("x-env").iter().collect::<Vec<_>>(),
            ["prod"]
        );
        assert!(headers.get("x-debug").is_none());
        assert_eq!(headers["x-kept"], "yes");
    }

    #[test]
    fn framing_and_the_proxys_own_headers_are_not_editable() {
        for name in ["content-length", "transfer-encoding", "x-forwarded-for"] {
            assert!(not_editable(&HeaderName::from_static(name)).is_some());
        }
        assert!(not_editable(&HeaderName::from_static("server")).is_none());
    }
}
