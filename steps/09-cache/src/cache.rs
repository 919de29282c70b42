//! The cache's decisions, request by request (RFC 9111 §4).
//!
//! For a `GET`, in order:
//!
//! 1. **Look up** the URL, then the variant the request's headers select
//!    ([`crate::vary`]).
//! 2. **Fresh** (and the request does not ask for fresher) — answer from
//!    the store, with `Age`; a conditional request the stored validators
//!    satisfy gets a 304.
//! 3. **Stale** — revalidate it with a conditional request, unless the
//!    origin allowed serving it stale while that happens
//!    (`stale-while-revalidate`) or the client accepts staleness
//!    (`max-stale`); a 304 refreshes it, a 5xx lets `stale-if-error`
//!    serve it.
//! 4. **Missing** — fetch it, collapsed with every other miss for the URL
//!    ([`crate::herd`]); store it if §3 allows ([`crate::storable`]),
//!    reading the body to the clients while it arrives.
//!
//! Any other method goes upstream; an unsafe one that succeeds invalidates
//! what is stored for its URL and for the URLs its `Location` and
//! `Content-Location` name on the same host (§4.4). Every answer says what
//! happened in `Cache-Status`.
//!
//! Left out on purpose: storing a `206` (a `Range` the store cannot answer
//! goes upstream as it came), storing `HEAD` responses, and `Pragma`,
//! which RFC 9111 deprecates.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::header::{self, AGE, HeaderValue};
use hyper::http::request::Parts;
use hyper::http::response;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use load_balance::Upstream;
use middleware::breaker::Breaker;
use proxy_core::headers::request_host;
use proxy_core::{ClientConn, IntoRequestBody, ProxyBody, RequestBody, Transport, text_response};
use step04_load_balance::BalancedProxy;
use tokio::sync::oneshot;

use crate::counters::CacheCounters;
use crate::directives::{Directives, Seconds};
use crate::filling::{Filling, FillingBody};
use crate::freshness::{self, Timing};
use crate::herd::{Herd, Joined, Landed, Leading};
use crate::range;
use crate::rewrite::BodyRule;
use crate::status::{CacheStatus, Forward};
use crate::storable::{self, Exchange, NotStored};
use crate::store::{Select, Store, Stored};
use crate::validation;
use crate::vary::Vary;
use crate::whole_body::held;
use crate::{compress, rewrite};

/// How large the cache is, and what it calls itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Bytes all stored responses may take together.
    pub size: u64,
    /// Bytes one stored response may take; a larger one streams through.
    pub max_entry: u64,
    /// The name in its `Cache-Status` members.
    pub name: String,
    /// `--rewrite-body` rules for text bodies from upstream.
    pub rewrite: Vec<BodyRule>,
    /// The largest body rewriting and compression hold.
    pub transform_limit: usize,
    /// Compress text for the clients that accept it.
    pub compress: bool,
}

/// The largest body `--rewrite-body` and `--compress` hold by default.
pub const DEFAULT_TRANSFORM_LIMIT: usize = 1 << 20;

impl CacheSettings {
    /// A cache of `size` bytes named `name` that keeps responses up to
    /// `max_entry` bytes (default: a sixteenth of `size`) and edits
    /// nothing; an entry limit larger than the cache is refused.
    pub fn sized(size: u64, max_entry: Option<u64>, name: &str) -> Result<Self, String> {
        let max_entry = max_entry.unwrap_or(size / 16).max(1);
        if max_entry > size {
            return Err(format!(
                "one response may take {max_entry} bytes, more than the whole cache ({size})"
            ));
        }
        Ok(Self {
            size,
            max_entry,
            name: name.to_owned(),
            rewrite: Vec::new(),
            transform_limit: DEFAULT_TRANSFORM_LIMIT,
            compress: false,
        })
    }
}

/// A shared cache in front of step 04's balanced proxy.
pub struct Cache<T> {
    proxy: Arc<BalancedProxy<T>>,
    /// A circuit breaker between the cache and the proxy, if any: it
    /// guards the upstreams, so what the store can answer is answered
    /// while it is open, and only requests that go upstream count.
    breaker: Option<Arc<Breaker>>,
    store: Arc<Store>,
    herd: Arc<Herd>,
    settings: CacheSettings,
    counters: CacheCounters,
}

