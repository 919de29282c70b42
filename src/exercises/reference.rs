//! The workbench's own answers: the chapters' code, re-exported under the
//! exercises' names, or written here where no chapter needs it.

pub mod ch01 {
    use std::net::IpAddr;

    pub use step01_forward_proxy::basic_credentials_match;

    pub fn is_off_limits(ip: IpAddr) -> bool {
        step01_forward_proxy::destination::restricted(ip).is_some()
    }
}

pub mod ch02 {
    pub use proxy_core::target::{join_paths, join_queries};
}

pub mod ch03 {
    pub use proxy_core::headers::remove_hop_by_hop;
    pub use step03_reverse_proxy::te_has_trailers as client_accepts_trailers;
}

pub mod ch04 {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use load_balance::{Strategy, Upstream};

    /// The first healthy upstream, in the order given.
    pub struct FirstAvailable {
        upstreams: Vec<Arc<Upstream>>,
    }

    impl FirstAvailable {
        pub fn new(upstreams: Vec<Arc<Upstream>>) -> Self {
            Self { upstreams }
        }
    }

    impl Strategy for FirstAvailable {
        fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
            self.upstreams.iter().find(|upstream| upstream.is_healthy())
        }
    }

    /// The healthy upstream with the lowest moving average of response
    /// times; one never measured first.
    pub struct LeastResponseTime {
        upstreams: Vec<Arc<Upstream>>,
        averages: Mutex<Vec<Option<f64>>>,
    }

    impl LeastResponseTime {
        pub fn new(upstreams: Vec<Arc<Upstream>>) -> Self {
            let averages = Mutex::new(vec![None; upstreams.len()]);
            Self {
                upstreams,
                averages,
            }
        }

        pub fn record(&self, upstream: &Upstream, took: Duration) {
            let Some(at) = self.upstreams.iter().position(|u| u.url == upstream.url) else {
                return;
            };
            let sample = took.as_secs_f64();
            let mut averages = self.averages.lock().expect("not poisoned");
            averages[at] = Some(match averages[at] {
                Some(average) => 0.8 * average + 0.2 * sample,
                None => sample,
            });
        }
    }

    impl Strategy for LeastResponseTime {
        fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
            let averages = self.averages.lock().expect("not poisoned");
            let healthy = || {
                self.upstreams
                    .iter()
                    .zip(averages.iter())
                    .filter(|(upstream, _)| upstream.is_healthy())
            };
            healthy()
                .find(|(_, average)| average.is_none())
                .or_else(|| {
                    healthy().min_by(|(_, a), (_, b)| {
                        a.unwrap_or_default().total_cmp(&b.unwrap_or_default())
                    })
                })
                .map(|(upstream, _)| upstream)
        }
    }
}

pub mod ch05 {
    use std::time::Instant;

    use futures_util::future::BoxFuture;
    use hyper::body::Incoming;
    use hyper::header::{self, HeaderValue};
    use hyper::{Method, Request, Response, StatusCode};
    use middleware::{Ctx, Middleware, Next};
    use proxy_core::{ProxyBody, text_response};

    /// `Server-Timing: proxy;dur=MS`, from this link to the response head.
    pub struct ServerTiming;

    impl Middleware for ServerTiming {
        fn handle<'a>(
            &'a self,
            req: Request<Incoming>,
            ctx: &'a Ctx,
            next: Next<'a>,
        ) -> BoxFuture<'a, Response<ProxyBody>> {
            let started = Instant::now();
            let response = next.run(req, ctx);
            Box::pin(async move {
                let mut response = response.await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let value = format!("proxy;dur={ms:.3}")
                    .parse()
                    .expect("digits make a header value");
                response.headers_mut().insert("server-timing", value);
                response
            })
        }
    }

    /// Only the listed methods pass; the others get 405 with `Allow`.
    pub struct AllowMethods {
        pub allowed: Vec<Method>,
    }

    impl Middleware for AllowMethods {
        fn handle<'a>(
            &'a self,
            req: Request<Incoming>,
            ctx: &'a Ctx,
            next: Next<'a>,
        ) -> BoxFuture<'a, Response<ProxyBody>> {
            if self.allowed.contains(req.method()) {
                return next.run(req, ctx);
            }
            let allow: Vec<&str> = self.allowed.iter().map(Method::as_str).collect();
            let mut refusal = text_response(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed here", req.method()),
            );
            if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                refusal.headers_mut().insert(header::ALLOW, value);
            }
            Box::pin(async move { refusal })
        }
    }
}

