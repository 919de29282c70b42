//! Probes: the same questions put to any proxy that has a real server
//! behind it.
//!
//! Each probe sends something a real proxy must get right and reads the
//! answer (usually real_server's echo of what arrived) to decide pass or
//! fail. The tour runs them through steps 02 and 03 to print the probe ×
//! step table; `cargo run -- --target URL` runs them against any proxy —
//! nginx, Go's ReverseProxy, your own — so a learner can hold ours beside
//! theirs. `tests/cross_step.rs` pins what each step passes.
//!
//! Left out on purpose: probes that need a misbehaving backend (truncated
//! or garbled responses); they live in step 03's own tests, which control
//! the backend.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use real_server::Echo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// One probe's verdict: passed, or failed with what was seen instead.
pub type Verdict = anyhow::Result<()>;

/// A proxy under test, reached at `base` (e.g. `http://127.0.0.1:2002`).
pub struct Target {
    base: String,
    authority: String,
    client: reqwest::Client,
}

impl Target {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base).with_context(|| format!("{base:?} is not a URL"))?;
        ensure!(url.scheme() == "http", "only http:// targets can be probed");
        let host = url.host_str().context("the target URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            authority: format!("{host}:{port}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    async fn echo(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Echo> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status();
        ensure!(status == 200, "the echo answered {status}");
        response
            .json()
            .await
            .context("the answer is not real_server's echo")
    }

    /// Send raw bytes, read until the proxy closes (at most 5 s).
    async fn raw(&self, request: &str) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(&self.authority).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
}

fn echo_of(answer: &str) -> anyhow::Result<Echo> {
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .context("no complete response")?;
    serde_json::from_str(body).with_context(|| format!("not an echo: {}", first_line(answer)))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("(nothing)")
}

/// Passes when the backend did not receive header `name`.
fn absent_upstream(echo: &Echo, name: &str) -> Verdict {
    match echo.header(name) {
        None => Ok(()),
        Some(value) => bail!("the backend got {name}: {value}"),
    }
}

/// Passes when the proxy refused (400) or hung up.
fn refused(answer: &str) -> Verdict {
    ensure!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "answered {}",
        first_line(answer)
    );
    Ok(())
}

/// Why a probe was not judged: what it checks could not be reached, which
/// says nothing of the target either way (shown as `–`, not `✗`).
#[derive(Debug)]
pub struct NotJudged(pub String);

impl std::fmt::Display for NotJudged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not judged: {}", self.0)
    }
}

impl std::error::Error for NotJudged {}

/// The verdict is "not judged".
pub fn not_judged(verdict: &Verdict) -> bool {
    verdict
        .as_ref()
        .err()
        .is_some_and(|e| e.downcast_ref::<NotJudged>().is_some())
}

/// The probes that need a real_server endpoint (`/ws`, `/stream/…`,
/// `/trailers`) to be reached under the path they ask for.
pub const NEED_ENDPOINTS: [&str; 3] = [
    "websocket upgrade tunnelled",
    "first chunk streams at once",
    "announced trailers forwarded",
];

impl Target {
    /// What the target does to a path: `None` when `/probe/path` reaches
    /// real_server as itself, else the path and query it arrived as (a
    /// proxy started with `--upstream http://…/base?x=1` prefixes every
    /// path, and then real_server's endpoints are out of the probes' reach).
    pub async fn path_mapping(&self) -> anyhow::Result<Option<String>> {
        const ASKED: &str = "/probe/path";
        let echo = self.echo(ASKED, &[]).await?;
        let seen = match &echo.query {
            Some(query) if !query.is_empty() => format!("{}?{query}", echo.path),
            _ => echo.path.clone(),
        };
        Ok((seen != ASKED).then_some(seen))
    }
}

/// Every probe, in the order the table shows them.
pub const PROBES: [(&str, Probe); 15] = [
    ("hop-by-hop request headers removed", hop_by_hop_request),
    ("hop-by-hop response headers removed", hop_by_hop_response),
    ("X-Forwarded-For appended", forwarded_for),
    ("X-Forwarded-Host and -Proto set", forwarded_host_proto),
    ("X-Real-IP set", real_ip),
    ("Host is the upstream's", host_rewritten),
    ("no User-Agent invented", no_user_agent),
    ("websocket upgrade tunnelled", websocket),
    ("first chunk streams at once", streaming),
    ("announced trailers forwarded", trailers),
    ("Expect: 100-continue answered", expect_continue),
    ("upstream connections reused", pooled),
    ("two Host headers rejected", two_hosts),
    ("Upgrade: h2c not forwarded", h2c),
    ("conflicting Content-Length rejected", conflicting_length),
];