/// How long a flight waits for the upstream's next bytes, or for room
/// behind a reader that takes nothing, before it gives up on them.
const STALLED: std::time::Duration = std::time::Duration::from_secs(60);

/// What the cache may do with a stored response for one request.
enum Use {
    Fresh,
    /// Stale, and the client or the origin allows that.
    Stale(&'static str),
    /// Stale, served while it is revalidated in the background.
    WhileRevalidating,
    /// Ask the origin first.
    Revalidate(Forward),
}

/// What the upstream exchange gave the client that started it.
enum Fetched {
    /// Being stored: its head, the client's body reader, and whether the
    /// body's length says it will fit (a chunked body may turn out too
    /// large half way).
    Shared(Arc<Stored>, FillingBody, bool),
    /// A 304 refreshed what was stored.
    Refreshed(Arc<Stored>),
    /// The upstream failed; what was stored serves instead.
    StaleOnError(Arc<Stored>, StatusCode),
    /// Not for the store: the upstream's answer, passed on.
    Own(Response<ProxyBody>, NotStored),
}

impl<T: Transport> Cache<T> {
    /// An empty cache in front of `proxy` (behind `breaker`, if one),
    /// counting what it does in `counters`.
    pub fn new(
        proxy: Arc<BalancedProxy<T>>,
        breaker: Option<Arc<Breaker>>,
        settings: CacheSettings,
        counters: CacheCounters,
    ) -> Self {
        Self {
            proxy,
            breaker,
            store: Arc::new(Store::new(settings.size)),
            herd: Arc::default(),
            settings,
            counters,
        }
    }

