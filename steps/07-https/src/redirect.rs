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
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use proxy_core::{ProxyBody, text_response};
use serving::{Server, ServerHandle};

/// The redirect for one request, to HTTPS on `https_port`.
pub fn redirect(req: &Request<Incoming>, https_port: u16) -> Response<ProxyBody> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Some(host) = host.map(without_port).filter(|h| !h.is_empty()) else {
        return text_response(
            StatusCode::BAD_REQUEST,
            "this listener only redirects to https, and needs a Host header to know where",
        );
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    let Ok(location_value) = HeaderValue::from_str(&location) else {
        return text_response(
            StatusCode::BAD_REQUEST,
            "the Host header is not a host name",
        );
    };
    let mut response = text_response(
        StatusCode::PERMANENT_REDIRECT,
        format!("this site is served over https: {location}"),
    );
    response
        .headers_mut()
        .insert(header::LOCATION, location_value);
    response
}

/// `example.com:80` → `example.com`; `[::1]:80` → `[::1]`.
fn without_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
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

#[cfg(test)]
mod tests {
    use super::without_port;

    #[test]
    fn ports_come_off_hosts_of_every_shape() {
        assert_eq!(without_port("example.com:8080"), "example.com");
        assert_eq!(without_port("example.com"), "example.com");
        assert_eq!(without_port("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(without_port("[::1]:80"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
    }
}
