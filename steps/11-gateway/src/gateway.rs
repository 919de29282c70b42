//! The gateway's state, and how a config becomes routes.
//!
//! [`Routes`] is what serving reads: the global chain, whose endpoint is
//! the routing [`Table`], whose entries are [`LiveService`]s — each one
//! step 05's chain in front of step 04's balanced proxy, built from one
//! `[[services]]` entry with the same settings structs the steps' flags
//! fill. [`Gateway::build`] makes new routes beside the old ones and keeps
//! whatever did not change: a service whose entry is the same is kept
//! whole, and in one that changed, every upstream that stayed keeps its
//! health, drain flag and counters.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use load_balance::{Balancer, Options, Upstream};
use middleware::auth::Auth;
use middleware::breaker::Breaker;
use middleware::headers::EditHeaders;
use middleware::rate_limit::Limit;
use middleware::rewrite::Rewrite;
use middleware::settings::{ChainSettings, MakeRateLimit};
use middleware::stats::Metrics;
use middleware::{Chain, Ctx, Endpoint};
use prometheus_client::metrics::counter::Counter;
use proxy_core::{HeadView, ProxyBody, Refusal};
use shared_limit::{SharedLimits, SharedRateLimit};
use step04_load_balance::BalancedProxy;
use step04_load_balance::retry::RetryCounters;
use step05_middleware::ProxyEndpoint;
use step06_websocket::Tunnels;
use step07_https::upstream_tls::HttpsTransport;
use step09_cache::Cache;
use step10_fast_path::hooks::Destination;
use step10_fast_path::pool::Pool;
use tokio::task::JoinHandle;

use crate::apps::{self, Apps};
use crate::cached::{CacheEndpoint, CacheMetrics, ServiceCache};
use crate::discovered::{Discovered, Protocol};
use crate::statistics::{Scope, Statistics, Tally};
use crate::tcp_services::TcpServices;
use crate::{canonical, config, router};

/// Idle connections the fast engine keeps per upstream, and for how long
/// (step 10's defaults).
const FAST_POOL_IDLE: usize = 1024;
const FAST_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A task stopped when its owner is dropped: a service's health checks end
/// with the service.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The upstreams `wanted` lists, each the one of `kept` with its URL and
/// weight if there is one (its health, drain flag and counters with it).
pub(crate) fn carried_over(wanted: &[(Uri, u32)], kept: &[Arc<Upstream>]) -> Vec<Arc<Upstream>> {
    wanted
        .iter()
        .map(|(url, weight)| {
            kept.iter()
                .find(|u| u.url == *url && u.weight == *weight)
                .cloned()
                .unwrap_or_else(|| Upstream::new(url.clone(), *weight))
        })
        .collect()
}

/// One service, ready to serve.
pub(crate) struct LiveService {
    /// What it was built from: an unchanged entry on reload keeps it whole.
    pub(crate) spec: config::Service,
    /// The prefix to take off the path, if `strip_prefix`.
    pub(crate) strip: Option<String>,
    pub(crate) balancer: Arc<Balancer>,
    /// Its middleware, then its balanced proxy.
    chain: Chain,
    /// The balanced proxy at the chain's end, which the fast engine's
    /// requests journey through too.
    pub(crate) proxy: Arc<BalancedProxy<HttpsTransport>>,
    /// Its rate limit (in the process or in Redis), auth and rewrite: both
    /// engines ask the same.
    pub(crate) rate_limit: Option<Limit>,
    pub(crate) auth: Option<Arc<Auth>>,
    pub(crate) rewrite: Option<Arc<Rewrite>>,
    pub(crate) headers: Option<Arc<EditHeaders>>,
    /// Where the fast engine sends to each upstream (pools included);
    /// none when one of them is not `http://`, and then hyper serves the
    /// service's requests.
    pub(crate) destinations: Vec<(Arc<Upstream>, Arc<Destination>)>,
    /// For `GET /services`.
    pub(crate) breaker: Option<Arc<Breaker>>,
    /// Step 09's cache at the chain's end, in front of `proxy`, if the
    /// entry sets `cache`.
    pub(crate) cache: Option<ServiceCache>,
    /// Its requests, for `/stats`.
    pub(crate) tally: Arc<Tally>,
    _health_checks: Option<AbortOnDrop>,
}

impl LiveService {
    /// The fast engine can send this service's requests: every upstream
    /// speaks plain HTTP/1.1, and no cache sits in front of them
    /// ([`crate::cached`] says why).
    pub(crate) fn on_fast_engine(&self) -> bool {
        !self.destinations.is_empty() && self.cache.is_none()
    }

