//! Authentication and address rules, checked before anything reaches an
//! upstream.
//!
//! - **IP allow/deny** by CIDR: deny wins; with an allow list, only listed
//!   networks get in. Refusal: 403 — we know who you are, and no.
//! - **Basic**: `Authorization: Basic base64(user:password)` against a list
//!   of pairs. Simple, and only safe over TLS (step 07): the password
//!   travels with every request.
//! - **JWT bearer**: `Authorization: Bearer <token>`, a signed claim set.
//!   The proxy checks the signature (HS256 with a shared secret, or RS256
//!   with the issuer's public key) and the `exp`/`nbf` times, then forwards
//!   the request; backends can trust the claims without a session store.
//!
//! With Basic and JWT both configured, either one lets a request in. A
//! missing or bad credential is a 401 whose `WWW-Authenticate` says which
//! schemes are accepted, and whose body says what was wrong in a few words
//! of our own (never a library's internals). The `Authorization` header is
//! forwarded: backends may want the identity.
//!
//! Details an attacker probes: scheme names are case-insensitive
//! (`bearer` is `Bearer`); passwords are compared in constant time; a
//! token is refused when its header lists `crit` extensions, which this
//! proxy understands none of (RFC 7515 §4.1.11); and with `--jwt-issuer` /
//! `--jwt-audience` a token minted for another service is refused.

use std::net::IpAddr;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use ipnet::IpNet;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use proxy_core::headers::{constant_time_eq, split_credential_bytes};
use proxy_core::{HeadView, ProxyBody, Refusal};

use crate::{Ctx, Middleware, Next};

/// The JWT verification key.
#[derive(Debug, Clone, PartialEq)]
pub enum JwtKey {
    Hs256Secret(Vec<u8>),
    Rs256PublicPem(Vec<u8>),
}

#[derive(Default)]
pub struct Auth {
    basic: Vec<String>,
    jwt: Option<(DecodingKey, Validation)>,
    /// Claims a token must carry (`exp`, and `iss`/`aud` when configured):
    /// jsonwebtoken checks `aud` only when the token has one.
    required_claims: Vec<&'static str>,
    addresses: AddressRules,
}

/// IP allow and deny lists: deny wins; with an allow list, only listed
/// networks get in. Step 05 applies the same rules to its admin pages.
#[derive(Debug, Clone, Default)]
pub struct AddressRules {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl AddressRules {
    /// Why `ip` may not come in, if it may not.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return Some(format!("forbidden: {ip} is in a denied network"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&ip)) {
            return Some(format!("forbidden: {ip} is not in an allowed network"));
        }
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the RS256 public key is not a PEM RSA key: {0}")]
    BadPublicKey(jsonwebtoken::errors::Error),
}

impl Auth {
    /// Accept these `user:password` pairs with Basic auth.
    pub fn basic(mut self, pairs: Vec<String>) -> Self {
        self.basic = pairs;
        self
    }