    /// This cache — its store, its flights in the air, its counters — in
    /// front of `proxy` and `breaker` instead: a gateway's reload changes
    /// a service's upstreams without emptying its cache.
    pub fn rebind(&self, proxy: Arc<BalancedProxy<T>>, breaker: Option<Arc<Breaker>>) -> Self {
        Self {
            proxy,
            breaker,
            store: self.store.clone(),
            herd: self.herd.clone(),
            settings: self.settings.clone(),
            counters: self.counters.clone(),
        }
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// Bytes stored now.
    pub fn stored_bytes(&self) -> u64 {
        self.store.bytes()
    }

    /// Drop what is stored for `path` on any host, and what is on its way
    /// to the store for it ([`crate::store::purge_takes`] says which URLs a
    /// path takes). Returns how many stored URLs were dropped.
    pub fn purge(&self, path: &str) -> usize {
        self.store.purge(path)
    }

    /// Answer `req`, from the store when it may, and say how.
    pub async fn handle(
        self: &Arc<Self>,
        client: &ClientConn,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        self.handle_reporting(client, req).await.0
    }

    /// [`Cache::handle`], and the upstream that answered this request, if
    /// one did: none for an answer from the store, or one that rode
    /// another request's exchange (for the metrics of a proxy around it).
    pub async fn handle_reporting(
        self: &Arc<Self>,
        client: &ClientConn,
        req: Request<Incoming>,
    ) -> (Response<ProxyBody>, Option<Arc<Upstream>>) {
        let (mut response, mut status) = self.answer(client, req).await;
        self.counters.count(&status);
        status.append_to(&self.settings.name, response.headers_mut());
        (response, status.upstream.take())
    }

    async fn answer(
        self: &Arc<Self>,
        client: &ClientConn,
        req: Request<Incoming>,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let method = req.method().clone();
        if method != Method::GET && method != Method::HEAD {
            return self.pass_unsafe(client, req).await;
        }
        let Some(key) = key_of(req.headers(), req.uri()) else {
            return self.bypass(client, req, "no-host").await;
        };
        let ranged = req.headers().contains_key(header::RANGE);
        if ranged && (method != Method::GET || req.headers().contains_key(header::IF_RANGE)) {
            return self.bypass(client, req, "range").await;
        }
        // A protocol upgrade is a tunnel, not a response to keep.
        if req.headers().contains_key(header::UPGRADE) {
            return self.bypass(client, req, "upgrade").await;
        }
        if !req.body().is_end_stream() {
            return self.bypass(client, req, "request-body").await;
        }
        // A GET or HEAD without a body: its head is all the cache needs.
        let (req, _) = req.into_parts();
        let asked = Directives::of(&req.headers);
        let now = SystemTime::now();
        if ranged {
            return self.answer_range(client, req, &key, &asked, now).await;
        }
        let forward = match self.store.select(&key, &req.headers) {
            Select::Found(stored) => match decide(&stored, &asked, now) {
                Use::Fresh => {
                    let mut status = CacheStatus::hit(stored.ttl(now));
                    return (from_store(&req, &stored, now, &mut status), status);
                }
                Use::Stale(why) => {
                    let mut status = CacheStatus::hit(stored.ttl(now)).detail(why);
                    return (from_store(&req, &stored, now, &mut status), status);
                }
                Use::WhileRevalidating => {
                    self.revalidate_in_background(client, &req, &key, &stored);
                    let mut status =
                        CacheStatus::hit(stored.ttl(now)).detail("stale-while-revalidate");
                    return (from_store(&req, &stored, now, &mut status), status);
                }
                Use::Revalidate(forward) if method == Method::HEAD => {
                    // A HEAD answer says nothing a stored body can be
                    // refreshed with: it goes as it came.
                    if asked.only_if_cached {
                        return only_if_cached();
                    }
                    let request = Request::from_parts(req, RequestBody::empty());
                    let status = CacheStatus::forward(forward).detail("head");
                    return self.pass(client, request, status).await;
                }
                Use::Revalidate(forward) => {
                    if asked.only_if_cached {
                        return only_if_cached();
                    }
                    return self
                        .go(client, req, key, &asked, forward, Some(stored))
                        .await;
                }
            },
            Select::OtherVariants => Forward::VaryMiss,
            Select::None => Forward::UriMiss,
        };
        if asked.only_if_cached {
            return only_if_cached();
        }
        if method == Method::HEAD {
            // A HEAD answer has no body to store; it goes as it came.
            let request = Request::from_parts(req, RequestBody::empty());
            let status = CacheStatus::forward(forward).detail("head");
            return self.pass(client, request, status).await;
        }
        self.go(client, req, key, &asked, forward, None).await
    }

    /// Send `req` upstream, and edit the answer as the settings say: the
    /// body rewritten, then compressed for a client that sent `request`'s
    /// headers; and the upstream that answered.
    async fn upstream(
        &self,
        client: &ClientConn,
        request: &HeaderMap,
        req: Request<impl IntoRequestBody>,
    ) -> (Response<ProxyBody>, Option<Arc<Upstream>>) {
        let settings = &self.settings;
        let (response, upstream) = self.send(client, req).await;
        let response = rewrite::apply(&settings.rewrite, settings.transform_limit, response).await;
        let response = if settings.compress {
            compress::apply(request, settings.transform_limit, response).await
        } else {
            response
        };
        (response, upstream)
    }

    /// Send `req` upstream as it came and pass its answer on as it comes,
    /// described by `status`.
    async fn pass(
        &self,
        client: &ClientConn,
        req: Request<impl IntoRequestBody>,
        mut status: CacheStatus,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let (response, upstream) = self.send(client, req).await;
        status.upstream = upstream;
        (response, status)
    }

    /// Every request the cache sends upstream: past the breaker, if there
    /// is one (its refusal is the answer then, as an upstream's 503 would
    /// be: `stale-if-error` may answer in its place), then the proxy.
    async fn send(
        &self,
        client: &ClientConn,
        req: Request<impl IntoRequestBody>,
    ) -> (Response<ProxyBody>, Option<Arc<Upstream>>) {
        let mut ticket = match self.breaker.as_ref().map(|b| Breaker::enter(b.clone())) {
            Some(Ok(ticket)) => Some(ticket),
            Some(Err(refusal)) => return (refusal.into_response(), None),
            None => None,
        };
        let (response, upstream) = self.proxy.handle_reporting(client, req).await;
        if let Some(ticket) = &mut ticket {
            ticket.answered(response.status().as_u16());
        }
        (response, upstream)
    }

    /// A `Range` request: a part of a stored `200` the request may use
    /// as it is, else the origin's answer, passed on.
    async fn answer_range(
        &self,
        client: &ClientConn,
        req: Parts,
        key: &str,
        asked: &Directives,
        now: SystemTime,
    ) -> (Response<ProxyBody>, CacheStatus) {
        if let Select::Found(stored) = self.store.select(key, &req.headers)
            && stored.status == StatusCode::OK
            && let usable @ (Use::Fresh | Use::Stale(_)) = decide(&stored, asked, now)
            && let Some(spec) = req.headers.get(header::RANGE)
            && let Some(part) = range::single(spec, stored.body.len() as u64)
        {
            let mut status = CacheStatus::hit(stored.ttl(now));
            if let Use::Stale(why) = usable {
                status.detail = Some(why);
            }
            return (partial(&stored, part, now, &mut status), status);
        }
        let request = Request::from_parts(req, RequestBody::empty());
        let status = CacheStatus::forward(Forward::Bypass).detail("range");
        self.pass(client, request, status).await
    }

    /// Go upstream for `req` — leading a flight, or following one.
    async fn go(
        self: &Arc<Self>,
        client: &ClientConn,
        parts: Parts,
        key: String,
        asked: &Directives,
        forward: Forward,
        stale: Option<Arc<Stored>>,
    ) -> (Response<ProxyBody>, CacheStatus) {
        // A client that asked for a fresh answer does not take one that
        // arrived for someone else before it asked.
        let may_follow = !(asked.no_cache || asked.max_age.is_some() || asked.min_fresh.is_some());
        let leading = match self.herd.join(&key) {
            Joined::Lead(leading) => Some(leading),
            Joined::Follow(_) if !may_follow => None,
            Joined::Follow(following) => {
                let landed = following.landed().await;
                if let Some(answer) = followed(&parts, landed, forward) {
                    return answer;
                }
                // Nothing to share with this request: it goes alone.
                None
            }
        };
        let (fetched, upstream) = self.fly(client, &parts, key, asked, leading, stale).await;
        let now = SystemTime::now();
        let mut status = CacheStatus::forward(forward);
        status.upstream = upstream;
        let response = match fetched {
            Fetched::Shared(head, body, fits) => {
                status.forward_status = Some(head.status.as_u16());
                status.stored = fits;
                status.ttl = Some(head.ttl(now));
                from_filling(&parts, &head, body, now)
            }
            Fetched::Refreshed(stored) => {
                status.forward_status = Some(StatusCode::NOT_MODIFIED.as_u16());
                status.ttl = Some(stored.ttl(now));
                from_store(&parts, &stored, now, &mut status)
            }
            Fetched::StaleOnError(stored, failed) => {
                status.forward_status = Some(failed.as_u16());
                status.ttl = Some(stored.ttl(now));
                status.detail = Some("stale-if-error");
                // The store answered, not the upstream that failed.
                status.upstream = None;
                from_store(&parts, &stored, now, &mut status)
            }
            Fetched::Own(response, reason) => {
                status.forward_status = Some(response.status().as_u16());
                status.detail = Some(reason.detail());
                response
            }
        };
        (response, status)
    }

    /// Send the request upstream in a task of its own — followers and the
    /// store depend on it, not only this client — and return what this
    /// client gets, and from which upstream.
    async fn fly(
        self: &Arc<Self>,
        client: &ClientConn,
        parts: &Parts,
        key: String,
        asked: &Directives,
        leading: Option<Leading>,
        stale: Option<Arc<Stored>>,
    ) -> (Fetched, Option<Arc<Upstream>>) {
        let (sender, receiver) = oneshot::channel();
        let flight = Flight {
            cache: self.clone(),
            client: client.clone(),
            parts: clone_head(parts),
            key,
            asked: asked.clone(),
            leading,
            stale,
            background: false,
        };
        tokio::spawn(async move { flight.run(sender).await });
        match receiver.await {
            Ok(fetched) => fetched,
            // The task panicked: the log has it.
            Err(_) => (
                Fetched::Own(
                    text_response(
                        StatusCode::BAD_GATEWAY,
                        "the cache's upstream exchange failed",
                    ),
                    NotStored::Status,
                ),
                None,
            ),
        }
    }

    /// Revalidate `stored` without anyone waiting, unless a flight for its
    /// URL is already in the air.
    fn revalidate_in_background(
        self: &Arc<Self>,
        client: &ClientConn,
        req: &Parts,
        key: &str,
        stored: &Arc<Stored>,
    ) {
        let Joined::Lead(leading) = self.herd.join(key) else {
            return;
        };
        // A refresh is a GET, whatever the request it rode on.
        let mut parts = clone_head(req);
        parts.method = Method::GET;
        let flight = Flight {
            cache: self.clone(),
            client: client.clone(),
            parts,
            key: key.to_owned(),
            asked: Directives::default(),
            leading: Some(leading),
            stale: Some(stored.clone()),
            background: true,
        };
        let (sender, _nobody) = oneshot::channel();
        tokio::spawn(async move { flight.run(sender).await });
    }

    /// A method the cache does not answer goes upstream; one that may
    /// change the resource invalidates what is stored for it (§4.4).
    async fn pass_unsafe(
        &self,
        client: &ClientConn,
        req: Request<Incoming>,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let safe = matches!(*req.method(), Method::OPTIONS | Method::TRACE);
        let target = key_of(req.headers(), req.uri());
        let host = request_host(req.headers(), req.uri()).ok().flatten();
        let headers = req.headers().clone();
        let (response, upstream) = self.upstream(client, &headers, req).await;
        let succeeded = response.status().is_success() || response.status().is_redirection();
        if !safe
            && succeeded
            && let (Some(target), Some(host)) = (target, host)
        {
            self.store.invalidate(&target);
            for name in [header::LOCATION, header::CONTENT_LOCATION] {
                if let Some(key) = response
                    .headers()
                    .get(name)
                    .and_then(|value| same_host_key(value, host.as_str()))
                {
                    self.store.invalidate(&key);
                }
            }
        }
        let mut status = CacheStatus::forward(Forward::Method);
        status.upstream = upstream;
        (response, status)
    }

    async fn bypass(
        &self,
        client: &ClientConn,
        req: Request<Incoming>,
        why: &'static str,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let status = CacheStatus::forward(Forward::Bypass).detail(why);
        self.pass(client, req, status).await
    }
}

/// One upstream exchange on the cache's behalf.
struct Flight<T> {
    cache: Arc<Cache<T>>,
    client: ClientConn,
    /// The request's head, as the client sent it.
    parts: Parts,
    key: String,
    /// What the client's `Cache-Control` asked.
    asked: Directives,
    leading: Option<Leading>,
    /// The stored response being revalidated, if any.
    stale: Option<Arc<Stored>>,
    /// Nobody waits for it: it only refreshes the store.
    background: bool,
}

impl<T: Transport> Flight<T> {
    async fn run(mut self, mut client: oneshot::Sender<(Fetched, Option<Arc<Upstream>>)>) {
        let mut upstream = clone_head(&self.parts);
        let asks = match &self.stale {
            Some(stale) => validation::ask_about(&mut upstream, stale).is_some(),
            None => {
                validation::unconditional(&mut upstream);
                false
            }
        };
        let requested = SystemTime::now();
        let request = Request::from_parts(upstream, RequestBody::empty());
        let (response, upstream) = tokio::select! {
            answer = self.cache.upstream(&self.client, &self.parts.headers, request) => answer,
            // Its client left before the head came, and no other joined:
            // the request is abandoned, as a proxy without a cache would.
            () = self.abandoned(&mut client) => return,
        };
        let received = SystemTime::now();
        let (head, body) = response.into_parts();
        let timing = Timing::of(&head.headers, requested, received);
        if let Some(stale) = self.stale.clone() {
            if asks && head.status == StatusCode::NOT_MODIFIED {
                let refreshed = Arc::new(validation::refreshed(&stale, &head.headers, timing));
                self.cache.store.insert(self.key.clone(), refreshed.clone());
                self.land(Landed::Refreshed(refreshed.clone()));
                let _ = client.send((Fetched::Refreshed(refreshed), upstream));
                return;
            }
            if is_error(head.status) && may_serve_on_error(&stale, &self.asked, received) {
                self.land(Landed::Alone);
                let _ = client.send((Fetched::StaleOnError(stale, head.status), upstream));
                return;
            }
            // A new response replaces the stored one, stored or not.
            self.cache.store.remove(&self.key);
        }
        let response = Directives::of_response(&head.headers);
        let vary = Vary::of(&head.headers);
        let lifetime = freshness::lifetime(head.status, &head.headers, &response, &timing);
        let exchange = Exchange {
            method: &self.parts.method,
            request_headers: &self.parts.headers,
            request: &self.asked,
            status: head.status,
            headers: &head.headers,
            response: &response,
            vary: &vary,
            lifetime,
            has_validator: head.headers.contains_key(header::ETAG)
                || head.headers.contains_key(header::LAST_MODIFIED),
        };
        let length = body.size_hint().exact();
        let checked = storable::check(&exchange).and_then(|()| match length {
            Some(length) if length > self.cache.settings.max_entry => Err(NotStored::TooLarge),
            _ => Ok(()),
        });
        if let Err(reason) = checked {
            self.land(Landed::Alone);
            let own = Fetched::Own(Response::from_parts(head, body), reason);
            let _ = client.send((own, upstream));
            return;
        }
        let mut headers = head.headers;
        headers.remove(AGE);
        let stored_head = Arc::new(Stored {
            status: head.status,
            headers,
            body: Bytes::new(),
            trailers: None,
            selecting: vary.selecting(&self.parts.headers),
            timing,
            lifetime,
            directives: response,
        });
        let filling = Arc::new(Filling::default());
        let reader = filling.reader().expect("a new filling keeps its bytes");
        self.land(Landed::Shared(stored_head.clone(), filling.clone()));
        let shared = Fetched::Shared(stored_head.clone(), reader, length.is_some());
        let _ = client.send((shared, upstream));
        if let Some((last, trailers)) = self.fill(body, &filling).await {
            // Stored before its last bytes reach anyone: a client that has
            // the whole body finds it in the store.
            if let Some(body) = filling.kept_with(last.as_ref()) {
                let stored = Stored {
                    body,
                    trailers: trailers.clone(),
                    headers: stored_head.headers.clone(),
                    selecting: stored_head.selecting.clone(),
                    directives: stored_head.directives.clone(),
                    ..*stored_head
                };
                self.cache.store.insert(self.key.clone(), Arc::new(stored));
            }
            if let Some(last) = last {
                filling.push(last);
            }
            filling.finish(trailers);
        }
        // Only now may a request for the URL start another flight: until
        // here this one is in the air, after here the store has it.
        self.leading = None;
    }

