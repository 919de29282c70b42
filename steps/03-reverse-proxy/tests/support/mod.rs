//! Which proxy step 03's tests launch; the wire helpers are
//! `proxy_test_cases`'.

#![allow(dead_code, unused_imports)] // each test file uses a different subset

use clap::Parser;
use futures_util::future::BoxFuture;
pub use proxy_test_cases::wire::*;
use serving::{Binder, Launched};

/// Step 03 in front of `upstream`.
pub fn proxy_to<'a>(upstream: &'a str, extra: &'a [&'a str]) -> BoxFuture<'a, Launched> {
    Box::pin(async move {
        let args = step03_reverse_proxy::Args::parse_from(
            ["step03-reverse-proxy", "--upstream", upstream]
                .into_iter()
                .chain(extra.iter().copied()),
        );
        step03_reverse_proxy::launch(args, &Binder::ephemeral())
            .await
            .unwrap()
    })
}
