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
//! schemes are accepted, and whose body says what was wrong. The
//! `Authorization` header is forwarded: backends may want the identity.

use std::net::IpAddr;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use ipnet::IpNet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use proxy_core::{ProxyBody, text_response};

use crate::{Ctx, Middleware, Next};

/// The JWT verification key.
pub enum JwtKey {
    Hs256Secret(Vec<u8>),
    Rs256PublicPem(Vec<u8>),
}

#[derive(Default)]
pub struct Auth {
    basic: Vec<String>,
    jwt: Option<(DecodingKey, Validation)>,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
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
        // Tokens need not carry an audience; exp is required.
        validation.validate_aud = false;
        self.jwt = Some((decoding, validation));
        Ok(self)
    }

    pub fn allow(mut self, networks: Vec<IpNet>) -> Self {
        self.allow = networks;
        self
    }

    pub fn deny(mut self, networks: Vec<IpNet>) -> Self {
        self.deny = networks;
        self
    }

    fn address_refusal(&self, ip: IpAddr) -> Option<String> {
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return Some(format!("forbidden: {ip} is in a denied network"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&ip)) {
            return Some(format!("forbidden: {ip} is not in an allowed network"));
        }
        None
    }

    /// `Ok` when the credentials check out (or none are required).
    fn check_credentials(&self, req: &Request<Incoming>) -> Result<(), String> {
        if self.basic.is_empty() && self.jwt.is_none() {
            return Ok(());
        }
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Err("credentials required".to_owned());
        };
        let value = value
            .to_str()
            .map_err(|_| "unreadable Authorization header".to_owned())?;
        if let Some(encoded) = value.strip_prefix("Basic ") {
            if self.basic.is_empty() {
                return Err("Basic credentials are not accepted here".to_owned());
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| "malformed Basic credentials".to_owned())?;
            return if self.basic.contains(&decoded) {
                Ok(())
            } else {
                Err("unknown user or wrong password".to_owned())
            };
        }
        if let Some(token) = value.strip_prefix("Bearer ") {
            let Some((key, validation)) = &self.jwt else {
                return Err("bearer tokens are not accepted here".to_owned());
            };
            return jsonwebtoken::decode::<serde_json::Value>(token.trim(), key, validation)
                .map(|_| ())
                .map_err(|e| format!("invalid token: {e}"));
        }
        Err("unsupported Authorization scheme".to_owned())
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
        if let Some(reason) = self.address_refusal(ctx.client.client_ip()) {
            let refusal = text_response(StatusCode::FORBIDDEN, reason);
            return Box::pin(async move { refusal });
        }
        match self.check_credentials(&req) {
            Ok(()) => next.run(req, ctx),
            Err(reason) => {
                let mut refusal = text_response(StatusCode::UNAUTHORIZED, reason);
                refusal
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, self.challenge());
                Box::pin(async move { refusal })
            }
        }
    }
}
