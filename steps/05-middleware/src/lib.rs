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
use middleware::auth::{AddressRules, Auth, JwtKey};
use middleware::breaker::{Breaker, BreakerPolicy};
use middleware::rate_limit::{RateKey, RateLimit};
use middleware::request_id::RequestId;
use middleware::rewrite::{Rewrite, Rule};
use middleware::stats::{Metrics, Stats, admin_response};
use middleware::{Chain, Ctx, Endpoint};
use proxy_core::{ClientConn, Transport, TrustedProxies};
use proxy_core::{ProxyBody, text_response};
use serving::{Binder, Launched, Server, ServerHandle};
use step03_reverse_proxy::{HttpTransport, ProxyOptions};
use step04_load_balance::{BalanceOptions, BalancedProxy, parse_duration};

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
    #[arg(long, value_name = "N", default_value_t = middleware::rate_limit::DEFAULT_MAX_KEYS)]
    pub rate_limit_keys: usize,
    /// Open the circuit when this percentage of requests fail (turns the breaker on).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub breaker_error_rate: Option<u8>,
    /// …over at least this many requests in the last 10 s.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub breaker_min_requests: u64,
    /// How long the circuit stays open before a probe, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub breaker_open: Duration,
    /// At most this many requests in flight; 503 beyond.
    #[arg(long, value_name = "N")]
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

/// Step 04's proxy as the chain's endpoint.
pub struct ProxyEndpoint<T>(pub BalancedProxy<T>);

impl<T: Transport> Endpoint for ProxyEndpoint<T> {
    fn call<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        Box::pin(async move {
            let (response, upstream) = self.0.handle_reporting(&ctx.client, req).await;
            if let Some(upstream) = upstream {
                ctx.set_upstream(upstream.name.clone());
            }
            response
        })
    }
}

/// Assemble the chain the flags ask for.
pub fn chain<T: Transport>(
    args: &Args,
    proxy: BalancedProxy<T>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Chain> {
    let mut chain = Chain::new(Arc::new(ProxyEndpoint(proxy))).with(Arc::new(RequestId));
    if args.admin.is_some() {
        chain = chain.with(Arc::new(Stats {
            metrics: metrics.clone(),
        }));
    }
    if let Some(rate) = args.rate_limit {
        let burst = args.burst.unwrap_or(rate);
        chain = chain.with(Arc::new(RateLimit::with_max_keys(
            rate,
            burst,
            args.rate_key.clone(),
            metrics.clone(),
            args.rate_limit_keys,
        )));
    }
    if !args.basic_auth.is_empty()
        || args.jwt_secret.is_some()
        || args.jwt_public_key.is_some()
        || !args.allow.is_empty()
        || !args.deny.is_empty()
    {
        let mut auth = Auth::default()
            .basic(args.basic_auth.clone())
            .allow(args.allow.clone())
            .deny(args.deny.clone());
        if let Some(secret) = &args.jwt_secret {
            auth = auth.jwt(JwtKey::Hs256Secret(secret.as_bytes().to_vec()))?;
        }
        if let Some(path) = &args.jwt_public_key {
            let pem = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read --jwt-public-key {}: {e}", path.display())
            })?;
            auth = auth.jwt(JwtKey::Rs256PublicPem(pem))?;
        }
        if let Some(issuer) = &args.jwt_issuer {
            auth = auth.jwt_issuer(issuer);
        }
        if let Some(audience) = &args.jwt_audience {
            auth = auth.jwt_audience(audience);
        }
        chain = chain.with(Arc::new(auth));
    }
    if args.breaker_error_rate.is_some() || args.max_concurrent.is_some() {
        let policy = BreakerPolicy::new(
            args.breaker_error_rate,
            args.breaker_min_requests,
            args.breaker_open,
        );
        chain = chain.with(Arc::new(Breaker::new(
            policy,
            args.max_concurrent,
            metrics.clone(),
        )));
    }
    let mut rules = args.rewrite.clone();
    rules.extend(args.strip_prefix.as_deref().map(Rule::strip_prefix));
    if !rules.is_empty() {
        chain = chain.with(Arc::new(Rewrite::new(rules)));
    }
    Ok(chain)
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
        .options(args.proxy.server_options());
    launched.push(serve(chain, server, "http", args.proxy.trusted_proxies())?);
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
    let proxy =
        step04_load_balance::build_with(&args.balance, &args.proxy, binder, launched, transport)
            .await?;
    let mut metrics = Metrics::new();
    let retries = proxy.retry_counters();
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
    let metrics = Arc::new(metrics);
    let chain = Arc::new(chain(args, adapt(proxy), &metrics)?);
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

/// Serve `chain` on `server`; `scheme` is how clients reach it (`http` or
/// `https`), for X-Forwarded-Proto. The client every link sees is the
/// peer, or whom a `trusted` peer forwarded.
pub fn serve(
    chain: Arc<Chain>,
    server: Server,
    scheme: &'static str,
    trusted: TrustedProxies,
) -> io::Result<ServerHandle> {
    let trusted = Arc::new(trusted);
    server.spawn(move |peer| {
        let (chain, trusted) = (chain.clone(), trusted.clone());
        let conn = ClientConn::new(peer, scheme);
        service_fn(move |req| {
            let chain = chain.clone();
            let client = trusted
                .client_of(&conn, req.headers())
                .unwrap_or_else(|| conn.clone());
            let ctx = Ctx::new(client);
            async move { Ok::<_, Infallible>(chain.serve(req, &ctx).await) }
        })
    })
}
