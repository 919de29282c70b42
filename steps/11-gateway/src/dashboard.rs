//! The dashboard's files: a page, its script and its style, built into the
//! binary and served by the admin listener as they are.
//!
//! The page works offline: nothing is fetched from elsewhere, and the
//! Content-Security-Policy says so to the browser — scripts, styles and
//! requests from this origin only, no inline script, no frames. The files
//! hold no data and are served without the admin token; the page reads
//! `/stats` and `/services` with the token it takes from its address'
//! fragment (`dashboard/dashboard.js` says how).

use hyper::Response;
use hyper::StatusCode;
use hyper::header::{self, HeaderValue};
use proxy_core::{ProxyBody, complete_response};

const PAGE: &str = include_str!("../dashboard/index.html");
const SCRIPT: &str = include_str!("../dashboard/dashboard.js");
const STYLE: &str = include_str!("../dashboard/dashboard.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The dashboard's file at `path`, if it is one.
pub(crate) fn file(path: &str) -> Option<Response<ProxyBody>> {
    let (content_type, text) = match path {
        "/dashboard" => ("text/html; charset=utf-8", PAGE),
        "/dashboard.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/dashboard.css" => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    let mut response = complete_response(StatusCode::OK, content_type, text);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}