    /// Where the fast engine sends to `upstream`, one of this service's.
    pub(crate) fn destination(&self, upstream: &Arc<Upstream>) -> Arc<Destination> {
        self.destinations
            .iter()
            .find(|(candidate, _)| Arc::ptr_eq(candidate, upstream))
            .map(|(_, destination)| destination.clone())
            .expect("a service's balancer picks among its own upstreams")
    }
}

/// The end of the global chain: pick the service, hand it the request.
pub(crate) struct Table {
    index: router::RouteIndex,
    pub(crate) services: Vec<Arc<LiveService>>,
    /// The tenants, and the key of their tokens.
    pub(crate) apps: Arc<Apps>,
    /// Redis, when `[redis]` is set: apps' quotas are counted there.
    pub(crate) shared: Option<Arc<SharedLimits>>,
}

/// Where a request goes: its service, and the path it is forwarded with
/// (canonical, without the service's prefix when it strips one).
pub(crate) struct Routed<'t, 'p> {
    pub(crate) service: &'t Arc<LiveService>,
    pub(crate) path: Cow<'p, str>,
}

impl Table {
    /// The service named `name`, or a sentence saying there is none (for
    /// the admin API).
    pub(crate) fn service(&self, name: &str) -> Result<&Arc<LiveService>, String> {
        self.services
            .iter()
            .find(|s| s.spec.name == name)
            .ok_or_else(|| format!("no service {name:?}"))
    }

    /// The service for `head`, on either engine. Routing reads — and the
    /// request is forwarded with — one spelling of the path and the host
    /// ([`canonical`]).
    pub(crate) fn route<'p>(&self, head: &'p impl HeadView) -> Result<Routed<'_, 'p>, Refusal> {
        let raw = std::str::from_utf8(head.path())
            .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "the path is not UTF-8"))?;
        let path =
            canonical::path(raw).map_err(|why| Refusal::new(StatusCode::BAD_REQUEST, why))?;
        let host = head
            .authority()
            .and_then(canonical::host_of)
            .map(canonical::host);
        let Some(index) = self.index.route(host.as_deref(), &path) else {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no service takes host {} and path {path}",
                    host.as_deref().unwrap_or("(none)"),
                ),
            ));
        };
        let service = &self.services[index];
        let path = match &service.strip {
            Some(prefix) => match path {
                Cow::Borrowed(path) => router::strip_path(path, prefix),
                Cow::Owned(path) => Cow::Owned(router::strip_path(&path, prefix).into_owned()),
            },
            None => path,
        };
        Ok(Routed { service, path })
    }
}

impl Endpoint for Table {
    fn call<'a>(
        &'a self,
        mut req: Request<Incoming>,
        ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        if self.apps.issues_tokens() && req.uri().path() == apps::TOKEN_PATH {
            return Box::pin(apps::token_endpoint(
                &self.apps,
                ctx.client.client_ip(),
                req,
            ));
        }
        let (service, path) = match self.route(&req) {
            Ok(Routed { service, path }) => (service, path.into_owned()),
            Err(refusal) => {
                let refusal = refusal.into_response();
                return Box::pin(async move { refusal });
            }
        };
        if path != req.uri().path() {
            *req.uri_mut() = router::with_path(req.uri(), &path);
        }
        tracing::debug!(
            "{} {} → service {}",
            req.method(),
            req.uri(),
            service.spec.name
        );
        service.tally.count();
        if !service.spec.open_auth {
            return Box::pin(service.chain.serve(req, ctx));
        }
        Box::pin(async move {
            let (head, body) = req.into_parts();
            let client = ctx.client.client_ip();
            match self.apps.admit(&head, client, self.shared.as_deref()).await {
                Ok(_) => {
                    service
                        .chain
                        .serve(Request::from_parts(head, body), ctx)
                        .await
                }
                Err(refusal) => refusal.into_response(),
            }
        })
    }
}

/// What serving reads: swapped whole on reload, while requests already
/// routed keep the one they started with.
pub(crate) struct Routes {
    /// Request id, statistics, the `[global]` middleware, then [`Table`].
    pub(crate) chain: Chain,
    pub(crate) table: Arc<Table>,
    /// Whether `[global]` has a rate limit, for `GET /services`.
    pub(crate) global_rate_limit: bool,
    /// The `[global]` rate limit and auth.
    pub(crate) global_limit: Option<Limit>,
    pub(crate) global_auth: Option<Arc<Auth>>,
    /// The `[redis]` the shared limits of this version use.
    pub(crate) redis: Option<(config::Redis, Arc<SharedLimits>)>,
}

