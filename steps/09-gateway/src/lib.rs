//! Step 09: `step09_gateway`, the gateway — many services behind one
//! listener, configured by a file.
//!
//! Every step so far was one proxy in front of one group of upstreams,
//! configured by flags. A gateway routes: each request goes to the service
//! whose host and path prefix it matches (the longest prefix wins,
//! [`router`]), and each service is a whole step 05 of its own — its
//! balancer over its upstreams, its retries and health, its rate limit —
//! built from one `[[services]]` entry of a TOML file ([`config`]). A
//! request no service takes gets a 404 that says so.
//!
//! A reload (SIGHUP, or `POST /reload` on the admin API) reads the file
//! again and, only if it is valid whole, swaps the routes in one atomic
//! store: requests already routed finish on the old ones; a service whose
//! entry did not change is kept as it was, and in one that changed, every
//! upstream that stayed keeps its health and counters.
//!
//! Every request first passes the global chain — request id, statistics,
//! the `[global]` rate limit and auth — whose endpoint is the routing
//! table; the service's own chain follows (limit, auth, breaker, rewrite,
//! then step 04's balanced proxy with step 06's websocket tunnels and step
//! 07's transport, which speaks http, h2c and https). With `[redis]`, rate
//! limits are held by every instance together ([`shared_limit`]).
//!
//! Left out on purpose: changing listeners on reload (they are read at
//! start; a reload that changes them says so), per-service timeouts, and
//! service discovery (the file is the source of truth).

pub mod config;
pub mod router;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use clap::Parser;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use load_balance::{ActiveChecks, Balancer, HealthPolicy, Options, Upstream};
use middleware::auth::{Auth, JwtKey};
use middleware::breaker::{Breaker, BreakerPolicy, State};
use middleware::rate_limit::RateLimit;
use middleware::request_id::RequestId;
use middleware::rewrite::{Rewrite, Rule};
use middleware::stats::{Metrics, Stats};
use middleware::{Chain, Ctx, Endpoint, Middleware};
use prometheus_client::metrics::counter::Counter;
use proxy_core::headers::request_host;
use proxy_core::{ClientConn, ProxyBody, TrustedProxies, text_response};
use serving::{Binder, Launched, Server};
use shared_limit::{SharedLimits, SharedRateLimit};
use step03_reverse_proxy::ProxyOptions;
use step04_load_balance::BalancedProxy;
use step05_middleware::ProxyEndpoint;
use step06_websocket::Tunnels;
use step07_https::certificates;
use step07_https::upstream_tls::{HttpsTransport, UpstreamTrust};
use tokio::task::JoinHandle;

/// The example configuration, served when no `--config` is given.
pub const EXAMPLE: &str = include_str!("../gateway.toml");

/// The real servers the example configuration names.
const DEMO_ADDRS: [&str; 3] = ["127.0.0.1:2003", "127.0.0.1:2004", "127.0.0.1:2005"];

/// How often `--watch` looks at the file.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Websockets: closed after this long without a frame either way, and at
/// most this many open (step 06's defaults).
const WEBSOCKET_IDLE: Duration = Duration::from_secs(60);
const MAX_WEBSOCKETS: usize = 10_000;

/// Command line of `step09-gateway`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step09-gateway",
    about = "Step 09: a gateway routing requests to services by host and path, from a TOML config"
)]
pub struct Args {
    /// The configuration file. Without it, the example
    /// (steps/09-gateway/gateway.toml) is served, with real servers started
    /// in-process on 127.0.0.1:2003, :2004 and :2005.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Reload when the file changes (it is read every half second), as well
    /// as on SIGHUP and POST /reload.
    #[arg(long, requires = "config")]
    pub watch: bool,
    #[command(flatten)]
    pub proxy: ProxyOptions,
}

/// A task stopped when its owner is dropped: a service's health checks end
/// with the service.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One service, ready to serve.
struct LiveService {
    /// What it was built from: an unchanged entry on reload keeps it whole.
    spec: config::Service,
    /// The prefix to take off the path, if `strip_prefix`.
    strip: Option<String>,
    balancer: Arc<Balancer>,
    /// Its middleware, then its balanced proxy.
    chain: Chain,
    /// For `GET /services`.
    breaker: Option<Arc<Breaker>>,
    _health_checks: Option<AbortOnDrop>,
}

/// The end of the global chain: pick the service, hand it the request.
struct Table {
    matches: Vec<router::Match>,
    services: Vec<Arc<LiveService>>,
}

