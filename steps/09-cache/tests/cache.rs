//! The cache's rules (RFC 9111, RFC 5861, RFC 9211) through the real
//! `step09-cache` binary, in front of an origin each test scripts: what
//! the origin was asked is what the cache decided.

mod support;

use std::time::{Duration, Instant};

use support::{Answer, CacheProcess, Origin};
use tokio::sync::watch;

/// An origin that answers every request with `headers` and the body
/// `"answer N"` (N counting from 0).
async fn origin(headers: &'static [(&'static str, &'static str)]) -> Origin {
    Origin::start(move |_, n| Answer::ok(&format!("answer {n}"), headers)).await
}

/// An origin whose headers depend on the path (`headers_for`), with the
/// body `"answer N"`.
async fn origin_by_path(headers_for: fn(&str) -> Vec<(&'static str, &'static str)>) -> Origin {
    Origin::start(move |asked, n| Answer::ok(&format!("answer {n}"), &headers_for(&asked.path)))
        .await
}

/// Room for a loaded machine, for what should take a moment.
const PATIENCE: Duration = Duration::from_secs(30);

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_fresh_response_is_answered_from_the_store_with_its_age() {
    let origin = origin(&[("cache-control", "max-age=60"), ("age", "5")]).await;
    let cache = CacheProcess::start(&origin, &[]);
    let first = cache.get("/a", &[]).await;
    assert_eq!(first.body, "answer 0");
    assert_eq!(
        first.cache_status(),
        "step09-cache; fwd=uri-miss; fwd-status=200; stored; ttl=55"
    );
    let second = cache.get("/a", &[]).await;
    assert_eq!(second.body, "answer 0");
    assert!(second.age().unwrap() >= 5, "{second:?}");
    assert!(
        second.cache_status().starts_with("step09-cache; hit; ttl="),
        "{second:?}"
    );
    assert_eq!(origin.count(), 1);
    // Another URL (the query is part of it) is another entry.
    assert_eq!(cache.get("/a?b", &[]).await.body, "answer 1");
}

#[tokio::test]
async fn a_response_that_says_nothing_about_freshness_is_not_reused() {
    let origin = origin(&[]).await;
    let cache = CacheProcess::start(&origin, &[]);
    assert_eq!(cache.get("/", &[]).await.body, "answer 0");
    let second = cache.get("/", &[]).await;
    assert_eq!(second.body, "answer 1");
    assert_eq!(
        second.cache_status(),
        "step09-cache; fwd=uri-miss; fwd-status=200; detail=no-freshness"
    );
}

