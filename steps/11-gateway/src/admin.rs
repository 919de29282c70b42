//! The admin API: its own listener, a bearer token on every request.
//!
//! `GET /dashboard` (a page that shows the next two; its files need no
//! token, the data does), `GET /stats` (requests by hour, in total, per service and per app),
//! `GET /services` (every service, its upstreams with health, drain flag,
//! in-flight count, the breaker's state and its cache's size and fill), `POST /reload`, `POST
//! /services/NAME/drain?upstream=URL` (and `/undrain`), `POST
//! /services/NAME/purge?path=P` (what its cache stored for P), `GET
//! /metrics`.
//! A wrong or missing token is a 401 that says what is wanted.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use load_balance::Upstream;
use middleware::breaker::State;
use proxy_core::headers::split_credentials;
use proxy_core::{ProxyBody, complete_response, text_response};
use serving::{Server, ServerHandle};
use tokio::net::TcpListener;

use crate::admin_guard::AdminGuard;
use crate::config;
use crate::dashboard;
use crate::discovered::Protocol;
use crate::gateway::Gateway;
use crate::reload::services;
use crate::statistics::Scope;

pub(crate) fn spawn(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    admin: &config::Admin,
) -> std::io::Result<ServerHandle> {
    let guard = Arc::new(AdminGuard::new(&admin.token, admin.rps, admin.burst));
    Server::new(listener, "admin").spawn(move |peer| {
        let (gateway, guard) = (gateway.clone(), guard.clone());
        service_fn(move |req: Request<Incoming>| {
            let (gateway, guard) = (gateway.clone(), guard.clone());
            async move { Ok::<_, Infallible>(answer(&gateway, &guard, peer.ip(), &req).await) }
        })
    })
}

/// What `POST /services/NAME/ACTION` asks of service NAME.
enum ServiceAction {
    Drain(bool),
    Purge,
}

/// `/services/NAME/drain` → (NAME, drain); `/undrain`, `/purge` alike.
fn service_action(path: &str) -> Option<(&str, ServiceAction)> {
    let rest = path.strip_prefix("/services/")?;
    let (name, action) = rest.rsplit_once('/')?;
    match action {
        "drain" => Some((name, ServiceAction::Drain(true))),
        "undrain" => Some((name, ServiceAction::Drain(false))),
        "purge" => Some((name, ServiceAction::Purge)),
        _ => None,
    }
}

/// The value of `key` in a query string, percent-decoded.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
}