impl Endpoint for Table {
    fn call<'a>(
        &'a self,
        mut req: Request<Incoming>,
        ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        let host = request_host(req.headers(), req.uri())
            .ok()
            .flatten()
            .map(|a| a.host().to_ascii_lowercase());
        let Some(index) = router::route(&self.matches, host.as_deref(), req.uri().path()) else {
            let refusal = text_response(
                StatusCode::NOT_FOUND,
                format!(
                    "no service takes host {} and path {}",
                    host.as_deref().unwrap_or("(none)"),
                    req.uri().path()
                ),
            );
            return Box::pin(async move { refusal });
        };
        let service = &self.services[index];
        if let Some(prefix) = &service.strip {
            *req.uri_mut() = router::strip(req.uri(), prefix);
        }
        tracing::debug!(
            "{} {} → service {}",
            req.method(),
            req.uri(),
            service.spec.name
        );
        Box::pin(service.chain.serve(req, ctx))
    }
}

/// What serving reads: swapped whole on reload, while requests already
/// routed keep the one they started with.
struct Routes {
    /// Request id, statistics, the `[global]` middleware, then [`Table`].
    chain: Chain,
    table: Arc<Table>,
    global: config::Global,
    /// The `[redis]` the shared limits of this version use.
    redis: Option<(config::Redis, Arc<SharedLimits>)>,
}

/// The gateway's state: its routes, and what building them needs.
struct Gateway {
    routes: ArcSwap<Routes>,
    /// The file to read again on reload (none for the built-in example).
    file: Option<PathBuf>,
    /// What the file said when last read: `--watch` reloads when it differs.
    last_read: Mutex<String>,
    /// Read at start only; a reload that changes them says a restart is needed.
    fixed: Fixed,
    proxy: ProxyOptions,
    transport: HttpsTransport,
    tunnels: Tunnels,
    metrics: Arc<Metrics>,
    /// Requests answered without Redis, whichever `[redis]` is current.
    redis_unavailable: Counter,
}

/// The parts of the config a running gateway cannot change.
#[derive(PartialEq)]
struct Fixed {
    listen: SocketAddr,
    tls: Option<config::Tls>,
    admin: Option<SocketAddr>,
    upstream_ca: Option<PathBuf>,
}

impl Fixed {
    fn of(config: &config::Config) -> Self {
        Self {
            listen: config.listen,
            tls: config.tls.clone(),
            admin: config.admin.as_ref().map(|a| a.listen),
            upstream_ca: config.upstream_ca.clone(),
        }
    }
}

impl Gateway {
    /// Routes for `config`, keeping from `old` every service whose entry did
    /// not change, and in changed ones every upstream that stayed (its
    /// health and counters with it; pooled connections live in the shared
    /// transport).
    fn build(&self, config: &config::Config, old: Option<&Routes>) -> anyhow::Result<Routes> {
        let redis = match (&config.redis, old.and_then(|o| o.redis.as_ref())) {
            (Some(wanted), Some((had, limits))) if wanted == had => {
                Some((wanted.clone(), limits.clone()))
            }
            (Some(wanted), _) => {
                let limits = SharedLimits::new(&wanted.url, wanted.fail, wanted.timeout)?
                    .count_unavailable_in(self.redis_unavailable.clone());
                tracing::info!(
                    "rate limits shared through {} (fail {:?}, at most {:?} a request)",
                    wanted.url,
                    wanted.fail,
                    wanted.timeout
                );
                Some((wanted.clone(), Arc::new(limits)))
            }
            (None, _) => None,
        };
        // A service is kept whole only if the limits it may use are too.
        let same_redis =
            old.is_some_and(|o| o.redis.as_ref().map(|r| &r.0) == config.redis.as_ref());
        let shared = redis.as_ref().map(|(_, limits)| limits);
        let mut matches = Vec::new();
        let mut services = Vec::new();
        for spec in &config.services {
            let previous = old.and_then(|routes| {
                routes
                    .table
                    .services
                    .iter()
                    .find(|s| s.spec.name == spec.name)
            });
            let service = match previous {
                Some(previous) if previous.spec == *spec && same_redis => previous.clone(),
                _ => Arc::new(self.service(spec, previous.map(|p| p.as_ref()), shared)?),
            };
            matches.push(router::Match {
                host: spec.host.clone(),
                path_prefix: spec.path_prefix.clone(),
            });
            services.push(service);
        }
        let table = Arc::new(Table { matches, services });
        let mut chain = Chain::new(table.clone())
            .with(Arc::new(RequestId))
            .with(Arc::new(Stats {
                metrics: self.metrics.clone(),
            }));
        for middleware in self.middleware(
            "global",
            &config.global.rate_limit,
            &config.global.auth,
            shared,
        )? {
            chain = chain.with(middleware);
        }
        Ok(Routes {
            chain,
            table,
            global: config.global.clone(),
            redis,
        })
    }

