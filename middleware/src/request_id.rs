//! Request id: one name for one request, everywhere it goes.
//!
//! `X-Request-Id` is kept when the client (or a proxy before us) sent a
//! sane one, and generated otherwise; it goes upstream with the request and
//! back with the response, and every log line written while the request is
//! handled carries it (`serving::with_request_id`, which explains why that
//! is not a `tracing` span), so one grep follows a request through the
//! proxy's log, the backend's, and the client's report.

use std::cell::Cell;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::header::{Entry, HeaderName, HeaderValue};
use hyper::{Request, Response};

use proxy_core::ProxyBody;

use crate::{Ctx, Middleware, Next};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub struct RequestId;

/// Printable ASCII, at most 200 bytes: anything else is replaced, so a
/// client cannot smuggle junk into every log line.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 200 && bytes.iter().all(|b| (b'!'..=b'~').contains(b))
}

thread_local! {
    /// splitmix64 state per thread, seeded once from the OS. Ids must be
    /// unique, not secret: a fast generator is enough, and each thread's
    /// random 64-bit starting point keeps the threads' sequences apart.
    static NEXT_ID: Cell<u64> = Cell::new(rand::random());
}

fn splitmix64() -> u64 {
    NEXT_ID.with(|state| {
        let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// 128 bits as 32 hex digits, written without a format string.
fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&splitmix64().to_be_bytes());
    id[8..].copy_from_slice(&splitmix64().to_be_bytes());
    let mut text = [0u8; 32];
    for (pair, byte) in text.chunks_exact_mut(2).zip(id) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    // The id is cloned three times (the request, the log scope, the
    // response). `from_owner` makes the bytes reference-counted from the
    // start: one allocation. Bytes copied from a slice take two, the
    // buffer and, at the first clone, a separate reference count.
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).expect("hex is a valid header")
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
                let id = if acceptable(kept.get()) {
                    kept.get().clone()
                } else {
                    generate()
                };
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
