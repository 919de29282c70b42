//! Chapter 10's exercises: reading a request head the way the fast
//! engine must — exactly, because it forwards bytes without rewriting them.

use step10_fast_path::head::Framing;

/// Exercise 1. How the body of the request whose whole head is `head`
/// (request line, headers, the blank line) is framed: no body
/// (`Framing::Empty`), `Framing::Length(n)` or `Framing::Chunked`; or why
/// it cannot be forwarded. RFC 9112 §6.3: `Transfer-Encoding` wins over
/// `Content-Length`, and in a request it must end in `chunked`; a
/// `Content-Length` is digits only (no sign), and two that disagree are
/// an attack, not a typo. Header names are case-insensitive.
///
/// Hint: `trim_ascii`, `eq_ignore_ascii_case`, `u8::is_ascii_digit`; and
/// read every header before deciding.
pub fn request_framing(head: &str) -> Result<Framing, &'static str> {
    // A first attempt: the first Content-Length, as Rust parses numbers;
    // else chunked if a header says so.
    for line in head.split("\r\n").skip(1) {
        if let Some(value) = line.strip_prefix("Content-Length:") {
            return value
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| "Content-Length is not a number");
        }
        if line == "Transfer-Encoding: chunked" {
            return Ok(Framing::Chunked);
        }
    }
    Ok(Framing::Empty)
}

/// Exercise 2. Does the connection stay open after the exchange whose
/// request head is `head`? HTTP/1.1 keeps it unless `Connection` lists
/// `close`; HTTP/1.0 closes it unless `Connection` lists `keep-alive`.
/// `Connection` is a comma-separated list of tokens, in any case, and may
/// come in several headers.
///
/// Hint: split on `,`, trim, `eq_ignore_ascii_case`.
pub fn keeps_alive(head: &str) -> bool {
    // A first attempt: one exact spelling, and HTTP/1.0 as if it were 1.1.
    !head.contains("Connection: close")
}