    /// A rate limit (shared through Redis if there is one, else this
    /// process's own) and an auth check, as configured for `name`.
    fn middleware(
        &self,
        name: &str,
        rate_limit: &Option<config::RateLimit>,
        auth: &Option<config::Auth>,
        shared: Option<&Arc<SharedLimits>>,
    ) -> anyhow::Result<Vec<Arc<dyn Middleware>>> {
        let mut links: Vec<Arc<dyn Middleware>> = Vec::new();
        if let Some(limit) = rate_limit {
            let metrics = self.metrics.clone();
            let (rps, burst, key) = (limit.rps, limit.burst, limit.key.clone());
            links.push(match shared {
                Some(limits) => Arc::new(SharedRateLimit::new(
                    limits.clone(),
                    name,
                    rps,
                    burst,
                    key,
                    metrics,
                )),
                None => Arc::new(RateLimit::new(rps, burst, key, metrics)),
            });
        }
        if let Some(auth) = auth {
            let mut checks = Auth::default()
                .basic(auth.basic.clone())
                .allow(auth.allow.clone())
                .deny(auth.deny.clone());
            if let Some(secret) = &auth.jwt_secret {
                checks = checks.jwt(JwtKey::Hs256Secret(secret.as_bytes().to_vec()))?;
            }
            links.push(Arc::new(checks));
        }
        Ok(links)
    }

