//! Step 01: a forward proxy.
//!
//! A forward proxy works for the client. The client names the real target
//! in every request — `GET http://host/path HTTP/1.1` (absolute form) for
//! plain HTTP, `CONNECT host:443` for anything it wants to keep to itself —
//! and the proxy goes there on its behalf. The flow follows the seed's line
//! "client request → proxy listening → upstream TCP connection → copy the
//! request → transport round trip → write the response back":
//!
//! 1. [`ForwardProxy::handle`] receives the request (the listening part is
//!    `serving`'s accept loop);
//! 2. for `CONNECT` it dials the target and, once the client has its 200,
//!    copies bytes both ways ([`tunnel`]); it never sees what they mean;
//! 3. otherwise it copies the request, strips hop-by-hop headers
//!    ([`proxy_core::headers`]), appends `X-Forwarded-For` and sends it through a pooled
//!    hyper-util client — the transport's round trip;
//! 4. status, headers (stripped the same way) and body stream back.
//!
//! Left out on purpose: caching, HTTPS interception (a CONNECT tunnel is
//! opaque; decrypting it would need a forged certificate), and access
//! control beyond Basic proxy authentication.

pub mod destination;
pub mod tunnel;

use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use clap::Parser;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use proxy_core::headers;
use proxy_core::{ProxyBody, error_chain, text_response};
use serving::{Binder, ConnectionFlags, Launched, Server};

use destination::{ConnectPorts, Policy, Refusal};
use tracing::debug;

/// How long to wait for a TCP connection to a target before answering 502.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Command line of `step01-forward-proxy`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "step01-forward-proxy",
    about = "Step 01: a forward proxy for absolute-form HTTP requests and CONNECT tunnels (curl -x http://127.0.0.1:8080 …)"
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Require `Proxy-Authorization: Basic` with these credentials (407 otherwise).
    #[arg(long, value_name = "USER:PASSWORD", value_parser = parse_credentials)]
    pub proxy_auth: Option<String>,
    /// Let clients reach loopback, private and link-local addresses (off:
    /// they get 403, so the proxy is no way into the network behind it).
    #[arg(long)]
    pub allow_private: bool,
    /// Ports CONNECT may tunnel to: `any`, or a list like 443,8443.
    #[arg(long, value_name = "PORTS", default_value = "443")]
    pub connect_ports: ConnectPorts,
    /// The limits every server here puts on its clients.
    #[command(flatten)]
    pub connections: ConnectionFlags,
}

fn parse_credentials(raw: &str) -> Result<String, String> {
    match raw.split_once(':') {
        Some((user, _)) if !user.is_empty() => Ok(raw.to_owned()),
        _ => Err("expected USER:PASSWORD, e.g. alice:secret".to_owned()),
    }
}

/// Start the forward proxy.
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let listener = binder.bind(args.listen).await?;
    let policy = Policy {
        listen: listener.local_addr()?,
        allow_private: args.allow_private,
        connect_ports: args.connect_ports,
    };
    let proxy = Arc::new(ForwardProxy::new(policy, args.proxy_auth));
    let server = Server::new(listener, "forward proxy")
        .options(args.connections.server_options())
        .spawn(move |peer| {
            let proxy = proxy.clone();
            service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(peer, req).await) }
            })
        })?;
    let mut launched = Launched::default();
    launched.push(server);
    Ok(launched)
}

/// Does `offered` (a `Proxy-Authorization` value) carry the Basic
/// credentials whose base64 is `expected`? Scheme names are
/// case-insensitive (`basic` is `Basic`), and the secret is compared in
/// constant time, so how long a refusal takes says nothing about a guess.
pub fn basic_credentials_match(offered: Option<&HeaderValue>, expected: &str) -> bool {
    matches!(
        offered.and_then(headers::split_credentials),
        Some((scheme, credentials))
            if scheme.eq_ignore_ascii_case("basic")
                && headers::constant_time_eq(credentials.as_bytes(), expected.as_bytes())
    )
}

/// The forward proxy's state, shared by every connection.
pub struct ForwardProxy {
    client: Client<HttpConnector<CheckedResolver>, Incoming>,
    policy: Arc<Policy>,
    /// The expected `Proxy-Authorization: Basic` credentials (base64), if
    /// auth is on.
    expected_auth: Option<String>,
    /// This instance's name in `Via`, to recognise requests that come back.
    via: HeaderValue,
}