/// The gRPC probes, apart from the table: they pass only through a target
/// that speaks HTTP/2 to real_server (from step 03 on, `--upstream
/// h2c://…`), which is a choice, not a behaviour every proxy must have.
pub const GRPC_PROBES: [(&str, Probe); 3] = [
    ("gRPC unary call", grpc_unary),
    ("gRPC server stream", grpc_server_stream),
    ("gRPC error status in trailers", grpc_error_status),
];

/// Run the gRPC probes against `target`.
pub async fn run_grpc(target: &Target) -> Vec<(&'static str, Verdict)> {
    let mut results = Vec::new();
    for (name, probe) in GRPC_PROBES {
        let verdict = match tokio::time::timeout(Duration::from_secs(15), probe(target)).await {
            Ok(verdict) => verdict,
            Err(_) => Err(anyhow::anyhow!("no answer within 15 s")),
        };
        results.push((name, verdict));
    }
    results
}

type GrpcChannel = tonic::client::Grpc<
    Client<hyper_util::client::legacy::connect::HttpConnector, tonic::body::BoxBody>,
>;

/// A tonic client speaking HTTP/2 (prior knowledge) to the target.
fn grpc_channel(t: &Target) -> anyhow::Result<GrpcChannel> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    Ok(tonic::client::Grpc::with_origin(client, t.base.parse()?))
}

fn grpc_call(message: &str, count: u32) -> tonic::Request<real_server::grpc::EchoRequest> {
    tonic::Request::new(real_server::grpc::EchoRequest {
        message: message.to_owned(),
        count,
    })
}

/// A failed call, in a line: what came back instead of a gRPC answer, or
/// the status code and the first line of its message.
fn grpc_failure(status: &tonic::Status) -> anyhow::Error {
    const NOT_GRPC: &str = "while receiving response with status: ";
    match status.message().split_once(NOT_GRPC) {
        Some((_, http)) => anyhow::anyhow!("answered {http} instead of a gRPC response"),
        None => anyhow::anyhow!("{:?}: {}", status.code(), first_line(status.message())),
    }
}

fn grpc_unary(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let mut grpc = grpc_channel(t)?;
        grpc.ready().await?;
        let reply = grpc
            .unary::<_, real_server::grpc::EchoReply, _>(
                grpc_call("probe", 0),
                hyper::http::uri::PathAndQuery::from_static(real_server::grpc::UNARY),
                tonic::codec::ProstCodec::default(),
            )
            .await
            .map_err(|status| grpc_failure(&status))?;
        ensure!(
            reply.get_ref().message == "probe",
            "the reply was {:?}",
            reply.get_ref()
        );
        Ok(())
    })
}

fn grpc_server_stream(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let mut grpc = grpc_channel(t)?;
        grpc.ready().await?;
        let mut replies = grpc
            .server_streaming::<_, real_server::grpc::EchoReply, _>(
                grpc_call("tick", 3),
                hyper::http::uri::PathAndQuery::from_static(real_server::grpc::SERVER_STREAM),
                tonic::codec::ProstCodec::default(),
            )
            .await
            .map_err(|status| grpc_failure(&status))?
            .into_inner();
        let mut count = 0;
        while let Some(reply) = replies
            .message()
            .await
            .map_err(|status| grpc_failure(&status))?
        {
            ensure!(
                reply.index == count,
                "reply {} arrived as {count}",
                reply.index
            );
            count += 1;
        }
        ensure!(count == 3, "{count} replies of 3");
        Ok(())
    })
}

fn grpc_error_status(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let mut grpc = grpc_channel(t)?;
        grpc.ready().await?;
        let status = match grpc
            .unary::<_, real_server::grpc::EchoReply, _>(
                grpc_call("probe", 0),
                hyper::http::uri::PathAndQuery::from_static(real_server::grpc::FAIL),
                tonic::codec::ProstCodec::default(),
            )
            .await
        {
            Ok(_) => bail!("the failing method succeeded"),
            Err(status) => status,
        };
        ensure!(
            status.code() == tonic::Code::InvalidArgument
                && status.metadata().contains_key("x-reason"),
            "{}",
            grpc_failure(&status)
        );
        Ok(())
    })
}

/// A probe: an async check against a target.
pub type Probe = for<'a> fn(&'a Target) -> futures_util::future::BoxFuture<'a, Verdict>;

/// Run every probe against `target`; a probe that hangs fails after 15 s.
pub async fn run_all(target: &Target) -> Vec<(&'static str, Verdict)> {
    let mut results = Vec::new();
    for (name, probe) in PROBES {
        let verdict = match tokio::time::timeout(Duration::from_secs(15), probe(target)).await {
            Ok(verdict) => verdict,
            Err(_) => Err(anyhow::anyhow!("no answer within 15 s")),
        };
        results.push((name, verdict));
    }
    results
}

fn hop_by_hop_request(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let echo = t
            .echo(
                "/",
                &[("connection", "x-private"), ("x-private", "for the proxy")],
            )
            .await?;
        absent_upstream(&echo, "x-private")
    })
}

