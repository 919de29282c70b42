//! The cache is a proxy first: every behaviour NOTES chapter 3 asks of an
//! HTTP/1 proxy holds with the cache in front (`proxy_test_cases::http1`),
//! most of them on answers the cache may not store — the real server's
//! say nothing about freshness — and so forwards.

use clap::Parser;
use futures_util::future::BoxFuture;
use serving::{Binder, Launched};

proxy_test_cases::http1_behaviours!(cache_to);

/// Step 09 in front of `upstream`, in-process.
fn cache_to<'a>(upstream: &'a str, extra: &'a [&'a str]) -> BoxFuture<'a, Launched> {
    Box::pin(async move {
        let args = step09_cache::Args::parse_from(
            ["step09-cache", "--upstream", upstream]
                .into_iter()
                .chain(extra.iter().copied()),
        );
        step09_cache::launch(args, &Binder::ephemeral())
            .await
            .unwrap()
    })
}
