//! Step 09: the response side — a shared HTTP cache in front of step 04's
//! balanced proxy.
//!
//! The tutorial names caching among the first things a reverse proxy does
//! for the servers behind it; this step builds the cache RFC 9111 calls
//! *shared*: one that answers many users, and so must never hand one
//! user's answer to another. The modules follow the RFC's sections:
//!
//! - [`directives`] reads `Cache-Control` (§5.2);
//! - [`freshness`] says how old a response is and how long it stays fresh
//!   (§4.2);
//! - [`storable`] says what may be stored (§3);
//! - [`vary`] says which stored response answers which request (§4.1);
//! - [`validation`] asks the origin about stale responses and answers
//!   conditional clients (§4.3);
//! - [`cache`] makes the decisions, request by request (§4, §4.4);
//! - [`range`] answers a byte range of what is stored whole;
//! - [`herd`] and [`filling`] make many misses one upstream request, and
//!   stream one body to all of them while it is stored;
//! - [`store`] bounds the whole by bytes; [`status`] writes `Cache-Status`
//!   (RFC 9211), and [`counters`] counts the same outcomes for an
//!   operator;
//! - [`rewrite`] edits text bodies on their way in (the seed's
//!   ModifyResponse example, done right) and [`compress`] compresses them
//!   for the clients that accept it, both through [`codings`] and
//!   [`whole_body`].

pub mod cache;
pub mod codings;
pub mod compress;
pub mod counters;
pub mod directives;
pub mod filling;
pub mod freshness;
pub mod herd;
pub mod range;
pub mod rewrite;
pub mod status;
pub mod storable;
pub mod store;
pub mod validation;
pub mod vary;
pub mod whole_body;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use serving::{Binder, Launched, Server};
use step03_reverse_proxy::ProxyOptions;
use step04_load_balance::BalanceOptions;

pub use cache::{Cache, CacheSettings, DEFAULT_TRANSFORM_LIMIT};
pub use counters::{CacheCounters, Outcome};

/// Command line of `step09-cache`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step09-cache",
    about = "Step 09: a shared HTTP cache (RFC 9111) in front of the balanced proxy"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2002")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub cache: CacheOptions,
    #[command(flatten)]
    pub balance: BalanceOptions,
    #[command(flatten)]
    pub proxy: ProxyOptions,
}

/// The cache's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct CacheOptions {
    /// Bytes the stored responses may take together (bodies, headers,
    /// keys), e.g. 64MiB; the least recently used go first.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = operator_input::size)]
    pub cache_size: u64,
    /// Bytes one stored response may take; a larger one streams through
    /// unstored. Default: a sixteenth of --cache-size.
    #[arg(long, value_name = "SIZE", value_parser = operator_input::size)]
    pub max_entry_size: Option<u64>,
    /// Edit text bodies from upstream: every match of REGEX becomes
    /// REPLACEMENT ($1 is the first group). Repeat for more rules, applied
    /// in order. Gzip, br and zstd bodies are decoded first and encoded
    /// again.
    #[arg(long = "rewrite-body", value_name = "REGEX=REPLACEMENT", value_parser = rewrite::parse_rule)]
    pub rewrite_body: Vec<rewrite::BodyRule>,
    /// The largest body --rewrite-body and --compress hold to edit
    /// (encoded or decoded); a larger one passes as it came.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = operator_input::size)]
    pub rewrite_limit: u64,
    /// Compress text answers (br, zstd or gzip) for the clients that
    /// accept it, stored beside the others by Vary: Accept-Encoding.
    #[arg(long)]
    pub compress: bool,
}

impl CacheOptions {
    /// What these flags say, as plain data.
    pub fn settings(&self) -> anyhow::Result<CacheSettings> {
        let sized = CacheSettings::sized(self.cache_size, self.max_entry_size, "step09-cache")
            .map_err(|why| anyhow::anyhow!("--max-entry-size: {why}"))?;
        Ok(CacheSettings {
            rewrite: self.rewrite_body.clone(),
            transform_limit: usize::try_from(self.rewrite_limit).unwrap_or(usize::MAX),
            compress: self.compress,
            ..sized
        })
    }
}

/// Start the cache, its balanced proxy, and the real servers when no
/// upstream was given.
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let proxy =
        step04_load_balance::build(&args.balance, &args.proxy, binder, &mut launched).await?;
    let settings = args.cache.settings()?;
    tracing::info!(
        "caching up to {} bytes, {} per response",
        settings.size,
        settings.max_entry
    );
    let cache = Arc::new(Cache::new(
        Arc::new(proxy),
        None,
        settings,
        CacheCounters::default(),
    ));
    let server = Server::new(binder.bind(args.listen).await?, "cache")
        .options(args.proxy.serve.server_options())
        .serve_clients(args.proxy.serve.trusted_proxies(), move |client, req| {
            let cache = cache.clone();
            async move { cache.handle(&client, req).await }
        })?;
    launched.push(server);
    Ok(launched)
}
