//! Helpers shared by step 03's tests: which proxy they launch, and the
//! helpers of [`wire`].

#![allow(dead_code, unused_imports)] // each test file uses a different subset

mod wire;

use clap::Parser;
use serving::{Binder, Launched};
pub use wire::*;

/// step 03 in front of `upstream`.
pub async fn proxy_to(upstream: &str, extra: &[&str]) -> Launched {
    let args = step03_reverse_proxy::Args::parse_from(
        ["step03-reverse-proxy", "--upstream", upstream]
            .into_iter()
            .chain(extra.iter().copied()),
    );
    step03_reverse_proxy::launch(args, &Binder::ephemeral())
        .await
        .unwrap()
}
