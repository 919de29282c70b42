//! Routing and every endpoint except echo and websocket.
//!
//! Each endpoint validates its input and answers 400 with a sentence when the
//! input makes no sense: a test backend that panics or hangs on a typo would
//! hide the proxy behaviour the test was looking for.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::State;
use crate::respond::{Body, Query, bad_request, parse_bounded, text};

/// Upper bounds that keep one silly request from tying a backend up.
const MAX_DELAY_MS: u64 = 300_000;
const MAX_CHUNKS: u64 = 100_000;
const MAX_BYTES: u64 = 1 << 30;
const BYTES_CHUNK: u64 = 64 * 1024;

pub(crate) async fn route(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = Query::parse(req.uri().query());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if crate::grpc::is_grpc(&req) {
        return Ok(crate::grpc::serve(state.addr, req).await);
    }
    let answered = state.requests.fetch_add(1, Ordering::Relaxed);
    let if_none_match: Vec<HeaderValue> = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .cloned()
        .collect();
    let mut response = match (req.method(), segments.as_slice()) {
        (_, ["status", code]) => status(code),
        (_, ["delay", ms]) => delay(ms).await,
        (_, ["stream", n]) => chunk_stream(n, &query),
        (_, ["sse"]) => sse(&query),
        (_, ["bytes", n]) => pattern_bytes(n),
        (_, ["trailers"]) => trailers(&query),
        (_, ["ws"]) => crate::websocket::accept(req, state.addr, &query),
        (&Method::GET, ["ws-demo"]) => crate::websocket::demo_page(),
        (_, ["health"]) => health(&state),
        (&Method::POST, ["health", "down"]) => set_health(&state, false),
        (&Method::POST, ["health", "up"]) => set_health(&state, true),
        (_, ["health", "down" | "up"]) => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST to change health\n",
        ),
        (_, ["flaky"]) => flaky(&query),
        (_, ["headers"]) => text(StatusCode::OK, "ok\n"),
        (_, ["requests"]) => text(StatusCode::OK, format!("{}\n", answered)),
        _ => crate::echo::echo(state.addr, peer, req).await,
    };
    if let Err(reason) = set_headers(&query, &mut response) {
        return Ok(bad_request(reason));
    }
    if not_modified(&if_none_match, &response) {
        // What an origin does for a client that has this version already.
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.body_mut() = http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    response.headers_mut().insert(
        HeaderName::from_static("x-served-by"),
        HeaderValue::from_str(&state.addr.to_string()).expect("a socket address is a valid header"),
    );
    Ok(response)
}

fn status(code: &str) -> Response<Body> {
    // 1xx cannot be a final answer, and 600+ is not HTTP.
    match code.parse::<u16>().ok().filter(|c| (200..=599).contains(c)) {
        Some(code) => {
            let status = StatusCode::from_u16(code).expect("200..=599 is a valid status");
            let reason = status.canonical_reason().unwrap_or("");
            text(status, format!("{code} {reason}\n"))
        }
        None => bad_request(format!("status code must be 200 to 599, got {code:?}")),
    }
}

async fn delay(ms: &str) -> Response<Body> {
    match parse_bounded("delay", ms, MAX_DELAY_MS) {
        Ok(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(StatusCode::OK, format!("waited {ms} ms\n"))
        }
        Err(e) => bad_request(e),
    }
}

