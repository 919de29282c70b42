//! Step 10 in front of a real server, with step 03's wire helpers: the
//! same cases run against both proxies.

#![allow(dead_code, unused_imports)] // each test file uses a different subset

#[path = "../../../03-reverse-proxy/tests/support/wire.rs"]
mod wire;

use clap::Parser;
use serving::{Binder, Launched};
pub use wire::*;

/// Step 10 in front of `upstream`.
pub async fn proxy_to(upstream: &str, extra: &[&str]) -> Launched {
    let args = step10_fast_path::Args::parse_from(
        ["step10-fast-path", "--upstream", upstream]
            .into_iter()
            .chain(extra.iter().copied()),
    );
    step10_fast_path::launch(args, &Binder::ephemeral())
        .await
        .unwrap()
}
