//! The workbench's own answers: the chapters' code, re-exported under the
//! exercises' names, or written here where no chapter needs it.

pub mod ch02 {
    pub use step02_reverse_proxy_minimal::join_paths;
}

pub mod ch03 {
    pub use step03_reverse_proxy::te_has_trailers as client_accepts_trailers;
}

pub mod ch04 {
    use std::sync::Arc;

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
}

pub mod ch05 {
    use std::time::Instant;

    use futures_util::future::BoxFuture;
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use middleware::{Ctx, Middleware, Next};
    use proxy_core::ProxyBody;

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
}
