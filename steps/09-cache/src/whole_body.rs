//! A body read whole when it is small enough to edit — and passed on
//! untouched when it is not.
//!
//! Editing a body (rewriting it, compressing it) needs all of it; a proxy
//! that waited for any body whole would hold a 4 GiB download in memory.
//! So a body is read up to a limit, and one that turns out larger is
//! given back as it was: the bytes already read first, then the rest as
//! it comes.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::HeaderMap;
use hyper::body::Frame;
use hyper::header::CONTENT_TYPE;
use proxy_core::{BodyError, ProxyBody};

/// `body` whole (with its trailers) if it ends within `limit` bytes; else
/// a body that is `body` as it was.
pub async fn read_up_to(
    mut body: ProxyBody,
    limit: usize,
) -> Result<(Bytes, Option<HeaderMap>), ProxyBody> {
    let mut read: Vec<Bytes> = Vec::new();
    let mut length = 0;
    let failed = loop {
        match body.frame().await {
            None => break None,
            Some(Err(error)) => break Some(error),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    length += data.len();
                    read.push(data);
                    if length > limit {
                        return Err(again(read, Some(body), None));
                    }
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().ok();
                    return Ok((concatenated(read, length), trailers));
                }
            },
        }
    };
    match failed {
        None => Ok((concatenated(read, length), None)),
        Some(error) => Err(again(read, None, Some(error))),
    }
}

fn concatenated(chunks: Vec<Bytes>, length: usize) -> Bytes {
    match chunks.len() {
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut whole = Vec::with_capacity(length);
            chunks
                .iter()
                .for_each(|chunk| whole.extend_from_slice(chunk));
            Bytes::from(whole)
        }
    }
}

/// The chunks already read, then the rest of the body, or its failure.
fn again(read: Vec<Bytes>, rest: Option<ProxyBody>, failed: Option<BodyError>) -> ProxyBody {
    let head = futures_util::stream::iter(
        read.into_iter()
            .map(|chunk| Ok::<_, BodyError>(Frame::data(chunk))),
    );
    let rest = futures_util::stream::iter(rest).flat_map(BodyStream::new);
    let failed = futures_util::stream::iter(failed.map(Err));
    BodyExt::boxed(StreamBody::new(head.chain(rest).chain(failed)))
}

/// A whole body, with its trailers after it.
pub fn held(body: Bytes, trailers: Option<HeaderMap>) -> ProxyBody {
    match trailers {
        None => Full::new(body).map_err(|never| match never {}).boxed(),
        Some(trailers) => {
            let frames = [
                Ok::<_, BodyError>(Frame::data(body)),
                Ok(Frame::trailers(trailers)),
            ];
            BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
        }
    }
}

/// Is this a body of text — what a proxy may edit and should compress?
/// (`text/*`, JSON, JavaScript, XML, SVG; not images, video or archives,
/// which are compressed already or are not text.)
pub fn is_text(headers: &HeaderMap) -> bool {
    let Some(media) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json" | "application/javascript" | "application/xml" | "image/svg+xml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static str]) -> ProxyBody {
        let frames = chunks
            .iter()
            .map(|c| Ok::<_, BodyError>(Frame::data(Bytes::from(*c))));
        BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
            frames.collect::<Vec<_>>(),
        )))
    }

    #[tokio::test]
    async fn a_small_body_comes_whole() {
        let (whole, trailers) = read_up_to(body(&["ab", "cd"]), 4).await.unwrap();
        assert_eq!((whole.as_ref(), trailers), (&b"abcd"[..], None));
    }

    #[tokio::test]
    async fn a_large_body_comes_back_as_it_was() {
        let Err(again) = read_up_to(body(&["ab", "cd", "ef"]), 3).await else {
            panic!("it was larger than the limit");
        };
        let bytes = again.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.as_ref(), b"abcdef");
        let full = Full::new(Bytes::from_static(b"x"))
            .map_err(|never| match never {})
            .boxed();
        assert!(read_up_to(full, 1).await.is_ok());
    }
}