async fn answer(
    gateway: &Gateway,
    guard: &AdminGuard,
    client: IpAddr,
    req: &Request<Incoming>,
) -> Response<ProxyBody> {
    if !guard.admits(client) {
        let mut refusal = text_response(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "the admin API answers a client at most {} times a second",
                guard.rps()
            ),
        );
        refusal
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return refusal;
    }
    if req.method() == Method::GET
        && let Some(file) = dashboard::file(req.uri().path())
    {
        return file;
    }
    let authorized = matches!(
        req.headers().get(header::AUTHORIZATION).and_then(split_credentials),
        Some((scheme, offered))
            if scheme.eq_ignore_ascii_case("bearer") && guard.is_token(offered)
    );
    if !authorized {
        guard.wrong_token(client);
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
        (&Method::GET, "/stats") => match gateway.stats().await {
            Ok(stats) => complete_response(StatusCode::OK, "application/json", stats.to_string()),
            Err(why) => text_response(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        (&Method::POST, "/reload") => match gateway.reload_logged("POST /reload").await {
            Ok(count) => text_response(StatusCode::OK, format!("reloaded: {}", services(count))),
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
        (&Method::POST, path) if service_action(path).is_some() => {
            let (name, action) = service_action(path).expect("matched");
            let query = req.uri().query();
            let done = match action {
                ServiceAction::Drain(drained) => {
                    let upstream = query_value(query, "upstream").unwrap_or_default();
                    gateway
                        .drain(name, &upstream, drained)
                        .map_err(|why| (StatusCode::NOT_FOUND, why))
                }
                ServiceAction::Purge => {
                    gateway.purge(name, &query_value(query, "path").unwrap_or_default())
                }
            };
            match done {
                Ok(said) => text_response(StatusCode::OK, said),
                Err((status, why)) => text_response(status, why),
            }
        }
        _ => text_response(
            StatusCode::NOT_FOUND,
            "the admin API serves GET /dashboard, GET /services, GET /stats, POST /reload, POST /services/NAME/drain?upstream=URL (and /undrain), POST /services/NAME/purge?path=P, GET /metrics",
        ),
    }
}

/// One upstream, as `/services` shows it; `source` is where it came from.
fn described(upstream: &Arc<Upstream>, source: String) -> serde_json::Value {
    serde_json::json!({
        "url": upstream.url.to_string(),
        "weight": upstream.weight,
        "healthy": upstream.is_healthy(),
        "drained": upstream.is_drained(),
        "in_flight": upstream.in_flight(),
        "source": source,
    })
}

impl Gateway {
    /// `POST /services/{name}/drain?upstream=URL` (or `undrain`).
    fn drain(&self, name: &str, upstream: &str, drained: bool) -> Result<String, String> {
        let routes = self.routes.load();
        let service = routes.table.service(name)?;
        let (url, _) = step04_load_balance::parse_upstream(upstream)?;
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

    /// `GET /stats`: requests today and yesterday, by hour, in total, per
    /// service and per app.
    async fn stats(&self) -> Result<serde_json::Value, String> {
        let routes = self.routes.load_full();
        let table = &routes.table;
        let snapshot = self.statistics.snapshot(table.shared.as_deref()).await?;
        let counts_of = |scope, names: Vec<&str>| -> serde_json::Map<String, serde_json::Value> {
            names
                .into_iter()
                .map(|name| {
                    (
                        name.to_owned(),
                        serde_json::json!(snapshot.counts(scope, name)),
                    )
                })
                .collect()
        };
        let services = counts_of(
            Scope::Service,
            table
                .services
                .iter()
                .map(|s| s.spec.name.as_str())
                .collect(),
        );
        let apps = counts_of(
            Scope::App,
            table.apps.all().map(|a| a.spec.id.as_str()).collect(),
        );
        Ok(serde_json::json!({
            "total": snapshot.counts(Scope::Total, ""),
            "services": services,
            "apps": apps,
        }))
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
                        described(
                            u,
                            self.source_of(&service.spec.name, Protocol::Http, &u.url),
                        )
                    })
                    .collect();
                let breaker = service.breaker.as_ref().map(|b| match b.state() {
                    State::Closed => "closed",
                    State::Open { .. } => "open",
                    State::HalfOpen { .. } => "half-open",
                });
                let cache = service.cache.as_ref().map(|cache| {
                    serde_json::json!({
                        "size": cache.settings().size,
                        "max_entry_size": cache.settings().max_entry,
                        "stored_bytes": cache.stored_bytes(),
                    })
                });
                serde_json::json!({
                    "name": service.spec.name,
                    "host": service.spec.host,
                    "path_prefix": service.spec.path_prefix,
                    "balance": service.spec.balance.balance.name(),
                    "breaker": breaker,
                    "cache": cache,
                    "upstreams": upstreams,
                })
            })
            .collect();
        let tcp_services: Vec<serde_json::Value> = self
            .tcp
            .describe()
            .into_iter()
            .map(|tcp| {
                let source =
                    |u: &Arc<Upstream>| self.source_of(&tcp.spec.name, Protocol::Tcp, &u.url);
                let upstreams: Vec<serde_json::Value> = tcp
                    .upstreams
                    .iter()
                    .map(|u| described(u, source(u)))
                    .collect();
                serde_json::json!({
                    "name": tcp.spec.name,
                    "listen": tcp.listening.to_string(),
                    "balance": tcp.spec.balance.name(),
                    "open_connections": tcp.open_connections,
                    "upstreams": upstreams,
                })
            })
            .collect();
        serde_json::json!({
            "services": services,
            "tcp_services": tcp_services,
            "redis": routes.redis.as_ref().map(|(redis, _)| redis.url.clone()),
            "global_rate_limit": routes.global_rate_limit,
        })
    }
}
