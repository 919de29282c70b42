//! Step 08: `step08_tcp_proxy`, a TCP (layer 4) proxy.
//!
//! Every step so far read HTTP: it knew where one request ended and the
//! next began, and could pick an upstream per request, add headers, retry.
//! An L4 proxy reads nothing. It accepts a connection, picks an upstream
//! *for the connection*, opens one to it, and copies bytes both ways until
//! both sides are done ([`relay`]). That is all nginx's `stream {}` and
//! HAProxy's `mode tcp` do, and it carries any protocol over TCP: Redis,
//! PostgreSQL, TLS it cannot decrypt, HTTP it does not parse.
//!
//! What it keeps from the earlier steps: the same `load_balance`
//! strategies (consistent hashing keys on the client's IP, the only key
//! there is), passive health (a connect that fails or times out counts, and
//! the connection goes to the next upstream — nothing was sent yet, so this
//! is always safe), active health (a connect check every
//! `--health-interval`), the same limits against hostile clients (and one
//! of its own for clients that connect and say nothing, [`silent`]), and a
//! graceful shutdown that stops accepting and lets open connections finish
//! for up to 10 s.
//!
//! What it cannot do, by construction: see requests (one slow request
//! holds the whole connection to one upstream; a pooled HTTP client's
//! requests all go where its connection went), add `X-Forwarded-For` (the
//! PROXY protocol, [`proxy_protocol`], is the L4 way to tell the upstream
//! who the client is), answer with an error page (a failure is a closed
//! connection), or retry once bytes have flowed.
//!
//! Left out on purpose: UDP, TLS termination (step 07 is the HTTP one),
//! SNI-based routing, and accepting the PROXY protocol from a balancer in
//! front.

pub mod proxy_protocol;
pub mod relay;
pub mod silent;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use demo_backends::PAIR;
use hyper::service::service_fn;
use hyper::{StatusCode, Uri};
use ipnet::IpNet;
use load_balance::{ActiveChecks, Balancer, HealthPolicy, Kind, Options, Outcome, Upstream};
use middleware::auth::AddressRules;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use proxy_core::{complete_response, text_response};
use serving::{Binder, ClientStream, Launched, Server, ServerOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use relay::Ended;
use silent::{Place, Places};

pub use proxy_protocol::Version as ProxyProtocol;

/// Command line of `step08-tcp-proxy`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step08-tcp-proxy",
    about = "Step 08: a TCP (L4) proxy balancing connections over upstreams, with health checks and the PROXY protocol"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2008")]
    pub listen: SocketAddr,
    /// An upstream, optionally weighted: 127.0.0.1:6379,weight=2. Repeat
    /// for more. Without any, two real servers (HTTP) start in-process on
    /// 127.0.0.1:2003 and :2004.
    #[arg(long = "upstream", value_name = "HOST:PORT[,weight=N]", value_parser = parse_upstream)]
    pub upstreams: Vec<(Uri, u32)>,
    /// How to pick an upstream for each connection (consistent hashing
    /// keys on the client's IP address).
    #[arg(
        long,
        value_name = "STRATEGY",
        default_value = "round-robin",
        value_parser = load_balance::kind_parser(),
    )]
    pub balance: Kind,
    /// Check every upstream this often by opening a TCP connection to it
    /// (off unless given), e.g. 1s.
    #[arg(long, value_name = "DURATION", value_parser = operator_input::duration)]
    pub health_interval: Option<Duration>,
    /// Consecutive failed connects that eject an upstream.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fails: u32,
    /// How long an ejected upstream sits out, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = operator_input::duration)]
    pub fail_cooldown: Duration,
    /// Give up on an upstream that has not accepted the connection in this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = operator_input::duration)]
    pub connect_timeout: Duration,
    /// Close a connection on which nothing has moved either way for this long.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = operator_input::duration)]
    pub idle_timeout: Duration,
    /// Close a connection whose client has sent nothing this long after
    /// accept, e.g. 10s (off unless given: some protocols let the server
    /// speak first). At the connection cap, the oldest silent connection
    /// gives its place to a newcomer either way.
    #[arg(long, value_name = "DURATION", value_parser = operator_input::duration)]
    pub first_byte_timeout: Option<Duration>,
    /// Tell each upstream who the client is with HAProxy's PROXY protocol,
    /// version v1 (text) or v2 (binary). The upstream must expect it.
    #[arg(long, value_name = "VERSION")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Serve /metrics (Prometheus) here.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Accept only clients in this network, e.g. 10.0.0.0/8 (repeat for
    /// more; without any, every address not denied).
    #[arg(long, value_name = "NETWORK")]
    pub allow: Vec<IpNet>,
    /// Refuse clients in this network (repeat for more; wins over --allow).
    #[arg(long, value_name = "NETWORK")]
    pub deny: Vec<IpNet>,
    /// Serve at most this many connections at once.
    #[arg(long, value_name = "N", default_value_t = serving::default_max_connections(), value_parser = operator_input::count)]
    pub max_connections: usize,
    /// At most this many connections from one client address (an IPv6 /64
    /// counts as one).
    #[arg(long = "max-connections-per-ip", value_name = "N", default_value_t = serving::default_max_connections_per_address(), value_parser = operator_input::count)]
    pub max_connections_per_address: usize,
    /// Close a connection whose client has read nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = operator_input::seconds)]
    pub send_timeout: Duration,
    /// Runtime worker threads (default: the cores this process may use).
    #[arg(long, value_name = "N", value_parser = operator_input::count)]
    pub threads: Option<usize>,
}