impl ForwardProxy {
    pub fn new(policy: Policy, proxy_auth: Option<String>) -> Self {
        let policy = Arc::new(policy);
        let listen = policy.listen;
        // The connector resolves names through the policy too, so a name
        // that resolves to a private address only when it is dialled (DNS
        // rebinding) is refused there as well.
        let mut connector = HttpConnector::new_with_resolver(CheckedResolver(policy.clone()));
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let expected_auth = proxy_auth
            .map(|credentials| base64::engine::general_purpose::STANDARD.encode(credentials));
        // A random token, so that two proxies on different machines with the
        // same address do not mistake each other for themselves.
        let token = RandomState::new().hash_one(listen);
        let via = HeaderValue::from_str(&format!("1.1 workbench-{token:016x}"))
            .expect("hex is a valid header");
        Self {
            client,
            policy,
            expected_auth,
            via,
        }
    }

    /// Answer one request from `peer`.
    pub async fn handle(&self, peer: SocketAddr, req: Request<Incoming>) -> Response<ProxyBody> {
        if let Some(refusal) = self.check_auth(&req) {
            return refusal;
        }
        if req.method() == Method::CONNECT {
            return tunnel::open(req, peer, &self.policy).await;
        }
        let target = match (req.uri().scheme_str(), req.uri().authority()) {
            (Some("http"), Some(authority)) => authority.clone(),
            (Some(_), Some(_)) => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    "only http:// URLs are forwarded as plain requests; https:// goes through a CONNECT tunnel (curl does this by itself with -x)",
                );
            }
            _ => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    "this is a forward proxy: send the full URL in the request line (GET http://host/path), as curl -x or a browser's proxy setting do",
                );
            }
        };
        let came_back = req.headers().get_all(header::VIA).iter().any(|v| {
            v.as_bytes()
                .windows(self.via.len())
                .any(|w| w == self.via.as_bytes())
        });
        let refusal = if came_back {
            Err(Refusal::Loop)
        } else {
            let port = target.port_u16().unwrap_or(80);
            self.policy.resolve(target.host(), port).await.map(|_| ())
        };
        if let Err(refusal) = refusal {
            return text_response(
                refusal.status(),
                format!("refusing to forward to {target}: {refusal}"),
            );
        }
        self.forward(peer, req).await
    }

    fn check_auth(&self, req: &Request<Incoming>) -> Option<Response<ProxyBody>> {
        let expected = self.expected_auth.as_ref()?;
        if basic_credentials_match(req.headers().get(header::PROXY_AUTHORIZATION), expected) {
            return None;
        }
        let mut refusal = text_response(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "this proxy needs Proxy-Authorization: Basic credentials (curl -x http://user:password@host:port …)",
        );
        refusal.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"proxy workbench\""),
        );
        Some(refusal)
    }

    async fn forward(&self, peer: SocketAddr, req: Request<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        // Anything else addressed to a proxy stops here too.
        let proxy_headers: Vec<_> = parts
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in proxy_headers {
            parts.headers.remove(name);
        }
        headers::append_forwarded_for(&mut parts.headers, &headers::ip_header_value(peer.ip()));
        parts.headers.append(header::VIA, self.via.clone());
        // Upstreams are spoken to in HTTP/1.1 whatever the client used.
        parts.version = Version::HTTP_11;
        let uri: Uri = parts.uri.clone();
        let method = parts.method.clone();
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                debug!("{method} {uri} → {}", parts.status);
                Response::from_parts(parts, body.map_err(Into::into).boxed())
            }
            Err(e) => {
                let reason = error_chain(&e);
                debug!("{method} {uri} failed: {reason}");
                text_response(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot reach {uri}: {reason}"),
                )
            }
        }
    }
}

/// Name resolution for the forward proxy's client, through the policy.
#[derive(Clone)]
pub struct CheckedResolver(Arc<Policy>);

impl tower_service::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.0.clone();
        // The connector fills in the port; resolving only needs the name.
        Box::pin(async move {
            policy
                .resolve(name.as_str(), 0)
                .await
                .map(Vec::into_iter)
                .map_err(|refusal| {
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, refusal.to_string())
                })
        })
    }
}
