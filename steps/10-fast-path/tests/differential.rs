//! Step 10's parser against hyper's, on the same bytes.
//!
//! A proxy and the server behind it must agree on where every message
//! ends; where they do not, a request can be smuggled. So the same
//! requests — variations of Host, Content-Length, Transfer-Encoding, line
//! endings, versions and chunked bodies, including the classic smuggling
//! shapes — go to step 10's parser and to hyper's HTTP/1 server, and each
//! says: refused, or accepted with a body of N bytes. Where both accept,
//! the bodies must be the same length. Where they differ on accepting,
//! step 10 may only be the stricter one, and every such case is listed
//! here with why.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use step10_fast_path::chunked::Chunked;
use step10_fast_path::head::{self, Framing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Refused,
    /// Accepted, with a body of this many bytes.
    Body(usize),
}

/// What step 10 makes of `raw`.
fn ours(raw: &[u8]) -> Verdict {
    let mut headers = Vec::new();
    let Ok(Some(request)) = head::parse_request(raw, &mut headers) else {
        return Verdict::Refused;
    };
    let rest = &raw[request.len..];
    match request.framing() {
        Framing::Empty => Verdict::Body(0),
        Framing::Length(n) if (n as usize) <= rest.len() => Verdict::Body(n as usize),
        Framing::Length(_) => Verdict::Refused,
        Framing::Chunked => {
            let mut chunked = Chunked::new();
            let mut length = 0;
            match chunked.advance(rest, &mut |data| length += data.len()) {
                Ok(_) if chunked.is_done() => Verdict::Body(length),
                _ => Verdict::Refused,
            }
        }
        Framing::UntilClose => Verdict::Refused,
    }
}

/// What hyper's server makes of `raw`: it answers with the body's length,
/// or refuses (an error status, or a connection closed without an answer).
async fn hypers(raw: &[u8]) -> Verdict {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let serving = tokio::spawn(async move {
        let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
            let body = req.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                body.len().to_string(),
            ))))
        });
        let _ = http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), service)
            .await;
    });
    let (mut read, mut write) = tokio::io::split(client);
    write.write_all(raw).await.unwrap();
    write.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut answer)).await;
    serving.abort();
    let answer = String::from_utf8_lossy(&answer);
    match answer.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
        {
            Verdict::Body(body.parse().unwrap_or(usize::MAX))
        }
        _ => Verdict::Refused,
    }
}

/// The requests: a line, headers, a body, in many variations.
fn cases() -> Vec<(String, Vec<u8>)> {
    let chunked_bodies: [(&str, &[u8]); 8] = [
        ("plain", b"5\r\nhello\r\n0\r\n\r\n"),
        (
            "upper hex, leading zeros",
            b"00A\r\n0123456789\r\n0\r\n\r\n",
        ),
        ("extension", b"5;name=value\r\nhello\r\n0\r\n\r\n"),
        ("trailer", b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"),
        ("bare LF after size", b"5\nhello\r\n0\r\n\r\n"),
        ("bare LF after data", b"5\r\nhello\n0\r\n\r\n"),
        ("space before extension", b"5 ;x\r\nhello\r\n0\r\n\r\n"),
        ("size too large", b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ];
    let framings: [(&str, &str, Option<usize>); 16] = [
        ("no framing", "", None),
        ("length", "Content-Length: 5\r\n", None),
        (
            "length twice, same",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            None,
        ),
        (
            "length twice, different",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            None,
        ),
        ("length list", "Content-Length: 5, 5\r\n", None),
        ("length with sign", "Content-Length: +5\r\n", None),
        ("length with leading zeros", "Content-Length: 005\r\n", None),
        ("negative length", "Content-Length: -1\r\n", None),
        (
            "huge length",
            "Content-Length: 99999999999999999999\r\n",
            None,
        ),
        ("chunked", "Transfer-Encoding: chunked\r\n", Some(0)),
        ("Chunked (case)", "Transfer-Encoding: Chunked\r\n", Some(0)),
        (
            "gzip, chunked",
            "Transfer-Encoding: gzip, chunked\r\n",
            Some(0),
        ),
        (
            "chunked, gzip",
            "Transfer-Encoding: chunked, gzip\r\n",
            Some(0),
        ),
        ("identity", "Transfer-Encoding: identity\r\n", None),
        (
            "length and chunked",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            Some(0),
        ),
        (
            "two TE headers",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            Some(0),
        ),
    ];
    let mut cases = Vec::new();
    for (name, framing, chunked) in framings {
        match chunked {
            Some(_) => {
                for (body_name, body) in chunked_bodies {
                    let mut raw =
                        format!("POST / HTTP/1.1\r\nHost: a\r\n{framing}\r\n").into_bytes();
                    raw.extend_from_slice(body);
                    cases.push((format!("{name}; {body_name}"), raw));
                }
            }
            None => {
                let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{framing}\r\nhello").into_bytes();
                cases.push((name.to_owned(), raw));
            }
        }
    }
    let heads: [(&str, &str); 14] = [
        ("no Host", "GET / HTTP/1.1\r\n\r\n"),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        ("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
        ("Host with a port", "GET / HTTP/1.1\r\nHost: a:8080\r\n\r\n"),
        ("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        (
            "obs-fold",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
        ),
        ("bare LF lines", "GET / HTTP/1.1\nHost: a\n\n"),
        ("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"),
        (
            "HTTP/1.0 chunked",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        ("HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        (
            "non-ASCII value",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\u{e9}\r\n\r\n",
        ),
        (
            "NUL in a value",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        ),
        (
            "absolute form",
            "GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
    ];
    for (name, raw) in heads {
        cases.push((name.to_owned(), raw.as_bytes().to_vec()));
    }
    cases
}

/// Cases where step 10 refuses what hyper accepts, and why that is right
/// for a proxy. A name ending a case's name ("…; bare LF after size")
/// covers that body under every chunked framing.
const STRICTER: [&str; 5] = [
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request
    // without Host, or with more than one; hyper leaves that to the
    // application.
    "no Host",
    "two Hosts",
    // NOTES chapter 3: Host values with `/`, spaces or `@` are refused; hyper
    // does not look at Host.
    "Host with a slash",
    "Host with userinfo",
    // Strict chunk lines (chunked.rs): no whitespace between the size and
    // its extension — a leniency that has let proxies and servers
    // disagree. (hyper, too, refuses a bare LF after the size.)
    "space before extension",
];

fn stricter(name: &str) -> bool {
    STRICTER
        .iter()
        .any(|s| name == *s || name.ends_with(&format!("; {s}")))
}

#[tokio::test]
async fn step_10_and_hyper_agree_on_where_every_request_ends() {
    let mut disagreements = Vec::new();
    let mut stricter_seen = Vec::new();
    let cases = cases();
    for (name, raw) in &cases {
        let (ours, hypers) = (ours(raw), hypers(raw).await);
        match (ours, hypers) {
            (a, b) if a == b => {}
            (Verdict::Refused, Verdict::Body(_)) if stricter(name) => {
                stricter_seen.push(name.clone())
            }
            (ours, hypers) => {
                disagreements.push(format!("{name}: step 10 {ours:?}, hyper {hypers:?}"))
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
    // Every listed difference is still there (else the list lies).
    for listed in STRICTER {
        assert!(
            stricter_seen
                .iter()
                .any(|name| name == listed || name.ends_with(&format!("; {listed}"))),
            "{listed:?} no longer differs"
        );
    }
}