impl Args {
    /// The runtime `--threads` asks for ([`serving::runtime`]).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        serving::runtime(self.threads)
    }

    /// How each connection is forwarded.
    pub fn settings(&self) -> TcpSettings {
        TcpSettings {
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            first_byte_timeout: self.first_byte_timeout,
            max_connections: self.max_connections,
            proxy_protocol: self.proxy_protocol,
            health: HealthPolicy {
                max_fails: self.max_fails.max(1),
                cooldown: self.fail_cooldown,
            },
            addresses: AddressRules {
                allow: self.allow.clone(),
                deny: self.deny.clone(),
            },
        }
    }

    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            // No request heads here: an idle connection is the idle
            // timeout's business.
            header_read_timeout: None,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            send_timeout: Some(self.send_timeout),
            ..ServerOptions::default()
        }
    }
}

/// `HOST:PORT` or `HOST:PORT,weight=N`, kept as a `tcp://` URI so that the
/// balancer names it the way it names HTTP upstreams.
pub fn parse_upstream(raw: &str) -> Result<(Uri, u32), String> {
    operator_input::weighted_tcp_address(raw)
}

/// What the proxy counts, for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    connections: Counter,
    open: Gauge,
    bytes_from_clients: Counter,
    bytes_to_clients: Counter,
    connect_failures: Counter,
    idle_closes: Counter,
    silent_closes: Counter,
    crowd_closes: Counter,
    refused: Counter,
}

impl Metrics {
    /// Client connections open now.
    pub fn open_connections(&self) -> i64 {
        self.open.get()
    }

    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("tcp_proxy");
        registry.register(
            "connections",
            "Client connections accepted",
            self.connections.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections open now",
            self.open.clone(),
        );
        registry.register(
            "client_bytes",
            "Bytes from clients to upstreams (counted when a connection ends)",
            self.bytes_from_clients.clone(),
        );
        registry.register(
            "upstream_bytes",
            "Bytes from upstreams to clients (counted when a connection ends)",
            self.bytes_to_clients.clone(),
        );
        registry.register(
            "connect_failures",
            "Connects to an upstream that failed or timed out",
            self.connect_failures.clone(),
        );
        registry.register(
            "idle_closes",
            "Connections closed by the idle timeout",
            self.idle_closes.clone(),
        );
        registry.register(
            "silent_closes",
            "Connections whose client had sent nothing, closed to free their place or by the first-byte timeout",
            self.silent_closes.clone(),
        );
        registry.register(
            "crowd_closes",
            "Connections of the address holding the most places, closed at the cap to free a place when no client was silent",
            self.crowd_closes.clone(),
        );
        registry.register(
            "refused",
            "Connections closed at once: their client's address is denied or not allowed",
            self.refused.clone(),
        );
        registry
    }
}

