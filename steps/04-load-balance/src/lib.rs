//! Step 04: the ReverseProxy of step 03 in front of several upstreams.
//!
//! The seed's `NewLoadBalanceReverseProxy` asks the load balancer for an
//! address inside the director, and panics when there is none (the seed
//! leaves that as a to-do, its "optimisation point 3").
//! Here the choice happens *before* the director, in [`BalancedProxy::handle`]:
//!
//! 1. compute the request's hash key (only for hashing strategies);
//! 2. ask the [`Balancer`] for an upstream — a healthy one, or any when
//!    none is (panic mode, see `load_balance::health`);
//! 3. serve the request with step 03's `serve_with` and a route made for
//!    this request ([`Attempts`]), which points it at the choice (step 03's
//!    `point_at`) — the pick never has to travel inside the request — and,
//!    when an attempt fails, at another upstream if that is safe
//!    ([`retry`] says when);
//! 4. report each outcome for passive health (a failed connection or a
//!    timeout; a status only if `--fail-status` lists it), and count the
//!    request as in flight until its response body has been sent, for
//!    least-connections and bounded loads.

pub mod journey;
pub mod retry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use demo_backends::TRIO;
use hyper::http::request::Parts;
use hyper::{Request, Response, Uri};
use load_balance::{
    ActiveChecks, Balancer, HashKey, HealthPolicy, InFlight, Kind, Options, Upstream,
};
use proxy_core::ProxyBody;
use proxy_core::{ClientConn, IntoRequestBody, Transport};
use serving::{Binder, Launched, Server};
use step03_reverse_proxy::director::point_at;
use step03_reverse_proxy::{
    HttpTransport, ProxyError, ProxyOptions, ProxySettings, ReverseProxy, Route, UpgradeHandler,
};
use tokio::task::JoinHandle;
use tracing::debug;

use journey::Journey;
use retry::{Retries, RetryCounters};

/// Command line of `step04-load-balance`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step04-load-balance",
    about = "Step 04: a reverse proxy balancing over several upstreams, with health checks"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2002")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub balance: BalanceOptions,
    #[command(flatten)]
    pub proxy: ProxyOptions,
}

/// The balancing flags (step 05 flattens them into its own command line).
#[derive(clap::Args, Debug, Clone)]
pub struct BalanceOptions {
    /// An upstream, optionally weighted: http://127.0.0.1:2003,weight=3.
    /// Repeat for more. Without any, three real servers start in-process on
    /// 127.0.0.1:2003, :2004 and :2005 with weights 1, 2 and 3.
    #[arg(long = "upstream", value_name = "URL[,weight=N]", value_parser = parse_upstream)]
    pub upstreams: Vec<(Uri, u32)>,
    /// How to pick an upstream for each request.
    #[arg(
        long,
        value_name = "STRATEGY",
        default_value = "round-robin",
        value_parser = load_balance::kind_parser(),
    )]
    pub balance: Kind,
    /// What consistent hashing hashes: url, client-ip or header:NAME.
    #[arg(long, value_name = "KEY", default_value = "url")]
    pub hash_key: HashKey,
    /// Probe this path on every upstream (active health checks).
    #[arg(long, value_name = "PATH", value_parser = parse_path)]
    pub health_path: Option<String>,
    /// How often to probe, e.g. 500ms, 1s, 2m.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = operator_input::duration)]
    pub health_interval: Duration,
    /// Consecutive failures that eject an upstream: connections that fail
    /// or time out, and answers with a status --fail-status lists.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fails: u32,
    /// How long an ejected upstream sits out, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = operator_input::duration)]
    pub fail_cooldown: Duration,
    /// Statuses that count as failures for passive health, e.g.
    /// 502,503,504 (none by default: any client can ask for a 503).
    #[arg(long, value_name = "CODES", value_delimiter = ',', value_parser = operator_input::status)]
    pub fail_status: Vec<u16>,
    /// Send a failed request to another upstream, at most N times (0: never).
    /// Any request that never reached an upstream; one that may have, only
    /// if idempotent with a small body — a POST is never sent twice.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
}

impl BalanceOptions {
    /// What these flags say, as plain data.
    pub fn settings(&self) -> BalanceSettings {
        BalanceSettings {
            balance: self.balance,
            hash_key: self.hash_key.clone(),
            health: HealthSettings {
                path: self.health_path.clone(),
                interval: self.health_interval,
                max_fails: self.max_fails,
                cooldown: self.fail_cooldown,
                fail_status: self.fail_status.clone(),
            },
            retries: self.retries,
        }
    }
}

/// `URL[,weight=N]`: the schemes this step's transport speaks, and those
/// step 07's does (it refuses `https://` at start if it cannot reach it).
pub fn parse_upstream(raw: &str) -> Result<(Uri, u32), String> {
    operator_input::weighted_url(raw, &["http", "h2c", "https"])
}