    /// Read `body` into `filling`: whole while it fits one entry, then
    /// as a stream its readers keep up with. At the end, what is still
    /// held back — the last chunk — and the trailers; None when the body
    /// broke off (its readers have been told).
    async fn fill(
        &mut self,
        mut body: ProxyBody,
        filling: &Filling,
    ) -> Option<(Option<Bytes>, Option<HeaderMap>)> {
        let limit = usize::try_from(self.cache.settings.max_entry).unwrap_or(usize::MAX);
        // Each chunk waits for the next, so the last one is still here
        // when the body ends.
        let mut held: Option<Bytes> = None;
        let mut keeping = true;
        loop {
            if tokio::time::timeout(STALLED, poll_fn(|cx| filling.poll_room(cx)))
                .await
                .is_err()
            {
                // A reader that takes nothing for this long holds the
                // others back: it is cut off, not waited for.
                filling.cut_off_slowest();
            }
            // Nobody reads any more: a flight a client asked for ends
            // with its clients — unless the body is still kept for the
            // store (a conditional client answered 304 leaves at once),
            // which the entry limit bounds. A background refresh has no
            // clients, and goes on.
            if !self.background && !keeping && !filling.has_readers() {
                filling.break_off("no reader left".into());
                return None;
            }
            let frame = match tokio::time::timeout(STALLED, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    filling.break_off(format!("the upstream sent nothing for {STALLED:?}"));
                    return None;
                }
            };
            match frame {
                None => return Some((held, None)),
                Some(Err(error)) => {
                    filling.break_off(proxy_core::error_chain(&*error));
                    return None;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let received =
                            filling.received() + held.as_ref().map_or(0, Bytes::len) + data.len();
                        if let Some(before) = held.replace(data) {
                            filling.push(before);
                        }
                        if keeping && received > limit {
                            keeping = false;
                            filling.stop_keeping();
                            // New requests for the URL go on their own.
                            self.leading = None;
                        }
                    }
                    Err(frame) => return Some((held, frame.into_trailers().ok())),
                },
            }
        }
    }

