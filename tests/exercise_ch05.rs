//! Chapter 5's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch05 server_timing`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response};
use middleware::{Chain, Ctx, Endpoint, Middleware};
use proxy_core::{ProxyBody, text_response};
use serving::{Server, ServerHandle};
use tokio::net::TcpListener;

/// An endpoint that takes 50 ms to answer and says which method it saw.
struct Slow;

impl Endpoint for Slow {
    fn call<'a>(
        &'a self,
        req: Request<Incoming>,
        _ctx: &'a Ctx,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            text_response(hyper::StatusCode::OK, format!("{} done", req.method()))
        })
    }
}

/// `middleware` in front of [`Slow`], served on a free port.
fn serve(middleware: impl Middleware + 'static) -> ServerHandle {
    let chain = Arc::new(Chain::new(Arc::new(Slow)).with(Arc::new(middleware)));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    Server::new(listener, "exercise")
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
        .unwrap()
}

mod server_timing {
    use proxy_workbench::exercises::answers::ch05::ServerTiming;

    use super::serve;

    #[tokio::test]
    async fn the_header_tells_how_long_the_request_took() {
        let server = serve(ServerTiming);
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
        assert_eq!(response.text().await.unwrap(), "GET done\n");
    }
}

mod allow_methods {
    use hyper::Method;
    use proxy_workbench::exercises::answers::ch05::AllowMethods;

    use super::serve;

    #[tokio::test]
    async fn listed_methods_pass_others_get_405_with_allow() {
        let server = serve(AllowMethods {
            allowed: vec![Method::GET, Method::HEAD],
        });
        let client = reqwest::Client::new();
        let passed = client.get(server.url()).send().await.unwrap();
        assert_eq!(passed.status(), 200);
        assert_eq!(passed.text().await.unwrap(), "GET done\n");

        let refused = client.delete(server.url()).send().await.unwrap();
        assert_eq!(refused.status(), 405);
        assert_eq!(
            refused
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some("GET, HEAD".to_owned()),
            "a 405 says what is allowed"
        );
        let body = refused.text().await.unwrap();
        assert!(body.contains("DELETE"), "{body}");
    }
}
