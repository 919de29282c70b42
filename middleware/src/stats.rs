//! Statistics: what happened, counted, and served on an admin listener.
//!
//! Counting requests by status tells you the error rate; counting them by
//! upstream tells you where; a latency *histogram* (not an average) tells
//! you how slow the slow requests are — an average of 5 ms can hide one
//! request in a hundred taking two seconds, and the p99 is what users feel.
//! In-flight requests show a pile-up before latency does. The rate-limit
//! and breaker counters say how often the proxy said no by itself.
//!
//! [`Metrics`] holds them in a `prometheus-client` registry: `/metrics` on
//! the admin listener is Prometheus' text format, `/stats` a JSON summary
//! with requests per second over the last 1 and 10 seconds.
//!
//! Bytes are counted as they are seen, never as claimed: a request's body
//! bytes by the transport as it sends them upstream (through the request's
//! [`SentBytes`] extension), a response's as its body streams out. A count
//! taken from `Content-Length` would let a client add 2^63 with one header,
//! and wrap the counter with two.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::grpc::is_grpc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use proxy_core::{ProxyBody, SentBytes, complete_response};

use crate::per_second::PerSecond;
use crate::{Ctx, Middleware, Next};

/// Label values are shared or static: building the key of a counter costs
/// no allocation per request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status: u16,
    upstream: Arc<str>,
}

/// The label of a gRPC answer: its status code (`grpc-status`, 0 to 16;
/// anything else is "invalid", so a server cannot grow the metric set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    code: &'static str,
}

/// Every number the proxy keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// The request counters already made, found again under foldhash:
    /// the registry's family hashes with std's SipHash, 400 instructions a
    /// request on the fast engine. The labels are few (methods, statuses,
    /// upstreams), so this stays small.
    request_counters: RwLock<HashMap<RequestLabels, Counter, foldhash::fast::RandomState>>,
    /// gRPC calls by status: the HTTP status of a gRPC answer is 200 even
    /// when the call failed; the outcome is `grpc-status`, in the trailers.
    grpc: Family<GrpcLabels, Counter>,
    /// The `upstream` label of a response no upstream served.
    no_upstream: Arc<str>,
    duration: Histogram,
    bytes_in: Counter,
    /// Given to every request, for the transport to count into `bytes_in`.
    sent_bytes: SentBytes,
    bytes_out: Counter,
    in_flight: Gauge,
    rate_limited: Counter,
    pub(crate) breaker_rejected: Counter,
    pub(crate) breaker_state: Gauge,
    /// Requests per second; 11 buckets, so the last 10 complete seconds
    /// are all there beside the current one. Seconds come from the clock
    /// read that starts each request's latency: no second read.
    per_second: PerSecond<11>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        let grpc = Family::<GrpcLabels, Counter>::default();
        // Doubling bounds from 0.5 ms to about 16 s: fine where proxies
        // live, and still able to show a request that took seconds.
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let (bytes_in, bytes_out, in_flight) =
            (Counter::default(), Counter::default(), Gauge::default());
        let (rate_limited, breaker_rejected, breaker_state) =
            (Counter::default(), Counter::default(), Gauge::default());
        registry.register(
            "requests",
            "Requests answered, by method, status and upstream",
            requests.clone(),
        );
        registry.register(
            "grpc_responses",
            "gRPC calls answered, by grpc-status (from the trailers, or a trailers-only head)",
            grpc.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the response head",
            duration.clone(),
        );
        registry.register(
            "request_bytes",
            "Request body bytes sent upstream",
            bytes_in.clone(),
        );
        registry.register(
            "response_bytes",
            "Response body bytes sent",
            bytes_out.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being handled now",
            in_flight.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests answered 429 by the rate limiter",
            rate_limited.clone(),
        );
        registry.register(
            "breaker_rejected",
            "Requests refused by the circuit breaker or the concurrency cap",
            breaker_rejected.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker: 0 closed, 1 open, 2 half-open",
            breaker_state.clone(),
        );
        Self {
            registry,
            requests,
            request_counters: RwLock::default(),
            grpc,
            no_upstream: Arc::from("-"),
            duration,
            sent_bytes: {
                let counter = bytes_in.clone();
                SentBytes(Arc::new(move |n| {
                    counter.inc_by(n);
                }))
            },
            bytes_in,
            bytes_out,
            in_flight,
            rate_limited,
            breaker_rejected,
            breaker_state,
            per_second: PerSecond::new(),
        }
    }

    /// Also expose `metric`, kept by someone else (step 04's retries).
    pub fn register(
        &mut self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry.register(name, help, metric);
    }

    /// Also expose what `collector` reads when the metrics are (a number
    /// someone else holds, like the bytes in the gateway's caches).
    pub fn register_collector(
        &mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) {
        self.registry.register_collector(collector);
    }

    /// One more request answered with `status` by `upstream`.
    fn count_request(&self, method: &'static str, status: u16, upstream: &Arc<str>) {
        let labels = RequestLabels {
            method,
            status,
            upstream: upstream.clone(),
        };
        let counters = &self.request_counters;
        if let Some(counter) = counters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&labels)
        {
            counter.inc();
            return;
        }
        let counter = self.requests.get_or_create(&labels).clone();
        counter.inc();
        counters
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(labels, counter);
    }

    /// One more request refused by a rate limiter (this crate's, or one
    /// kept elsewhere, like the gateway's limits shared through Redis).
    pub fn count_rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Prometheus' text exposition format.
    pub fn prometheus_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// A JSON summary for people: totals, QPS, the limiter and breaker.
    pub fn summary(&self) -> serde_json::Value {
        let now = self.per_second.second(Instant::now());
        let requests = |ago: u64| {
            now.checked_sub(ago)
                .map_or(0, |s| self.per_second.counts(s).0)
        };
        // The last complete second, and the mean of the last ten.
        let qps_1s = requests(1);
        let qps_10s = (1..=10).map(requests).sum::<u64>() as f64 / 10.0;
        serde_json::json!({
            "in_flight": self.in_flight.get(),
            "qps_1s": qps_1s,
            "qps_10s": qps_10s,
            "request_bytes": self.bytes_in.get(),
            "response_bytes": self.bytes_out.get(),
            "rate_limited": self.rate_limited.get(),
            "breaker_rejected": self.breaker_rejected.get(),
            "breaker_state": match self.breaker_state.get() { 1 => "open", 2 => "half-open", _ => "closed" },
        })
    }
}

