//! Which proxy step 10's tests launch; the wire helpers are
//! `proxy_test_cases`', the same step 03's tests use.

#![allow(dead_code, unused_imports)] // each test file uses a different subset

use clap::Parser;
use futures_util::future::BoxFuture;
pub use proxy_test_cases::wire::*;
use serving::{Binder, Launched};

/// Step 10 in front of `upstream`.
pub fn proxy_to<'a>(upstream: &'a str, extra: &'a [&'a str]) -> BoxFuture<'a, Launched> {
    Box::pin(async move {
        let args = step10_fast_path::Args::parse_from(
            ["step10-fast-path", "--upstream", upstream]
                .into_iter()
                .chain(extra.iter().copied()),
        );
        step10_fast_path::launch(args, &Binder::ephemeral())
            .await
            .unwrap()
    })
}
