//! A gRPC service, so that proxies can be tested with what gRPC needs:
//! HTTP/2 all the way, trailers (the status travels in them), streams in
//! both directions, metadata.
//!
//! The service is `workbench.Echo`. Its messages are written out with
//! prost's derive instead of generated from a `.proto` file, so the build
//! needs no `protoc`; the equivalent definition is:
//!
//! ```proto
//! package workbench;
//! message EchoRequest { string message = 1; uint32 count = 2; }
//! message EchoReply { string message = 1; uint32 index = 2; string served_by = 3; }
//! service Echo {
//!   rpc Unary(EchoRequest) returns (EchoReply);           // x-meta metadata echoed as x-meta-echo
//!   rpc ServerStream(EchoRequest) returns (stream EchoReply); // `count` replies
//!   rpc Bidi(stream EchoRequest) returns (stream EchoReply);  // one reply per request
//!   rpc Fail(EchoRequest) returns (EchoReply);            // INVALID_ARGUMENT, x-reason trailer
//! }
//! ```
//!
//! Left out on purpose: reflection, health, compression, deadlines.

// tonic's service traits fix the error type to its `Status` (176 bytes).
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;

use futures_util::{Stream, StreamExt, stream};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tonic::codec::ProstCodec;
use tonic::server::{Grpc, ServerStreamingService, StreamingService, UnaryService};
use tonic::{Status, Streaming};

use crate::respond::Body;

/// A request to `workbench.Echo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    #[prost(string, tag = "1")]
    pub message: String,
    /// How many replies `ServerStream` sends.
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// A reply from `workbench.Echo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(uint32, tag = "2")]
    pub index: u32,
    /// The real server that answered (`ip:port`).
    #[prost(string, tag = "3")]
    pub served_by: String,
}

/// The paths of the service's methods.
pub const UNARY: &str = "/workbench.Echo/Unary";
pub const SERVER_STREAM: &str = "/workbench.Echo/ServerStream";
pub const BIDI: &str = "/workbench.Echo/Bidi";
pub const FAIL: &str = "/workbench.Echo/Fail";

/// Is this a gRPC call (`content-type: application/grpc…`)?
pub(crate) fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

type Replies = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;
type Answer<T> = Pin<Box<dyn Future<Output = Result<tonic::Response<T>, Status>> + Send>>;

#[derive(Clone)]
struct Echo {
    served_by: SocketAddr,
}

impl Echo {
    fn reply(&self, message: String, index: u32) -> EchoReply {
        EchoReply {
            message,
            index,
            served_by: self.served_by.to_string(),
        }
    }
}

impl UnaryService<EchoRequest> for Echo {
    type Response = EchoReply;
    type Future = Answer<EchoReply>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let meta = request.metadata().get("x-meta").cloned();
        let reply = self.reply(request.into_inner().message, 0);
        Box::pin(async move {
            let mut response = tonic::Response::new(reply);
            if let Some(meta) = meta {
                response.metadata_mut().insert("x-meta-echo", meta);
            }
            Ok(response)
        })
    }
}

#[derive(Clone)]
struct Failing;

impl UnaryService<EchoRequest> for Failing {
    type Response = EchoReply;
    type Future = Answer<EchoReply>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let message = request.into_inner().message;
        Box::pin(async move {
            let mut status = Status::invalid_argument(format!("refusing {message:?} on purpose"));
            status.metadata_mut().insert(
                "x-reason",
                "the Fail method always fails".parse().expect("ascii"),
            );
            Err(status)
        })
    }
}

impl ServerStreamingService<EchoRequest> for Echo {
    type Response = EchoReply;
    type ResponseStream = Replies;
    type Future = Answer<Replies>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let EchoRequest { message, count } = request.into_inner();
        let echo = self.clone();
        let replies = stream::iter(0..count.min(10_000))
            .map(move |index| Ok(echo.reply(format!("{message} #{index}"), index)));
        Box::pin(async move { Ok(tonic::Response::new(Box::pin(replies) as Replies)) })
    }
}

impl StreamingService<EchoRequest> for Echo {
    type Response = EchoReply;
    type ResponseStream = Replies;
    type Future = Answer<Replies>;

    fn call(&mut self, request: tonic::Request<Streaming<EchoRequest>>) -> Self::Future {
        let echo = self.clone();
        let replies = request
            .into_inner()
            .enumerate()
            .map(move |(index, request)| {
                request.map(|request| echo.reply(request.message, index as u32))
            });
        Box::pin(async move { Ok(tonic::Response::new(Box::pin(replies) as Replies)) })
    }
}

/// Answer one gRPC call. Like every real gRPC server, this one speaks
/// only HTTP/2: a call that arrives over HTTP/1.1 (through a proxy that
/// cannot speak HTTP/2 upstream) gets 505 HTTP Version Not Supported.
pub(crate) async fn serve(served_by: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if req.version() != hyper::Version::HTTP_2 {
        return crate::respond::text(
            hyper::StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            format!(
                "gRPC needs HTTP/2, and this call came over {:?}\n",
                req.version()
            ),
        );
    }
    let echo = Echo { served_by };
    let mut grpc = Grpc::new(ProstCodec::<EchoReply, EchoRequest>::default());
    let response = match req.uri().path() {
        UNARY => grpc.unary(echo, req).await,
        SERVER_STREAM => grpc.server_streaming(echo, req).await,
        BIDI => grpc.streaming(echo, req).await,
        FAIL => grpc.unary(Failing, req).await,
        _ => {
            Status::unimplemented(format!("{} is not a method here", req.uri().path())).into_http()
        }
    };
    // An error inside a gRPC body (it could only be an encoding one) ends
    // the stream; the body type here has no room for errors.
    response.map(|body| {
        let frames = BodyStream::new(body)
            .take_while(|frame| std::future::ready(frame.is_ok()))
            .filter_map(|frame| std::future::ready(frame.ok().map(Ok::<_, Infallible>)));
        BodyExt::boxed_unsync(StreamBody::new(frames))
    })
}