/// How a TCP proxy forwards each connection: what step 08's flags set,
/// and what a gateway's `[[tcp_services]]` entry sets.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub first_byte_timeout: Option<Duration>,
    pub max_connections: usize,
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Failed connects that eject an upstream, and for how long.
    pub health: HealthPolicy,
    /// Who may connect.
    pub addresses: AddressRules,
}

/// The proxy's state, shared by every connection.
pub struct TcpProxy {
    balancer: Arc<Balancer>,
    policy: HealthPolicy,
    connect_timeout: Duration,
    idle_timeout: Duration,
    first_byte_timeout: Option<Duration>,
    places: Places,
    proxy_protocol: Option<ProxyProtocol>,
    addresses: AddressRules,
    metrics: Arc<Metrics>,
}

impl TcpProxy {
    pub fn new(balancer: Arc<Balancer>, settings: &TcpSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            balancer,
            policy: settings.health.clone(),
            connect_timeout: settings.connect_timeout,
            idle_timeout: settings.idle_timeout,
            first_byte_timeout: settings.first_byte_timeout,
            places: Places::new(settings.max_connections),
            proxy_protocol: settings.proxy_protocol,
            addresses: settings.addresses.clone(),
            metrics,
        }
    }

    /// The upstreams it balances over.
    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.balancer
    }

    /// What it counts.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Relay one client connection to an upstream, until both are done.
    /// A client the address rules refuse is closed at once: at layer 4
    /// there is no page to say why, only the log.
    pub async fn handle(&self, mut client: ClientStream, peer: SocketAddr) {
        let metrics = &self.metrics;
        if let Some(why) = self.addresses.refusal(peer.ip()) {
            metrics.refused.inc();
            debug!("{peer}: {why}; closed");
            return;
        }
        metrics.connections.inc();
        metrics.open.inc();
        let accepted = Instant::now();
        let (held, _) = self.places.enter(peer.ip());
        let place = &held.place;
        // A place given up while its connection is still being made is
        // free at once, not when the connect ends.
        let connected = tokio::select! {
            upstream = self.connect(peer) => upstream,
            () = place.given_up() => {
                metrics.silent_closes.inc();
                debug!("{peer}: gave up its place while connecting");
                None
            }
        };
        if let Some(mut upstream) = connected {
            if let Err(e) = self.introduce(&client, &mut upstream, peer).await {
                debug!("{peer}: cannot write the PROXY header: {e}");
            } else {
                let silence = self.silence(place, accepted);
                match relay::relay(
                    &mut client,
                    &mut upstream,
                    self.idle_timeout,
                    &place.from_client,
                    silence,
                )
                .await
                {
                    Ok(relayed) => {
                        metrics.bytes_from_clients.inc_by(relayed.sent);
                        metrics.bytes_to_clients.inc_by(relayed.received);
                        match relayed.ended {
                            Ended::Finished => {}
                            Ended::Idle => {
                                metrics.idle_closes.inc();
                                debug!("{peer}: idle for {:?}, closed", self.idle_timeout);
                            }
                            Ended::Stopped if place.spoke() => {
                                metrics.crowd_closes.inc();
                                debug!("{peer}: its address held the most places; closed");
                            }
                            Ended::Stopped => {
                                metrics.silent_closes.inc();
                                debug!("{peer}: sent nothing; closed");
                            }
                        }
                    }
                    Err(e) => debug!("{peer}: {e}"),
                }
            }
        }
        metrics.open.dec();
    }

    /// Resolves when a silent client's connection must close: its place
    /// went to a newcomer, or its first byte did not come in time.
    async fn silence(&self, place: &Place, accepted: Instant) {
        let first_byte_late = async {
            match self.first_byte_timeout {
                Some(timeout) => {
                    tokio::time::sleep_until(accepted + timeout).await;
                    if place.spoke() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = place.given_up() => {}
            () = first_byte_late => {}
        }
    }

    /// A connection to the picked upstream; a connect that fails goes to
    /// the next untried one (nothing was sent, so any connection may).
    async fn connect(&self, peer: SocketAddr) -> Option<TcpStream> {
        let key = if self.balancer.kind().uses_key() {
            peer.ip().to_canonical().to_string().into_bytes()
        } else {
            Vec::new()
        };
        let mut upstream = self.balancer.pick(&key)?;
        let mut tried: Vec<Arc<Upstream>> = Vec::new();
        loop {
            let failure = match self.open(&upstream).await {
                Ok(stream) => {
                    self.balancer
                        .report(&upstream, &self.policy, Outcome::Success);
                    return Some(stream);
                }
                Err(failure) => failure,
            };
            self.metrics.connect_failures.inc();
            self.balancer
                .report(&upstream, &self.policy, Outcome::Unreachable(&failure));
            tried.push(upstream);
            match self.balancer.pick_another(&tried) {
                Some(next) => {
                    warn!(
                        "{peer}: {} failed ({failure}); trying {next}",
                        tried[tried.len() - 1]
                    );
                    upstream = next;
                }
                None => {
                    warn!(
                        "{peer}: {} failed ({failure}); no upstream left, closing",
                        tried[tried.len() - 1]
                    );
                    return None;
                }
            }
        }
    }

    async fn open(&self, upstream: &Upstream) -> Result<TcpStream, String> {
        let address = upstream.url.authority().map_or("", |a| a.as_str());
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(e)) => Err(format!("cannot connect: {e}")),
            Err(_) => Err(format!("no connection within {:?}", self.connect_timeout)),
        }
    }

    /// The PROXY protocol header, when asked for, before any client byte.
    async fn introduce(
        &self,
        client: &ClientStream,
        upstream: &mut TcpStream,
        peer: SocketAddr,
    ) -> std::io::Result<()> {
        let Some(version) = self.proxy_protocol else {
            return Ok(());
        };
        let ours = client.get_ref().local_addr()?;
        upstream
            .write_all(&proxy_protocol::header(version, peer, ours))
            .await
    }
}