fn hop_by_hop_response(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let url = format!(
            "{}/headers?set=Connection:X-Secret&set=X-Secret:internal",
            t.base
        );
        let response = t.client.get(url).send().await?;
        match response.headers().get("x-secret") {
            None => Ok(()),
            Some(v) => bail!("the client got x-secret: {v:?}"),
        }
    })
}

fn forwarded_for(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let echo = t.echo("/", &[("x-forwarded-for", "198.51.100.7")]).await?;
        match echo.header("x-forwarded-for") {
            Some(v) if v.starts_with("198.51.100.7, ") => Ok(()),
            other => bail!("x-forwarded-for: {}", other.unwrap_or("(none)")),
        }
    })
}

fn forwarded_host_proto(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let echo = t.echo("/", &[]).await?;
        match (
            echo.header("x-forwarded-host"),
            echo.header("x-forwarded-proto"),
        ) {
            (Some(_), Some("http")) => Ok(()),
            (host, proto) => bail!(
                "x-forwarded-host: {}, x-forwarded-proto: {}",
                host.unwrap_or("(none)"),
                proto.unwrap_or("(none)")
            ),
        }
    })
}

fn real_ip(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let echo = t.echo("/", &[]).await?;
        ensure!(echo.header("x-real-ip").is_some(), "no x-real-ip");
        Ok(())
    })
}

fn host_rewritten(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let echo = t.echo("/", &[]).await?;
        match echo.header("host") {
            Some(host) if host == echo.served_by => Ok(()),
            other => bail!(
                "host: {} (upstream is {})",
                other.unwrap_or("(none)"),
                echo.served_by
            ),
        }
    })
}

fn no_user_agent(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let answer = t
            .raw(&format!(
                "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                t.authority
            ))
            .await?;
        absent_upstream(&echo_of(&answer)?, "user-agent")
    })
}

fn websocket(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let url = format!("ws://{}/ws", t.authority);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("handshake failed")?;
        ws.send(Message::text("ping through the proxy")).await?;
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Ok(Some(Ok(message))) if message == Message::text("ping through the proxy") => Ok(()),
            Ok(other) => bail!("no echo: {other:?}"),
            Err(_) => bail!("no echo within 3 s"),
        }
    })
}

fn streaming(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let started = Instant::now();
        let response = t
            .client
            .get(format!("{}/stream/2?interval_ms=1500", t.base))
            .send()
            .await?;
        let mut chunks = response.bytes_stream();
        chunks.next().await.context("no body")??;
        let first = started.elapsed();
        ensure!(
            first < Duration::from_millis(1000),
            "the first chunk took {first:?}"
        );
        Ok(())
    })
}

fn trailers(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let request = hyper::Request::get(format!("{}/trailers", t.base))
            .header("te", "trailers")
            .body(Empty::new())?;
        let body = client.request(request).await?.into_body().collect().await?;
        match body.trailers() {
            Some(trailers) if trailers.contains_key("x-checksum") => Ok(()),
            other => bail!("trailers: {other:?}"),
        }
    })
}

fn expect_continue(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let mut stream = TcpStream::connect(&t.authority).await?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            t.authority
        );
        stream.write_all(head.as_bytes()).await?;
        let mut interim = [0u8; 25];
        tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut interim))
            .await
            .context("no 100 Continue within 3 s")??;
        ensure!(
            interim.starts_with(b"HTTP/1.1 100"),
            "got {:?} before the body",
            String::from_utf8_lossy(&interim)
        );
        stream.write_all(b"hello").await?;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        let rest = String::from_utf8_lossy(&rest);
        let answer = rest
            .split_once("HTTP/1.1 ")
            .map(|(_, a)| a)
            .unwrap_or(&rest);
        ensure!(
            answer.starts_with("200"),
            "final answer: {}",
            first_line(answer)
        );
        Ok(())
    })
}

fn pooled(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let mut peers = std::collections::HashSet::new();
        for _ in 0..5 {
            // A fresh client connection every time: only the proxy can reuse.
            let answer = t
                .raw(&format!(
                    "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    t.authority
                ))
                .await?;
            peers.insert(echo_of(&answer)?.remote_addr);
        }
        ensure!(
            peers.len() == 1,
            "{} different upstream connections for 5 requests",
            peers.len()
        );
        Ok(())
    })
}

fn two_hosts(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let answer = t
            .raw(
                "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
            )
            .await?;
        refused(&answer)
    })
}

fn h2c(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let answer = t
            .raw(&format!(
                "GET / HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
                t.authority
            ))
            .await?;
        absent_upstream(&echo_of(&answer)?, "upgrade")
    })
}

fn conflicting_length(t: &Target) -> futures_util::future::BoxFuture<'_, Verdict> {
    Box::pin(async move {
        let answer = t
            .raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
            .await?;
        refused(&answer)
    })
}
