//! The pieces every endpoint answers with: the body type, text answers,
//! the 400 that explains itself, and the query string.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::header;
use hyper::{Response, StatusCode};

/// The body type of every real-server response.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The query string as ordered pairs; repeated keys are kept.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A numeric parameter: its default when absent, an error sentence when
    /// present but not a number in `0..=max`.
    pub(crate) fn number(&self, key: &str, default: u64, max: u64) -> Result<u64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => parse_bounded(key, raw, max),
        }
    }

    /// True unless the parameter is `0`, `false` or `no`.
    pub(crate) fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => !matches!(v, "0" | "false" | "no"),
        }
    }
}

pub(crate) fn parse_bounded(what: &str, raw: &str, max: u64) -> Result<u64, String> {
    match raw.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "{what} must be a whole number from 0 to {max}, got {raw:?}"
        )),
    }
}

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(body.into()))
        .expect("static response parts are valid")
}

pub(crate) fn bad_request(reason: impl std::fmt::Display) -> Response<Body> {
    text(StatusCode::BAD_REQUEST, format!("real_server: {reason}\n"))
}