    fn service(
        &self,
        spec: &config::Service,
        previous: Option<&LiveService>,
        shared: Option<&Arc<SharedLimits>>,
    ) -> anyhow::Result<LiveService> {
        let kept = previous.map(|p| p.balancer.upstreams()).unwrap_or_default();
        let upstreams: Vec<Arc<Upstream>> = spec
            .upstreams
            .iter()
            .map(|(url, weight)| {
                kept.iter()
                    .find(|u| u.url == *url && u.weight == *weight)
                    .cloned()
                    .unwrap_or_else(|| Upstream::new(url.clone(), *weight))
            })
            .collect();
        let balancer = Arc::new(Balancer::new(spec.balance, upstreams, Options::default())?);
        let health = &spec.health;
        let policy = HealthPolicy {
            max_fails: health.max_fails,
            cooldown: health.cooldown,
        };
        let proxy = BalancedProxy::new(
            balancer.clone(),
            &self.proxy,
            spec.hash_key.clone(),
            policy,
            self.transport.clone(),
        )?
        .fail_statuses(health.fail_status.clone())
        .retries(spec.retries)
        .on_upgrade(self.tunnels.handler());
        let health_checks = health.path.as_ref().map(|path| {
            AbortOnDrop(
                ActiveChecks::new(path.clone(), health.interval)
                    .spawn(balancer.clone(), self.transport.clone()),
            )
        });
        // Step 05's order: limit, auth, breaker, rewrite, then the proxy.
        let mut chain = Chain::new(Arc::new(ProxyEndpoint(proxy)));
        for middleware in self.middleware(&spec.name, &spec.rate_limit, &spec.auth, shared)? {
            chain = chain.with(middleware);
        }
        let breaker = spec.breaker.as_ref().map(|breaker| {
            let policy = BreakerPolicy::new(breaker.error_rate, breaker.min_requests, breaker.open);
            Arc::new(Breaker::new(
                policy,
                breaker.max_concurrent,
                self.metrics.clone(),
            ))
        });
        if let Some(breaker) = &breaker {
            chain = chain.with(breaker.clone());
        }
        if !spec.rewrite.is_empty() {
            let rules = spec
                .rewrite
                .iter()
                .map(|rule| rule.parse::<Rule>().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?;
            chain = chain.with(Arc::new(Rewrite::new(rules)));
        }
        tracing::info!(
            "service {}: {}{} → {} upstream(s)",
            spec.name,
            spec.host.as_deref().unwrap_or("any host"),
            spec.path_prefix,
            spec.upstreams.len()
        );
        Ok(LiveService {
            spec: spec.clone(),
            strip: spec.strip_prefix.then(|| spec.path_prefix.clone()),
            balancer,
            chain,
            breaker,
            _health_checks: health_checks,
        })
    }

    /// Read the file again and, if it is valid whole, serve it; if not,
    /// keep serving the old one and say why.
    fn reload(&self) -> Result<usize, String> {
        let Some(file) = &self.file else {
            return Err("serving the built-in example: there is no --config file to reload".into());
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("{}: cannot read it: {e}", file.display()))?;
        *self.last_read.lock().expect("last_read lock") = text.clone();
        let config =
            config::parse(&text, &file.display().to_string()).map_err(|e| e.to_string())?;
        if Fixed::of(&config) != self.fixed {
            tracing::warn!(
                "{}: listen, [tls], [admin] listen and upstream_ca changed; they take effect at the next start",
                file.display()
            );
        }
        let old = self.routes.load();
        let routes = self
            .build(&config, Some(&old))
            .map_err(|e| format!("{e:#}"))?;
        let count = routes.table.services.len();
        self.routes.store(Arc::new(routes));
        Ok(count)
    }

    /// The reload, logged.
    fn reload_logged(&self, why: &str) -> Result<usize, String> {
        let reloaded = self.reload();
        match &reloaded {
            Ok(count) => tracing::info!("{why}: reloaded, {}", services(*count)),
            Err(e) => tracing::warn!("{why}: not reloaded, the old config keeps serving: {e}"),
        }
        reloaded
    }

    /// Has the file changed since it was last read?
    fn file_changed(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        match std::fs::read_to_string(file) {
            Ok(text) => *self.last_read.lock().expect("last_read lock") != text,
            // Editors replace files by renaming: a moment without one is
            // not a change; a reload would only report it missing.
            Err(_) => false,
        }
    }

    /// `POST /services/{name}/drain?upstream=URL` (or `undrain`).
    fn drain(&self, name: &str, upstream: &str, drained: bool) -> Result<String, String> {
        let routes = self.routes.load();
        let service = routes
            .table
            .services
            .iter()
            .find(|s| s.spec.name == name)
            .ok_or_else(|| format!("no service {name:?}"))?;
        let (url, _) = step04_load_balance::parse_weighted(upstream)?;
        let upstreams = service.balancer.upstreams();
        let found = upstreams
            .iter()
            .find(|u| u.url == url)
            .ok_or_else(|| format!("service {name:?} has no upstream {upstream}"))?;
        found.drain(drained);
        tracing::info!(
            "{} {upstream} in service {name}",
            if drained { "drained" } else { "undrained" }
        );
        Ok(if drained {
            format!("drained {upstream} in {name}: no new requests; those in flight finish")
        } else {
            format!("undrained {upstream} in {name}: it takes requests again")
        })
    }

    /// `GET /services`: every service and its upstreams, as JSON.
    fn describe(&self) -> serde_json::Value {
        let routes = self.routes.load();
        let services: Vec<serde_json::Value> = routes
            .table
            .services
            .iter()
            .map(|service| {
                let upstreams: Vec<serde_json::Value> = service
                    .balancer
                    .upstreams()
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "url": u.url.to_string(),
                            "weight": u.weight,
                            "healthy": u.is_healthy(),
                            "drained": u.is_drained(),
                            "in_flight": u.in_flight(),
                        })
                    })
                    .collect();
                let breaker = service.breaker.as_ref().map(|b| match b.state() {
                    State::Closed => "closed",
                    State::Open { .. } => "open",
                    State::HalfOpen { .. } => "half-open",
                });
                serde_json::json!({
                    "name": service.spec.name,
                    "host": service.spec.host,
                    "path_prefix": service.spec.path_prefix,
                    "balance": service.spec.balance.name(),
                    "breaker": breaker,
                    "upstreams": upstreams,
                })
            })
            .collect();
        serde_json::json!({
            "services": services,
            "redis": routes.redis.as_ref().map(|(redis, _)| redis.url.clone()),
            "global_rate_limit": routes.global.rate_limit.is_some(),
        })
    }
}

