//! Compression for the clients that accept it (`--compress`).
//!
//! Text compresses to a fifth of its size or less; an origin that does not
//! compress (many do not: it is the proxy's job in nginx's and Caddy's
//! designs) costs every client that many more bytes. For a text response
//! without a coding, the cache encodes the body in the coding the client's
//! `Accept-Encoding` prefers (`br`, `zstd` or `gzip`, [`Coding`]) and says
//! `Vary: Accept-Encoding` — always, compressed or not, because the answer
//! now depends on that header. The cache stores what it compressed as one
//! variant per coding, which `Vary` then selects ([`crate::vary`]).
//!
//! Left out on purpose: bodies over `--rewrite-limit` (they pass as they
//! are — compressing a stream is possible, but holding a reply for it is
//! not this chapter's lesson), bodies under 256 bytes (they grow), and
//! responses whose `Cache-Control` says `no-transform`.

use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH, HeaderValue, VARY};
use hyper::{HeaderMap, Response, StatusCode};
use proxy_core::ProxyBody;

use crate::codings::Coding;
use crate::directives::Directives;
use crate::rewrite::weaken_etag;
use crate::whole_body::{held, is_text, read_up_to};

/// Bodies smaller than this are sent as they are: compressed, they grow.
pub const MIN_SIZE: usize = 256;

/// `response`, compressed for a client whose request had `request`'s
/// headers, when that helps.
pub async fn apply(
    request: &HeaderMap,
    limit: usize,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let status = response.status();
    let headers = response.headers();
    if !is_text(headers)
        || headers.contains_key(CONTENT_ENCODING)
        || Directives::of(headers).no_transform
        || matches!(
            status,
            StatusCode::PARTIAL_CONTENT | StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return response;
    }
    let (mut head, body) = response.into_parts();
    add_vary(&mut head.headers);
    let coding = Coding::preferred(request);
    if coding == Coding::Identity {
        return Response::from_parts(head, body);
    }
    let (whole, trailers) = match read_up_to(body, limit).await {
        Ok(read) => read,
        Err(untouched) => return Response::from_parts(head, untouched),
    };
    if whole.len() < MIN_SIZE {
        return Response::from_parts(head, held(whole, trailers));
    }
    let encoded = coding.encode(&whole);
    if encoded.len() >= whole.len() {
        return Response::from_parts(head, held(whole, trailers));
    }
    head.headers
        .insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    head.headers
        .insert(CONTENT_LENGTH, HeaderValue::from(encoded.len()));
    weaken_etag(&mut head.headers);
    Response::from_parts(head, held(encoded.into(), trailers))
}

/// `Vary: Accept-Encoding`, unless the response varies on it already.
fn add_vary(headers: &mut HeaderMap) {
    let listed = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("accept-encoding") || name.trim() == "*");
    if !listed {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}