impl Routes {
    /// Routes that route nothing: what a gateway holds before its first build.
    fn empty() -> Self {
        let table = Arc::new(Table {
            index: router::RouteIndex::default(),
            services: Vec::new(),
            apps: Arc::new(Apps::empty()),
            shared: None,
        });
        Self {
            chain: Chain::new(table.clone()),
            table,
            global_rate_limit: false,
            global_limit: None,
            global_auth: None,
            redis: None,
        }
    }
}

/// The gateway's state: its routes, and what building them needs.
pub(crate) struct Gateway {
    pub(crate) routes: ArcSwap<Routes>,
    /// The file to read again on reload (none for the built-in example).
    pub(crate) file: Option<PathBuf>,
    /// What the file said when last read: `--watch` reloads when it differs.
    pub(crate) last_read: Mutex<String>,
    /// Read at start only; a reload that changes them says a restart is needed.
    pub(crate) fixed: Fixed,
    transport: HttpsTransport,
    pub(crate) tunnels: Tunnels,
    pub(crate) metrics: Arc<Metrics>,
    /// Requests per service, per app and in total, by hour.
    pub(crate) statistics: Arc<Statistics>,
    /// Retries of every service, for `/metrics`.
    retries: RetryCounters,
    /// What every service's cache did, for `/metrics`.
    caches: CacheMetrics,
    /// Requests answered without Redis, whichever `[redis]` is current.
    redis_unavailable: Counter,
    /// The fast engine's destinations, by upstream URL.
    destinations: Mutex<HashMap<String, Arc<Destination>>>,
    /// The `[[tcp_services]]`, each on its own listener.
    pub(crate) tcp: TcpServices,
    /// Upstreams from ZooKeeper, by `discover` path.
    pub(crate) discovered: Arc<Discovered>,
    /// The config the routes were last built from: a change in ZooKeeper
    /// rebuilds them from it.
    config: Mutex<Arc<config::Config>>,
    /// One change of routes and TCP services at a time (a reload, a set
    /// from ZooKeeper): each builds from what is current when it starts,
    /// so none can store what an earlier one had replaced.
    pub(crate) changing: tokio::sync::Mutex<()>,
    /// The gateway itself, for the watches' callbacks.
    me: Weak<Gateway>,
}

/// The parts of the config a running gateway cannot change.
#[derive(PartialEq)]
pub(crate) struct Fixed {
    listen: SocketAddr,
    engine: config::Engine,
    tls: Option<config::Tls>,
    admin: Option<SocketAddr>,
    upstream_ca: Option<PathBuf>,
}

impl Fixed {
    pub(crate) fn of(config: &config::Config) -> Self {
        Self {
            listen: config.listen,
            engine: config.engine,
            tls: config.tls.clone(),
            admin: config.admin.as_ref().map(|a| a.listen),
            upstream_ca: config.upstream_ca.clone(),
        }
    }
}

impl Gateway {
    /// A gateway for `config`, read from `file` (none: the example); it
    /// routes nothing until [`Gateway::serve_config`].
    pub(crate) fn new(
        config: &config::Config,
        file: Option<PathBuf>,
        text: String,
        transport: HttpsTransport,
        tunnels: Tunnels,
        tcp: TcpServices,
    ) -> Arc<Self> {
        let retries = RetryCounters::default();
        let mut metrics = step05_middleware::metrics_with_retries(retries.clone());
        let redis_unavailable = Counter::default();
        metrics.register(
            "rate_limit_store_unavailable",
            "Requests whose shared rate limit could not be checked (Redis down or slow)",
            redis_unavailable.clone(),
        );
        let discovered = Arc::new(Discovered::default());
        discovered.register_in(&mut metrics);
        let caches = CacheMetrics::default();
        Arc::new_cyclic(|me| {
            caches.register_in(&mut metrics, me.clone());
            Self {
                routes: ArcSwap::from_pointee(Routes::empty()),
                file,
                last_read: Mutex::new(text),
                fixed: Fixed::of(config),
                transport,
                tunnels,
                metrics: Arc::new(metrics),
                statistics: Arc::default(),
                retries,
                caches,
                redis_unavailable,
                destinations: Mutex::default(),
                tcp,
                discovered,
                config: Mutex::new(Arc::new(config.clone())),
                changing: tokio::sync::Mutex::default(),
                me: me.clone(),
            }
        })
    }