/// Check every upstream of `balancer` every `interval` by opening a TCP
/// connection to it.
pub fn spawn_health_checks(balancer: &Arc<Balancer>, interval: Duration) -> JoinHandle<()> {
    let checks = ActiveChecks::new("", interval);
    let timeout = checks.timeout;
    checks.spawn_probing(balancer.clone(), move |upstream| async move {
        let address = upstream
            .url
            .authority()
            .map_or("", |a| a.as_str())
            .to_owned();
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot connect: {e}")),
            Err(_) => Err(format!("no connection within {timeout:?}")),
        }
    })
}

/// Start the TCP proxy, its health checks and admin listener (and the real
/// servers, when no upstream was given).
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let mut launched = Launched::default();
    let upstreams =
        demo_backends::upstreams_or_demo(&args.upstreams, &PAIR, "tcp", binder, &mut launched)
            .await?;
    let set: Vec<Arc<Upstream>> = upstreams
        .into_iter()
        .map(|(url, weight)| Upstream::new(url, weight))
        .collect();
    tracing::info!(
        "balancing connections with {} over {}",
        args.balance,
        set.iter()
            .map(|u| u.url.authority().map_or(String::new(), |a| a.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let balancer = Arc::new(Balancer::new(args.balance, set, Options::default())?);
    if let Some(interval) = args.health_interval {
        launched.push_task(spawn_health_checks(&balancer, interval));
    }
    let metrics = Arc::new(Metrics::default());
    let proxy = Arc::new(TcpProxy::new(balancer, &args.settings(), metrics.clone()));
    let listener = binder.bind(args.listen).await?;
    launched.push(
        Server::new(listener, "tcp proxy")
            .options(args.server_options())
            .spawn_streams("tcp", move |client, peer, _stopping| {
                let proxy = proxy.clone();
                async move { proxy.handle(client, peer).await }
            })?,
    );
    if let Some(admin) = args.admin {
        let registry = Arc::new(metrics.registry());
        launched.push(
            Server::new(binder.bind(admin).await?, "admin").spawn(move |_| {
                let registry = registry.clone();
                service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let response = if req.uri().path() == "/metrics" {
                        let mut text = String::new();
                        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                        complete_response(
                            StatusCode::OK,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            text,
                        )
                    } else {
                        text_response(StatusCode::NOT_FOUND, "this admin listener serves /metrics")
                    };
                    async move { Ok::<_, Infallible>(response) }
                })
            })?,
        );
    }
    Ok(launched)
}