/// The middleware that fills [`Metrics`].
pub struct Stats {
    pub metrics: Arc<Metrics>,
}

/// One request being counted, on either engine: made when it arrives,
/// told its answer when the response head is in. Dropped unanswered (the
/// client left, or the request was refused before an answer was counted),
/// it leaves the in-flight gauge all the same.
pub struct Counted<M: Deref<Target = Metrics>> {
    metrics: M,
    started: Instant,
    method: &'static str,
    answered: bool,
}

impl<M: Deref<Target = Metrics>> Counted<M> {
    /// Count a request with `method` as arrived and in flight.
    pub fn arrived(metrics: M, method: &[u8]) -> Self {
        let started = Instant::now();
        metrics
            .per_second
            .record(metrics.per_second.second(started), false);
        metrics.in_flight.inc();
        Self {
            metrics,
            started,
            method: method_label(method),
            answered: false,
        }
    }

    /// The response head came: `status`, from `upstream` (none: the proxy
    /// answered by itself).
    pub fn answered(&mut self, status: u16, upstream: Option<&Arc<str>>) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        let metrics = &*self.metrics;
        metrics.in_flight.dec();
        metrics
            .duration
            .observe(self.started.elapsed().as_secs_f64());
        metrics.count_request(
            self.method,
            status,
            upstream.unwrap_or(&metrics.no_upstream),
        );
    }
}

impl<M: Deref<Target = Metrics>> Counted<M> {
    /// `bytes` of response body went to the client (an engine that counts
    /// them itself; hyper's are counted frame by frame as they stream).
    pub fn sent(&self, bytes: u64) {
        self.metrics.bytes_out.inc_by(bytes);
    }
}

impl<M: Deref<Target = Metrics>> Drop for Counted<M> {
    fn drop(&mut self) {
        if !self.answered {
            self.metrics.in_flight.dec();
        }
    }
}

impl Middleware for Stats {
    fn handle<'a>(
        &'a self,
        mut req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        let metrics = &*self.metrics;
        req.extensions_mut().insert(metrics.sent_bytes.clone());
        let mut counted = Counted::arrived(metrics, req.method().as_str().as_bytes());
        let response = next.run(req, ctx);
        Box::pin(async move {
            let response = response.await;
            counted.answered(response.status().as_u16(), ctx.upstream());
            let counter = metrics.bytes_out.clone();
            let mut grpc = is_grpc(response.headers()).then(|| metrics.grpc.clone());
            if let (Some(family), Some(code)) = (&grpc, response.headers().get(GRPC_STATUS)) {
                family.get_or_create(&grpc_label(code)).inc();
                grpc = None;
            }
            response.map(|body| {
                proxy_core::observe(body, move |frame| {
                    if let Some(data) = frame.data_ref() {
                        counter.inc_by(data.len() as u64);
                    } else if let (Some(family), Some(trailers)) = (&grpc, frame.trailers_ref())
                        && let Some(code) = trailers.get(GRPC_STATUS)
                    {
                        family.get_or_create(&grpc_label(code)).inc();
                    }
                })
            })
        })
    }
}

const GRPC_STATUS: &str = "grpc-status";

/// `grpc-status` as a label: one of the 17 codes, or "invalid".
fn grpc_label(code: &hyper::header::HeaderValue) -> GrpcLabels {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    let code = CODES
        .iter()
        .find(|c| c.as_bytes() == code.as_bytes())
        .copied()
        .unwrap_or("invalid");
    GrpcLabels { code }
}

/// One request in the in-flight gauge until it is answered or dropped (a
/// client that hangs up mid-request drops the future, and the gauge must
/// not keep counting it).
/// Unknown methods share one label, so a client cannot grow the metric set.
fn method_label(method: &[u8]) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| known.as_bytes() == method)
        .unwrap_or("OTHER")
}

/// The admin listener's answer: `/metrics`, `/stats`, or 404.
pub fn admin_response(metrics: &Metrics, path: &str) -> Response<ProxyBody> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.prometheus_text(),
        ),
        "/stats" => (
            StatusCode::OK,
            "application/json",
            format!("{:#}\n", metrics.summary()),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "the admin listener serves /metrics and /stats\n".to_owned(),
        ),
    };
    complete_response(status, content_type, body)
}
