//! The outgoing heads, written by copying byte ranges of the incoming ones.
//!
//! Step 03 edits a `HeaderMap` and lets hyper serialise it. Here the head
//! that leaves is written straight into the upstream connection's output
//! buffer: the request line with the target joined to the upstream's base;
//! every header the client sent except `Host` and the hop-by-hop ones
//! (NOTES chapter 3's first rule); then the headers the proxy owns, which are
//! `Host` (the upstream's), `X-Forwarded-For` (the client's address after
//! any earlier list), `X-Forwarded-Host`, `X-Forwarded-Proto` and
//! `X-Real-IP` (the second item); and the framing of the body as it will
//! be sent.

use std::net::IpAddr;

use hyper::header::{HeaderName, HeaderValue};

use proxy_core::headers::te_lists_trailers;

use crate::head::{Framing, HeaderAt, RequestHead, ResponseHead, slice};

/// Headers the proxy writes itself (a client's copies are dropped or, for
/// X-Forwarded-For, extended).
const OWNED: [&[u8]; 5] = [
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"content-length",
];

/// Where requests go: the upstream's authority and base path, as written.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port`, the `Host` of every request sent.
    pub authority: String,
    /// The path prefix (`""` when the upstream URL has none) and query.
    pub base_path: String,
    pub base_query: Option<String>,
}

fn is_hop_by_hop(name: &[u8], listed: &crate::head::Common) -> bool {
    proxy_core::headers::is_hop_by_hop(name)
        || (!listed.connection.is_empty()
            && listed
                .connection
                .split(|b| *b == b',')
                .any(|t| name.eq_ignore_ascii_case(t)))
}

/// Is this `Upgrade` request one to tunnel? Not `h2c`: an upgrade to
/// HTTP/2 over the proxy's connection would let the client talk past the
/// proxy's rules (NOTES chapter 3, "Bad input").
pub fn tunnels_upgrade(buf: &[u8], head: &RequestHead) -> bool {
    match head.common.upgrade {
        Some(upgrade) => {
            head.common.lists(b"upgrade") && !slice(buf, upgrade).eq_ignore_ascii_case(b"h2c")
        }
        None => false,
    }
}

/// Who sent a request: the TCP peer, the client (the peer, or whom a
/// trusted peer forwarded), and whether the peer is a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct Hop {
    pub peer: IpAddr,
    pub client: IpAddr,
    pub peer_trusted: bool,
    /// The peer spoke TLS to us (`X-Forwarded-Proto: https`).
    pub tls: bool,
}

/// Where the outgoing request line points: the upstream (its base path
/// and query come first), then the path and query to join to them.
pub struct Target<'a> {
    pub upstream: &'a Upstream,
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
}

impl<'a> Target<'a> {
    /// `raw`, a request target as received, sent to `upstream` unchanged.
    pub fn as_received(upstream: &'a Upstream, raw: &'a [u8]) -> Self {
        let (path, query) = origin(raw);
        Self {
            upstream,
            path,
            query,
        }
    }
}

/// Headers a proxy edits on the way through: every header named in `set`
/// or `remove` goes, and `set`'s are written in their place.
#[derive(Clone, Copy, Default)]
pub struct Edits<'a> {
    pub set: &'a [(HeaderName, HeaderValue)],
    pub remove: &'a [HeaderName],
}