/// Start the gateway (and the real servers, for the example).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let (config, text) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: cannot read it: {e}", path.display()))?;
            (config::parse(&text, &path.display().to_string())?, text)
        }
        None => {
            let mut config = config::parse(EXAMPLE, "steps/09-gateway/gateway.toml")?;
            let backends =
                step02_reverse_proxy_minimal::start_backends(binder, &DEMO_ADDRS).await?;
            launched.extend(backends);
            // A test's binder put the real servers on other ports.
            let moved = binder.bound();
            for service in &mut config.services {
                for (uri, _) in &mut service.upstreams {
                    *uri = moved_to(uri, &moved);
                }
            }
            (config, EXAMPLE.to_owned())
        }
    };
    let trust = match &config.upstream_ca {
        Some(ca) => UpstreamTrust::CaFile(ca.clone()),
        None => UpstreamTrust::SystemRoots,
    };
    let mut metrics = Metrics::new();
    let redis_unavailable = Counter::default();
    metrics.register(
        "rate_limit_store_unavailable",
        "Requests whose shared rate limit could not be checked (Redis down or slow)",
        redis_unavailable.clone(),
    );
    let tunnels = Tunnels::new(WEBSOCKET_IDLE, MAX_WEBSOCKETS);
    let mut gateway = Gateway {
        routes: ArcSwap::from_pointee(Routes {
            chain: Chain::new(Arc::new(Table {
                matches: Vec::new(),
                services: Vec::new(),
            })),
            table: Arc::new(Table {
                matches: Vec::new(),
                services: Vec::new(),
            }),
            global: config::Global::default(),
            redis: None,
        }),
        file: args.config.clone(),
        last_read: Mutex::new(text),
        fixed: Fixed::of(&config),
        transport: HttpsTransport::new(&trust, &args.proxy.transport())?,
        proxy: args.proxy.clone(),
        tunnels: tunnels.clone(),
        metrics: Arc::new(metrics),
        redis_unavailable,
    };
    gateway.routes = ArcSwap::from_pointee(gateway.build(&config, None)?);
    let gateway = Arc::new(gateway);
    launched.on_shutdown(move || async move { tunnels.close_all().await });
    if gateway.file.is_some() {
        launched.push_task(tokio::spawn(reload_on_sighup(gateway.clone())));
    }
    if args.watch {
        launched.push_task(tokio::spawn(reload_on_change(gateway.clone())));
    }
    let trusted = Arc::new(args.proxy.trusted_proxies());
    let server = Server::new(binder.bind(config.listen).await?, "gateway")
        .options(args.proxy.server_options());
    launched.push(serve(server, &gateway, &trusted, "http")?);
    if let Some(tls) = &config.tls {
        let identity = certificates::from_files(&tls.cert, &tls.key)?;
        let server = Server::new(binder.bind(tls.listen).await?, "gateway https")
            .options(args.proxy.server_options())
            .tls(certificates::server_config(identity)?);
        launched.push(serve(server, &gateway, &trusted, "https")?);
    }
    if let Some(admin) = &config.admin {
        launched.push(admin::spawn(
            binder.bind(admin.listen).await?,
            gateway,
            admin.token.clone(),
        )?);
    }
    Ok(launched)
}

/// Serve the gateway's routes on `server`; `scheme` is how clients reach
/// it, for X-Forwarded-Proto.
fn serve(
    server: Server,
    gateway: &Arc<Gateway>,
    trusted: &Arc<TrustedProxies>,
    scheme: &'static str,
) -> std::io::Result<serving::ServerHandle> {
    let (gateway, trusted) = (gateway.clone(), trusted.clone());
    server.spawn(move |peer| {
        let (gateway, trusted) = (gateway.clone(), trusted.clone());
        let conn = ClientConn::new(peer, scheme);
        service_fn(move |req: Request<Incoming>| {
            // The routes of this moment: a reload while the request is
            // under way does not change where it goes.
            let routes = gateway.routes.load_full();
            let client = trusted
                .client_of(&conn, req.headers())
                .unwrap_or_else(|| conn.clone());
            async move {
                let ctx = Ctx::new(client);
                Ok::<_, Infallible>(routes.chain.serve(req, &ctx).await)
            }
        })
    })
}

/// "1 service", "3 services".
fn services(count: usize) -> String {
    match count {
        1 => "1 service".to_owned(),
        n => format!("{n} services"),
    }
}

/// SIGHUP reloads, as nginx and HAProxy do.
async fn reload_on_sighup(gateway: Arc<Gateway>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /reload on the admin listener");
        return;
    };
    while hangups.recv().await.is_some() {
        let _ = gateway.reload_logged("SIGHUP");
    }
}