    /// Accept bearer tokens signed with `key`.
    pub fn jwt(mut self, key: JwtKey) -> Result<Self, AuthConfigError> {
        let (decoding, algorithm) = match key {
            JwtKey::Hs256Secret(secret) => (DecodingKey::from_secret(&secret), Algorithm::HS256),
            JwtKey::Rs256PublicPem(pem) => (
                DecodingKey::from_rsa_pem(&pem).map_err(AuthConfigError::BadPublicKey)?,
                Algorithm::RS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        // No audience is required unless one is configured; exp is.
        validation.validate_aud = false;
        self.jwt = Some((decoding, validation));
        self.required_claims = vec!["exp"];
        Ok(self)
    }

    fn require_claim(&mut self, claim: &'static str) {
        self.required_claims.push(claim);
        if let Some((_, validation)) = &mut self.jwt {
            validation.set_required_spec_claims(&self.required_claims);
        }
    }

    /// Accept only tokens whose `iss` is `issuer` (after [`jwt`](Self::jwt)).
    pub fn jwt_issuer(mut self, issuer: &str) -> Self {
        if let Some((_, validation)) = &mut self.jwt {
            validation.set_issuer(&[issuer]);
        }
        self.require_claim("iss");
        self
    }

    /// Accept only tokens whose `aud` names `audience` (after [`jwt`](Self::jwt)).
    pub fn jwt_audience(mut self, audience: &str) -> Self {
        if let Some((_, validation)) = &mut self.jwt {
            validation.set_audience(&[audience]);
            validation.validate_aud = true;
        }
        self.require_claim("aud");
        self
    }

    pub fn allow(mut self, networks: Vec<IpNet>) -> Self {
        self.addresses.allow = networks;
        self
    }

    pub fn deny(mut self, networks: Vec<IpNet>) -> Self {
        self.addresses.deny = networks;
        self
    }

    /// Admit `head` from `client`, or refuse it: 403 outside the address
    /// rules, 401 with a challenge without credentials that check out. The
    /// decision, on either engine.
    pub fn check(&self, head: &impl HeadView, client: IpAddr) -> Result<(), Refusal> {
        if let Some(reason) = self.addresses.refusal(client) {
            return Err(Refusal::new(StatusCode::FORBIDDEN, reason));
        }
        self.check_credentials(head.header(&header::AUTHORIZATION))
            .map_err(|reason| {
                Refusal::new(StatusCode::UNAUTHORIZED, reason)
                    .with_header(header::WWW_AUTHENTICATE, self.challenge())
            })
    }

    /// `Ok` when the credentials (an `Authorization` value) check out, or
    /// none are required.
    fn check_credentials(&self, value: Option<&[u8]>) -> Result<(), &'static str> {
        if self.basic.is_empty() && self.jwt.is_none() {
            return Ok(());
        }
        let Some(value) = value else {
            return Err("credentials required");
        };
        let Some((scheme, credentials)) = split_credential_bytes(value) else {
            return Err("unreadable Authorization header");
        };
        if scheme.eq_ignore_ascii_case("basic") {
            if self.basic.is_empty() {
                return Err("Basic credentials are not accepted here");
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .map_err(|_| "malformed Basic credentials")?;
            // Every pair is compared, each in constant time.
            let known = self.basic.iter().fold(false, |found, pair| {
                found | constant_time_eq(pair.as_bytes(), &decoded)
            });
            return if known {
                Ok(())
            } else {
                Err("unknown user or wrong password")
            };
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let Some((key, validation)) = &self.jwt else {
                return Err("bearer tokens are not accepted here");
            };
            if has_critical_extensions(credentials) {
                return Err(
                    "invalid token: it requires extensions (crit) this proxy does not support",
                );
            }
            return jsonwebtoken::decode::<serde_json::Value>(credentials, key, validation)
                .map(|_| ())
                .map_err(|e| token_refusal(e.kind()));
        }
        Err("unsupported Authorization scheme")
    }

    fn challenge(&self) -> HeaderValue {
        let mut schemes = Vec::new();
        if !self.basic.is_empty() {
            schemes.push("Basic realm=\"proxy workbench\"");
        }
        if self.jwt.is_some() {
            schemes.push("Bearer realm=\"proxy workbench\"");
        }
        HeaderValue::from_str(&schemes.join(", ")).expect("static schemes are valid")
    }
}

impl Middleware for Auth {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        match self.check(&req, ctx.client.client_ip()) {
            Ok(()) => next.run(req, ctx),
            Err(refusal) => {
                let refusal = refusal.into_response();
                Box::pin(async move { refusal })
            }
        }
    }
}

/// Does the token's header carry `crit`? The header is the first
/// dot-separated part, base64url-encoded JSON; one we cannot read is left
/// for the verification to refuse.
fn has_critical_extensions(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .is_some_and(|header| header.get("crit").is_some())
}

/// What a refused token is told: the reason in our words, not the
/// library's (whose messages name its internal types).
fn token_refusal(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "invalid token: expired",
        ErrorKind::ImmatureSignature => "invalid token: not valid yet",
        ErrorKind::InvalidSignature => "invalid token: bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "invalid token: signed with an algorithm this proxy does not accept"
        }
        ErrorKind::InvalidIssuer => "invalid token: issued by someone else",
        ErrorKind::InvalidAudience => "invalid token: meant for another audience",
        ErrorKind::MissingRequiredClaim(_) => "invalid token: a required claim is missing",
        _ => "invalid token: malformed",
    }
}
