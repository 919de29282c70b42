//! `--redirect-http ADDR`: a plain-HTTP listener whose only answer is
//! "ask again over HTTPS".
//!
//! People type `example.com`, and browsers still try `http://` first. The
//! redirect keeps the host the client asked for and the whole path and
//! query, and points at the HTTPS port. It is a 308 Permanent Redirect, not
//! the traditional 301: clients may turn a redirected POST into a GET after
//! a 301, and must not after a 308, so a form posted to http:// is not
//! silently emptied on the way. Nothing is proxied over plain HTTP.
//!
//! Left out on purpose: HSTS (`Strict-Transport-Security`), which belongs
//! on the HTTPS responses and commits a domain for months — a deliberate
//! decision for a real site, not a course default.

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::uri::Authority;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use proxy_core::headers::request_host;
use proxy_core::{ProxyBody, text_response};
use serving::{Server, ServerHandle};

/// The redirect for one request, to HTTPS on `https_port`.
pub fn redirect(req: &Request<Incoming>, https_port: u16) -> Response<ProxyBody> {
    // Only a host and a port get into Location: anything else in Host would
    // redirect the client to a page of the attacker's choosing.
    let authority = match request_host(req.headers(), req.uri()) {
        Ok(Some(authority)) => authority,
        Ok(None) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                "this listener only redirects to https, and needs a Host header to know where",
            );
        }
        Err(reason) => return text_response(StatusCode::BAD_REQUEST, reason),
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = https_location(&authority, https_port, path);
    let location_value =
        HeaderValue::from_str(&location).expect("a checked host and a parsed path make a header");
    let mut response = text_response(
        StatusCode::PERMANENT_REDIRECT,
        format!("this site is served over https: {location}"),
    );
    response
        .headers_mut()
        .insert(header::LOCATION, location_value);
    response
}

/// Where a request for `authority` and `path` goes over HTTPS: the same
/// host, the HTTPS port in place of the one the client used (none when it
/// is 443, the default), the same path and query.
pub fn https_location(authority: &Authority, https_port: u16, path: &str) -> String {
    let host = authority.host();
    if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    }
}

/// Serve redirects on `server`.
pub fn spawn(server: Server, https_port: u16) -> std::io::Result<ServerHandle> {
    server.spawn(move |_peer| {
        service_fn(move |req: Request<Incoming>| {
            let response = redirect(&req, https_port);
            async move { Ok::<_, Infallible>(response) }
        })
    })
}
