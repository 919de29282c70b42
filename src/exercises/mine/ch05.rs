//! Chapter 5's exercises: two middlewares.

use std::time::Instant;

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use middleware::{Ctx, Middleware, Next};
use proxy_core::{ProxyBody, text_response};

/// Exercise 1. Adds `Server-Timing: proxy;dur=MS` to every response: the time from the
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

/// Exercise 2. Lets only the listed methods through. Any other method is
/// answered here, without asking the upstream, with `405 Method Not
/// Allowed` — and a 405 must say what *is* allowed, in an `Allow` header
/// listing the methods (`Allow: GET, HEAD`; RFC 9110 §15.5.6), so that a
/// client can correct itself.
///
/// Hint: `hyper::header::ALLOW`; join the methods' `as_str()` with `", "`.
pub struct AllowMethods {
    pub allowed: Vec<Method>,
}

impl Middleware for AllowMethods {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        if self.allowed.contains(req.method()) {
            return next.run(req, ctx);
        }
        // A first attempt: the right status, but nothing says what to do.
        let refusal = text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here", req.method()),
        );
        Box::pin(async move { refusal })
    }
}