    /// Resolves once nobody waits for this exchange's head.
    async fn abandoned(&self, client: &mut oneshot::Sender<(Fetched, Option<Arc<Upstream>>)>) {
        if self.background {
            return std::future::pending().await;
        }
        client.closed().await;
        loop {
            match &self.leading {
                Some(leading) if leading.followed() => leading.unfollowed().await,
                _ => return,
            }
        }
    }

    fn land(&self, landed: Landed) {
        if let Some(leading) = &self.leading {
            leading.land(landed);
        }
    }
}

/// What the cache may do with `stored` for a request that asked `asked`
/// (§4.2.4, §5.2.1; RFC 5861).
fn decide(stored: &Stored, asked: &Directives, now: SystemTime) -> Use {
    let age = stored.age(now);
    let lifetime = stored.lifetime.seconds();
    if asked.no_cache {
        return Use::Revalidate(Forward::Request);
    }
    if stored.directives.no_cache {
        return Use::Revalidate(Forward::Stale);
    }
    match asked.max_age {
        Some(Seconds::Valid(max_age)) if age > max_age => return Use::Revalidate(Forward::Request),
        Some(Seconds::Invalid) => return Use::Revalidate(Forward::Request),
        _ => {}
    }
    match asked.min_fresh {
        Some(Seconds::Valid(min_fresh)) if lifetime < age.saturating_add(min_fresh) => {
            return Use::Revalidate(Forward::Request);
        }
        Some(Seconds::Invalid) => return Use::Revalidate(Forward::Request),
        _ => {}
    }
    if age < lifetime {
        return Use::Fresh;
    }
    if forbids_stale(&stored.directives) {
        return Use::Revalidate(Forward::Stale);
    }
    let staleness = age - lifetime;
    match asked.max_stale {
        Some(None) => return Use::Stale("max-stale"),
        Some(Some(Seconds::Valid(allowed))) if staleness <= allowed => {
            return Use::Stale("max-stale");
        }
        _ => {}
    }
    match stored.directives.stale_while_revalidate {
        Some(Seconds::Valid(window)) if staleness < window => Use::WhileRevalidating,
        _ => Use::Revalidate(Forward::Stale),
    }
}