/// A health-check path starts with `/`.
pub fn parse_path(raw: &str) -> Result<String, String> {
    if raw.starts_with('/') {
        Ok(raw.to_owned())
    } else {
        Err(format!("{raw:?}: a path starts with /, e.g. /health"))
    }
}

/// How a balanced proxy picks, checks and retries, as plain data: the flags
/// fill it ([`BalanceOptions::settings`]), and so does a gateway service.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceSettings {
    pub balance: Kind,
    /// What consistent hashing hashes.
    pub hash_key: HashKey,
    pub health: HealthSettings,
    /// At most this many further upstreams for a failed request.
    pub retries: u32,
}

impl Default for BalanceSettings {
    fn default() -> Self {
        Self {
            balance: Kind::RoundRobin,
            hash_key: HashKey::Url,
            health: HealthSettings::default(),
            retries: 2,
        }
    }
}

/// Active checks and passive ejection.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    /// Probe this path on every upstream, if set.
    pub path: Option<String>,
    pub interval: Duration,
    /// Consecutive failures that eject an upstream (at least 1).
    pub max_fails: u32,
    /// How long an ejected upstream sits out.
    pub cooldown: Duration,
    /// Statuses that count as failures (none: only failed connections).
    pub fail_status: Vec<u16>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            path: None,
            interval: Duration::from_secs(1),
            max_fails: 3,
            cooldown: Duration::from_secs(10),
            fail_status: Vec::new(),
        }
    }
}

impl HealthSettings {
    /// Passive health's rule.
    pub fn policy(&self) -> HealthPolicy {
        HealthPolicy {
            max_fails: self.max_fails.max(1),
            cooldown: self.cooldown,
        }
    }

    /// Start the active checks on `balancer`'s set, if a path is set.
    pub fn spawn_checks<T: Transport>(
        &self,
        balancer: &Arc<Balancer>,
        transport: &T,
    ) -> Option<JoinHandle<()>> {
        let path = self.path.clone()?;
        Some(ActiveChecks::new(path, self.interval).spawn(balancer.clone(), transport.clone()))
    }
}

/// Step 03's proxy with a balancer in front.
pub struct BalancedProxy<T = HttpTransport> {
    balancer: Arc<Balancer>,
    proxy: ReverseProxy<T>,
    hash_key: HashKey,
    policy: HealthPolicy,
    /// Statuses that count as failures (`--fail-status`).
    fail_statuses: Vec<u16>,
    retries: Retries,
}

impl<T: Transport> BalancedProxy<T> {
    /// Balance over `balancer`'s set as `settings` say, forwarding as
    /// `proxy` says, sending upstream through `transport`.
    pub fn new(
        balancer: Arc<Balancer>,
        settings: &BalanceSettings,
        proxy: &ProxySettings,
        transport: T,
    ) -> Self {
        Self {
            balancer,
            // No director of its own: each request is directed at the
            // upstream picked for it (`handle_reporting`).
            proxy: proxy.build(None, transport),
            hash_key: settings.hash_key.clone(),
            policy: settings.health.policy(),
            fail_statuses: settings.health.fail_status.clone(),
            retries: Retries {
                max: settings.retries,
                ..Retries::default()
            },
        }
    }

    /// Count retries into `counters` (a gateway's services share one set).
    pub fn count_retries_in(mut self, counters: RetryCounters) -> Self {
        self.retries.counters = counters;
        self
    }

    /// The retry counters, for a metrics page.
    pub fn retry_counters(&self) -> RetryCounters {
        self.retries.counters.clone()
    }

    /// Hand accepted upgrades to `handler` (step 06: websocket-aware tunnels).
    pub fn on_upgrade(mut self, handler: UpgradeHandler) -> Self {
        self.proxy = self.proxy.on_upgrade(handler);
        self
    }

    pub async fn handle(
        &self,
        client: &ClientConn,
        req: Request<impl IntoRequestBody>,
    ) -> Response<ProxyBody> {
        self.handle_reporting(client, req).await.0
    }