/// `--watch`: read the file every WATCH_EVERY, reload when it changed.
/// Reading beats file-system notifications here: it works on every file
/// system (including the bind mounts and ConfigMaps configs often live on),
/// and a file read twice a second costs nothing.
async fn reload_on_change(gateway: Arc<Gateway>) {
    let mut ticks = tokio::time::interval(WATCH_EVERY);
    loop {
        ticks.tick().await;
        if gateway.file_changed() {
            let _ = gateway.reload_logged("the file changed");
        }
    }
}

mod admin {
    //! The admin API: its own listener, a bearer token on every request.

    use std::convert::Infallible;
    use std::sync::Arc;

    use hyper::body::Incoming;
    use hyper::header::{self, HeaderValue};
    use hyper::service::service_fn;
    use hyper::{Method, Request, Response, StatusCode};
    use proxy_core::headers::{constant_time_eq, split_credentials};
    use proxy_core::{ProxyBody, complete_response, text_response};
    use serving::{Server, ServerHandle};
    use tokio::net::TcpListener;

    use super::Gateway;

    pub(super) fn spawn(
        listener: TcpListener,
        gateway: Arc<Gateway>,
        token: String,
    ) -> std::io::Result<ServerHandle> {
        let token = Arc::new(token);
        Server::new(listener, "admin").spawn(move |_| {
            let (gateway, token) = (gateway.clone(), token.clone());
            service_fn(move |req: Request<Incoming>| {
                let response = answer(&gateway, &token, &req);
                async move { Ok::<_, Infallible>(response) }
            })
        })
    }

    /// `/services/NAME/drain` → (NAME, true); `/undrain` → (NAME, false).
    fn drain_request(path: &str) -> Option<(&str, bool)> {
        let rest = path.strip_prefix("/services/")?;
        let (name, action) = rest.rsplit_once('/')?;
        match action {
            "drain" => Some((name, true)),
            "undrain" => Some((name, false)),
            _ => None,
        }
    }

    /// The value of `key` in a query string, percent-decoded.
    fn query_value(query: Option<&str>, key: &str) -> Option<String> {
        form_urlencoded::parse(query?.as_bytes())
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.into_owned())
    }

    fn answer(gateway: &Gateway, token: &str, req: &Request<Incoming>) -> Response<ProxyBody> {
        let authorized = matches!(
            req.headers().get(header::AUTHORIZATION).and_then(split_credentials),
            Some((scheme, offered))
                if scheme.eq_ignore_ascii_case("bearer")
                    && constant_time_eq(offered.as_bytes(), token.as_bytes())
        );
        if !authorized {
            let mut refusal = text_response(
                StatusCode::UNAUTHORIZED,
                "the admin API needs Authorization: Bearer <the token in the config's [admin]>",
            );
            refusal
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return refusal;
        }
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/services") => complete_response(
                StatusCode::OK,
                "application/json",
                gateway.describe().to_string(),
            ),
            (&Method::POST, "/reload") => match gateway.reload_logged("POST /reload") {
                Ok(count) => text_response(
                    StatusCode::OK,
                    format!("reloaded: {}", super::services(count)),
                ),
                Err(why) => text_response(
                    StatusCode::BAD_REQUEST,
                    format!("not reloaded, the old config keeps serving: {why}"),
                ),
            },
            (&Method::GET, "/metrics") => complete_response(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                gateway.metrics.prometheus_text(),
            ),
            (&Method::POST, path) if drain_request(path).is_some() => {
                let (name, drained) = drain_request(path).expect("matched");
                let upstream = query_value(req.uri().query(), "upstream").unwrap_or_default();
                match gateway.drain(name, &upstream, drained) {
                    Ok(said) => text_response(StatusCode::OK, said),
                    Err(why) => text_response(StatusCode::NOT_FOUND, why),
                }
            }
            _ => text_response(
                StatusCode::NOT_FOUND,
                "the admin API serves GET /services, POST /reload, POST /services/NAME/drain?upstream=URL (and /undrain), GET /metrics",
            ),
        }
    }
}

/// `uri` with its authority replaced by where `moved` says that address went.
fn moved_to(uri: &Uri, moved: &[(SocketAddr, SocketAddr)]) -> Uri {
    let Some(authority) = uri.authority() else {
        return uri.clone();
    };
    // The latest binding of an address is the live one.
    let Some((_, actual)) = moved
        .iter()
        .rev()
        .find(|(requested, _)| requested.to_string() == authority.as_str())
    else {
        return uri.clone();
    };
    let mut parts = uri.clone().into_parts();
    parts.authority = actual.to_string().parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}