/// `must-revalidate`, `proxy-revalidate` and, for a shared cache,
/// `s-maxage` forbid serving stale (§5.2.2.2, §5.2.2.8, §5.2.2.10).
fn forbids_stale(directives: &Directives) -> bool {
    directives.must_revalidate || directives.proxy_revalidate || directives.s_maxage.is_some()
}

/// An error `stale-if-error` covers (RFC 5861 §4).
fn is_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// May `stale` answer in place of an upstream error, at `now`?
fn may_serve_on_error(stale: &Stored, asked: &Directives, now: SystemTime) -> bool {
    if forbids_stale(&stale.directives) {
        return false;
    }
    let staleness = stale.age(now).saturating_sub(stale.lifetime.seconds());
    [stale.directives.stale_if_error, asked.stale_if_error]
        .into_iter()
        .any(|window| matches!(window, Some(Seconds::Valid(window)) if staleness <= window))
}

/// A follower's answer from the flight it followed; None when it must go
/// upstream itself.
fn followed(
    parts: &Parts,
    landed: Landed,
    forward: Forward,
) -> Option<(Response<ProxyBody>, CacheStatus)> {
    let now = SystemTime::now();
    let mut status = CacheStatus::forward(forward);
    status.collapsed = true;
    let response = match landed {
        Landed::Shared(head, filling) if head.selecting.matches(&parts.headers) => {
            let body = filling.reader()?;
            status.forward_status = Some(head.status.as_u16());
            status.ttl = Some(head.ttl(now));
            from_filling(parts, &head, body, now)
        }
        Landed::Refreshed(stored) if stored.selecting.matches(&parts.headers) => {
            status.forward_status = Some(StatusCode::NOT_MODIFIED.as_u16());
            status.ttl = Some(stored.ttl(now));
            from_store(parts, &stored, now, &mut status)
        }
        _ => return None,
    };
    Some((response, status))
}

