//! gRPC through step 05 with a tonic client: the chain on (request id,
//! rate limit, statistics), an h2c upstream, and gRPC outcomes counted by
//! grpc-status — the HTTP status of every one of them is 200.

use clap::Parser;
use hyper::http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use real_server::grpc::{EchoReply, EchoRequest, FAIL, UNARY};
use serving::Binder;
use tokio::net::TcpListener;
use tonic::client::Grpc;
use tonic::codec::ProstCodec;

#[tokio::test]
async fn grpc_calls_pass_the_chain_and_are_counted_by_status() {
    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let upstream = format!("h2c://{}", backend.addr());
    let launched = step05_middleware::launch(
        step05_middleware::Args::parse_from([
            "step05-middleware",
            "--upstream",
            &upstream,
            "--admin",
            "127.0.0.1:0",
            "--rate-limit",
            "1000",
        ]),
        &Binder::ephemeral(),
    )
    .await
    .unwrap();
    let origin = launched.get("middleware proxy").unwrap().url();
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut grpc = Grpc::with_origin(client, origin.parse().unwrap());
    let call = |message: &str| {
        tonic::Request::new(EchoRequest {
            message: message.to_owned(),
            count: 0,
        })
    };
    for _ in 0..2 {
        grpc.ready().await.unwrap();
        let response = grpc
            .unary::<_, EchoReply, _>(
                call("hi"),
                PathAndQuery::from_static(UNARY),
                ProstCodec::default(),
            )
            .await
            .unwrap();
        assert!(response.metadata().contains_key("x-request-id"));
        assert_eq!(response.into_inner().message, "hi");
    }
    grpc.ready().await.unwrap();
    let failed = grpc
        .unary::<_, EchoReply, _>(
            call("no"),
            PathAndQuery::from_static(FAIL),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::InvalidArgument);
    let metrics = reqwest::get(format!("{}/metrics", launched.get("admin").unwrap().url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("proxy_grpc_responses_total{code=\"0\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("proxy_grpc_responses_total{code=\"3\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("status=\"200\""),
        "every gRPC answer is an HTTP 200: {metrics}"
    );
}
