//! The echo endpoint: what did the request look like when it got here?
//!
//! This is the instrument most proxy tests read. It reports headers in the
//! order they arrived (repeats kept, grouped under the first occurrence of
//! their name, which is how hyper's `HeaderMap` stores them), the address of
//! the TCP peer (the proxy, when there is one), and the body's length and
//! SHA-256, computed while the body streams past so that a gigabyte upload
//! costs no memory.

use std::fmt::Write as _;
use std::net::SocketAddr;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::respond::{Body, bad_request, full};

/// What the echo endpoint answers, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Echo {
    /// The real server that answered (`ip:port`).
    pub served_by: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub version: String,
    /// Every request header as `(name, value)`, repeats kept.
    pub headers: Vec<(String, String)>,
    /// The TCP peer the server saw.
    pub remote_addr: String,
    pub body_length: u64,
    pub body_sha256: String,
    /// Trailers that followed a chunked request body.
    pub trailers: Vec<(String, String)>,
}

impl Echo {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }

    /// Every value of header `name`, in arrival order.
    pub fn headers_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    /// The readable form served for `Accept: text/plain`. It leads with what
    /// the seed's real server printed — the URL, the peer address,
    /// X-Forwarded-For and X-Real-Ip — because those are what a proxy changes.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let uri = match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        };
        let _ = writeln!(out, "served by:       {}", self.served_by);
        let _ = writeln!(
            out,
            "request:         {} {uri} {}",
            self.method, self.version
        );
        let _ = writeln!(out, "remote addr:     {}", self.remote_addr);
        for name in ["x-forwarded-for", "x-real-ip"] {
            let values: Vec<&str> = self.headers_named(name).collect();
            let shown = if values.is_empty() {
                "(none)".to_owned()
            } else {
                values.join(", ")
            };
            let _ = writeln!(out, "{:<17}{shown}", format!("{name}:"));
        }
        let _ = writeln!(out, "headers:");
        for (name, value) in &self.headers {
            let _ = writeln!(out, "  {name}: {value}");
        }
        let _ = writeln!(
            out,
            "body:            {} bytes, sha256 {}",
            self.body_length, self.body_sha256
        );
        for (name, value) in &self.trailers {
            let _ = writeln!(out, "trailer:         {name}: {value}");
        }
        out
    }
}

fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

pub(crate) async fn echo(
    served_by: SocketAddr,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let wants_text = parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("text/plain")));
    let (body_length, body_sha256, trailers) = match digest_body(body).await {
        Ok(digest) => digest,
        Err(e) => return bad_request(format!("the request body broke off: {e}")),
    };
    let echo = Echo {
        served_by: served_by.to_string(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        version: format!("{:?}", parts.version),
        headers: pairs(&parts.headers),
        remote_addr: peer.to_string(),
        body_length,
        body_sha256,
        trailers: trailers.as_ref().map(pairs).unwrap_or_default(),
    };
    let (content_type, body) = if wants_text {
        ("text/plain; charset=utf-8", echo.to_text())
    } else {
        let mut json = serde_json::to_string_pretty(&echo).expect("Echo always serializes");
        json.push('\n');
        ("application/json", json)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(full(body))
        .expect("static response parts are valid")
}

/// Read a request body to its end, hashing as it streams by; returns
/// `(length, sha256 hex, trailers)`.
async fn digest_body(mut body: Incoming) -> Result<(u64, String, Option<HeaderMap>), hyper::Error> {
    let mut hasher = Sha256::new();
    let mut length = 0u64;
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(data) = frame.data_ref() {
            hasher.update(data);
            length += data.len() as u64;
        }
        if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    Ok((length, hex::encode(hasher.finalize()), trailers))
}
