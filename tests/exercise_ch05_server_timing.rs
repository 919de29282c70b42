//! Chapter 5, exercise 1: a Server-Timing middleware.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response};
use middleware::{Chain, Ctx, Endpoint};
use proxy_core::{ProxyBody, text_response};
use proxy_workbench::exercises::answers::ch05::ServerTiming;
use serving::Server;
use tokio::net::TcpListener;

/// An endpoint that takes 50 ms to answer.
struct Slow;

impl Endpoint for Slow {
    fn call<'a>(
        &'a self,
        _req: Request<Incoming>,
        _ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            text_response(hyper::StatusCode::OK, "done")
        })
    }
}

#[tokio::test]
async fn the_header_tells_how_long_the_request_took() {
    let chain = Arc::new(Chain::new(Arc::new(Slow)).with(Arc::new(ServerTiming)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener, "timed")
        .spawn(move |peer| {
            let chain = chain.clone();
            hyper::service::service_fn(move |req| {
                let chain = chain.clone();
                async move {
                    let ctx = Ctx::new(proxy_core::ClientConn::new(peer, "http"));
                    Ok::<_, Infallible>(chain.serve(req, &ctx).await)
                }
            })
        })
        .unwrap();
    let response = reqwest::get(server.url()).await.unwrap();
    let timing = response.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_owned();
    let ms: f64 = timing
        .strip_prefix("proxy;dur=")
        .unwrap_or_else(|| panic!("{timing}"))
        .parse()
        .unwrap_or_else(|_| panic!("{timing}"));
    // The endpoint alone takes 50 ms (the sleep is the behaviour measured).
    assert!(ms >= 50.0, "{timing}");
    assert_eq!(response.text().await.unwrap(), "done\n");
}
