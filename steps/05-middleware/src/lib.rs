//! Step 05: step 04's balanced proxy at the end of the middleware chain.
//!
//! The chain, in the order this step builds it, and why that order:
//!
//! 1. **request id** — first, so every log line and every refusal below it
//!    carries the id (always on: it costs a header);
//! 2. **statistics** (`--admin`) — second, so refusals are counted too: a
//!    429 storm is exactly what the metrics should show;
//! 3. **rate limit** (`--rate-limit`) — before auth: the cheapest check
//!    first, so a flood of bad tokens is refused before each one costs a
//!    signature verification;
//! 4. **auth** (`--basic-auth`, `--jwt-secret`, `--allow`, `--deny`) — only
//!    admitted, identified requests go further;
//! 5. **circuit breaker and concurrency cap** (`--breaker-*`,
//!    `--max-concurrent`) — last before the upstream, so only requests that
//!    would really reach it count toward its error rate;
//! 6. **rewrite** (`--rewrite`) — just before the proxy, which it feeds;
//! 7. the proxy (step 04).
//!
//! A middleware is in the chain only when its flag is given.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use ipnet::IpNet;
use load_balance::Upstream;
use middleware::auth::{AddressRules, JwtKey};
use middleware::rate_limit::RateKey;
use middleware::rewrite::Rule;
use middleware::settings::{
    AuthSettings, BreakerSettings, ChainSettings, JwtSettings, RateLimitSettings,
};
use middleware::stats::{Metrics, admin_response};
use middleware::{Chain, Ctx, Endpoint};
use proxy_core::{ProxyBody, text_response};
use proxy_core::{Transport, TrustedProxies};
use serving::{Binder, Launched, Server, ServerHandle};
use step03_reverse_proxy::{HttpTransport, ProxyOptions};
use step04_load_balance::retry::RetryCounters;
use step04_load_balance::{BalanceOptions, BalancedProxy};

/// Command line of `step05-middleware`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step05-middleware",
    about = "Step 05: the balanced proxy behind a middleware chain (rate limit, auth, circuit breaker, rewrite, statistics)"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2002")]
    pub listen: SocketAddr,
    /// Serve /metrics (Prometheus) and /stats (JSON) here; turns statistics on.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Requests a second allowed per key (turns rate limiting on).
    #[arg(long, value_name = "RPS")]
    pub rate_limit: Option<NonZeroU32>,
    /// Requests allowed at once above the rate (default: the rate).
    #[arg(long, value_name = "N")]
    pub burst: Option<NonZeroU32>,
    /// Whose bucket: global, client-ip or header:NAME.
    #[arg(long, value_name = "KEY", default_value = "client-ip")]
    pub rate_key: RateKey,
    /// Keep at most this many buckets; clients arriving while the table is
    /// full share one bucket until refilled buckets are forgotten.
    #[arg(long, value_name = "N", default_value_t = middleware::rate_limit::DEFAULT_MAX_KEYS, value_parser = operator_input::count)]
    pub rate_limit_keys: usize,
    /// Open the circuit when this percentage of requests fail (turns the breaker on).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub breaker_error_rate: Option<u8>,
    /// …over at least this many requests in the last 10 s.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub breaker_min_requests: u64,
    /// How long the circuit stays open before a probe, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = operator_input::duration)]
    pub breaker_open: Duration,
    /// At most this many requests in flight; 503 beyond.
    #[arg(long, value_name = "N", value_parser = operator_input::count)]
    pub max_concurrent: Option<usize>,
    /// Accept Basic credentials USER:PASSWORD (repeatable).
    #[arg(long = "basic-auth", value_name = "USER:PASSWORD")]
    pub basic_auth: Vec<String>,
    /// Accept JWT bearer tokens signed with this HS256 secret.
    #[arg(
        long,
        value_name = "SECRET",
        conflicts_with = "jwt_public_key",
        group = "jwt_key"
    )]
    pub jwt_secret: Option<String>,
    /// Accept JWT bearer tokens signed RS256 by the holder of this public key (PEM file).
    #[arg(long, value_name = "FILE", group = "jwt_key")]
    pub jwt_public_key: Option<std::path::PathBuf>,
    /// Accept only bearer tokens whose `iss` claim is this.
    #[arg(long, value_name = "ISSUER", requires = "jwt_key")]
    pub jwt_issuer: Option<String>,
    /// Accept only bearer tokens whose `aud` claim names this.
    #[arg(long, value_name = "AUDIENCE", requires = "jwt_key")]
    pub jwt_audience: Option<String>,
    /// Only clients in these networks (repeatable CIDR).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<IpNet>,
    /// Never clients in these networks (repeatable CIDR; wins over --allow).
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<IpNet>,
    /// Rewrite paths: REGEX=REPLACEMENT, tried in order (repeatable).
    #[arg(long, value_name = "REGEX=REPLACEMENT")]
    pub rewrite: Vec<Rule>,
    /// Remove this prefix from request paths (tried after the --rewrite rules).
    #[arg(long, value_name = "PREFIX")]
    pub strip_prefix: Option<String>,
    #[command(flatten)]
    pub balance: BalanceOptions,
    #[command(flatten)]
    pub proxy: ProxyOptions,
}

/// Step 04's proxy as the chain's endpoint (shared: a gateway's other
/// engine sends through the same one).
pub struct ProxyEndpoint<T>(pub Arc<BalancedProxy<T>>);

impl<T: Transport> Endpoint for ProxyEndpoint<T> {
    fn call<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        Box::pin(async move { reported(ctx, self.0.handle_reporting(&ctx.client, req).await) })
    }
}

