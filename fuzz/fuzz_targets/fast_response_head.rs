//! Step 10's response heads: parsing never panics, and a head it accepts
//! reaches the client as one httparse reads back whole, without the
//! upstream's hop-by-hop headers, framed as the parsed head said (chunked
//! only for an HTTP/1.1 client).

#![no_main]

use libfuzzer_sys::fuzz_target;
use step10_fast_path::forward;
use step10_fast_path::head::{self, Framing};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (head_request, chunked_ok, close) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let mut headers = Vec::new();
    let Ok(Some(response)) = head::parse_response(data, &mut headers, head_request) else {
        return;
    };
    let mut out = Vec::new();
    forward::response_head(
        &mut out,
        data,
        &response,
        &headers,
        chunked_ok,
        close,
        forward::Edits::default(),
    );
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Response::new(&mut slots);
    match parsed.parse(&out) {
        Ok(httparse::Status::Complete(len)) => assert_eq!(len, out.len()),
        other => panic!(
            "forwarded head unreadable: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    }
    assert_eq!(parsed.code, Some(response.status));
    let count = |name: &str| {
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    for name in ["keep-alive", "proxy-connection", "te"] {
        assert_eq!(count(name), 0, "{name}");
    }
    let framing = response.common.framing.unwrap_or(Framing::Empty);
    let chunked = framing == Framing::Chunked && chunked_ok && response.status != 101;
    assert_eq!(count("transfer-encoding"), usize::from(chunked));
    if response.common.transfer_encoding {
        assert_eq!(
            count("content-length"),
            0,
            "a length beside chunked went out"
        );
    }
});