/// The head a stored response answers with: its own, with its age now.
fn answer_head(stored: &Stored, now: SystemTime) -> response::Builder {
    let mut builder = Response::builder().status(stored.status);
    if let Some(headers) = builder.headers_mut() {
        *headers = stored.headers.clone();
        headers.insert(AGE, HeaderValue::from(stored.age(now)));
    }
    builder
}

/// A 304 when the client has `stored` already (§4.3.2).
fn not_modified(stored: &Stored, now: SystemTime) -> Response<ProxyBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    *response.headers_mut() = validation::not_modified_headers(stored);
    response
        .headers_mut()
        .insert(AGE, HeaderValue::from(stored.age(now)));
    response
}

/// `stored`'s answer to the request with head `request`; the bytes of
/// its body are noted in `status`.
fn from_store(
    request: &Parts,
    stored: &Stored,
    now: SystemTime,
    status: &mut CacheStatus,
) -> Response<ProxyBody> {
    if validation::client_has(&request.method, &request.headers, stored) {
        return not_modified(stored, now);
    }
    let body = if request.method == Method::HEAD {
        empty()
    } else {
        status.body_from_store = stored.body.len() as u64;
        held(stored.body.clone(), stored.trailers.clone())
    };
    answer_head(stored, now)
        .body(body)
        .unwrap_or_else(|_| unreachable_head())
}

