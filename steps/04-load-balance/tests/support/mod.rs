//! Helpers shared by step 04's tests: the step launched in-process with
//! its own command line, and a client that never uses a system proxy.

use clap::Parser;
use serving::{Binder, Launched};

/// Step 04 in front of `upstreams`, with `extra` flags, on free ports.
pub async fn proxy(upstreams: &[String], extra: &[&str]) -> Launched {
    let mut argv = vec!["step04-load-balance".to_owned()];
    for upstream in upstreams {
        argv.extend(["--upstream".to_owned(), upstream.clone()]);
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    step04_load_balance::launch(
        step04_load_balance::Args::parse_from(argv),
        &Binder::ephemeral(),
    )
    .await
    .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
