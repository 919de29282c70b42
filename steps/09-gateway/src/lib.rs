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
//! What this step does not do yet (the rest of its issue): reload on file
//! change, and rate limits shared across instances through `[redis]`
//! (read and checked, not used).

pub mod config;
pub mod router;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clap::Parser;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use load_balance::{Balancer, HealthPolicy, Options, Upstream};
use middleware::rate_limit::RateLimit;
use middleware::request_id::RequestId;
use middleware::stats::Metrics;
use middleware::{Chain, Ctx};
use proxy_core::headers::request_host;
use proxy_core::{ClientConn, ProxyBody, text_response};
use serving::{Binder, Launched, Server};
use step03_reverse_proxy::{HttpTransport, ProxyOptions};
use step04_load_balance::BalancedProxy;
use step05_middleware::ProxyEndpoint;

/// The example configuration, served when no `--config` is given.
pub const EXAMPLE: &str = include_str!("../gateway.toml");

/// The real servers the example configuration names.
const DEMO_ADDRS: [&str; 3] = ["127.0.0.1:2003", "127.0.0.1:2004", "127.0.0.1:2005"];

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
    #[command(flatten)]
    pub proxy: ProxyOptions,
}

/// One service, ready to serve.
struct LiveService {
    /// What it was built from: an unchanged entry on reload keeps it whole.
    spec: config::Service,
    /// The prefix to take off the path, if `strip_prefix`.
    strip: Option<String>,
    balancer: Arc<Balancer>,
    chain: Chain,
}

/// What routing reads: swapped whole on reload, while requests already
/// routed keep the one they started with.
struct Routes {
    matches: Vec<router::Match>,
    services: Vec<Arc<LiveService>>,
}

/// The gateway's state: its routes, and what building them needs.
struct Gateway {
    routes: ArcSwap<Routes>,
    /// The file to read again on reload (none for the built-in example).
    file: Option<PathBuf>,
    proxy: ProxyOptions,
    transport: HttpTransport,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// Routes for `config`, keeping from `old` every service whose entry did
    /// not change, and in changed ones every upstream that stayed (its
    /// health and counters with it; pooled connections live in the shared
    /// transport).
    fn build(&self, config: &config::Config, old: Option<&Routes>) -> anyhow::Result<Routes> {
        let mut matches = Vec::new();
        let mut services = Vec::new();
        for spec in &config.services {
            let previous =
                old.and_then(|routes| routes.services.iter().find(|s| s.spec.name == spec.name));
            let service = match previous {
                Some(previous) if previous.spec == *spec => previous.clone(),
                _ => Arc::new(self.service(spec, previous.map(|p| p.as_ref()))?),
            };
            matches.push(router::Match {
                host: spec.host.clone(),
                path_prefix: spec.path_prefix.clone(),
            });
            services.push(service);
        }
        Ok(Routes { matches, services })
    }