    /// Routes for `config`, keeping from `old` every service whose entry did
    /// not change, and in changed ones every upstream that stayed (its
    /// health and counters with it; pooled connections live in the shared
    /// transport).
    pub(crate) fn build(
        &self,
        config: &config::Config,
        old: Option<&Routes>,
    ) -> anyhow::Result<Routes> {
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
        let previous_by_name: HashMap<&str, &Arc<LiveService>> = old
            .iter()
            .flat_map(|routes| &routes.table.services)
            .map(|service| (service.spec.name.as_str(), service))
            .collect();
        for spec in &config.services {
            let spec = &self.with_discovered(spec);
            let previous = previous_by_name.get(spec.name.as_str()).copied();
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
        let apps = Apps::new(config, old.map(|o| o.table.apps.as_ref()), &self.statistics);
        let table = Arc::new(Table {
            index: router::RouteIndex::new(&matches),
            services,
            apps: Arc::new(apps),
            shared: shared.cloned(),
        });
        let limiter = shared.map(|limits| self.shared_limiter(limits, "global"));
        let global = config
            .global
            .build(table.clone(), &self.metrics, limiter.as_deref())?;
        self.keep_destinations(&table);
        Ok(Routes {
            chain: global.chain,
            table,
            global_rate_limit: config.global.rate_limit.is_some(),
            global_limit: global.rate_limit,
            global_auth: global.auth,
            redis,
        })
    }

    /// `spec` with the upstreams its `discover` path holds now added (those
    /// the file lists first).
    fn with_discovered(&self, spec: &config::Service) -> config::Service {
        config::Service {
            upstreams: self.discovered.add_to(
                &spec.upstreams,
                spec.discover.as_deref(),
                Protocol::Http,
            ),
            ..spec.clone()
        }
    }

    /// `config`'s TCP services, each with the upstreams its `discover`
    /// path holds now added.
    pub(crate) fn tcp_services(&self, config: &config::Config) -> Vec<config::TcpService> {
        let with_discovered = |spec: &config::TcpService| config::TcpService {
            upstreams: self.discovered.add_to(
                &spec.upstreams,
                spec.discover.as_deref(),
                Protocol::Tcp,
            ),
            ..spec.clone()
        };
        config.tcp_services.iter().map(with_discovered).collect()
    }

    /// Serve `config` from now on, with `routes` built from it, and watch
    /// the paths it discovers. (Its TCP services are applied by the
    /// caller, which can still fail.)
    pub(crate) fn serve_config(&self, config: &config::Config, routes: Routes) {
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(config.clone());
        self.routes.store(Arc::new(routes));
        let http = config
            .services
            .iter()
            .map(|s| (&s.discover, Protocol::Http));
        let tcp = config
            .tcp_services
            .iter()
            .map(|s| (&s.discover, Protocol::Tcp));
        let paths: Vec<(&str, Protocol)> = http
            .chain(tcp)
            .filter_map(|(path, protocol)| Some((path.as_deref()?, protocol)))
            .collect();
        let me = self.me.clone();
        self.discovered
            .follow(config.zookeeper.as_deref(), &paths, move || {
                if let Some(gateway) = me.upgrade() {
                    tokio::spawn(async move { gateway.rediscovered().await });
                }
            });
    }

    /// Where the upstream `url` of the service (HTTP or TCP) `name` came
    /// from: `file`, or the ZooKeeper path (`zookeeper:/workbench/services/api`).
    pub(crate) fn source_of(&self, name: &str, protocol: Protocol, url: &Uri) -> String {
        let config = self
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (listed, discover) = match protocol {
            Protocol::Http => config
                .services
                .iter()
                .find(|s| s.name == name)
                .map(|s| (&s.upstreams, &s.discover)),
            Protocol::Tcp => config
                .tcp_services
                .iter()
                .find(|s| s.name == name)
                .map(|s| (&s.upstreams, &s.discover)),
        }
        .unzip();
        self.discovered.source(
            url,
            listed.map_or(&[][..], Vec::as_slice),
            discover.and_then(Option::as_deref),
            protocol,
        )
    }

    /// A discovered set changed: build the routes and TCP services again
    /// from the current config, keeping what did not change.
    async fn rediscovered(&self) {
        let _one_change_at_a_time = self.changing.lock().await;
        let config = self
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let old = self.routes.load_full();
        match self.build(&config, Some(&old)) {
            Ok(routes) => self.routes.store(Arc::new(routes)),
            Err(e) => tracing::warn!("upstreams from ZooKeeper not applied: {e:#}"),
        }
        if let Err(e) = self.tcp.apply(&self.tcp_services(&config)).await {
            tracing::warn!("upstreams from ZooKeeper not applied to TCP services: {e:#}");
        }
    }

    /// Rate limits held in Redis under `name`, for a chain's builder.
    fn shared_limiter(&self, limits: &Arc<SharedLimits>, name: &str) -> Box<MakeRateLimit> {
        let (limits, name, metrics) = (limits.clone(), name.to_owned(), self.metrics.clone());
        Box::new(move |limit| {
            Arc::new(SharedRateLimit::new(
                limits.clone(),
                &name,
                limit.rps,
                limit.burst,
                limit.key.clone(),
                metrics.clone(),
            ))
        })
    }

    /// Where the fast engine sends requests for `url`: one destination
    /// (and pool of idle connections) per URL, kept across reloads.
    fn destination(&self, url: &Uri) -> Arc<Destination> {
        let mut kept = self
            .destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        kept.entry(url.to_string())
            .or_insert_with(|| {
                let pool = Pool::new(FAST_POOL_IDLE, FAST_POOL_IDLE_TIMEOUT);
                Arc::new(Destination::for_url(url, pool).expect("upstream URLs name a host"))
            })
            .clone()
    }

    /// Forget the destinations no service of `table` sends to.
    fn keep_destinations(&self, table: &Table) {
        let used: std::collections::HashSet<String> = table
            .services
            .iter()
            .flat_map(|service| &service.destinations)
            .map(|(upstream, _)| upstream.url.to_string())
            .collect();
        self.destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|url, _| used.contains(url));
    }