#[tokio::test]
async fn freshness_comes_from_expires_and_the_last_modified_heuristic() {
    let expires = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(600));
    let modified =
        httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(86_400));
    let origin = Origin::start(move |asked, n| {
        let header = match asked.path.as_str() {
            "/expires" => ("expires", expires.clone()),
            _ => ("last-modified", modified.clone()),
        };
        Answer::ok(&format!("answer {n}"), &[(header.0, &header.1)])
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    for path in ["/expires", "/modified"] {
        cache.get(path, &[]).await;
        let again = cache.get(path, &[]).await;
        assert!(again.cache_status().contains("; hit;"), "{path}: {again:?}");
    }
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn a_shared_cache_never_stores_one_users_answer() {
    let origin = Origin::start(|asked, n| {
        let cache_control = match asked.path.as_str() {
            "/private" => "private, max-age=60",
            "/no-store" => "no-store, max-age=60",
            "/public" => "public, max-age=60",
            _ => "max-age=60",
        };
        let mut headers = vec![("cache-control", cache_control)];
        if asked.path.starts_with("/cookie") {
            headers.push(("set-cookie", "session=one-user"));
        }
        if asked.path == "/cookie" {
            // Only a guessed lifetime: not enough for a cookie.
            headers = vec![
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ("set-cookie", "session=one-user"),
            ];
        }
        Answer::ok(&format!("answer {n}"), &headers)
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    let authorized = [("authorization", "Bearer one-user")];
    for (path, headers, detail) in [
        ("/private", &[][..], "private"),
        ("/no-store", &[], "no-store"),
        ("/cookie", &[], "set-cookie"),
        ("/other", &authorized, "authorization"),
    ] {
        let first = cache.get(path, headers).await;
        assert!(
            first.cache_status().ends_with(&format!("detail={detail}")),
            "{first:?}"
        );
        let before = origin.count();
        cache.get(path, headers).await;
        assert_eq!(origin.count(), before + 1, "{path} was reused");
    }
    // `public` vouches for a response to an authorized request, and a
    // max-age for one that sets a cookie.
    for (path, headers) in [("/public", &authorized[..]), ("/cookie-explicit", &[])] {
        cache.get(path, headers).await;
        let again = cache.get(path, headers).await;
        assert!(again.cache_status().contains("; hit;"), "{path}: {again:?}");
    }
}

#[tokio::test]
async fn a_stale_response_is_revalidated_and_a_304_refreshes_it() {
    let origin = Origin::start(|asked, n| match asked.header("if-none-match") {
        Some("\"v1\"") => Answer::status(
            304,
            "",
            &[("cache-control", "max-age=60"), ("x-refreshed", "yes")],
        ),
        _ => Answer::ok(
            &format!("answer {n}"),
            &[("cache-control", "max-age=0"), ("etag", "\"v1\"")],
        ),
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    assert_eq!(cache.get("/", &[]).await.body, "answer 0");
    let revalidated = cache.get("/", &[]).await;
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.body, "answer 0");
    assert_eq!(revalidated.header("x-refreshed"), Some("yes"));
    assert!(
        revalidated
            .cache_status()
            .starts_with("step09-cache; fwd=stale; fwd-status=304; ttl="),
        "{revalidated:?}"
    );
    // The 304's max-age=60 made it fresh again.
    let hit = cache.get("/", &[]).await;
    assert!(hit.cache_status().contains("; hit;"), "{hit:?}");
    assert_eq!(origin.count(), 2);
    assert_eq!(origin.asked()[1].header("if-none-match"), Some("\"v1\""));
}

#[tokio::test]
async fn a_head_request_for_a_stale_entry_goes_as_it_came_and_leaves_the_entry() {
    let origin = Origin::start(|asked, n| {
        let validated = asked.method == "GET" && asked.header("if-none-match") == Some("\"v1\"");
        match validated {
            true => Answer::status(304, "", &[("cache-control", "max-age=0")]),
            false => Answer::ok(
                &format!("answer {n}"),
                &[("cache-control", "max-age=0"), ("etag", "\"v1\"")],
            ),
        }
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    cache.get("/", &[]).await;
    let head = cache.send("HEAD", "/", &[]).await;
    assert_eq!(head.cache_status(), "step09-cache; fwd=stale; detail=head");
    assert_eq!(origin.asked()[1].method, "HEAD");
    // The stored response is still there to be revalidated.
    let again = cache.get("/", &[]).await;
    assert_eq!(again.body, "answer 0");
    assert!(again.cache_status().contains("fwd-status=304"), "{again:?}");
}

#[tokio::test]
async fn a_conditional_client_is_answered_304_from_the_store() {
    let origin = origin(&[
        ("cache-control", "max-age=60"),
        ("etag", "W/\"v1\""),
        ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
    ])
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    // The client's own condition does not reach the origin: the cache
    // wants the whole response to store.
    let first = cache.get("/", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(first.status, 304);
    assert_eq!(origin.asked()[0].header("if-none-match"), None);
    for condition in [
        ("if-none-match", "\"v0\", \"v1\""),
        ("if-none-match", "*"),
        ("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT"),
    ] {
        let answer = cache.get("/", &[condition]).await;
        assert_eq!(answer.status, 304, "{condition:?}");
        assert_eq!(answer.header("etag"), Some("W/\"v1\""));
    }
    let changed = cache.get("/", &[("if-none-match", "\"v2\"")]).await;
    assert_eq!((changed.status, changed.body.as_str()), (200, "answer 0"));
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn a_conditional_client_that_starts_a_miss_leaves_the_body_to_the_store() {
    // A real server whose body comes in three pieces, 100 ms apart: the
    // client's 304 is answered, and it gone, long before the body is whole.
    let origin =
        real_server::spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let cache = CacheProcess::start_for(&origin.url(), &[]);
    let path = "/stream/3?interval_ms=100&set=Cache-Control:max-age%3D60&set=ETag:%22s1%22";
    let first = cache.get(path, &[("if-none-match", "\"s1\"")]).await;
    assert_eq!(first.status, 304);
    // Asked only of the store (which joins no exchange), until the body
    // is whole and stored there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stored = cache
            .get(path, &[("cache-control", "only-if-cached")])
            .await;
        if stored.status == 200 {
            assert!(stored.cache_status().contains("hit"), "{stored:?}");
            assert_eq!(stored.body.len(), 3 * "chunk 0 of 3\n".len(), "{stored:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the body was never stored: {stored:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn vary_selects_which_stored_response_answers() {
    let origin = Origin::start(|asked, n| {
        let vary = if asked.path == "/star" {
            "*"
        } else {
            "Accept-Language"
        };
        let body = format!(
            "answer {n} for {}",
            asked.header("accept-language").unwrap_or("-")
        );
        Answer::ok(&body, &[("cache-control", "max-age=60"), ("vary", vary)])
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(cache.get("/", &en).await.body, "answer 0 for en");
    let other = cache.get("/", &fr).await;
    assert_eq!(other.body, "answer 1 for fr");
    assert!(other.cache_status().contains("fwd=vary-miss"), "{other:?}");
    assert_eq!(cache.get("/", &en).await.body, "answer 0 for en");
    assert_eq!(cache.get("/", &fr).await.body, "answer 1 for fr");
    // No Accept-Language at all is a third variant.
    assert_eq!(cache.get("/", &[]).await.body, "answer 2 for -");
    assert_eq!(origin.count(), 3);
    cache.get("/star", &en).await;
    cache.get("/star", &en).await;
    assert_eq!(origin.count(), 5, "Vary: * was reused");
}

#[tokio::test]
async fn an_unsafe_method_invalidates_its_url_and_the_urls_it_names() {
    let origin = Origin::start(|asked, n| match asked.method.as_str() {
        "POST" => Answer::status(
            201,
            "made",
            &[
                ("location", "/made"),
                ("content-location", "http://elsewhere/x"),
            ],
        ),
        _ => Answer::ok(&format!("answer {n}"), &[("cache-control", "max-age=60")]),
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    for path in ["/list", "/made", "/x"] {
        cache.get(path, &[]).await;
    }
    let post = cache.send("POST", "/list", &[]).await;
    assert_eq!(post.cache_status(), "step09-cache; fwd=method");
    let before = origin.count();
    assert!(!cache.get("/list", &[]).await.cache_status().contains("hit"));
    assert!(!cache.get("/made", &[]).await.cache_status().contains("hit"));
    // Another host's URL is not this cache's to drop.
    assert!(cache.get("/x", &[]).await.cache_status().contains("hit"));
    assert_eq!(origin.count(), before + 2);
}

#[tokio::test]
async fn an_answer_on_its_way_when_a_post_succeeds_is_not_stored() {
    let (release, hold) = watch::channel(false);
    let origin = Origin::start(move |asked, n| match asked.method.as_str() {
        "POST" => Answer::ok("changed", &[]),
        _ => Answer {
            hold: Some(hold.clone()),
            ..Answer::ok(
                &format!("answer {n} before the change"),
                &[("cache-control", "max-age=60")],
            )
        },
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    // The GET's head has arrived; its body is held at the origin.
    let early = support::client()
        .get(format!("{}/x", cache.url))
        .send()
        .await
        .unwrap();
    cache.send("POST", "/x", &[]).await;
    release.send(true).unwrap();
    assert!(early.text().await.unwrap().ends_with("before the change"));
    let after = cache.get("/x", &[]).await;
    assert!(after.cache_status().contains("fwd=uri-miss"), "{after:?}");
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_behind() {
    // Already stale when it arrives (Age 10 > max-age 1).
    let origin = origin(&[
        ("cache-control", "max-age=1, stale-while-revalidate=600"),
        ("age", "10"),
        ("etag", "\"x\""),
    ])
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    assert_eq!(cache.get("/", &[]).await.body, "answer 0");
    let stale = cache.get("/", &[]).await;
    assert_eq!(stale.body, "answer 0");
    assert!(
        stale
            .cache_status()
            .ends_with("detail=stale-while-revalidate"),
        "{stale:?}"
    );
    eventually("the background revalidation", || origin.count() == 2).await;
    assert_eq!(origin.asked()[1].header("if-none-match"), Some("\"x\""));
    let start = Instant::now();
    loop {
        let answer = cache.get("/", &[]).await;
        if answer.body == "answer 1" {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the refresh was never stored");
    }
}

#[tokio::test]
async fn stale_if_error_answers_in_place_of_a_failing_origin() {
    let origin = Origin::start(|asked, n| {
        let cache_control = match asked.path.as_str() {
            "/strict" => "max-age=1, stale-if-error=600, must-revalidate",
            _ => "max-age=1, stale-if-error=600",
        };
        match n {
            0 | 1 => Answer::ok("good", &[("cache-control", cache_control), ("age", "10")]),
            _ => Answer::status(503, "down", &[]),
        }
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    cache.get("/", &[]).await;
    cache.get("/strict", &[]).await;
    let rescued = cache.get("/", &[]).await;
    assert_eq!((rescued.status, rescued.body.as_str()), (200, "good"));
    assert!(
        rescued
            .cache_status()
            .starts_with("step09-cache; fwd=stale; fwd-status=503;"),
        "{rescued:?}"
    );
    assert!(rescued.cache_status().ends_with("detail=stale-if-error"));
    // must-revalidate forbids any stale answer.
    assert_eq!(cache.get("/strict", &[]).await.status, 503);
}

#[tokio::test]
async fn the_clients_cache_control_is_obeyed() {
    // Five seconds old when it arrives: too old for max-age=0.
    let origin = origin(&[("cache-control", "max-age=60"), ("age", "5")]).await;
    let cache = CacheProcess::start(&origin, &[]);
    let missing = cache.get("/", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(missing.status, 504);
    assert_eq!(origin.count(), 0);
    cache.get("/", &[]).await;
    for asked in ["no-cache", "max-age=0", "min-fresh=3600"] {
        let answer = cache.get("/", &[("cache-control", asked)]).await;
        assert!(
            answer.cache_status().contains("fwd=request"),
            "{asked}: {answer:?}"
        );
    }
    assert_eq!(origin.count(), 4);
    let cached = cache.get("/", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(cached.status, 200);
}

#[tokio::test]
async fn max_stale_takes_a_stale_answer_unless_the_origin_forbids_it() {
    let origin = origin_by_path(|path| {
        let cache_control = match path {
            "/strict" => "max-age=1, must-revalidate",
            _ => "max-age=1",
        };
        vec![("cache-control", cache_control), ("age", "10")]
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    cache.get("/", &[]).await;
    cache.get("/strict", &[]).await;
    for asked in ["max-stale=3600", "max-stale"] {
        let stale = cache.get("/", &[("cache-control", asked)]).await;
        assert_eq!(stale.body, "answer 0");
        assert!(
            stale.cache_status().ends_with("detail=max-stale"),
            "{stale:?}"
        );
    }
    let strict = cache
        .get("/strict", &[("cache-control", "max-stale")])
        .await;
    assert_eq!(strict.body, "answer 2");
}

#[tokio::test]
async fn a_range_of_a_stored_response_is_answered_from_the_store() {
    let origin = origin(&[("cache-control", "max-age=60"), ("a", "1")]).await;
    let cache = CacheProcess::start(&origin, &[]);
    let first = cache.get("/", &[("range", "bytes=0-1")]).await;
    // Nothing stored yet: the origin answers (this one ignores ranges).
    assert_eq!(first.body, "answer 0");
    assert_eq!(
        first.cache_status(),
        "step09-cache; fwd=bypass; detail=range"
    );
    cache.get("/", &[]).await;
    for (spec, part, content_range) in [
        ("bytes=0-1", "an", "bytes 0-1/8"),
        ("bytes=6-", " 1", "bytes 6-7/8"),
        ("bytes=-3", "r 1", "bytes 5-7/8"),
    ] {
        let answer = cache.get("/", &[("range", spec)]).await;
        assert_eq!((answer.status, answer.body.as_str()), (206, part), "{spec}");
        assert_eq!(answer.header("content-range"), Some(content_range));
        assert_eq!(answer.header("a"), Some("1"));
    }
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn cdn_cache_control_overrides_cache_control() {
    let origin = origin_by_path(|path| {
        let targeted = match path {
            "/longer" => "max-age=3600",
            _ => "private",
        };
        vec![
            ("cache-control", "max-age=0"),
            ("cdn-cache-control", targeted),
        ]
    })
    .await;
    let cache = CacheProcess::start(&origin, &[]);
    for (path, reused) in [("/longer", true), ("/private", false)] {
        cache.get(path, &[]).await;
        let again = cache.get(path, &[]).await;
        assert_eq!(
            again.cache_status().contains("; hit;"),
            reused,
            "{path}: {again:?}"
        );
    }
}

#[tokio::test]
async fn the_cache_status_member_goes_after_those_of_caches_nearer_the_origin() {
    let origin = origin(&[("cache-status", "origin-cdn; hit")]).await;
    let cache = CacheProcess::start(&origin, &[]);
    let answer = cache.get("/", &[]).await;
    let members: Vec<_> = answer.headers.get_all("cache-status").iter().collect();
    assert_eq!(members.len(), 2, "{answer:?}");
    assert_eq!(members[0], "origin-cdn; hit");
}

#[tokio::test]
async fn a_herd_of_1000_concurrent_misses_makes_one_upstream_request() {
    let (release, hold) = watch::channel(false);
    let origin = Origin::start(move |_, n| Answer {
        hold: Some(hold.clone()),
        ..Answer::ok(
            &format!("answer {n} {}", "x".repeat(10_000)),
            &[("cache-control", "max-age=60")],
        )
    })
    .await;
    let cache = CacheProcess::start(&origin, &["--max-connections-per-ip", "4000"]);
    let client = support::client();
    let herd: Vec<_> = (0..1000)
        .map(|_| {
            let (client, url) = (client.clone(), cache.url.clone());
            tokio::spawn(async move { client.get(url).send().await.unwrap() })
        })
        .collect();
    // Each head arrives while the body is held: every client is in.
    let mut heads = Vec::new();
    for client in herd {
        heads.push(client.await.unwrap());
    }
    release.send(true).unwrap();
    let mut collapsed = 0;
    for head in heads {
        let status = head.headers()["cache-status"].to_str().unwrap().to_owned();
        collapsed += usize::from(status.contains("; collapsed"));
        assert!(head.text().await.unwrap().starts_with("answer 0 "));
    }
    assert_eq!(origin.count(), 1);
    assert_eq!(collapsed, 999);
}

#[tokio::test]
async fn a_body_larger_than_one_entry_streams_through_unstored() {
    let big = "y".repeat(1 << 20);
    let origin = Origin::start(move |asked, _| Answer {
        chunked: asked.path == "/chunked",
        ..Answer::ok(&big, &[("cache-control", "max-age=60")])
    })
    .await;
    let cache = CacheProcess::start(&origin, &["--max-entry-size", "64KiB"]);
    for path in ["/length", "/chunked"] {
        let first = cache.get(path, &[]).await;
        assert_eq!(first.body.len(), 1 << 20, "{path}");
        let before = origin.count();
        let second = cache.get(path, &[]).await;
        assert_eq!(second.body.len(), 1 << 20, "{path}");
        assert_eq!(origin.count(), before + 1, "{path} was stored");
    }
    let known = cache.get("/length", &[]).await;
    assert!(
        known.cache_status().ends_with("detail=too-large"),
        "{known:?}"
    );
}