pub mod ch06 {
    pub use step06_websocket::frames::Toward;
    use step06_websocket::frames::control_frame;

    pub fn ping_frame(payload: &[u8], toward: Toward) -> Vec<u8> {
        control_frame(0x9, payload, toward)
    }

    pub fn frame_length(start: &[u8]) -> Option<u64> {
        let second = *start.get(1)?;
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        let (length_bytes, payload) = match second & 0x7f {
            126 => (
                2,
                u64::from(u16::from_be_bytes(start.get(2..4)?.try_into().ok()?)),
            ),
            127 => (8, u64::from_be_bytes(start.get(2..10)?.try_into().ok()?)),
            short => (0, u64::from(short)),
        };
        payload.checked_add(2 + length_bytes + mask)
    }
}

pub mod ch07 {
    pub use step07_https::redirect::https_location;

    pub fn certificate_covers(pattern: &str, name: &str) -> bool {
        match pattern.strip_prefix("*.") {
            Some(parent) => name.split_once('.').is_some_and(|(label, rest)| {
                !label.is_empty() && rest.eq_ignore_ascii_case(parent)
            }),
            None => pattern.eq_ignore_ascii_case(name),
        }
    }
}

pub mod ch08 {
    use std::net::SocketAddr;

    use step08_tcp_proxy::proxy_protocol::{Version, header};

    pub fn proxy_line(client: SocketAddr, proxy: SocketAddr) -> String {
        String::from_utf8(header(Version::V1, client, proxy)).expect("version 1 is text")
    }

    pub fn proxy_block_v4(client: SocketAddr, proxy: SocketAddr) -> Vec<u8> {
        header(Version::V2, client, proxy)
    }
}

pub mod ch09 {
    use std::time::SystemTime;

    use step09_cache::freshness::Timing;

    pub fn current_age(
        age_header: u64,
        date: SystemTime,
        requested: SystemTime,
        received: SystemTime,
        now: SystemTime,
    ) -> u64 {
        let timing = Timing {
            requested,
            received,
            date,
            age: age_header,
        };
        timing.current_age(now)
    }

    pub use step09_cache::validation::etag_listed;
}

pub mod ch10 {
    use step10_fast_path::head::{Framing, HeadError, parse_request};

    /// The engine's own parse.
    pub fn request_framing(head: &str) -> Result<Framing, &'static str> {
        match parse_request(head.as_bytes(), &mut Vec::new()) {
            Ok(Some(parsed)) => Ok(parsed.framing()),
            Ok(None) => Err("not a whole head"),
            Err(HeadError::Rejected(why) | HeadError::Malformed(why)) => Err(why),
            Err(HeadError::TooManyHeaders) => Err("too many headers"),
        }
    }

    pub fn keeps_alive(head: &str) -> bool {
        matches!(
            parse_request(head.as_bytes(), &mut Vec::new()),
            Ok(Some(parsed)) if !parsed.common.close
        )
    }
}

pub mod ch11 {
    use step11_gateway::router::{Match, RouteIndex};

    /// The gateway's router, with no hosts.
    pub fn pick_service(prefixes: &[&str], path: &str) -> Option<usize> {
        let services: Vec<Match> = prefixes
            .iter()
            .map(|prefix| Match {
                host: None,
                path_prefix: (*prefix).to_owned(),
            })
            .collect();
        RouteIndex::new(&services).route(None, path)
    }

    pub fn client_credentials(authorization: &str) -> Option<(String, String)> {
        step11_gateway::client_credentials(authorization.as_bytes())
    }

    /// Step 09's own test of a stored URL against a purge.
    pub fn purged(stored: &str, purge: &str) -> bool {
        step09_cache::store::purge_takes(stored, purge)
    }

    /// Discovery's own judgement of a set read from ZooKeeper.
    pub fn set_to_take(last: Option<&[String]>, read: Vec<String>) -> Option<Vec<String>> {
        match discovery::watch::judge(last, read) {
            discovery::watch::Judged::New(set) => Some(set),
            discovery::watch::Judged::Same | discovery::watch::Judged::EmptyAfterSome => None,
        }
    }
}