    fn service(
        &self,
        spec: &config::Service,
        previous: Option<&LiveService>,
        shared: Option<&Arc<SharedLimits>>,
    ) -> anyhow::Result<LiveService> {
        let kept = previous.map(|p| p.balancer.upstreams()).unwrap_or_default();
        let upstreams = carried_over(&spec.upstreams, &kept);
        let balancer = Arc::new(Balancer::new(
            spec.balance.balance,
            upstreams,
            Options::default(),
        )?);
        let proxy = Arc::new(
            BalancedProxy::new(
                balancer.clone(),
                &spec.balance,
                &spec.proxy,
                self.transport.clone(),
            )
            .count_retries_in(self.retries.clone())
            .on_upgrade(self.tunnels.handler()),
        );
        let upstreams = balancer.upstreams();
        let plain = |upstream: &Arc<Upstream>| upstream.url.scheme_str() == Some("http");
        let destinations = if upstreams.iter().all(plain) {
            upstreams
                .iter()
                .map(|upstream| (upstream.clone(), self.destination(&upstream.url)))
                .collect()
        } else {
            Vec::new()
        };
        let health_checks = spec
            .balance
            .health
            .spawn_checks(&balancer, &self.transport)
            .map(AbortOnDrop);
        // With a cache, the breaker guards the upstream behind it, not the
        // whole chain: the store answers while it is open (crate::cached).
        let (chain, cache_breaker) = match &spec.cache {
            Some(_) => (
                Cow::Owned(ChainSettings {
                    breaker: None,
                    ..spec.chain.clone()
                }),
                spec.chain.breaker.as_ref().map(|b| b.build(&self.metrics)),
            ),
            None => (Cow::Borrowed(&spec.chain), None),
        };
        let cache = spec.cache.as_ref().map(|settings| {
            // What was stored stays while the cache, and what the origin is
            // asked with, stay the same.
            let kept = previous
                .filter(|p| p.spec.chain.request_headers == spec.chain.request_headers)
                .and_then(|p| p.cache.as_ref())
                .filter(|kept| kept.settings() == settings);
            Arc::new(match kept {
                Some(kept) => kept.rebind(proxy.clone(), cache_breaker.clone()),
                None => Cache::new(
                    proxy.clone(),
                    cache_breaker.clone(),
                    settings.clone(),
                    self.caches.counters(&spec.name),
                ),
            })
        });
        let endpoint: Arc<dyn Endpoint> = match &cache {
            Some(cache) => Arc::new(CacheEndpoint(cache.clone())),
            None => Arc::new(ProxyEndpoint(proxy.clone())),
        };
        let limiter = shared.map(|limits| self.shared_limiter(limits, &spec.name));
        let built = chain.build(endpoint, &self.metrics, limiter.as_deref())?;
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
            chain: built.chain,
            breaker: built.breaker.or(cache_breaker),
            cache,
            proxy,
            rate_limit: built.rate_limit,
            auth: built.auth,
            rewrite: built.rewrite,
            headers: built.headers,
            destinations,
            tally: self.statistics.tally(Scope::Service, &spec.name),
            _health_checks: health_checks,
        })
    }
}
