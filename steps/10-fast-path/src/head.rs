//! Message heads: parsed by `httparse` into offsets, checked once, then
//! forwarded mostly as they arrived.
//!
//! hyper turns a head into an `http::Request`: every header name interned
//! or copied, every value copied into a `HeaderMap`, and the map hashed —
//! work a general server needs, since its handler may ask for any header.
//! A proxy asks about a dozen names (the framing, `Connection`, `Host`,
//! the forwarding headers) and passes the rest through untouched. So here
//! `httparse` (hyper's own tokenizer) finds where each name and value sit
//! in the connection's buffer, [`RequestHead`] records those positions and
//! what the few interesting headers say, and [`crate::forward`] writes the
//! outgoing head by copying byte ranges.
//!
//! The checks are the ones RFC 9112 asks of a proxy, because a proxy and
//! the server behind it must agree on where each message ends — where they
//! disagree, a request can be smuggled inside another (NOTES chapter 3,
//! "Bad input"): two `Host`s, a `Content-Length` that is not one number, a
//! `Transfer-Encoding` that does not end in `chunked`; a `Content-Length`
//! beside a `Transfer-Encoding` is ignored, and the connection closed
//! after the message. `httparse` itself refuses whitespace
//! before a colon and obs-fold in requests.
//!
//! Left out on purpose: HTTP/2 from clients, and heads larger than the
//! connection's buffer (64 KiB: answered 431).

use std::ops::Range;

/// Headers a head may carry at most (more: 431).
pub const MAX_HEADERS: usize = 128;

/// Headers a client's request may carry at most: hyper's limit, so step 10
/// refuses what step 03 refuses — and what it forwards, with the five
/// headers it adds, still fits under [`MAX_HEADERS`]. (Found by fuzzing:
/// a request of 128 headers went out as one of 133.)
pub const MAX_REQUEST_HEADERS: usize = 100;

/// One header, as positions in the buffer the head was read into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderAt {
    pub name: (u32, u32),
    pub value: (u32, u32),
}

impl HeaderAt {
    pub fn name<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.name.0 as usize..self.name.1 as usize]
    }

    pub fn value<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.value.0 as usize..self.value.1 as usize]
    }
}

/// How a message body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding: the body says where it ends.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Why a head cannot be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    #[error("more than {MAX_REQUEST_HEADERS} headers")]
    TooManyHeaders,
    #[error("{0}")]
    Rejected(&'static str),
}

impl HeadError {
    /// The status a client gets for it.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooManyHeaders => 431,
            _ => 400,
        }
    }
}

/// What the interesting headers of any head (request or response) say.
#[derive(Debug, Default, Clone)]
pub struct Common {
    pub framing: Option<Framing>,
    /// Every token of every `Connection` header, lower-cased, joined by
    /// commas: the headers they name are hop-by-hop too.
    pub connection: Vec<u8>,
    /// `Connection: close` (or HTTP/1.0 without `keep-alive`).
    pub close: bool,
    /// The `Upgrade` header, if one.
    pub upgrade: Option<(u32, u32)>,
    /// `Transfer-Encoding` was present (so any `Content-Length` is ignored
    /// and must not be forwarded).
    pub transfer_encoding: bool,
    /// A `Content-Length` came beside `Transfer-Encoding`: ignored, and the
    /// connection must close after the message.
    pub length_ignored: bool,
}

/// A checked request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Bytes the head takes in the buffer, final CRLF included.
    pub len: usize,
    pub method: (u32, u32),
    pub target: (u32, u32),
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub host: Option<(u32, u32)>,
    pub expect_continue: bool,
    pub common: Common,
}

impl RequestHead {
    pub fn method<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        slice(buf, self.method)
    }

    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        slice(buf, self.target)
    }

    pub fn is_head(&self, buf: &[u8]) -> bool {
        self.method(buf) == b"HEAD"
    }

    /// The body's framing (requests without either header have none).
    pub fn framing(&self) -> Framing {
        self.common.framing.unwrap_or(Framing::Empty)
    }
}

/// A checked response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub len: usize,
    pub status: u16,
    pub reason: (u32, u32),
    pub minor: u8,
    pub common: Common,
}

