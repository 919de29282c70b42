//! Chapter 5, exercise 1: a middleware that says how long the request took.

use std::time::Instant;

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response};
use middleware::{Ctx, Middleware, Next};
use proxy_core::ProxyBody;

/// Adds `Server-Timing: proxy;dur=MS` to every response: the time from the
/// moment the request reached this link to the moment the response head
/// came back through it, in milliseconds with up to three decimals. Browsers
/// show it in their developer tools, beside their own timings.
///
/// Hint: take the time before calling `next`, and set the header on the
/// response it returns; `format!("proxy;dur={:.3}", ms)`.
pub struct ServerTiming;

impl Middleware for ServerTiming {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        // A first attempt: a header, but the time is taken after the
        // response came back, so it always says (nearly) zero.
        let response = next.run(req, ctx);
        Box::pin(async move {
            let mut response = response.await;
            let started = Instant::now();
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if let Ok(value) = format!("proxy;dur={ms:.3}").parse() {
                response.headers_mut().insert("server-timing", value);
            }
            response
        })
    }
}
