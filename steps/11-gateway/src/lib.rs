//! Step 11: `step11_gateway`, the gateway — many services behind one
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
//! Two engines move the bytes (NOTES chapter 11, "Two engines"): by
//! default step 10's serves HTTP/1.1 clients, plain and TLS, asking the
//! gateway at each decision (`fast`), with hyper behind it on the same
//! listeners for HTTP/2 clients and for services whose upstreams speak
//! h2c or https or that keep a cache; `engine = "hyper"` serves
//! everything with hyper.
//!
//! A service may keep step 09's shared cache in front of its upstreams
//! (`cache = { size = "64MiB" }`, `cached`): its answers counted in
//! `/metrics`, its entries dropped by `POST /services/NAME/purge?path=`.
//!
//! Around the routes, what a team running the gateway for others needs:
//! apps (tenants) that trade an id and a secret for a token at `POST
//! /oauth/tokens` and are held to their quotas on `open_auth` services
//! (`apps`); every request counted per service, per app and in total by
//! hour (`statistics`, in Redis with `[redis]`); TCP services, step 08's
//! proxy on listeners of their own, from the same file (`tcp_services`);
//! and a dashboard on the admin listener (`dashboard`).
//!
//! The rooms: [`config`] reads and checks the file; `canonical` gives every
//! request one spelling of its path and host; [`router`] picks a service;
//! `gateway` turns a config into routes; `fast` answers step 10's engine;
//! `reload` swaps them; `apps`, `statistics` and `tcp_services` are the
//! paragraph above; `admin` is the admin API, `admin_guard` what slows
//! down guessing its token, `dashboard` its page.
//!
//! A service may also `discover` upstreams in ZooKeeper (`discovered`,
//! following `discovery::watch`).
//!
//! Left out on purpose: changing the HTTP listeners on reload (they are
//! read at start; a reload that changes them says so).

mod admin;
mod admin_guard;
mod apps;
mod cached;
mod canonical;
pub mod config;
mod dashboard;
mod discovered;
mod fast;
mod gateway;
mod reload;
pub mod router;
mod statistics;
mod tcp_services;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::Uri;
use middleware::{Ctx, grpc};
use proxy_core::DEFAULT_CLIENT_BODY_TIMEOUT;
use serving::{Binder, Launched, ServeFlags, Server};
use shared_limit::SharedLimits;
use step03_reverse_proxy::TransportOptions;
use step06_websocket::Tunnels;
use step07_https::certificates;
use step07_https::upstream_tls::{HttpsTransport, UpstreamTrust};
use step10_fast_path::buffers::Store;
use step10_fast_path::exchange::{self, FastPath, Settings};

pub use apps::client_credentials;
use config::Engine;
use fast::FastGateway;
use gateway::Gateway;
use tcp_services::TcpServices;

/// The example configuration, served when no `--config` is given.
pub const EXAMPLE: &str = include_str!("../gateway.toml");

/// Websockets: closed after this long without a frame either way, and at
/// most this many open (step 06's defaults).
const WEBSOCKET_IDLE: Duration = Duration::from_secs(60);
const MAX_WEBSOCKETS: usize = 10_000;

