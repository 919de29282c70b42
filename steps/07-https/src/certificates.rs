//! The proxy's own identity: a certificate chain and its private key, from
//! PEM files or made up on the spot.
//!
//! Terminating TLS means the proxy *is* the site as far as the client can
//! tell, so it must present a certificate the client trusts for the name
//! it dialled. In production that comes from a CA (`--tls-cert`,
//! `--tls-key`). For a course, a certificate nobody has to buy is better:
//! without the two flags the step generates a self-signed one for
//! `localhost` and `127.0.0.1` with rcgen, writes it out, and logs the
//! path, so `curl --cacert PATH` can trust exactly that certificate —
//! which is more honest than `curl -k`, which trusts anything.
//!
//! The server configuration offers HTTP/2 and HTTP/1.1 by ALPN, in that
//! order: a client that speaks both gets HTTP/2.
//!
//! Left out on purpose: several certificates chosen by SNI, OCSP stapling,
//! automatic renewal (ACME), client certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// What can go wrong setting TLS up; each says which file and why.
#[derive(Debug, Error)]
pub enum TlsSetupError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM certificate in it", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)", .0.display())]
    NoKey(PathBuf),
    #[error("{}: not a usable PEM certificate: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("the certificate and key cannot be used together: {0}")]
    Rejected(#[from] rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate chain (leaf first) and its key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file, in order.
pub fn certificates_from(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::BadCertificate {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate(path.to_owned()));
    }
    Ok(chain)
}

/// `--tls-cert` and `--tls-key`.
pub fn from_files(cert: &Path, key: &Path) -> Result<Identity, TlsSetupError> {
    let chain = certificates_from(cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| TlsSetupError::NoKey(key.to_owned()))?;
    Ok(Identity { chain, key })
}

/// How long a generated certificate is valid: 90 days, as a public CA's.
pub const SELF_SIGNED_VALIDITY: time::Duration = time::Duration::days(90);

/// A fresh self-signed certificate for `localhost` and `127.0.0.1`, its PEM
/// written to `out` for clients to trust.
pub fn self_signed(out: &Path) -> Result<Identity, TlsSetupError> {
    let mut params =
        rcgen::CertificateParams::new(["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "proxy workbench step07 (self-signed)",
    );
    // rcgen's default runs to the year 4096; a key that leaks should stop
    // working within a season, as a public CA's certificate does.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + SELF_SIGNED_VALIDITY;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let write_error = |source| TlsSetupError::Write {
        path: out.to_owned(),
        source,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    std::fs::write(out, cert.pem()).map_err(write_error)?;
    Ok(Identity {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::try_from(key.serialize_der()).map_err(|reason| {
            TlsSetupError::BadCertificate {
                path: out.to_owned(),
                reason: reason.to_owned(),
            }
        })?,
    })
}

/// The listening side's rustls configuration: this identity, HTTP/2 and
/// HTTP/1.1 offered by ALPN.
pub fn server_config(identity: Identity) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let mut config = rustls::ServerConfig::builder_with_provider(crate::crypto())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