pub fn slice(buf: &[u8], (start, end): (u32, u32)) -> &[u8] {
    &buf[start as usize..end as usize]
}

/// Where `part` (a slice of `buf`) sits in `buf`.
fn offsets(buf: &[u8], part: &[u8]) -> (u32, u32) {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// Parse a request head at the start of `buf`. `Ok(None)`: not all of it
/// has arrived. The headers' positions go to `headers` (cleared first).
pub fn parse_request(
    buf: &[u8],
    headers: &mut Vec<HeaderAt>,
) -> Result<Option<RequestHead>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(parse_error(e))),
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    headers.clear();
    let mut host = None;
    let mut expect_continue = false;
    let mut common = Common::default();
    let mut length = Length::default();
    for header in request.headers.iter() {
        let at = HeaderAt {
            name: offsets(buf, header.name.as_bytes()),
            value: offsets(buf, header.value),
        };
        headers.push(at);
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Err(HeadError::Rejected("two Host headers"));
            }
            if !valid_host(header.value) {
                return Err(HeadError::Rejected("Host is not a valid host[:port]"));
            }
            host = Some(at.value);
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = header.value.eq_ignore_ascii_case(b"100-continue");
        } else {
            common.read(name, header.value, at, &mut length)?;
        }
    }
    if headers.len() > MAX_REQUEST_HEADERS {
        return Err(HeadError::TooManyHeaders);
    }
    if minor == 1 && host.is_none() {
        return Err(HeadError::Rejected("HTTP/1.1 request without Host"));
    }
    if minor == 0 && common.transfer_encoding {
        return Err(HeadError::Rejected(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    common.settle(minor, length, true)?;
    Ok(Some(RequestHead {
        len,
        method: offsets(buf, method.as_bytes()),
        target: offsets(buf, target.as_bytes()),
        minor,
        host,
        expect_continue,
        common,
    }))
}

/// Parse a response head at the start of `buf` (the answer to a request
/// that was `head_request` or not).
pub fn parse_response(
    buf: &[u8],
    headers: &mut Vec<HeaderAt>,
    head_request: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(parse_error(e))),
    };
    let (Some(status), Some(minor)) = (response.code, response.version) else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    // A missing reason is no slice of `buf` at all (httparse gives a
    // static ""): its offsets would be garbage. (Found by fuzzing: a
    // status line without a reason phrase panicked.)
    let reason = match response.reason {
        Some(reason) if !reason.is_empty() => offsets(buf, reason.as_bytes()),
        _ => (0, 0),
    };
    headers.clear();
    let mut common = Common::default();
    let mut length = Length::default();
    for header in response.headers.iter() {
        let at = HeaderAt {
            name: offsets(buf, header.name.as_bytes()),
            value: offsets(buf, header.value),
        };
        headers.push(at);
        common.read(header.name.as_bytes(), header.value, at, &mut length)?;
    }
    common.settle(minor, length, false)?;
    // RFC 9112 §6.3: these never have a body, whatever the headers say.
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        common.framing = Some(Framing::Empty);
    }
    Ok(Some(ResponseHead {
        len,
        status,
        reason,
        minor,
        common,
    }))
}

/// What the `Content-Length` headers said.
#[derive(Default)]
struct Length {
    value: Option<u64>,
}