/// Command line of `step11-gateway`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step11-gateway",
    about = "Step 11: a gateway routing requests to services by host and path, from a TOML config"
)]
pub struct Args {
    /// The configuration file. Without it, the example
    /// (steps/11-gateway/gateway.toml) is served, with real servers started
    /// in-process on 127.0.0.1:2003, :2004 and :2005.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Reload when the file changes (it is read every half second), as well
    /// as on SIGHUP and POST /reload.
    #[arg(long, requires = "config")]
    pub watch: bool,
    /// Threads, trusted proxies and the limits on clients. (How each
    /// service forwards is its own table's business.)
    #[command(flatten)]
    pub serve: ServeFlags,
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
            let mut config = config::parse(EXAMPLE, "steps/11-gateway/gateway.toml")?;
            launched.extend(demo_backends::start(binder, &demo_backends::TRIO).await?);
            // A test's binder put the real servers on other ports.
            let moved = binder.bound();
            let upstreams = config
                .services
                .iter_mut()
                .flat_map(|s| &mut s.upstreams)
                .chain(
                    config
                        .tcp_services
                        .iter_mut()
                        .flat_map(|s| &mut s.upstreams),
                );
            for (uri, _) in upstreams {
                *uri = moved_to(uri, &moved);
            }
            (config, EXAMPLE.to_owned())
        }
    };
    let trust = match &config.upstream_ca {
        Some(ca) => UpstreamTrust::CaFile(ca.clone()),
        None => UpstreamTrust::SystemRoots,
    };
    let transport = HttpsTransport::new(&trust, &TransportOptions::default())?;
    let tunnels = Tunnels::new(WEBSOCKET_IDLE, MAX_WEBSOCKETS);
    let tcp = TcpServices::new(binder.clone(), args.serve.server_options());
    let gateway = Gateway::new(
        &config,
        args.config.clone(),
        text,
        transport,
        tunnels.clone(),
        tcp,
    );
    {
        let _first_change = gateway.changing.lock().await;
        let routes = gateway.build(&config, None)?;
        gateway.tcp.apply(&gateway.tcp_services(&config)).await?;
        gateway.serve_config(&config, routes);
    }
    let stopping = gateway.clone();
    launched.on_shutdown(move || async move {
        // Routes stop changing before the listeners close: ZooKeeper
        // sessions end with the gateway, not with its process.
        stopping.discovered.stop();
        stopping.tcp.stop_all().await
    });
    launched.on_shutdown(move || async move { tunnels.close_all().await });
    launched.push_task(tokio::spawn(statistics::flush_every_second(
        gateway.statistics.clone(),
        redis_of(&gateway),
    )));
    // The last second's counts are written before the process ends.
    let (statistics, redis) = (gateway.statistics.clone(), redis_of(&gateway));
    launched.on_shutdown(move || async move { statistics.flush(redis().as_deref()).await });
    if gateway.file.is_some() {
        launched.push_task(tokio::spawn(reload::reload_on_sighup(gateway.clone())));
    }
    if args.watch {
        launched.push_task(tokio::spawn(reload::reload_on_change(gateway.clone())));
    }
    let server = Server::new(binder.bind(config.listen).await?, "gateway")
        .options(args.serve.server_options());
    let engine = config.engine;
    launched.push(serve(engine, server, &gateway, &args.serve)?);
    if let Some(tls) = &config.tls {
        let identity = certificates::from_files(&tls.cert, &tls.key)?;
        let server = Server::new(binder.bind(tls.listen).await?, "gateway https")
            .options(args.serve.server_options())
            .tls(certificates::server_config(identity)?);
        launched.push(serve(engine, server, &gateway, &args.serve)?);
    }
    if let Some(admin) = &config.admin {
        launched.push(admin::spawn(
            binder.bind(admin.listen).await?,
            gateway,
            admin,
        )?);
    }
    Ok(launched)
}

/// Serve the gateway's routes on `server`: HTTP/1.1 clients with
/// `engine`, the rest with hyper.
fn serve(
    engine: Engine,
    server: Server,
    gateway: &Arc<Gateway>,
    serve: &ServeFlags,
) -> std::io::Result<serving::ServerHandle> {
    let server = match engine {
        Engine::Hyper => server,
        Engine::Fast => {
            let fast = fast_path(gateway, serve);
            server.http1_engine(move |stream, peer, stopping| {
                exchange::serve(fast.clone(), stream, peer, stopping)
            })
        }
    };
    let gateway = gateway.clone();
    server.serve_clients(serve.trusted_proxies(), move |client, req| {
        // The routes of this moment: a reload while the request is under
        // way does not change where it goes.
        let routes = gateway.routes.load_full();
        gateway.statistics.total().count();
        // A gRPC client reads refusals only as gRPC (middleware::grpc).
        let grpc = grpc::is_grpc(req.headers());
        async move {
            let ctx = Ctx::new(client);
            let response = routes.chain.serve(req, &ctx).await;
            if grpc {
                grpc::as_grpc(response).await
            } else {
                response
            }
        }
    })
}

/// Step 10's engine, asking the gateway at each decision.
fn fast_path(gateway: &Arc<Gateway>, serve: &ServeFlags) -> Arc<FastPath<FastGateway>> {
    let options = serve.server_options();
    Arc::new(FastPath {
        settings: Settings {
            connect_timeout: TransportOptions::default().connect_timeout,
            // Without a header timeout, an hour: the engine needs a bound.
            header_timeout: options
                .header_read_timeout
                .unwrap_or(Duration::from_secs(3600)),
            response_timeout: None,
            client_body_timeout: DEFAULT_CLIENT_BODY_TIMEOUT,
            trusted: serve.trusted_proxies(),
        },
        hooks: FastGateway(gateway.clone()),
        buffers: Store::default(),
    })
}

/// Where the statistics go at this moment: the current routes' Redis.
fn redis_of(gateway: &Arc<Gateway>) -> impl Fn() -> Option<Arc<SharedLimits>> + Send + 'static {
    let gateway = gateway.clone();
    move || gateway.routes.load().table.shared.clone()
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
