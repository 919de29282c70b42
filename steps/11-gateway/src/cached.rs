//! A service's `cache`: step 09's cache as the end of its chain, its
//! numbers in `/metrics`, and the admin's purge.
//!
//! The cache sits where step 05's proxy endpoint would: after the
//! service's rate limit, auth, rewrite and header edits, so a hit is
//! counted, limited and authorised like any request, and the store is
//! keyed by the path as it is forwarded. The service's breaker moves
//! behind the cache, in front of the upstreams it guards: an open breaker
//! refuses what would go upstream, while the store goes on answering what
//! it holds (stale too, where `stale-if-error` allows), and hits neither
//! close a half-open breaker nor dilute its error rate.
//!
//! A reload keeps a service's store while its cache settings and its
//! request header edits stay the same — its upstreams may change — and
//! starts an empty one otherwise (moka cannot resize a store, and answers
//! the origin gave to other headers may differ).
//!
//! On the fast engine a cached service's connections go to hyper, as those
//! of services with HTTPS upstreams do: step 10's engine ties an upstream
//! exchange to the client that started it, while one of the cache's
//! flights serves every client waiting for its URL and outlives any of
//! them (NOTES chapter 11 measures what that costs a hit).

use std::borrow::Cow;
use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use middleware::stats::Metrics;
use middleware::{Ctx, Endpoint};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use proxy_core::ProxyBody;
use step05_middleware::reported;
use step07_https::upstream_tls::HttpsTransport;
use step09_cache::{Cache, CacheCounters};

use crate::gateway::{Gateway, LiveService};
use crate::{canonical, router};

/// The cache of one service, as the gateway runs it.
pub(crate) type ServiceCache = Arc<Cache<HttpsTransport>>;

/// The cache as the chain's endpoint.
pub(crate) struct CacheEndpoint(pub(crate) ServiceCache);

impl Endpoint for CacheEndpoint {
    fn call<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        // A hit, or a request that rode another's exchange, has no
        // upstream of its own: it counts under `-`.
        Box::pin(async move { reported(ctx, self.0.handle_reporting(&ctx.client, req).await) })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    service: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

/// Every service's cache counters, by service.
#[derive(Default)]
pub(crate) struct CacheMetrics {
    answers: Family<AnswerLabels, Counter>,
    collapsed: Family<ServiceLabels, Counter>,
    served_bytes: Family<ServiceLabels, Counter>,
}

impl CacheMetrics {
    /// Expose the counters in `metrics`, and each cache's stored bytes as
    /// `gateway` holds them when `/metrics` is read.
    pub(crate) fn register_in(&self, metrics: &mut Metrics, gateway: Weak<Gateway>) {
        metrics.register(
            "cache_requests",
            "Answers of services' caches, by service and result: hit, stale (served stale: max-stale, stale-while-revalidate, stale-if-error), miss, revalidated (a 304 from upstream), bypass (not cacheable: other methods, bodies, upgrades)",
            self.answers.clone(),
        );
        metrics.register(
            "cache_collapsed",
            "Requests that rode another request's upstream exchange for the same URL",
            self.collapsed.clone(),
        );
        metrics.register(
            "cache_served_bytes",
            "Body bytes answered from the cache (hit, stale, revalidated)",
            self.served_bytes.clone(),
        );
        metrics.register_collector(Box::new(StoredBytes(gateway)));
    }

    /// The counters of `service`'s cache (the same ones again after a
    /// reload: the numbers go on).
    pub(crate) fn counters(&self, service: &str) -> CacheCounters {
        let labels = ServiceLabels {
            service: service.to_owned(),
        };
        CacheCounters::new(
            |outcome| {
                self.answers
                    .get_or_create(&AnswerLabels {
                        service: service.to_owned(),
                        result: outcome.label(),
                    })
                    .clone()
            },
            self.collapsed.get_or_create(&labels).clone(),
            self.served_bytes.get_or_create(&labels).clone(),
        )
    }
}

/// `proxy_cache_stored_bytes{service}`, read from the caches of the
/// services serving now.
struct StoredBytes(Weak<Gateway>);

impl std::fmt::Debug for StoredBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredBytes")
    }
}

