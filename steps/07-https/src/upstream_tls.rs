//! HTTPS to upstreams: the proxy as a TLS *client*, which must check who
//! it is talking to.
//!
//! A proxy that accepts any upstream certificate turns "encrypted" into
//! "encrypted to whoever answered": anyone on the network path between
//! proxy and backend can present a certificate of their own and read every
//! request. So upstream certificates are verified — against the system's
//! root CAs by default (`/etc/ssl/certs` on Debian, read when the first
//! upstream certificate is checked), or against exactly the
//! CA given with `--upstream-ca` (an internal CA, or the self-signed
//! certificate of a test backend). A certificate that does not verify is a
//! 502 whose text says why, never a silent success.
//!
//! A self-signed certificate made the usual way (`openssl req -x509 …`) is
//! marked as a CA, and a strict path builder (webpki, under rustls) refuses
//! a CA certificate as the server's own ("CaUsedAsEndEntity"). curl, Go and
//! nginx accept it when it is exactly the certificate they were told to
//! trust, and so does this transport: an upstream presenting a certificate
//! byte for byte identical to one in `--upstream-ca` is trusted as itself
//! (pinned), provided it names the host the proxy asked for. `--insecure-upstream`
//! exists because people will otherwise patch it in, and it logs a warning
//! on every start so nobody forgets it is on.
//!
//! [`HttpsTransport`] is the same `upstream_pool` step 03 uses, with hyper-rustls's
//! connector around the same TCP connector, so plain `http://` upstreams
//! still work beside `https://` ones, and pooling, timeouts and upgrades
//! (`wss://` upstreams) are unchanged.
//!
//! The handshake offers HTTP/2 and HTTP/1.1 by ALPN, and the pool speaks
//! whichever the upstream picks: one multiplexed connection for HTTP/2
//! (gRPC servers speak nothing else), kept-alive ones for HTTP/1.1.
//!
//! Left out on purpose: client certificates toward upstreams (mTLS),
//! certificate pinning beyond the self-signed case above.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hyper::{Request, Response};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use proxy_core::{RequestBody, RoundTripError, Transport};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use step03_reverse_proxy::TransportOptions;
use upstream_pool::{Pool, PooledBody};

use crate::certificates::{TlsSetupError, certificates_from};

/// Whom to believe about an upstream's identity.
#[derive(Debug, Clone)]
pub enum UpstreamTrust {
    /// The operating system's root CAs.
    SystemRoots,
    /// Only the CA certificates in this PEM file.
    CaFile(PathBuf),
    /// Nobody is checked. Dangerous.
    Insecure,
}

/// Step 03's pooled transport, speaking TLS to `https://` upstreams.
#[derive(Clone)]
pub struct HttpsTransport {
    pool: Pool<HttpsConnector<HttpConnector>>,
}

impl HttpsTransport {
    pub fn new(trust: &UpstreamTrust, options: &TransportOptions) -> Result<Self, TlsSetupError> {
        let builder = rustls::ClientConfig::builder_with_provider(crate::crypto())
            .with_safe_default_protocol_versions()?;
        let config = match trust {
            UpstreamTrust::SystemRoots => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SystemRoots {
                    provider: crate::crypto(),
                    webpki: OnceLock::new(),
                }))
                .with_no_client_auth(),
            UpstreamTrust::CaFile(path) => {
                let bad = |reason: String| TlsSetupError::BadCertificate {
                    path: path.clone(),
                    reason,
                };
                let anchors = certificates_from(path)?;
                let mut roots = RootCertStore::empty();
                for certificate in &anchors {
                    roots
                        .add(certificate.clone())
                        .map_err(|e| bad(e.to_string()))?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::crypto())
                        .build()
                        .map_err(|e| bad(e.to_string()))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnchorsOrThemselves {
                        webpki,
                        anchors,
                    }))
                    .with_no_client_auth()
            }
            UpstreamTrust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(crate::crypto())))
                .with_no_client_auth(),
        };
        let mut tcp = options.connector();
        // The TCP connector must let https:// URLs through to the TLS layer.
        tcp.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            // ALPN offers h2 and http/1.1; the pool speaks what the upstream picks.
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        Ok(Self {
            pool: options.pool(connector),
        })
    }
}

impl Transport for HttpsTransport {
    type Body = PooledBody;

    fn round_trip(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<PooledBody>, RoundTripError>> + Send {
        self.pool.round_trip(request)
    }

    fn speaks(&self, scheme: &str) -> bool {
        matches!(scheme, "http" | "https" | "h2c")
    }
}

/// `--upstream-ca`: a chain to one of the given certificates, as webpki
/// checks it — or one of those certificates itself, presented by the
/// upstream as its own (a self-signed certificate), if it names the host.
#[derive(Debug)]
struct AnchorsOrThemselves {
    webpki: Arc<WebPkiServerVerifier>,
    anchors: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for AnchorsOrThemselves {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .anchors
            .iter()
            .any(|anchor| anchor.as_ref() == end_entity.as_ref())
        {
            let parsed = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The system's root CAs, read when the first upstream certificate is
/// checked: a proxy that never meets an https upstream (most of the
/// gateway's configs) never holds them — 2 MiB of its memory
/// (bench/README.md, "The gateway on step 10's engine").
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<CryptoProvider>,
    webpki: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl SystemRoots {
    fn load(&self) -> Result<Arc<WebPkiServerVerifier>, String> {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!("while loading the system's root certificates: {error}");
        }
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!("trusting {added} system root certificates for https upstreams");
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| format!("the system's root certificates: {e}"))
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.get_or_init(|| self.load()) {
            Ok(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            Err(reason) => Err(rustls::Error::General(reason.clone())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        AcceptAnyCertificate(self.provider.clone()).verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        AcceptAnyCertificate(self.provider.clone()).verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `--insecure-upstream`: every certificate is accepted. The handshake
/// signatures are still checked, which proves only that the peer holds the
/// key of the certificate it showed — any certificate at all.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
