//! Step 10's request heads: whatever bytes arrive, parsing never panics,
//! and a head it accepts goes out as one the same parser (and httparse)
//! reads back unambiguously: one Host (the upstream's), no hop-by-hop
//! header, one framing header that says what the parsed head said.

#![no_main]

use libfuzzer_sys::fuzz_target;
use step10_fast_path::forward::{self, Hop, Upstream};
use step10_fast_path::head::{self, Framing};

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = Vec::new();
    let Ok(Some(request)) = head::parse_request(data, &mut headers) else {
        return;
    };
    assert!(request.len <= data.len());
    let upstream = Upstream {
        authority: "backend:2003".into(),
        base_path: String::new(),
        base_query: None,
    };
    let hop = Hop {
        peer: "10.0.0.9".parse().unwrap(),
        client: "10.0.0.9".parse().unwrap(),
        peer_trusted: false,
        tls: false,
    };
    let mut out = Vec::new();
    let target = forward::Target::as_received(&upstream, request.target(data));
    forward::request_head(
        &mut out,
        data,
        &request,
        &headers,
        &target,
        &hop,
        forward::Edits::default(),
    );

    // httparse reads it back whole.
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(&out) {
        Ok(httparse::Status::Complete(len)) => assert_eq!(len, out.len()),
        other => panic!(
            "forwarded head unreadable: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    }
    let count = |name: &str| {
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert_eq!(count("host"), 1);
    assert_eq!(count("x-forwarded-for"), 1);
    let upgrading = forward::tunnels_upgrade(data, &request);
    for name in HOP_BY_HOP {
        let allowed = match name {
            "transfer-encoding" => usize::from(request.framing() == Framing::Chunked),
            "connection" | "upgrade" => usize::from(upgrading),
            _ => 0,
        };
        assert_eq!(
            count(name),
            allowed,
            "{name} in\n{}",
            String::from_utf8_lossy(&out)
        );
    }
    // The same parser accepts what it sent, framed the same way (when it
    // fits a client's header limit: the proxy adds up to five headers, as
    // step 03 does, so a request near the limit goes out above it).
    if parsed.headers.len() <= head::MAX_REQUEST_HEADERS {
        let mut again = Vec::new();
        let reread = head::parse_request(&out, &mut again)
            .unwrap_or_else(|e| {
                panic!("own output refused: {e}\n{}", String::from_utf8_lossy(&out))
            })
            .expect("complete");
        assert_eq!(reread.framing(), request.framing());
    }
    assert_eq!(
        count("content-length"),
        usize::from(matches!(request.framing(), Framing::Length(_)))
    );
});
