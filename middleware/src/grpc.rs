//! Refusals a gRPC client can read.
//!
//! A proxy's own answers — 401 from auth, 429 from a limit, 404 for no
//! route, 502 for a dead upstream — are short texts. A gRPC client reads
//! none of them: it expects `content-type: application/grpc` and the
//! outcome in `grpc-status`, and a text body is a protocol error to it
//! ("invalid compression flag"), not an answer. So for a gRPC request, an
//! answer that is not gRPC becomes one: a *trailers-only* response (HTTP
//! 200, no body, the status in the head) whose `grpc-status` maps the HTTP
//! status as gRPC's own "HTTP to gRPC status code mapping" does, and whose
//! `grpc-message` is the text, percent-encoded as the protocol asks.
//! Headers the refusal carried (`WWW-Authenticate`, `Retry-After`, the
//! request id) stay. Envoy does the same for its local replies.
//!
//! Left out on purpose: `grpc-status-details-bin` (rich error details).

use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use proxy_core::ProxyBody;

/// Is this (request's or response's) content gRPC?
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status code for an HTTP status, as gRPC's mapping gives it.
pub fn grpc_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE: the client may try again
        _ => 2,                // UNKNOWN
    }
}

/// The most of a refusal's text that becomes its `grpc-message`.
const MAX_MESSAGE: usize = 1024;

/// `response` to a gRPC request, as a gRPC client can read it: as it is if
/// it is gRPC already, else as a trailers-only error.
pub async fn as_grpc(response: Response<ProxyBody>) -> Response<ProxyBody> {
    if is_grpc(response.headers()) {
        return response;
    }
    let (mut head, body) = response.into_parts();
    let text = match refusal_text(body).await {
        Some(text) => text,
        // Longer than a refusal, or cut: its status says enough.
        None => head.status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let code = grpc_code(head.status);
    head.status = StatusCode::OK;
    let headers = &mut head.headers;
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(u16::from(code)));
    let message = percent_encoded(text.trim_end());
    if let Ok(message) = HeaderValue::from_str(&message) {
        headers.insert("grpc-message", message);
    }
    Response::from_parts(
        head,
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// A refusal's text: its body, if that ends whole within [`MAX_MESSAGE`].
async fn refusal_text(mut body: ProxyBody) -> Option<String> {
    let mut text = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            text.extend_from_slice(&data);
            if text.len() > MAX_MESSAGE {
                return None;
            }
        }
    }
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// gRPC's encoding of `grpc-message`: printable ASCII but `%` as it is,
/// every other byte as `%XX`.
fn percent_encoded(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_core::text_response;

    #[tokio::test]
    async fn a_text_refusal_becomes_a_trailers_only_grpc_error() {
        let mut refusal = text_response(StatusCode::UNAUTHORIZED, "no token, café");
        refusal
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        let answer = as_grpc(refusal).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let headers = answer.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], "16");
        assert_eq!(headers["grpc-message"], "no token, caf%C3%A9");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(headers.get("content-length").is_none());
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn a_grpc_answer_is_left_as_it_is() {
        let mut answer = text_response(StatusCode::OK, "x");
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        let answer = as_grpc(answer).await;
        assert!(answer.headers().get("grpc-status").is_none());
    }

    #[test]
    fn statuses_map_as_grpc_says() {
        for (http, grpc) in [
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
            (503, 14),
            (500, 2),
        ] {
            assert_eq!(grpc_code(StatusCode::from_u16(http).unwrap()), grpc);
        }
    }
}