impl Collector for StoredBytes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(gateway) = self.0.upgrade() else {
            return Ok(());
        };
        let routes = gateway.routes.load();
        let mut family = encoder.encode_descriptor(
            "cache_stored_bytes",
            "Bytes each service's cache holds now (bodies, headers, keys)",
            None,
            MetricType::Gauge,
        )?;
        for service in &routes.table.services {
            if let Some(cache) = &service.cache {
                let labels = ServiceLabels {
                    service: service.spec.name.clone(),
                };
                let bytes = i64::try_from(cache.stored_bytes()).unwrap_or(i64::MAX);
                ConstGauge::new(bytes).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// What a purge request asked, once read.
struct PurgeTarget<'a> {
    /// The path as clients ask for it (canonical).
    path: Cow<'a, str>,
    query: Option<&'a str>,
    /// A final `*`: every path it starts.
    prefix: bool,
}

/// `raw` as a request line carries it: what is not printable ASCII
/// (a space, `é` from a decoded `%C3%A9`) percent-encoded, as clients send
/// it and the store keeps it.
fn as_sent(raw: &str) -> Cow<'_, str> {
    if raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Cow::Borrowed(raw);
    }
    let mut sent = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_graphic() {
            sent.push(char::from(byte));
        } else {
            sent.push_str(&format!("%{byte:02X}"));
        }
    }
    Cow::Owned(sent)
}

fn purge_target(raw: &str) -> Result<PurgeTarget<'_>, String> {
    if !raw.starts_with('/') {
        return Err(format!(
            "purge needs ?path=/a/path (a query after it, or a final * for every path it starts), not {raw:?}"
        ));
    }
    let (path, query) = match raw.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (raw, None),
    };
    let prefix = query.is_none() && path.ends_with('*');
    let path = canonical::path(path.strip_suffix('*').filter(|_| prefix).unwrap_or(path))?;
    Ok(PurgeTarget {
        path,
        query,
        prefix,
    })
}

/// Is `path` one `prefix` routes (whole segments, as the router matches)?
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix.trim_end_matches('/'))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', ';']))
}

impl LiveService {
    /// The path `raw` (as a client asks for it, decoded) as this service
    /// forwards it — its prefix stripped, its rewrite applied — in
    /// `Cache::purge`'s terms.
    fn forwarded_purge_path(&self, raw: &str) -> Result<String, String> {
        let sent = as_sent(raw);
        let target = purge_target(&sent)?;
        if target.prefix && self.rewrite.is_some() {
            // A rewrite is written for whole paths: through one, a prefix
            // may come out unchanged and match nothing, silently.
            return Err(format!(
                "service {} rewrites its paths, so a prefix (*) cannot be purged through it: name each path",
                self.spec.name
            ));
        }
        let prefix = &self.spec.path_prefix;
        if !under(&target.path, prefix) {
            return Err(format!(
                "{raw} is not a path of service {} (its path_prefix is {prefix})",
                self.spec.name
            ));
        }
        let mut path = match &self.strip {
            Some(prefix) => router::strip_path(&target.path, prefix).into_owned(),
            None => target.path.into_owned(),
        };
        if let Some(rewritten) = self.rewrite.as_ref().and_then(|r| r.apply(&path)) {
            path = rewritten;
        }
        if let Some(query) = target.query {
            path = format!("{path}?{query}");
        } else if target.prefix {
            path.push('*');
        }
        Ok(path)
    }
}

impl Gateway {
    /// `POST /services/{name}/purge?path=P`: drop what `name`'s cache
    /// stored for `P`.
    pub(crate) fn purge(&self, name: &str, raw: &str) -> Result<String, (StatusCode, String)> {
        let routes = self.routes.load();
        let service = routes
            .table
            .service(name)
            .map_err(|why| (StatusCode::NOT_FOUND, why))?;
        let Some(cache) = &service.cache else {
            return Err((
                StatusCode::CONFLICT,
                format!(
                    "service {name:?} has no cache (its entry sets no cache = {{ size = ... }})"
                ),
            ));
        };
        let forwarded = service
            .forwarded_purge_path(raw)
            .map_err(|why| (StatusCode::BAD_REQUEST, why))?;
        let purged = cache.purge(&forwarded);
        let said = format!(
            "purged {purged} stored URL(s) for {raw} (forwarded as {forwarded}) from service {name}"
        );
        tracing::info!("{said}");
        Ok(said)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_names_a_path_a_query_or_a_prefix() {
        let target = purge_target("/a/../b?x=1").unwrap();
        assert_eq!(
            (&*target.path, target.query, target.prefix),
            ("/b", Some("x=1"), false)
        );
        let target = purge_target("/static/*").unwrap();
        assert_eq!((&*target.path, target.prefix), ("/static/", true));
        assert!(purge_target("static").is_err());
        assert!(purge_target("").is_err());
    }

    #[test]
    fn a_decoded_path_is_spelled_as_clients_send_it() {
        assert_eq!(as_sent("/caf\u{e9} x"), "/caf%C3%A9%20x");
        assert!(matches!(as_sent("/plain?q=1"), Cow::Borrowed("/plain?q=1")));
    }

    #[test]
    fn a_service_purges_only_its_own_paths() {
        assert!(under("/api", "/api"));
        assert!(under("/api/x", "/api"));
        assert!(under("/api;v=2", "/api/"));
        assert!(!under("/apix", "/api"));
        assert!(under("/anything", "/"));
        assert!(!under("/ap", "/api"));
    }
}
