//! The director: how an incoming request becomes an outgoing one.
//!
//! Go's `ReverseProxy` has one required field, `Director func(*Request)`,
//! which edits the outgoing request in place. Here it is a closure over the
//! request's [`Parts`] — method, URI, headers, extensions — because the body
//! streams and is nobody's business at this point.
//!
//! [`single_host`] is the director the seed writes by hand for its load
//! balancer (and Go ships as `NewSingleHostReverseProxy`, plus the `Host`
//! line): it reuses step 02's URL join and additionally points `Host` at the
//! target, so a backend serving several names sees the one it was meant to.
//!
//! A [`Route`] is a director with a second chance: told that the attempt
//! failed, it may point the request somewhere else. Step 03's directors
//! have none (every closure is a route that gives up); step 04's route
//! picks another upstream — a retry.

use std::sync::Arc;

use hyper::Uri;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use proxy_core::target::target_uri;

use crate::ProxyError;

/// Edits the outgoing request before it is sent.
pub type Director = Arc<dyn Fn(&mut Parts) + Send + Sync>;

/// Where one request goes, and where it goes next if the attempt fails.
pub trait Route {
    /// Point the request at its destination: the director's job.
    fn direct(&mut self, parts: &mut Parts);

    /// Should [`serve_with`](crate::ReverseProxy::serve_with) keep a copy of
    /// each request it sends, so that it can send it again after a
    /// failure? It keeps one only of an idempotent request whose body is
    /// small (RFC 9110 §9.2.2: sending it twice does what sending it once
    /// does). No by default: a copy costs a clone of the head.
    fn keeps_copies(&self) -> bool {
        false
    }

    /// The attempt failed with `error`. `again` is the request as it went
    /// out, when it can be sent again: it never left (whatever its method),
    /// or a copy was kept. Point it at the next destination and return
    /// true to send it; false answers the client with `error`.
    fn failed(&mut self, error: &ProxyError, again: Option<&mut Parts>) -> bool {
        let _ = (error, again);
        false
    }

    /// The client abandoned the request (its body broke off): nothing is
    /// sent again, and no upstream is to blame.
    fn abandoned(&mut self) {}
}

/// A plain director: a route with no second chance.
impl<F: FnMut(&mut Parts)> Route for F {
    fn direct(&mut self, parts: &mut Parts) {
        self(parts)
    }
}

/// Send everything to `target`: its scheme and host, paths joined with one
/// slash, queries joined with `&`, and `Host` set to the target's authority.
pub fn single_host(target: Uri) -> Director {
    let host = host_of(&target);
    Arc::new(move |parts: &mut Parts| point_at(parts, &target, host.as_ref()))
}

/// The `Host` header value that names `target`.
pub fn host_of(target: &Uri) -> Option<HeaderValue> {
    target
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

/// Point one request at `target` (what every director ends up doing once
/// it has chosen where the request goes).
pub fn point_at(parts: &mut Parts, target: &Uri, host: Option<&HeaderValue>) {
    parts.uri = target_uri(target, &parts.uri);
    if let Some(host) = host {
        parts.headers.insert(header::HOST, host.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    #[test]
    fn single_host_rewrites_url_and_host() {
        let director = single_host("http://10.0.0.7:9000/api?v=2".parse().unwrap());
        let (mut parts, ()) = Request::get("/users?id=1")
            .header("host", "example.com")
            .body(())
            .unwrap()
            .into_parts();
        director(&mut parts);
        assert_eq!(parts.uri, "http://10.0.0.7:9000/api/users?v=2&id=1");
        assert_eq!(parts.headers["host"], "10.0.0.7:9000");
    }
}
