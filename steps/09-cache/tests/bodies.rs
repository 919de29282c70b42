//! The response side beyond storing, through the real binary: bodies
//! rewritten (`--rewrite-body`, the seed's ModifyResponse example done
//! right) and compressed for the clients that accept it (`--compress`).

mod support;

use std::io::Read;

use step09_cache::codings::Coding;
use support::{Answer, CacheProcess, Origin};

/// An origin answering `body` (already in `coding`) with `headers`, and
/// `Content-Encoding` when the coding is not identity.
async fn origin_of(
    body: Vec<u8>,
    coding: Coding,
    headers: &'static [(&'static str, &'static str)],
) -> Origin {
    Origin::start(move |_, _| {
        let mut answer = Answer::ok("", headers);
        answer.body = coding.encode(&body);
        if coding != Coding::Identity {
            answer
                .headers
                .push(("content-encoding".into(), coding.token().into()));
        }
        answer
    })
    .await
}

const HTML: &[(&str, &str)] = &[
    ("content-type", "text/html; charset=utf-8"),
    ("etag", "\"v1\""),
];

#[tokio::test]
async fn a_text_body_is_rewritten_and_framed_again() {
    let origin = origin_of(
        b"<p>Hello, World! World.</p>".to_vec(),
        Coding::Identity,
        HTML,
    )
    .await;
    let cache = CacheProcess::start(&origin, &["--rewrite-body", "World=Workbench"]);
    let answer = cache.get("/", &[]).await;
    assert_eq!(answer.body, "<p>Hello, Workbench! Workbench.</p>");
    assert_eq!(answer.header("content-length"), Some("35"));
    // The bytes changed, the meaning did not: the validator is weak now.
    assert_eq!(answer.header("etag"), Some("W/\"v1\""));
}

#[tokio::test]
async fn a_compressed_body_is_decoded_rewritten_and_encoded_again() {
    for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
        let origin = origin_of(b"Hello, World!".repeat(50), coding, HTML).await;
        let cache = CacheProcess::start(&origin, &["--rewrite-body", "W(or)ld=w${1}k"]);
        let answer = cache.get("/", &[]).await;
        assert_eq!(answer.header("content-encoding"), Some(coding.token()));
        assert_eq!(
            answer.header("content-length"),
            Some(answer.bytes.len().to_string().as_str())
        );
        let text = match coding {
            // An independent decoder for one of them.
            Coding::Gzip => {
                let mut text = Vec::new();
                flate2::read::GzDecoder::new(&answer.bytes[..])
                    .read_to_end(&mut text)
                    .unwrap();
                text
            }
            _ => coding.decode(&answer.bytes, 1 << 20).unwrap(),
        };
        assert_eq!(text, b"Hello, work!".repeat(50), "{coding:?}");
    }
}

#[tokio::test]
async fn what_cannot_be_held_or_is_not_text_passes_untouched() {
    // Larger than the limit.
    let big = b"World ".repeat(1000);
    let origin = origin_of(big.clone(), Coding::Identity, HTML).await;
    let cache = CacheProcess::start(
        &origin,
        &["--rewrite-body", "World=X", "--rewrite-limit", "1KiB"],
    );
    assert_eq!(cache.get("/", &[]).await.bytes, big);
    // A gzip bomb: small on the wire, 10 MiB decoded.
    let bomb = Coding::Gzip.encode(&vec![b'W'; 10 << 20]);
    let origin = Origin::start(move |_, _| {
        let mut answer = Answer::ok("", HTML);
        answer.body = bomb.clone();
        answer
            .headers
            .push(("content-encoding".into(), "gzip".into()));
        answer
    })
    .await;
    let cache = CacheProcess::start(&origin, &["--rewrite-body", "W=X"]);
    let answer = cache.get("/", &[]).await;
    assert_eq!(answer.bytes, Coding::Gzip.encode(&vec![b'W'; 10 << 20]));
    // Not text.
    let origin = origin_of(
        b"World".to_vec(),
        Coding::Identity,
        &[("content-type", "image/png")],
    )
    .await;
    let cache = CacheProcess::start(&origin, &["--rewrite-body", "World=X"]);
    assert_eq!(cache.get("/", &[]).await.body, "World");
    // The origin said no-transform.
    let origin = origin_of(
        b"World".to_vec(),
        Coding::Identity,
        &[
            ("content-type", "text/plain"),
            ("cache-control", "no-transform"),
        ],
    )
    .await;
    let cache = CacheProcess::start(&origin, &["--rewrite-body", "World=X"]);
    assert_eq!(cache.get("/", &[]).await.body, "World");
}

#[tokio::test]
async fn compression_follows_accept_encoding_and_each_coding_is_stored_beside_the_others() {
    let text = "a line of text that repeats\n".repeat(100);
    let body = text.clone().into_bytes();
    let origin = origin_of(
        body,
        Coding::Identity,
        &[
            ("content-type", "text/plain"),
            ("cache-control", "max-age=60"),
        ],
    )
    .await;
    let cache = CacheProcess::start(&origin, &["--compress"]);
    for (accept, coding) in [
        ("gzip, br", Coding::Brotli),
        ("gzip", Coding::Gzip),
        ("zstd;q=1, gzip;q=0.5", Coding::Zstd),
    ] {
        let answer = cache.get("/", &[("accept-encoding", accept)]).await;
        assert_eq!(
            answer.header("content-encoding"),
            Some(coding.token()),
            "{accept}"
        );
        assert_eq!(answer.header("vary"), Some("Accept-Encoding"));
        assert!(answer.bytes.len() < text.len() / 4);
        assert_eq!(
            coding.decode(&answer.bytes, 1 << 20).unwrap(),
            text.as_bytes()
        );
        // Asked again the same way: the stored variant, not another fetch.
        let again = cache.get("/", &[("accept-encoding", accept)]).await;
        assert!(
            again.cache_status().contains("; hit;"),
            "{accept}: {again:?}"
        );
        assert_eq!(again.bytes, answer.bytes);
    }
    let plain = cache.get("/", &[]).await;
    assert_eq!(
        (plain.header("content-encoding"), plain.body.as_str()),
        (None, text.as_str())
    );
    assert_eq!(origin.count(), 4);
}

#[tokio::test]
async fn a_compressed_variant_keeps_its_weak_validator_when_a_304_refreshes_it() {
    let text = "text to compress\n".repeat(100);
    let origin = Origin::start(move |asked, _| match asked.header("if-none-match") {
        Some(_) => Answer::status(
            304,
            "",
            &[("cache-control", "max-age=0"), ("etag", "\"v1\"")],
        ),
        None => Answer::ok(
            &text,
            &[
                ("content-type", "text/plain"),
                ("cache-control", "max-age=0"),
                ("etag", "\"v1\""),
            ],
        ),
    })
    .await;
    let cache = CacheProcess::start(&origin, &["--compress"]);
    let gzip = [("accept-encoding", "gzip")];
    let first = cache.get("/", &gzip).await;
    assert_eq!(first.header("etag"), Some("W/\"v1\""));
    let refreshed = cache.get("/", &gzip).await;
    assert!(
        refreshed.cache_status().contains("fwd-status=304"),
        "{refreshed:?}"
    );
    // The origin's strong "v1" names its own bytes, not these.
    assert_eq!(refreshed.header("etag"), Some("W/\"v1\""));
    assert_eq!(refreshed.header("content-encoding"), Some("gzip"));
}
