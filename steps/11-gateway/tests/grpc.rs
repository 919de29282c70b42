//! gRPC through the real binary, with a tonic client: an `open_auth`
//! service takes the app's token as `authorization` metadata, and header
//! transforms edit metadata both ways (gRPC metadata is HTTP/2 headers).

mod support;

use hyper::http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use real_server::grpc::{EchoReply, EchoRequest, UNARY};
use support::running::{Gateway, two_apps};
use support::{backend, on_both_engines};
use tonic::body::BoxBody;
use tonic::client::Grpc;
use tonic::codec::ProstCodec;

on_both_engines!(a_grpc_call_carries_its_token_and_meets_the_services_header_transforms);

type GrpcClient = Grpc<Client<HttpConnector, BoxBody>>;

async fn echo(
    grpc: &mut GrpcClient,
    token: Option<&str>,
) -> Result<tonic::Response<EchoReply>, tonic::Status> {
    let mut request = tonic::Request::new(EchoRequest {
        message: "hi".to_owned(),
        count: 0,
    });
    request
        .metadata_mut()
        .insert("x-meta", "from-the-client".parse().unwrap());
    if let Some(token) = token {
        let bearer = format!("Bearer {token}");
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().unwrap());
    }
    grpc.ready().await.unwrap();
    grpc.unary::<_, EchoReply, _>(
        request,
        PathAndQuery::from_static(UNARY),
        ProstCodec::default(),
    )
    .await
}

async fn a_grpc_call_carries_its_token_and_meets_the_services_header_transforms(
    engine: &'static str,
) {
    let upstream = backend().await;
    let config = format!(
        r#"{}
[[services]]
name = "grpc"
upstreams = ["h2c://{}"]
open_auth = true
request_headers = {{ set = {{ "x-meta" = "set-by-the-gateway" }} }}
response_headers = {{ set = {{ "x-seen-by" = "gateway" }}, remove = ["x-served-by"] }}
"#,
        two_apps(""),
        upstream.addr()
    );
    let gateway = Gateway::start_on(engine, &config, &[]);
    let token = gateway.app_token("app-a", "a-secret").await;
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut grpc = Grpc::with_origin(http2, gateway.url.parse().unwrap());

    // Without the token: the 401 reaches a gRPC client as UNAUTHENTICATED,
    // with the gateway's reason.
    let refused = echo(&mut grpc, None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().starts_with("no bearer token"),
        "{refused:?}"
    );

    let answered = echo(&mut grpc, Some(&token)).await.unwrap();
    let metadata = answered.metadata();
    // The upstream echoes the x-meta it got: the gateway's, not the client's.
    assert_eq!(metadata.get("x-meta-echo").unwrap(), "set-by-the-gateway");
    // The response's transforms took the upstream's name off and added theirs.
    assert!(metadata.get("x-served-by").is_none(), "{metadata:?}");
    assert_eq!(metadata.get("x-seen-by").unwrap(), "gateway");
    assert_eq!(answered.into_inner().message, "hi");
}
