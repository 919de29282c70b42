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
use hyper::header::{Entry, HeaderName, HeaderValue};
use hyper::{Request, Response};

use proxy_core::ProxyBody;

use crate::{Ctx, Middleware, Next};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub struct RequestId;

/// The request's id: the one it was `sent` with if that is printable
/// ASCII of at most 200 bytes, else a new one — so a client cannot smuggle
/// junk into every log line. The decision, on either engine.
pub fn choose(sent: Option<&[u8]>) -> HeaderValue {
    match sent {
        Some(bytes)
            if !bytes.is_empty()
                && bytes.len() <= 200
                && bytes.iter().all(|b| (b'!'..=b'~').contains(b)) =>
        {
            HeaderValue::from_bytes(bytes).expect("printable ASCII is a header value")
        }
        _ => generate(),
    }
}

/// 128 random bits as 32 hex digits. Ids must be unique, not secret; at
/// 128 bits two never collide in practice. Written digit by digit: through
/// `format!` the id cost 1,100 instructions, more than routing the request.
fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: u128 = rand::random();
    let mut digits = [0u8; 32];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[(id >> (124 - 4 * i) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&digits).expect("hex digits are a valid header value")
}

impl Middleware for RequestId {
    fn handle<'a>(
        &'a self,
        mut req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        // One lookup of the (custom, so byte-hashed) name for both the
        // check and the write.
        let id = match req.headers_mut().entry(X_REQUEST_ID) {
            Entry::Occupied(mut kept) => {
                let id = choose(Some(kept.get().as_bytes()));
                // Also collapses repeated headers into the one id we log.
                kept.insert(id.clone());
                id
            }
            Entry::Vacant(slot) => slot.insert(generate()).clone(),
        };
        serving::with_request_id(id.clone(), || next.run(req, ctx))
            .map(move |mut response| {
                response.headers_mut().insert(X_REQUEST_ID, id);
                response
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_id_is_32_hex_digits_and_new_each_time() {
        let (one, two) = (generate(), generate());
        assert_eq!(one.len(), 32);
        assert!(one.as_bytes().iter().all(u8::is_ascii_hexdigit), "{one:?}");
        assert_ne!(one, two);
    }

    #[test]
    fn a_sane_id_is_kept_and_junk_replaced() {
        assert_eq!(choose(Some(b"abc-123")), "abc-123");
        assert_ne!(choose(Some(b"has space")), "has space");
        assert_ne!(choose(Some(b"")), "");
        assert_eq!(choose(None).len(), 32);
    }
}
