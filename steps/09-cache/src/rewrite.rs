//! ModifyResponse on bodies: the seed's body example, done right.
//!
//! The seed shows a response hook that reads the upstream's body, un-gzips
//! it, edits the text and sets a new `Content-Length`. The idea is sound;
//! what a real proxy must add is everything around it:
//!
//! - only **text** is edited (`Content-Type`), and only a body whose
//!   coding this proxy reads — `gzip`, `br`, `zstd` or none ([`Coding`]);
//! - the body is read **up to a limit** (`--rewrite-limit`): a larger one,
//!   or one that decodes to more (a compression bomb), passes through
//!   untouched, and the log says so — a proxy never holds a download whole;
//! - the edited text is **encoded again** in the coding it came in (the
//!   client accepted that one) and **framed again**: a new
//!   `Content-Length`;
//! - its `ETag` becomes **weak**: the bytes are not the origin's any more,
//!   but they mean the same, and a strong validator would promise
//!   byte-for-byte equality to range requests.
//!
//! A rule is `--rewrite-body REGEX=REPLACEMENT`: the regex (on bytes, so a
//! body that is not UTF-8 is still edited where it matches) is everything
//! before the first `=`; `$1` in the replacement is the first group.

use hyper::Response;
use hyper::header::{CONTENT_LENGTH, ETAG, HeaderValue};
use proxy_core::ProxyBody;
use regex::bytes::Regex;

use crate::codings::Coding;
use crate::whole_body::{held, is_text, read_up_to};

/// One `--rewrite-body` rule.
#[derive(Debug, Clone)]
pub struct BodyRule {
    pub pattern: Regex,
    pub replacement: String,
}

impl PartialEq for BodyRule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.replacement == other.replacement
    }
}

impl Eq for BodyRule {}

/// `REGEX=REPLACEMENT`, as the flag takes it.
pub fn parse_rule(raw: &str) -> Result<BodyRule, String> {
    let Some((pattern, replacement)) = raw.split_once('=') else {
        return Err(format!("{raw:?}: expected REGEX=REPLACEMENT"));
    };
    if pattern.is_empty() {
        return Err(format!("{raw:?}: the regex before = is empty"));
    }
    let pattern =
        Regex::new(pattern).map_err(|error| format!("{pattern:?} is not a regex: {error}"))?;
    Ok(BodyRule {
        pattern,
        replacement: replacement.to_owned(),
    })
}

/// `response` with `rules` applied to its body, when it is text small
/// enough to hold (`limit` bytes, encoded or decoded).
pub async fn apply(
    rules: &[BodyRule],
    limit: usize,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let headers = response.headers();
    if rules.is_empty()
        || !is_text(headers)
        || crate::directives::Directives::of(headers).no_transform
    {
        return response;
    }
    let Some(coding) = Coding::of(response.headers()) else {
        tracing::info!("not rewriting a body in a coding this proxy does not read");
        return response;
    };
    let (mut head, body) = response.into_parts();
    let (whole, trailers) = match read_up_to(body, limit).await {
        Ok(read) => read,
        Err(untouched) => {
            tracing::info!("not rewriting a body of more than {limit} bytes: passed on as it came");
            return Response::from_parts(head, untouched);
        }
    };
    let unchanged = |whole| Response::from_parts(head.clone(), held(whole, trailers.clone()));
    let text = match coding.decode(&whole, limit) {
        Ok(text) => text,
        Err(error) => {
            tracing::info!("not rewriting a {} body: {error}", coding.token());
            return unchanged(whole);
        }
    };
    let mut edited = text.clone();
    for rule in rules {
        edited = rule
            .pattern
            .replace_all(&edited, rule.replacement.as_bytes())
            .into_owned();
    }
    if edited == text {
        return unchanged(whole);
    }
    let encoded = bytes::Bytes::from(coding.encode(&edited));
    head.headers
        .insert(CONTENT_LENGTH, HeaderValue::from(encoded.len()));
    weaken_etag(&mut head.headers);
    Response::from_parts(head, held(encoded, trailers))
}

/// A changed body's `ETag` says the same resource, no longer the same
/// bytes: `"x"` becomes `W/"x"`.
pub fn weaken_etag(headers: &mut hyper::HeaderMap) {
    if let Some(etag) = headers.get(ETAG).and_then(|v| v.to_str().ok())
        && !etag.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
    {
        headers.insert(ETAG, weak);
    }
}