    /// [`handle`](Self::handle), also saying which upstream served (none
    /// when the request was refused before one was picked).
    pub async fn handle_reporting(
        &self,
        client: &ClientConn,
        req: Request<impl IntoRequestBody>,
    ) -> (Response<ProxyBody>, Option<Arc<Upstream>>) {
        let path = req.uri().path().as_bytes();
        let journey = match Journey::begin(self, &req, path, client.client_ip()) {
            Ok(journey) => journey,
            Err(refusal) => return (refusal.into_response(), None),
        };
        // Only keep the path around when it will be logged.
        let path = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().path().to_owned());
        let mut attempts = Attempts { journey };
        let response = self.proxy.serve_with(client, req, &mut attempts).await;
        let mut journey = attempts.journey;
        let upstream = journey.upstream().clone();
        // A failed attempt was reported when it failed; an answer is
        // reported now. A request its client abandoned says nothing about
        // the upstream.
        if journey.was_abandoned() {
            debug!("the client abandoned its request to {upstream}; not counted against it");
        }
        journey.answered(response.status().as_u16());
        if let Some(path) = path {
            debug!("{path} → {upstream} ({})", response.status());
        }
        // The request stays in flight until its body has been sent.
        let response = match journey.take_in_flight() {
            Some(in_flight) => response.map(|body| {
                proxy_core::observe(body, move |_| {
                    let _ = &in_flight;
                })
            }),
            None => response,
        };
        (response, Some(upstream))
    }

    /// Count a request as in flight on `upstream` — two atomic updates and
    /// a wrapper around the body, so only for the strategies that read it.
    fn start(&self, upstream: &Arc<Upstream>) -> Option<InFlight> {
        self.balancer
            .kind()
            .uses_load()
            .then(|| self.balancer.start(upstream))
    }
}

/// One request's [`Journey`] as step 03's engine drives it: pointed at its
/// upstream, and at another when an attempt fails and may go again.
pub struct Attempts<'a, T> {
    journey: Journey<&'a BalancedProxy<T>>,
}

impl<T: Transport> Route for Attempts<'_, T> {
    fn direct(&mut self, parts: &mut Parts) {
        let upstream = self.journey.upstream();
        point_at(parts, &upstream.url, upstream.host.as_ref());
    }

    fn keeps_copies(&self) -> bool {
        self.journey.retries()
    }

    fn abandoned(&mut self) {
        self.journey.abandon();
    }

    fn failed(&mut self, error: &ProxyError, again: Option<&mut Parts>) -> bool {
        let label = RequestLabel(again.as_deref());
        let retried = self
            .journey
            .failed(&error.to_string(), again.is_some(), label);
        if let (true, Some(parts)) = (retried, again) {
            let upstream = self.journey.upstream();
            point_at(parts, &upstream.url, upstream.host.as_ref());
        }
        retried
    }
}

/// `METHOD path`, for a log line about one request, written only if the
/// line is. (From step 05 on, the line also carries the request id: its
/// middleware opens a span with it.)
struct RequestLabel<'a>(Option<&'a Parts>);

impl std::fmt::Display for RequestLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(parts) => write!(f, "{} {}", parts.method, parts.uri.path()),
            None => Ok(()),
        }
    }
}

/// Build the balanced proxy the flags describe, starting what it needs
/// (demo real servers, health checks) into `launched`.
pub async fn build(
    balance: &BalanceOptions,
    proxy: &ProxyOptions,
    binder: &Binder,
    launched: &mut Launched,
) -> anyhow::Result<BalancedProxy> {
    let transport = HttpTransport::new(proxy.transport());
    build_with(balance, &proxy.settings(), binder, launched, transport).await
}

/// [`build`], forwarding as `proxy` says and sending upstream through
/// `transport`.
pub async fn build_with<T: Transport>(
    balance: &BalanceOptions,
    proxy: &ProxySettings,
    binder: &Binder,
    launched: &mut Launched,
    transport: T,
) -> anyhow::Result<BalancedProxy<T>> {
    let upstreams =
        demo_backends::upstreams_or_demo(&balance.upstreams, &TRIO, "http", binder, launched)
            .await?;
    for (url, _) in &upstreams {
        let scheme = url.scheme_str().unwrap_or("http");
        if !transport.speaks(scheme) {
            anyhow::bail!(
                "{url}: this step speaks plain http to upstreams; https upstreams need step07-https"
            );
        }
    }
    let set: Vec<Arc<Upstream>> = upstreams
        .into_iter()
        .map(|(url, weight)| Upstream::new(url, weight))
        .collect();
    let settings = balance.settings();
    tracing::info!(
        "balancing with {} over {}",
        settings.balance,
        set.iter()
            .map(|u| format!("{u} (weight {})", u.weight))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let balancer = Arc::new(Balancer::new(settings.balance, set, Options::default())?);
    if let Some(checks) = settings.health.spawn_checks(&balancer, &transport) {
        launched.push_task(checks);
    }
    Ok(BalancedProxy::new(balancer, &settings, proxy, transport))
}

/// Start the balanced proxy (and the real servers, when no upstream was given).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let proxy = Arc::new(build(&args.balance, &args.proxy, binder, &mut launched).await?);
    let listener = binder.bind(args.listen).await?;
    let server = Server::new(listener, "balanced proxy")
        .options(args.proxy.serve.server_options())
        .serve_clients(args.proxy.serve.trusted_proxies(), move |client, req| {
            let proxy = proxy.clone();
            async move { proxy.handle(&client, req).await }
        })?;
    launched.push(server);
    Ok(launched)
}
