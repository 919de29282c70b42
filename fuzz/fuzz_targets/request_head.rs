//! Arbitrary bytes as a client's request stream, through hyper's HTTP/1
//! server and step 03's checks and header rules, to a transport that only
//! records what it was asked to send. Whatever arrives, nothing panics,
//! and every request that reaches the upstream is one a strict server
//! reads the same way the proxy did: one Host (the upstream's), no
//! hop-by-hop header, nothing the client's Connection header named, and
//! the client's address last in X-Forwarded-For.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use proxy_core::{ClientConn, RequestBody, RoundTripError, Transport};
use step03_reverse_proxy::{ReverseProxy, single_host};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The heads the proxy tried to send upstream, each with the names the
/// client's own Connection header listed.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(HeaderMap, Named)>>>);

/// The names a request's Connection header listed, as the client sent it
/// (carried to the transport in the request's extensions).
#[derive(Clone, Default)]
struct Named(Vec<HeaderName>);

/// An upstream's body, as a transport hands it over.
type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

impl Transport for Recorder {
    type Body = UpstreamBody;

    async fn round_trip(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, RoundTripError> {
        let named = request.extensions().get::<Named>().cloned().unwrap_or_default();
        self.0.lock().unwrap().push((request.headers().clone(), named));
        Ok(Response::new(
            Empty::<Bytes>::new().map_err(|never| match never {}).boxed(),
        ))
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
}

fuzz_target!(|data: &[u8]| {
    RUNTIME.with(|runtime| runtime.block_on(exchange(data)));
});

async fn exchange(data: &[u8]) {
    let recorder = Recorder::default();
    let proxy = Arc::new(ReverseProxy::with_transport(
        single_host("http://upstream.test:8080".parse().unwrap()),
        recorder.clone(),
    ));
    let peer: SocketAddr = "192.0.2.9:5555".parse().unwrap();
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let service = service_fn(move |mut req: Request<hyper::body::Incoming>| {
        let proxy = proxy.clone();
        let named = req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
            .collect();
        req.extensions_mut().insert(Named(named));
        async move {
            let client = ClientConn::new(peer, "http");
            Ok::<_, std::convert::Infallible>(proxy.serve(&client, req).await)
        }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(server), service);
    let served = tokio::spawn(connection);
    let _ = client.write_all(data).await;
    let _ = client.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
    served.abort();
    for (sent, named) in recorder.0.lock().unwrap().iter() {
        check(sent, named, data);
    }
}

fn check(sent: &HeaderMap, named: &Named, data: &[u8]) {
    let hosts: Vec<_> = sent.get_all(header::HOST).iter().collect();
    assert_eq!(hosts, ["upstream.test:8080"], "{data:?}");
    for name in HOP_BY_HOP {
        assert!(!sent.contains_key(name), "{name} forwarded: {data:?}");
    }
    // TE survives only as `trailers`.
    for te in sent.get_all(header::TE) {
        assert_eq!(te, "trailers", "{data:?}");
    }
    let forwarded: Vec<_> = sent.get_all("x-forwarded-for").iter().collect();
    assert_eq!(forwarded.len(), 1, "one X-Forwarded-For: {data:?}");
    let list = forwarded[0].to_str().unwrap_or_default();
    assert!(list.ends_with("192.0.2.9"), "{list:?}: {data:?}");
    // Nothing the client's Connection header named got through, except
    // what the proxy itself sets.
    for name in &named.0 {
        let ours = name.as_str().starts_with("x-forwarded-")
            || name == "x-real-ip"
            || name == header::HOST
            || name == header::TE;
        assert!(ours || !sent.contains_key(name), "{name} forwarded: {data:?}");
    }
}
