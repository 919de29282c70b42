//! Step 10 in front of a real server, with step 03's wire helpers: the
//! same cases run against both proxies.

#![allow(dead_code, unused_imports)] // each test file uses a different subset

#[path = "../../../03-reverse-proxy/tests/support/wire.rs"]
mod wire;

use std::net::SocketAddr;

use clap::Parser;
use serving::{Binder, Launched, ServerHandle};
use tokio::net::TcpListener;
pub use wire::*;

pub struct Setup {
    pub proxy: Launched,
    pub backend: ServerHandle,
}

impl Setup {
    /// Step 10 in front of a fresh real server, with extra CLI flags.
    pub async fn new(extra: &[&str]) -> Self {
        let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let proxy = proxy_to(&backend.url(), extra).await;
        Setup { proxy, backend }
    }

    pub fn url(&self) -> String {
        url_of(&self.proxy)
    }

    pub fn addr(&self) -> SocketAddr {
        self.proxy.servers[0].addr()
    }
}

/// Where a launched proxy takes requests.
pub fn url_of(proxy: &Launched) -> String {
    proxy.servers[0].url()
}

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
