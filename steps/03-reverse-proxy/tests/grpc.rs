//! gRPC through step 03 with a tonic client: the proxy speaks HTTP/2 to the
//! upstream (`h2c://`), passes `te: trailers`, and carries the status in
//! the trailers back — unary, streams both ways, errors, metadata.

mod support;

use futures_util::StreamExt;
use hyper::http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use real_server::grpc::{BIDI, EchoReply, EchoRequest, FAIL, SERVER_STREAM, UNARY};
use support::proxy_to;
use tokio::net::TcpListener;
use tonic::client::Grpc;
use tonic::codec::ProstCodec;

type Channel = Grpc<Client<HttpConnector, tonic::body::BoxBody>>;

/// A tonic client speaking HTTP/2 (prior knowledge) to `origin`.
fn channel(origin: &str) -> Channel {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    Grpc::with_origin(client, origin.parse().unwrap())
}

fn request(message: &str, count: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        count,
    }
}

async fn proxied() -> (serving::ServerHandle, serving::Launched, Channel) {
    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let proxy = proxy_to(&format!("h2c://{}", backend.addr()), &[]).await;
    let grpc = channel(&proxy.servers[0].url());
    (backend, proxy, grpc)
}

#[tokio::test]
async fn a_unary_call_and_its_metadata_pass_through() {
    let (backend, _proxy, mut grpc) = proxied().await;
    let mut call = tonic::Request::new(request("hello", 0));
    call.metadata_mut()
        .insert("x-meta", "carried".parse().unwrap());
    grpc.ready().await.unwrap();
    let response = grpc
        .unary::<_, EchoReply, _>(
            call,
            PathAndQuery::from_static(UNARY),
            ProstCodec::default(),
        )
        .await
        .unwrap();
    assert_eq!(response.metadata().get("x-meta-echo").unwrap(), "carried");
    let reply = response.into_inner();
    assert_eq!(reply.message, "hello");
    assert_eq!(reply.served_by, backend.addr().to_string());
}

#[tokio::test]
async fn a_server_stream_arrives_message_by_message() {
    let (_backend, _proxy, mut grpc) = proxied().await;
    grpc.ready().await.unwrap();
    let response = grpc
        .server_streaming::<_, EchoReply, _>(
            tonic::Request::new(request("tick", 5)),
            PathAndQuery::from_static(SERVER_STREAM),
            ProstCodec::default(),
        )
        .await
        .unwrap();
    let replies: Vec<EchoReply> = response
        .into_inner()
        .map(|reply| reply.unwrap())
        .collect()
        .await;
    let messages: Vec<&str> = replies.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        messages,
        ["tick #0", "tick #1", "tick #2", "tick #3", "tick #4"]
    );
}

#[tokio::test]
async fn a_bidirectional_stream_answers_each_message() {
    let (_backend, _proxy, mut grpc) = proxied().await;
    grpc.ready().await.unwrap();
    let outgoing = futures_util::stream::iter(["one", "two", "three"].map(|m| request(m, 0)));
    let response = grpc
        .streaming::<_, EchoRequest, EchoReply, _>(
            tonic::Request::new(outgoing),
            PathAndQuery::from_static(BIDI),
            ProstCodec::default(),
        )
        .await
        .unwrap();
    let replies: Vec<(u32, String)> = response
        .into_inner()
        .map(|reply| {
            let reply = reply.unwrap();
            (reply.index, reply.message)
        })
        .collect()
        .await;
    assert_eq!(
        replies,
        [
            (0, "one".to_owned()),
            (1, "two".to_owned()),
            (2, "three".to_owned())
        ]
    );
}

#[tokio::test]
async fn an_error_status_and_its_trailing_metadata_come_back() {
    let (_backend, _proxy, mut grpc) = proxied().await;
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<_, EchoReply, _>(
            tonic::Request::new(request("this", 0)),
            PathAndQuery::from_static(FAIL),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "refusing \"this\" on purpose");
    assert_eq!(
        status.metadata().get("x-reason").unwrap(),
        "the Fail method always fails"
    );
}

#[tokio::test]
async fn through_an_http1_upstream_grpc_fails_and_says_why() {
    // What an HTTP/1-only proxy does to gRPC: the call reaches the server
    // over HTTP/1.1, which a gRPC server does not speak.
    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let proxy = proxy_to(&backend.url(), &[]).await;
    let mut grpc = channel(&proxy.servers[0].url());
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<_, EchoReply, _>(
            tonic::Request::new(request("hello", 0)),
            PathAndQuery::from_static(UNARY),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_ne!(status.code(), tonic::Code::Ok);
    assert!(
        status.message().contains("505 HTTP Version Not Supported"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_quiet_bidirectional_stream_outlives_the_client_body_timeout() {
    // A streaming call may say nothing between messages for as long as it
    // lasts; the body timeout that cuts off stalled uploads must not cut it.
    let backend = real_server::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let proxy = proxy_to(
        &format!("h2c://{}", backend.addr()),
        &["--client-body-timeout", "0.2"],
    )
    .await;
    let mut grpc = channel(&proxy.servers[0].url());
    grpc.ready().await.unwrap();
    let (outgoing, queued) = tokio::sync::mpsc::unbounded_channel();
    outgoing.send(request("one", 0)).unwrap();
    let response = grpc
        .streaming::<_, EchoRequest, EchoReply, _>(
            tonic::Request::new(futures_util::stream::unfold(queued, |mut queued| async {
                queued.recv().await.map(|message| (message, queued))
            })),
            PathAndQuery::from_static(BIDI),
            ProstCodec::default(),
        )
        .await
        .unwrap();
    let mut replies = response.into_inner();
    assert_eq!(replies.next().await.unwrap().unwrap().message, "one");
    // Quiet for five body timeouts: what is being tested, not a wait.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    outgoing
        .send(request("two", 0))
        .expect("the call is still open");
    let second = replies.next().await.expect("the stream is still open");
    assert_eq!(second.unwrap().message, "two");
}