/// Bytes `first..=last` of `stored`: a 206 (its bytes noted in `status`).
fn partial(
    stored: &Stored,
    (first, last): (u64, u64),
    now: SystemTime,
    status: &mut CacheStatus,
) -> Response<ProxyBody> {
    let length = stored.body.len() as u64;
    let mut builder = answer_head(stored, now).status(StatusCode::PARTIAL_CONTENT);
    if let Some(headers) = builder.headers_mut() {
        range::part_headers(headers, (first, last), length);
    }
    let part = stored.body.slice(first as usize..=last as usize);
    status.body_from_store = part.len() as u64;
    builder
        .body(held(part, None))
        .unwrap_or_else(|_| unreachable_head())
}

/// The answer of a response still arriving.
fn from_filling(
    request: &Parts,
    head: &Stored,
    body: FillingBody,
    now: SystemTime,
) -> Response<ProxyBody> {
    if validation::client_has(&request.method, &request.headers, head) {
        return not_modified(head, now);
    }
    answer_head(head, now)
        .body(body.map_err(Into::into).boxed())
        .unwrap_or_else(|_| unreachable_head())
}

/// Stored heads were valid when they arrived.
fn unreachable_head() -> Response<ProxyBody> {
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "a stored head could not be rebuilt",
    )
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// `only-if-cached` and nothing usable: 504 (§5.2.1.7).
fn only_if_cached() -> (Response<ProxyBody>, CacheStatus) {
    (
        text_response(
            StatusCode::GATEWAY_TIMEOUT,
            "only-if-cached: nothing stored answers this request",
        ),
        CacheStatus::default().detail("only-if-cached"),
    )
}

/// The store's key for a request: its host (lower-cased) and its path and
/// query. None without a host.
fn key_of(headers: &HeaderMap, uri: &hyper::Uri) -> Option<String> {
    let host = request_host(headers, uri).ok().flatten()?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Some(format!("{}{path}", host.as_str().to_ascii_lowercase()))
}

/// The key of a `Location` / `Content-Location` URL, if it is on `host`.
fn same_host_key(value: &HeaderValue, host: &str) -> Option<String> {
    let uri: hyper::Uri = value.to_str().ok()?.parse().ok()?;
    match uri.authority() {
        Some(authority) if !authority.as_str().eq_ignore_ascii_case(host) => None,
        _ => {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            path.starts_with('/')
                .then(|| format!("{}{path}", host.to_ascii_lowercase()))
        }
    }
}

/// A request head without its body or extensions.
fn clone_head(parts: &Parts) -> Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.uri = parts.uri.clone();
    head.version = parts.version;
    head.headers = parts.headers.clone();
    head
}