impl Common {
    /// Take note of one header.
    fn read(
        &mut self,
        name: &[u8],
        value: &[u8],
        at: HeaderAt,
        length: &mut Length,
    ) -> Result<(), HeadError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            // One number per header. Repeats are accepted only if they say
            // the same number (RFC 9110 §8.6); a list in one header is
            // refused, as hyper does (tests/differential.rs).
            let n =
                digits(trim(value)).ok_or(HeadError::Rejected("Content-Length is not a number"))?;
            if length.value.is_some_and(|seen| seen != n) {
                return Err(HeadError::Rejected("conflicting Content-Length headers"));
            }
            length.value = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
            // Only the last coding of the last header decides; each
            // header's codings are a list.
            let last = value
                .rsplit(|b| *b == b',')
                .next()
                .map(trim)
                .unwrap_or_default();
            self.framing = Some(if last.eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked
            } else {
                Framing::UntilClose
            });
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|b| *b == b',') {
                let token = trim(token);
                if token.is_empty() {
                    continue;
                }
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                }
                if !self.connection.is_empty() {
                    self.connection.push(b',');
                }
                self.connection
                    .extend(token.iter().map(u8::to_ascii_lowercase));
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade = Some(at.value);
        }
        Ok(())
    }

    /// Decide the framing once every header has been read.
    fn settle(&mut self, minor: u8, length: Length, request: bool) -> Result<(), HeadError> {
        if self.transfer_encoding {
            // Both: the chunks frame the body (RFC 9112 §6.3), the length
            // is not forwarded, and the connection closes after this
            // message, so nothing the two framings disagree about is read
            // as another request.
            self.length_ignored = length.value.is_some();
            if request && self.framing != Some(Framing::Chunked) {
                return Err(HeadError::Rejected(
                    "Transfer-Encoding does not end in chunked",
                ));
            }
        } else if let Some(n) = length.value {
            // Length(0) stays a length: it is forwarded as written.
            self.framing = Some(Framing::Length(n));
        } else if !request {
            self.framing = Some(Framing::UntilClose);
        }
        if minor == 0 && !self.lists(b"keep-alive") {
            self.close = true;
        }
        Ok(())
    }

    /// Does `Connection` name `token` (lower case)?
    pub fn lists(&self, token: &[u8]) -> bool {
        self.connection.split(|b| *b == b',').any(|t| t == token)
    }
}

/// A decimal number of at most 18 digits (no sign, no spaces).
fn digits(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 18 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(raw.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn trim(raw: &[u8]) -> &[u8] {
    raw.trim_ascii()
}

/// A Host value: a name or address, an optional port, nothing else — no
/// `/`, spaces, `@` or control bytes (NOTES chapter 3, "Clients that mean harm").
fn valid_host(value: &[u8]) -> bool {
    !value.is_empty()
        && value.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name (whitespace before a colon?)",
        httparse::Error::HeaderValue => "invalid header value (obs-fold or a control byte?)",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::Version => "invalid HTTP version",
        httparse::Error::TooManyHeaders => "too many headers",
    }
}

/// The range of `buf` a `(start, end)` pair names, as a `Range`.
pub fn range((start, end): (u32, u32)) -> Range<usize> {
    start as usize..end as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request(raw.as_bytes(), &mut Vec::new())
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let head = request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing(), Framing::Length(5));
        let head =
            request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(head.framing(), Framing::Chunked);
        let head = request("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing(), Framing::Empty);
        assert!(request("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
    }

    #[test]
    fn ambiguous_requests_are_rejected() {
        for raw in [
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(request(raw).is_err(), "accepted {raw:?}");
        }
        // Both framings: the chunks win, and the connection will close.
        let head = request(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.framing(), Framing::Chunked);
        assert!(head.common.length_ignored);
        // The same number twice is one length.
        let head =
            request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(head.framing(), Framing::Length(5));
    }

    #[test]
    fn a_request_may_carry_as_many_headers_as_step_03_takes() {
        let with = |n: usize| {
            let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
            for i in 1..n {
                raw.push_str(&format!("X-{i}: v\r\n"));
            }
            raw.push_str("\r\n");
            request(&raw)
        };
        assert!(with(MAX_REQUEST_HEADERS).unwrap().is_some());
        assert_eq!(with(MAX_REQUEST_HEADERS + 1).unwrap_err().status(), 431);
    }

    #[test]
    fn every_connection_header_counts() {
        let head = request("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: X-Secret, Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.common.lists(b"x-secret"));
        assert!(head.common.close);
    }

    #[test]
    fn responses_without_length_run_until_close_and_some_have_no_body() {
        let mut headers = Vec::new();
        let head = parse_response(b"HTTP/1.1 200 OK\r\n\r\n", &mut headers, false)
            .unwrap()
            .unwrap();
        assert_eq!(head.common.framing, Some(Framing::UntilClose));
        let head = parse_response(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            &mut headers,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.common.framing, Some(Framing::Empty));
        let head = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            &mut headers,
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.common.framing, Some(Framing::Empty));
    }
}