    fn service(
        &self,
        spec: &config::Service,
        previous: Option<&LiveService>,
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
        let policy = HealthPolicy::default();
        let proxy = BalancedProxy::new(
            balancer.clone(),
            &self.proxy,
            "url".parse().map_err(anyhow::Error::msg)?,
            policy,
            self.transport.clone(),
        )?
        .retries(2);
        let mut chain = Chain::new(Arc::new(ProxyEndpoint(proxy))).with(Arc::new(RequestId));
        if let Some(limit) = &spec.rate_limit {
            chain = chain.with(Arc::new(RateLimit::new(
                limit.rps,
                limit.burst,
                limit.key.clone(),
                self.metrics.clone(),
            )));
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
        })
    }

    /// Read the file again and, if it is valid whole, serve it; if not,
    /// keep serving the old one and say why.
    fn reload(&self) -> Result<usize, String> {
        let Some(file) = &self.file else {
            return Err("serving the built-in example: there is no --config file to reload".into());
        };
        let config = config::load(file).map_err(|e| e.to_string())?;
        let old = self.routes.load();
        let routes = self
            .build(&config, Some(&old))
            .map_err(|e| format!("{e:#}"))?;
        let count = routes.services.len();
        self.routes.store(Arc::new(routes));
        Ok(count)
    }

    /// The reload, logged.
    fn reload_logged(&self, why: &str) -> Result<usize, String> {
        let reloaded = self.reload();
        match &reloaded {
            Ok(count) => tracing::info!("{why}: reloaded, {count} services"),
            Err(e) => tracing::warn!("{why}: not reloaded, the old config keeps serving: {e}"),
        }
        reloaded
    }

    /// `POST /services/{name}/drain?upstream=URL` (or `undrain`).
    fn drain(&self, name: &str, upstream: &str, drained: bool) -> Result<String, String> {
        let routes = self.routes.load();
        let service = routes
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
                serde_json::json!({
                    "name": service.spec.name,
                    "host": service.spec.host,
                    "path_prefix": service.spec.path_prefix,
                    "balance": service.spec.balance.name(),
                    "upstreams": upstreams,
                })
            })
            .collect();
        serde_json::json!({ "services": services })
    }
}

/// Start the gateway (and the real servers, for the example).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let config = match &args.config {
        Some(path) => config::load(path)?,
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
            config
        }
    };
    let mut gateway = Gateway {
        routes: ArcSwap::from_pointee(Routes {
            matches: Vec::new(),
            services: Vec::new(),
        }),
        file: args.config.clone(),
        transport: HttpTransport::new(args.proxy.transport()),
        proxy: args.proxy.clone(),
        metrics: Arc::new(Metrics::new()),
    };
    gateway.routes = ArcSwap::from_pointee(gateway.build(&config, None)?);
    let gateway = Arc::new(gateway);
    if gateway.file.is_some() {
        launched.push_task(tokio::spawn(reload_on_sighup(gateway.clone())));
    }
    let trusted = Arc::new(args.proxy.trusted_proxies());
    let listener = binder.bind(config.listen).await?;
    let serving = gateway.clone();
    let server = Server::new(listener, "gateway")
        .options(args.proxy.server_options())
        .spawn(move |peer| {
            let (gateway, trusted) = (serving.clone(), trusted.clone());
            let conn = ClientConn::new(peer, "http");
            service_fn(move |req: Request<Incoming>| {
                let gateway = gateway.clone();
                let client = trusted
                    .client_of(&conn, req.headers())
                    .unwrap_or_else(|| conn.clone());
                async move { Ok::<_, Infallible>(route(&gateway, client, req).await) }
            })
        })?;
    launched.push(server);
    if let Some(admin) = &config.admin {
        launched.push(admin::spawn(
            binder.bind(admin.listen).await?,
            gateway,
            admin.token.clone(),
        )?);
    }
    Ok(launched)
}

/// Send `req` to its service, or answer 404.
async fn route(
    gateway: &Gateway,
    client: ClientConn,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let routes = gateway.routes.load_full();
    let host = request_host(req.headers(), req.uri())
        .ok()
        .flatten()
        .map(|a| a.host().to_ascii_lowercase());
    let Some(index) = router::route(&routes.matches, host.as_deref(), req.uri().path()) else {
        return text_response(
            StatusCode::NOT_FOUND,
            format!(
                "no service takes host {} and path {}",
                host.as_deref().unwrap_or("(none)"),
                req.uri().path()
            ),
        );
    };
    let service = &routes.services[index];
    if let Some(prefix) = &service.strip {
        *req.uri_mut() = router::strip(req.uri(), prefix);
    }
    tracing::debug!(
        "{} {} → service {}",
        req.method(),
        req.uri(),
        service.spec.name
    );
    let ctx = Ctx::new(client);
    service.chain.serve(req, &ctx).await
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
                Ok(count) => text_response(StatusCode::OK, format!("reloaded: {count} services")),
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