impl Edits<'_> {
    /// Headers set, none removed.
    pub fn set(set: &[(HeaderName, HeaderValue)]) -> Edits<'_> {
        Edits { set, remove: &[] }
    }

    fn drops(&self, name: &[u8]) -> bool {
        let named = |edited: &HeaderName| name.eq_ignore_ascii_case(edited.as_str().as_bytes());
        self.set.iter().any(|(edited, _)| named(edited)) || self.remove.iter().any(named)
    }

    fn write(&self, out: &mut Vec<u8>) {
        for (name, value) in self.set {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

/// Write the request head for `target` into `out`, with the client's
/// headers `edits`ed.
pub fn request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    headers: &[HeaderAt],
    target: &Target<'_>,
    hop: &Hop,
    edits: Edits<'_>,
) {
    out.extend_from_slice(head.method(buf));
    out.push(b' ');
    request_target(out, target);
    let upstream = target.upstream;
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut forwarded_for: Option<(u32, u32)> = None;
    let mut forwarded_for_count = 0;
    let (mut kept_host, mut kept_proto) = (false, false);
    let mut te_trailers = false;
    for header in headers {
        let name = header.name(buf);
        if name.eq_ignore_ascii_case(b"x-forwarded-for") && !is_hop_by_hop(name, &head.common) {
            // Joined below with the client's address.
            forwarded_for_count += 1;
            if forwarded_for_count == 1 {
                forwarded_for = Some(header.value);
            }
            continue;
        }
        if name.eq_ignore_ascii_case(b"te") {
            // A client that lists `trailers` takes trailers: `TE: trailers`
            // goes on (once, whatever else it listed).
            if !te_trailers && te_lists_trailers(header.value(buf)) {
                out.extend_from_slice(b"te: trailers\r\n");
                te_trailers = true;
            }
            continue;
        }
        if is_hop_by_hop(name, &head.common)
            || name.eq_ignore_ascii_case(b"x-real-ip")
            || edits.drops(name)
        {
            continue;
        }
        // A trusted proxy before us saw the client's Host and scheme.
        if hop.peer_trusted && name.eq_ignore_ascii_case(b"x-forwarded-host") {
            kept_host = true;
        } else if hop.peer_trusted && name.eq_ignore_ascii_case(b"x-forwarded-proto") {
            kept_proto = true;
        } else if OWNED.iter().any(|o| name.eq_ignore_ascii_case(o)) {
            continue;
        }
        line(out, name, header.value(buf));
    }
    line(out, b"host", upstream.authority.as_bytes());
    // The hop we saw goes on the list; the client is X-Real-IP, always
    // ours (so it cannot be forged).
    let mut address = [0u8; 48];
    let ip = proxy_core::headers::format_ip(hop.peer, &mut address);
    out.extend_from_slice(b"x-forwarded-for: ");
    if forwarded_for_count > 1 {
        // Several headers are one list (RFC 9110 §5.3): join them all.
        let mut first = true;
        for header in headers {
            if header.name(buf).eq_ignore_ascii_case(b"x-forwarded-for") {
                if !first {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(header.value(buf));
                first = false;
            }
        }
        out.extend_from_slice(b", ");
    } else if let Some(prior) = forwarded_for {
        out.extend_from_slice(slice(buf, prior));
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ip);
    out.extend_from_slice(b"\r\n");
    if let (Some(host), false) = (head.host, kept_host) {
        line(out, b"x-forwarded-host", slice(buf, host));
    }
    if !kept_proto {
        out.extend_from_slice(if hop.tls {
            b"x-forwarded-proto: https\r\n"
        } else {
            b"x-forwarded-proto: http\r\n"
        });
    }
    let mut address = [0u8; 48];
    line(
        out,
        b"x-real-ip",
        proxy_core::headers::format_ip(hop.client, &mut address),
    );
    edits.write(out);
    if tunnels_upgrade(buf, head) {
        out.extend_from_slice(b"connection: upgrade\r\n");
        line(
            out,
            b"upgrade",
            slice(buf, head.common.upgrade.expect("checked")),
        );
    }
    framing(out, head.framing());
    out.extend_from_slice(b"\r\n");
}

/// Write the response head for the client into `out`. `chunked_ok`: the
/// client speaks HTTP/1.1 (else a chunked body goes out decoded, delimited
/// by the connection's close). `close`: the client's connection ends
/// after this response. `edits`: to the upstream's headers.
pub fn response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    headers: &[HeaderAt],
    chunked_ok: bool,
    close: bool,
    edits: Edits<'_>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let status = head.status;
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(slice(buf, head.reason));
    out.extend_from_slice(b"\r\n");
    let framing = head.common.framing.unwrap_or(Framing::Empty);
    let chunked = framing == Framing::Chunked && chunked_ok;
    for header in headers {
        let name = header.name(buf);
        // A Trailer announcement stays with a chunked body, the only one
        // that can carry trailers.
        if name.eq_ignore_ascii_case(b"trailer") {
            if chunked {
                line(out, name, header.value(buf));
            }
            continue;
        }
        if is_hop_by_hop(name, &head.common)
            || (head.common.transfer_encoding && name.eq_ignore_ascii_case(b"content-length"))
            || edits.drops(name)
        {
            continue;
        }
        line(out, name, header.value(buf));
    }
    edits.write(out);
    if head.status == 101 {
        out.extend_from_slice(b"connection: upgrade\r\n");
        if let Some(upgrade) = head.common.upgrade {
            line(out, b"upgrade", slice(buf, upgrade));
        }
    } else if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close && head.status >= 200 {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The path and query of a request target as received; an absolute-form
/// target keeps only its path and query (`http://host/p?q` → `/p`, `q`;
/// `http://host` → `/`) — it still goes to the configured upstream.
pub fn origin(raw: &[u8]) -> (&[u8], Option<&[u8]>) {
    let origin = match raw.iter().position(|b| *b == b'/') {
        Some(_) if !raw.starts_with(b"/") => {
            let after_scheme = raw
                .windows(3)
                .position(|w| w == b"://")
                .map_or(0, |i| i + 3);
            match raw[after_scheme..]
                .iter()
                .position(|b| *b == b'/' || *b == b'?')
            {
                Some(at) => &raw[after_scheme + at..],
                None => b"/",
            }
        }
        // Origin form, `*` (OPTIONS), and anything else without a path.
        _ => raw,
    };
    match origin.iter().position(|b| *b == b'?') {
        Some(0) => (b"/", Some(&origin[1..])),
        Some(at) => (&origin[..at], Some(&origin[at + 1..])),
        None => (origin, None),
    }
}

/// The request target for the upstream: the path and query after the
/// upstream's base (step 02's join).
fn request_target(out: &mut Vec<u8>, target: &Target<'_>) {
    let upstream = target.upstream;
    if upstream.base_path.is_empty() && upstream.base_query.is_none() {
        out.extend_from_slice(target.path);
        if let Some(query) = target.query {
            out.push(b'?');
            out.extend_from_slice(query);
        }
        return;
    }
    let path = String::from_utf8_lossy(target.path);
    let joined = proxy_core::target::join_paths(&upstream.base_path, &path);
    out.extend_from_slice(joined.as_bytes());
    let query = target.query.map(String::from_utf8_lossy);
    if let Some(query) =
        proxy_core::target::join_queries(upstream.base_query.as_deref(), query.as_deref())
    {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
}

fn framing(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            let mut digits = [0u8; 20];
            out.extend_from_slice(decimal(n, &mut digits));
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::parse_request;

    fn forwarded(raw: &str, upstream: &Upstream) -> String {
        let mut headers = Vec::new();
        let head = parse_request(raw.as_bytes(), &mut headers)
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        request_head(
            &mut out,
            raw.as_bytes(),
            &head,
            &headers,
            &Target::as_received(upstream, head.target(raw.as_bytes())),
            &Hop {
                peer: "10.0.0.9".parse().unwrap(),
                client: "10.0.0.9".parse().unwrap(),
                peer_trusted: false,
                tls: false,
            },
            Edits::default(),
        );
        String::from_utf8(out).unwrap()
    }

    fn plain() -> Upstream {
        Upstream {
            authority: "backend:2003".into(),
            base_path: String::new(),
            base_query: None,
        }
    }

    #[test]
    fn hop_by_hop_headers_go_and_the_proxy_adds_its_own() {
        let out = forwarded(
            "GET /x?q=1 HTTP/1.1\r\nHost: front\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 1.2.3.4\r\nAccept: */*\r\n\r\n",
            &plain(),
        );
        assert_eq!(
            out,
            "GET /x?q=1 HTTP/1.1\r\nte: trailers\r\nAccept: */*\r\nhost: backend:2003\r\nx-forwarded-for: 1.2.3.4, 10.0.0.9\r\nx-forwarded-host: front\r\nx-forwarded-proto: http\r\nx-real-ip: 10.0.0.9\r\n\r\n"
        );
    }

    #[test]
    fn targets_join_the_upstream_base_and_absolute_form_keeps_its_path() {
        let based = Upstream {
            base_path: "/base".into(),
            base_query: Some("k=v".into()),
            ..plain()
        };
        assert!(
            forwarded("GET /x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", &based)
                .starts_with("GET /base/x?k=v&q=1 HTTP/1.1\r\n")
        );
        assert!(
            forwarded(
                "GET http://elsewhere/y?z HTTP/1.1\r\nHost: a\r\n\r\n",
                &plain()
            )
            .starts_with("GET /y?z HTTP/1.1\r\n")
        );
        assert!(
            forwarded("GET http://elsewhere HTTP/1.1\r\nHost: a\r\n\r\n", &plain())
                .starts_with("GET / HTTP/1.1\r\n")
        );
    }
}
