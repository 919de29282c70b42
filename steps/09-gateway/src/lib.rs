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
//! What this step does not do yet (the rest of its issue): hot reload
//! (SIGHUP, `POST /reload`), the `[admin]` API, and rate limits shared
//! across instances through `[redis]` — those sections are read and
//! checked, not served.

pub mod config;
pub mod router;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::service::service_fn;
use hyper::{Request, StatusCode, Uri};
use middleware::rate_limit::RateLimit;
use middleware::request_id::RequestId;
use middleware::stats::Metrics;
use middleware::{Chain, Ctx};
use proxy_core::headers::request_host;
use proxy_core::{ClientConn, text_response};
use serving::{Binder, Launched, Server};
use step03_reverse_proxy::{HttpTransport, ProxyOptions};
use step04_load_balance::BalanceOptions;
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
struct Service {
    name: String,
    /// The prefix to take off the path, if `strip_prefix`.
    strip: Option<String>,
    chain: Chain,
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
    let metrics = Arc::new(Metrics::new());
    let transport = HttpTransport::new(args.proxy.transport());
    let mut matches = Vec::new();
    let mut services = Vec::new();
    for service in &config.services {
        let balance = BalanceOptions {
            upstreams: service.upstreams.clone(),
            balance: service.balance,
            hash_key: "url".parse().map_err(anyhow::Error::msg)?,
            health_path: None,
            health_interval: Duration::from_secs(1),
            max_fails: 3,
            fail_cooldown: Duration::from_secs(10),
            fail_status: Vec::new(),
            retries: 2,
        };
        let proxy = step04_load_balance::build_with(
            &balance,
            &args.proxy,
            binder,
            &mut launched,
            transport.clone(),
        )
        .await?;
        let mut chain = Chain::new(Arc::new(ProxyEndpoint(proxy))).with(Arc::new(RequestId));
        if let Some(limit) = &service.rate_limit {
            chain = chain.with(Arc::new(RateLimit::new(
                limit.rps,
                limit.burst,
                limit.key.clone(),
                metrics.clone(),
            )));
        }
        tracing::info!(
            "service {}: {}{} → {} upstream(s)",
            service.name,
            service.host.as_deref().unwrap_or("any host"),
            service.path_prefix,
            service.upstreams.len()
        );
        matches.push(router::Match {
            host: service.host.clone(),
            path_prefix: service.path_prefix.clone(),
        });
        services.push(Service {
            name: service.name.clone(),
            strip: service.strip_prefix.then(|| service.path_prefix.clone()),
            chain,
        });
    }
    let (matches, services) = (Arc::new(matches), Arc::new(services));
    let trusted = Arc::new(args.proxy.trusted_proxies());
    let listener = binder.bind(config.listen).await?;
    let server = Server::new(listener, "gateway")
        .options(args.proxy.server_options())
        .spawn(move |peer| {
            let (matches, services, trusted) = (matches.clone(), services.clone(), trusted.clone());
            let conn = ClientConn::new(peer, "http");
            service_fn(move |mut req: Request<hyper::body::Incoming>| {
                let (matches, services) = (matches.clone(), services.clone());
                let client = trusted
                    .client_of(&conn, req.headers())
                    .unwrap_or_else(|| conn.clone());
                async move {
                    let host = request_host(req.headers(), req.uri())
                        .ok()
                        .flatten()
                        .map(|a| a.host().to_ascii_lowercase());
                    let Some(index) = router::route(&matches, host.as_deref(), req.uri().path())
                    else {
                        let refusal = text_response(
                            StatusCode::NOT_FOUND,
                            format!(
                                "no service takes host {} and path {}",
                                host.as_deref().unwrap_or("(none)"),
                                req.uri().path()
                            ),
                        );
                        return Ok::<_, Infallible>(refusal);
                    };
                    let service = &services[index];
                    if let Some(prefix) = &service.strip {
                        *req.uri_mut() = router::strip(req.uri(), prefix);
                    }
                    tracing::debug!("{} {} → service {}", req.method(), req.uri(), service.name);
                    let ctx = Ctx::new(client);
                    Ok(service.chain.serve(req, &ctx).await)
                }
            })
        })?;
    launched.push(server);
    Ok(launched)
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
