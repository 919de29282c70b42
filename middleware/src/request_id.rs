//! Request id: one name for one request, everywhere it goes.
//!
//! `X-Request-Id` is kept when the client (or a proxy before us) sent a
//! sane one, and generated otherwise; it goes upstream with the request and
//! back with the response, and every log line written while the request is
//! handled carries it (`serving::with_request_id`, which explains why that
//! is not a `tracing` span), so one grep follows a request through the
//! proxy's log, the backend's, and the client's report.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response};

use forward_proxy::ProxyBody;

use crate::{Ctx, Middleware, Next};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub struct RequestId;

/// Printable ASCII, at most 200 bytes: anything else is replaced, so a
/// client cannot smuggle junk into every log line.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 200 && bytes.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// 128 random bits as 32 hex digits, written without a format string.
fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: [u8; 16] = rand::random();
    let mut text = [0u8; 32];
    for (pair, byte) in text.chunks_exact_mut(2).zip(id) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&text).expect("hex is a valid header")
}

impl Middleware for RequestId {
    fn handle<'a>(
        &'a self,
        mut req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(value) if acceptable(value) => value.clone(),
            _ => generate(),
        };
        req.headers_mut().insert(X_REQUEST_ID, id.clone());
        serving::with_request_id(id.clone(), || next.run(req, ctx))
            .map(move |mut response| {
                response.headers_mut().insert(X_REQUEST_ID, id);
                response
            })
            .boxed()
    }
}