/// An endpoint's answer, the upstream that gave it (if one did) named in
/// `ctx` for the metrics; an answer no upstream gave counts under `-`.
pub fn reported(
    ctx: &Ctx,
    (response, upstream): (Response<ProxyBody>, Option<Arc<Upstream>>),
) -> Response<ProxyBody> {
    if let Some(upstream) = upstream {
        ctx.set_upstream(upstream.name.clone());
    }
    response
}

impl Args {
    /// The chain these flags ask for, as plain data (reads the
    /// `--jwt-public-key` file).
    pub fn chain_settings(&self) -> anyhow::Result<ChainSettings> {
        let rate_limit = self.rate_limit.map(|rps| RateLimitSettings {
            max_keys: self.rate_limit_keys,
            ..RateLimitSettings::new(rps, self.burst.unwrap_or(rps), self.rate_key.clone())
        });
        let jwt_key = match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(secret), _) => Some(JwtKey::Hs256Secret(secret.as_bytes().to_vec())),
            (None, Some(path)) => Some(JwtKey::Rs256PublicPem(std::fs::read(path).map_err(
                |e| anyhow::anyhow!("cannot read --jwt-public-key {}: {e}", path.display()),
            )?)),
            (None, None) => None,
        };
        let auth = (!self.basic_auth.is_empty()
            || jwt_key.is_some()
            || !self.allow.is_empty()
            || !self.deny.is_empty())
        .then(|| AuthSettings {
            basic: self.basic_auth.clone(),
            jwt: jwt_key.map(|key| JwtSettings {
                key,
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
            }),
            allow: self.allow.clone(),
            deny: self.deny.clone(),
        });
        let breaker = (self.breaker_error_rate.is_some() || self.max_concurrent.is_some())
            .then_some(BreakerSettings {
                error_rate: self.breaker_error_rate,
                min_requests: self.breaker_min_requests,
                open: self.breaker_open,
                max_concurrent: self.max_concurrent,
            });
        let mut rewrite = self.rewrite.clone();
        rewrite.extend(self.strip_prefix.as_deref().map(Rule::strip_prefix));
        Ok(ChainSettings {
            request_id: true,
            statistics: self.admin.is_some(),
            rate_limit,
            auth,
            breaker,
            rewrite,
            ..ChainSettings::default()
        })
    }
}

/// The metrics a balanced proxy's chain counts into, its retries among them.
pub fn metrics_with_retries(retries: RetryCounters) -> Metrics {
    let mut metrics = Metrics::new();
    metrics.register(
        "retries",
        "Requests sent again to another upstream after a failed attempt",
        retries.retried,
    );
    metrics.register(
        "retries_refused",
        "Failed attempts not retried because the retry budget was spent",
        retries.refused,
    );
    metrics
}

/// Start the middleware proxy, its admin listener, and what step 04 needs.
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let chain = build(
        &args,
        binder,
        &mut launched,
        HttpTransport::new(args.proxy.transport()),
        |proxy| proxy,
    )
    .await?;
    let server = Server::new(binder.bind(args.listen).await?, "middleware proxy")
        .options(args.proxy.serve.server_options());
    launched.push(serve(chain, server, args.proxy.serve.trusted_proxies())?);
    Ok(launched)
}

/// The chain `args` describe around step 04's proxy, plus the admin
/// listener when asked for. `adapt` may change the proxy first (step 06
/// gives it websocket-aware tunnels); `transport` carries requests upstream
/// (step 07's speaks TLS).
pub async fn build<T: Transport>(
    args: &Args,
    binder: &Binder,
    launched: &mut Launched,
    transport: T,
    adapt: impl FnOnce(BalancedProxy<T>) -> BalancedProxy<T>,
) -> anyhow::Result<Arc<Chain>> {
    let proxy = step04_load_balance::build_with(
        &args.balance,
        &args.proxy.settings(),
        binder,
        launched,
        transport,
    )
    .await?;
    let metrics = Arc::new(metrics_with_retries(proxy.retry_counters()));
    let endpoint = Arc::new(ProxyEndpoint(Arc::new(adapt(proxy))));
    let chain = Arc::new(
        args.chain_settings()?
            .build(endpoint, &metrics, None)?
            .chain,
    );
    match chain.len() {
        1 => tracing::info!("middleware chain: 1 link before the proxy"),
        links => tracing::info!("middleware chain: {links} links before the proxy"),
    }
    if let Some(admin) = args.admin {
        // The admin pages have no credentials of their own (step 09's admin
        // API does): --allow/--deny guard them too, and beyond loopback
        // anyone those rules let in can read them.
        if !admin.ip().is_loopback() {
            tracing::warn!(
                "--admin {admin} is reachable from other machines, and its pages need no credentials; bind it to 127.0.0.1 unless a firewall guards it"
            );
        }
        let listener = binder.bind(admin).await?;
        let rules = Arc::new(AddressRules {
            allow: args.allow.clone(),
            deny: args.deny.clone(),
        });
        launched.push(Server::new(listener, "admin").spawn(move |peer| {
            let (metrics, rules) = (metrics.clone(), rules.clone());
            service_fn(move |req: Request<Incoming>| {
                let response = match rules.refusal(peer.ip()) {
                    Some(reason) => text_response(StatusCode::FORBIDDEN, reason),
                    None => admin_response(&metrics, req.uri().path()),
                };
                async move { Ok::<_, Infallible>(response) }
            })
        })?);
    }
    Ok(chain)
}

/// Serve `chain` on `server`. The client every link sees is the peer, or
/// whom a `trusted` peer forwarded.
pub fn serve(
    chain: Arc<Chain>,
    server: Server,
    trusted: TrustedProxies,
) -> io::Result<ServerHandle> {
    server.serve_clients(trusted, move |client, req| {
        let chain = chain.clone();
        async move { chain.serve(req, &Ctx::new(client)).await }
    })
}
