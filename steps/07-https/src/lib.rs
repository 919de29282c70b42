//! Step 07: HTTPS — the proxy of steps 05 and 06 behind TLS, and TLS to
//! upstreams.
//!
//! Two different jobs share the word "HTTPS" here:
//!
//! * **terminating TLS** ([`certificates`], `serving::Server::tls`): the
//!   proxy holds the site's certificate and key, decrypts, and handles the
//!   plain HTTP inside like every earlier step — which is what lets it read
//!   paths, add X-Forwarded-Proto: https, balance, rate limit. Step 01's
//!   CONNECT is the opposite, *pass-through*: the forward proxy relays
//!   encrypted bytes it cannot read. ALPN on the same port offers HTTP/2 and
//!   HTTP/1.1, and hyper serves whichever the client picked;
//! * **originating TLS** ([`upstream_tls`]): `https://` upstreams, verified
//!   against the system roots or `--upstream-ca`.
//!
//! `--redirect-http ADDR` ([`redirect`]) adds a plain listener that sends
//! everyone to https. Everything else — flags, chain, websockets (now
//! `wss://`), sticky placement — is step 06's.
//!
//! Left out on purpose: SNI with several certificates, certificate reload
//! without restart, ACME, HTTP/3.

pub mod certificates;
pub mod redirect;
pub mod upstream_tls;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args as _, Command, FromArgMatches};
use rustls::crypto::CryptoProvider;
use serving::{Binder, Launched, Server};

use crate::upstream_tls::{HttpsTransport, UpstreamTrust};

/// The one cryptography provider every TLS configuration here uses (ring),
/// named explicitly so the build never depends on which providers other
/// crates happen to enable.
pub fn crypto() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Command line of `step07-https`: step 06's, plus TLS.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "https")]
pub struct Args {
    #[command(flatten)]
    pub websocket: step06_websocket::Args,
    /// Certificate chain to serve (PEM, leaf first). Without --tls-cert and
    /// --tls-key, a self-signed certificate for localhost and 127.0.0.1 is
    /// generated at start.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where to write the generated certificate, for `curl --cacert`
    /// (default: step07-https-PORT.pem in the system's temp directory).
    #[arg(long, value_name = "FILE", conflicts_with = "tls_cert")]
    pub cert_out: Option<PathBuf>,
    /// Trust only the CA certificates in this PEM file for https upstreams
    /// (default: the system's root certificates).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure_upstream")]
    pub upstream_ca: Option<PathBuf>,
    /// Accept any certificate from https upstreams. Dangerous: anyone on the
    /// path to them can read and change the traffic. Warns at every start.
    #[arg(long)]
    pub insecure_upstream: bool,
    /// Also listen for plain HTTP here, and redirect every request to https.
    #[arg(long, value_name = "ADDR")]
    pub redirect_http: Option<SocketAddr>,
}

impl Args {
    pub fn command() -> Command {
        step06_websocket::sticky_defaults(Self::augment_args(Command::new("step07-https"))).about(
            "Step 07: the balanced, guarded proxy over HTTPS — TLS termination (HTTP/2 and HTTP/1.1 by ALPN), verified https upstreams, an http→https redirect",
        )
    }

    pub fn try_parse_from<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::from_arg_matches(&Self::command().try_get_matches_from(argv)?)
    }

    /// Parse the process's arguments; print help or the error and exit as clap does.
    pub fn parse() -> Self {
        Self::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    fn upstream_trust(&self) -> UpstreamTrust {
        match (&self.upstream_ca, self.insecure_upstream) {
            (_, true) => UpstreamTrust::Insecure,
            (Some(ca), false) => UpstreamTrust::CaFile(ca.clone()),
            (None, false) => UpstreamTrust::SystemRoots,
        }
    }
}

/// Start the HTTPS proxy, the optional redirect listener, and the real
/// servers when no upstream was given.
pub async fn launch(args: Args, binder: &Binder) -> anyhow::Result<Launched> {
    let middleware_args = &args.websocket.middleware;
    let listener = binder.bind(middleware_args.listen).await?;
    let port = listener.local_addr()?.port();

    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => certificates::from_files(cert, key)?,
        _ => {
            let out = args
                .cert_out
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(format!("step07-https-{port}.pem")));
            let identity = certificates::self_signed(&out)?;
            tracing::info!(
                "no --tls-cert: self-signed certificate for localhost and 127.0.0.1 written to {0}; try: curl --cacert {0} https://127.0.0.1:{port}/",
                out.display()
            );
            identity
        }
    };
    let tls = certificates::server_config(identity)?;

    let trust = args.upstream_trust();
    if matches!(trust, UpstreamTrust::Insecure) {
        tracing::warn!(
            "--insecure-upstream: certificates of https upstreams are NOT verified; anyone between this proxy and its upstreams can read and change the traffic"
        );
    }
    let transport = HttpsTransport::new(&trust, &middleware_args.proxy.transport())?;

    let mut launched = Launched::default();
    let chain = step06_websocket::build(&args.websocket, binder, &mut launched, transport).await?;
    let server = Server::new(listener, "https proxy")
        .options(middleware_args.proxy.serve.server_options())
        .tls(tls);
    launched.push(step05_middleware::serve(
        chain,
        server,
        middleware_args.proxy.serve.trusted_proxies(),
    )?);
    if let Some(addr) = args.redirect_http {
        let server = Server::new(binder.bind(addr).await?, "https redirect");
        launched.push(redirect::spawn(server, port)?);
    }
    Ok(launched)
}