/// A body of frames produced over time: each frame reaches hyper on its own,
/// so each is written (and flushed) as its own chunk.
fn timed_frames(
    count: u64,
    interval: Duration,
    frame: impl Fn(u64) -> String + Send + Sync + 'static,
) -> Body {
    let frames = stream::unfold(0, move |i| {
        let next = (i < count).then(|| frame(i + 1));
        async move {
            let data = next?;
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            Some((Ok(Frame::data(Bytes::from(data))), i + 1))
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

fn chunk_stream(n: &str, query: &Query) -> Response<Body> {
    let (count, interval) = match (
        parse_bounded("chunk count", n, MAX_CHUNKS),
        query.number("interval_ms", 100, MAX_DELAY_MS),
    ) {
        (Ok(c), Ok(i)) => (c, i),
        (Err(e), _) | (_, Err(e)) => return bad_request(e),
    };
    let body = timed_frames(count, Duration::from_millis(interval), move |i| {
        format!("chunk {i} of {count}\n")
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .expect("static response parts are valid")
}

fn sse(query: &Query) -> Response<Body> {
    let (count, interval) = match (
        query.number("n", 5, MAX_CHUNKS),
        query.number("interval_ms", 100, MAX_DELAY_MS),
    ) {
        (Ok(c), Ok(i)) => (c, i),
        (Err(e), _) | (_, Err(e)) => return bad_request(e),
    };
    let body = timed_frames(count, Duration::from_millis(interval), |i| {
        format!("id: {i}\nevent: tick\ndata: tick {i}\n\n")
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("static response parts are valid")
}

/// Byte `i` of every `/bytes/{n}` body. 251 is prime, so the pattern never
/// lines up with chunk or buffer sizes and a shifted or dropped block shows.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

fn pattern_bytes(n: &str) -> Response<Body> {
    let total = match parse_bounded("byte count", n, MAX_BYTES) {
        Ok(n) => n,
        Err(e) => return bad_request(e),
    };
    let chunks = stream::iter((0..total).step_by(BYTES_CHUNK as usize).map(move |start| {
        let end = (start + BYTES_CHUNK).min(total);
        let chunk: Vec<u8> = (start..end).map(pattern_byte).collect();
        Ok(Frame::data(Bytes::from(chunk)))
    }));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, total)
        .body(StreamBody::new(chunks).boxed_unsync())
        .expect("static response parts are valid")
}

fn trailers(query: &Query) -> Response<Body> {
    let parts: [&'static str; 2] = ["the body comes first,\n", "then the trailers.\n"];
    let checksum = hex::encode(Sha256::digest(parts.concat()));
    let mut trailer_map = HeaderMap::new();
    trailer_map.insert(
        HeaderName::from_static("x-checksum"),
        HeaderValue::from_str(&checksum).expect("hex is a valid header"),
    );
    trailer_map.insert(
        HeaderName::from_static("x-trailer-note"),
        HeaderValue::from_static("sent after the body"),
    );
    let frames = stream::iter(
        parts
            .into_iter()
            .map(|p| Frame::data(Bytes::from_static(p.as_bytes())))
            .chain(std::iter::once(Frame::trailers(trailer_map)))
            .map(Ok),
    );
    let mut response =
        Response::builder().header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    if query.flag("announce", true) {
        response = response.header(header::TRAILER, "x-checksum, x-trailer-note");
    }
    response
        .body(StreamBody::new(frames).boxed_unsync())
        .expect("static response parts are valid")
}

fn health(state: &State) -> Response<Body> {
    if state.healthy.load(Ordering::Relaxed) {
        text(StatusCode::OK, "ok\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "down\n")
    }
}

fn set_health(state: &State, healthy: bool) -> Response<Body> {
    state.healthy.store(healthy, Ordering::Relaxed);
    let word = if healthy { "up" } else { "down" };
    text(StatusCode::OK, format!("health is now {word}\n"))
}

fn flaky(query: &Query) -> Response<Body> {
    let percent = match query.number("fail_percent", 50, 100) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    if rand::random_range(0..100) < percent {
        text(StatusCode::INTERNAL_SERVER_ERROR, "flaky failure\n")
    } else {
        text(StatusCode::OK, "ok\n")
    }
}

/// Add the headers `set=Name:Value` asks for (any endpoint takes it), or
/// say why not.
fn set_headers(query: &Query, response: &mut Response<Body>) -> Result<(), String> {
    for spec in query.all("set") {
        let Some((name, value)) = spec.split_once(':') else {
            return Err(format!("set must look like Name:Value, got {spec:?}"));
        };
        let name = match HeaderName::from_bytes(name.trim().as_bytes()) {
            Ok(n) => n,
            Err(_) => return Err(format!("{name:?} is not a header name")),
        };
        // Framing is hyper's job; a test backend that lied about it would
        // only test the client's parser.
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            return Err(format!("{name} cannot be set: it decides the framing"));
        }
        let value = match HeaderValue::from_str(value.trim()) {
            Ok(v) => v,
            Err(_) => return Err(format!("{value:?} is not a header value")),
        };
        response.headers_mut().append(name, value);
    }
    Ok(())
}

/// Does the request's `If-None-Match` name the response's `ETag` (compared
/// weakly, as RFC 9110 §13.1.2 says for `If-None-Match`)?
fn not_modified(if_none_match: &[HeaderValue], response: &Response<Body>) -> bool {
    let Some(etag) = response
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    if_none_match
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag))
}
