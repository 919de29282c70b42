//! Tenants ("apps"): who may call the `open_auth` services, and how much.
//!
//! An app is an id and a secret in the config (`[[apps]]`). It trades
//! them for a token at `POST /oauth/tokens` — OAuth 2.0's client
//! credentials grant (RFC 6749 §4.4): `Authorization: Basic
//! base64(id:secret)` and the form body `grant_type=client_credentials`
//! — and sends the token as `Authorization: Bearer` with every request.
//! The token is a JWT the gateway signs with `[tokens]`' secret (HS256)
//! and checks itself: its subject is the app, its `exp` when it stops
//! working. Checking a token costs a signature and no lookup, which is why
//! a gateway hands out tokens rather than checking secrets on every
//! request — and why a token outlives a change of its app's secret until
//! it expires (an app removed from the config is refused at once: the
//! subject must still be an app).
//!
//! On an `open_auth` service, an app's request is refused when it has no
//! valid token (401), comes from outside its `allow` (403), or is over its
//! `qps` or its `qpd` (429, saying which). The quotas are
//! `shared_limit::Quota`s: with `[redis]` every instance's requests count
//! together, without a Redis round trip per request.
//!
//! Left out on purpose: scopes, refresh tokens, revocation before expiry,
//! and secrets stored hashed (the config holds them, as the course's
//! database does).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use middleware::auth::AddressRules;
use proxy_core::headers::{constant_time_eq, split_credential_bytes};
use proxy_core::{
    DEFAULT_CLIENT_BODY_TIMEOUT, HeadView, ProxyBody, Refusal, complete_response, text_response,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared_limit::{Fail, Quota, SharedLimits, Taken, Window};

use crate::admin_guard::{BURST, PER_SECOND, PerClient};
use crate::config;
use crate::statistics::{Statistics, Tally};

/// The path of the token endpoint, on the gateway's own listeners.
pub(crate) const TOKEN_PATH: &str = "/oauth/tokens";

/// Who signs the tokens: the `iss` of every one.
const ISSUER: &str = "step11-gateway";

/// What a token says.
#[derive(Serialize, Deserialize)]
struct Claims {
    /// The app's id.
    sub: String,
    iss: String,
    iat: u64,
    exp: u64,
}

/// The apps of one config version, and the key their tokens are signed
/// with.
pub(crate) struct Apps {
    signer: Option<Signer>,
    by_id: HashMap<String, Arc<App>>,
    /// The token endpoint answers each client address at most this often:
    /// guessing a secret is as slow as guessing the admin token.
    guessing: Arc<PerClient>,
    /// Tokens already checked, with their app and expiry: an app sends the
    /// same token with every request, and a lookup costs a hundredth of a
    /// signature check (bench/README.md, "Apps, quotas and statistics").
    /// Only tokens this gateway signed get in; a reload starts afresh.
    verified: RwLock<Verified>,
}

/// Checked tokens: their app, and when they expire (unix seconds).
type Verified = HashMap<Box<str>, (Arc<App>, u64), foldhash::fast::RandomState>;

/// Tokens remembered at most; past it the memory starts over (an app
/// holds one token at a time, so this is thousands of apps).
const MAX_VERIFIED: usize = 10_000;

struct Signer {
    spec: config::Tokens,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// One app, ready to be asked about.
pub(crate) struct App {
    pub(crate) spec: config::App,
    /// The secret's digest: secrets are compared in constant time, whatever
    /// their lengths.
    secret: [u8; 32],
    qps: Option<Quota>,
    qpd: Option<Quota>,
    /// Its `allow`.
    addresses: AddressRules,
    /// Its requests, for `/stats`.
    pub(crate) tally: Arc<Tally>,
}

impl Apps {
    /// No apps and no tokens: what a gateway holds before its first build.
    pub(crate) fn empty() -> Self {
        Self {
            signer: None,
            by_id: HashMap::new(),
            verified: RwLock::default(),
            guessing: Arc::new(PerClient::new(
                NonZeroU32::new(PER_SECOND).expect("not zero"),
                NonZeroU32::new(BURST).expect("not zero"),
            )),
        }
    }

    /// The apps of `config`, keeping from `old` every app whose entry did
    /// not change (its quotas' counts with it).
    pub(crate) fn new(config: &config::Config, old: Option<&Apps>, stats: &Statistics) -> Self {
        let signer = config.tokens.as_ref().map(|spec| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_issuer(&[ISSUER]);
            validation.set_required_spec_claims(&["exp", "sub", "iss"]);
            Signer {
                spec: spec.clone(),
                encoding: EncodingKey::from_secret(spec.secret.as_bytes()),
                decoding: DecodingKey::from_secret(spec.secret.as_bytes()),
                validation,
            }
        });
        let by_id = config
            .apps
            .iter()
            .map(|spec| {
                let kept = old
                    .and_then(|old| old.by_id.get(&spec.id))
                    .filter(|app| app.spec == *spec);
                let app = match kept {
                    Some(app) => app.clone(),
                    None => Arc::new(App::new(spec, stats)),
                };
                (spec.id.clone(), app)
            })
            .collect();
        let guessing = match old {
            Some(old) => old.guessing.clone(),
            None => Apps::empty().guessing,
        };
        Self {
            signer,
            by_id,
            guessing,
            verified: RwLock::default(),
        }
    }

    /// Does this version hand out tokens (has `[tokens]`)?
    pub(crate) fn issues_tokens(&self) -> bool {
        self.signer.is_some()
    }

    /// The apps, in no order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }

    /// `POST /oauth/tokens`: the JSON answer, or why not. `authorization`
    /// is the request's header, `form` its body.
    pub(crate) fn issue(
        &self,
        authorization: Option<&[u8]>,
        form: &[u8],
    ) -> Result<String, TokenRefusal> {
        let signer = self
            .signer
            .as_ref()
            .expect("the token endpoint is served only with [tokens]");
        let grant = form_urlencoded::parse(form)
            .find(|(name, _)| name == "grant_type")
            .map(|(_, value)| value.into_owned());
        match grant.as_deref() {
            Some("client_credentials") => {}
            Some(_) => return Err(TokenRefusal::UnsupportedGrant),
            None => return Err(TokenRefusal::NoGrant),
        }
        let app = self
            .client_of(authorization)
            .ok_or(TokenRefusal::InvalidClient)?;
        let now = unix_now();
        let ttl = signer.spec.ttl.as_secs().max(1);
        let claims = Claims {
            sub: app.spec.id.clone(),
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now + ttl,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &signer.encoding)
            .map_err(|e| TokenRefusal::Signing(e.to_string()))?;
        Ok(serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
        })
        .to_string())
    }

    /// The app whose id and secret `authorization` (Basic) carries.
    fn client_of(&self, authorization: Option<&[u8]>) -> Option<&Arc<App>> {
        let (id, secret) = client_credentials(authorization?)?;
        let app = self.by_id.get(&id)?;
        let offered: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        constant_time_eq(&offered, &app.secret).then_some(app)
    }

    /// May the app whose token `head` carries make this request now (an
    /// `open_auth` service's question)? Its request is counted either way.
    pub(crate) async fn admit(
        &self,
        head: &(impl HeadView + Sync),
        client: IpAddr,
        shared: Option<&SharedLimits>,
    ) -> Result<(), Refusal> {
        let app = self.bearer(head)?;
        app.tally.count();
        if app.addresses.refusal(client).is_some() {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("app {} may not call from {client}", app.spec.id),
            ));
        }
        for quota in [&app.qps, &app.qpd].into_iter().flatten() {
            let taken = quota.take(shared).await;
            let over = match taken {
                Taken::Admitted => false,
                Taken::Exhausted => true,
                Taken::Unavailable => shared.is_some_and(|s| s.fail() == Fail::Closed),
            };
            if over {
                return Err(over_quota(&app.spec.id, quota, taken));
            }
        }
        Ok(())
    }

    /// The app of the request's bearer token, or a 401 that says what is
    /// wrong with it.
    fn bearer(&self, head: &impl HeadView) -> Result<Arc<App>, Refusal> {
        let unauthorized = |why: &str| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                format!("{why}: this service wants Authorization: Bearer <a token from POST {TOKEN_PATH}>"),
            )
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
        };
        let signer = self
            .signer
            .as_ref()
            .expect("open_auth services exist only with [tokens]");
        let (_, token) = head
            .header(&header::AUTHORIZATION)
            .and_then(split_credential_bytes)
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .ok_or_else(|| unauthorized("no bearer token"))?;
        let now = unix_now();
        if let Some((app, expires)) = self.remembered(token)
            && now < expires
        {
            return Ok(app);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &signer.decoding, &signer.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    unauthorized("the token has expired")
                }
                _ => unauthorized("the token is not one this gateway signed"),
            })?
            .claims;
        let app = self
            .by_id
            .get(&claims.sub)
            .ok_or_else(|| unauthorized("the token's app is no longer configured"))?;
        self.remember(token, app, claims.exp);
        Ok(app.clone())
    }

    /// The app and expiry of a token checked before.
    fn remembered(&self, token: &str) -> Option<(Arc<App>, u64)> {
        let verified = self.verified.read().unwrap_or_else(PoisonError::into_inner);
        verified.get(token).cloned()
    }

    /// Remember that `token` is `app`'s until `expires` (unix seconds).
    fn remember(&self, token: &str, app: &Arc<App>, expires: u64) {
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(token.into(), (app.clone(), expires));
    }
}

impl App {
    fn new(spec: &config::App, stats: &Statistics) -> Self {
        let key = |what: &str| format!("workbench:app:{}:{what}", spec.id);
        Self {
            spec: spec.clone(),
            secret: Sha256::digest(spec.secret.as_bytes()).into(),
            qps: spec.qps.map(|n| Quota::new(n, Window::Second, key("qps"))),
            qpd: spec.qpd.map(|n| Quota::new(n, Window::Day, key("qpd"))),
            addresses: AddressRules {
                allow: spec.allow.clone(),
                deny: Vec::new(),
            },
            tally: stats.tally(crate::statistics::Scope::App, &spec.id),
        }
    }
}

/// The id and secret a token request's `Authorization: Basic` value
/// carries: base64 of `id:secret`, split at the first colon (a secret may
/// hold colons, an id may not), each form-decoded as RFC 6749 §2.3.1 asks
/// of clients; the scheme in any case.
pub fn client_credentials(authorization: &[u8]) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, encoded) = split_credential_bytes(authorization)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((form_decoded(id), form_decoded(secret)))
}

/// The 429 of an app over `quota` (or the 503 of one whose quota cannot be
/// checked, with `fail = "closed"`).
fn over_quota(id: &str, quota: &Quota, taken: Taken) -> Refusal {
    if taken == Taken::Unavailable {
        return Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("app {id}'s quota cannot be checked (Redis is unavailable); try again shortly"),
        );
    }
    let (what, unit, retry) = match quota.window() {
        Window::Second => ("qps", "a second", 1),
        Window::Day => ("qpd", "a day (UTC)", 86_400 - unix_now() % 86_400),
    };
    Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "app {id} is over its {what}: {} requests {unit}",
            quota.limit()
        ),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(retry))
}

/// Why `POST /oauth/tokens` gave no token; the JSON error codes are RFC
/// 6749 §5.2's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenRefusal {
    #[error("the form body needs grant_type=client_credentials")]
    NoGrant,
    #[error("only grant_type=client_credentials is served here")]
    UnsupportedGrant,
    #[error("the app's id and secret, as Authorization: Basic base64(id:secret), are not right")]
    InvalidClient,
    #[error("the token could not be signed: {0}")]
    Signing(String),
}

impl TokenRefusal {
    /// Status, the RFC's error code, and the description.
    pub(crate) fn answer(&self) -> (StatusCode, &'static str, String) {
        let (status, code) = match self {
            TokenRefusal::NoGrant => (StatusCode::BAD_REQUEST, "invalid_request"),
            TokenRefusal::UnsupportedGrant => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            TokenRefusal::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            TokenRefusal::Signing(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        (status, code, self.to_string())
    }
}

/// `raw` as a form value: `+` is a space, `%XX` a byte.
fn form_decoded(raw: &str) -> String {
    form_urlencoded::parse(format!("x={}", raw.replace('&', "%26")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The most a token request's body may be: a grant type fits in far less.
const MAX_FORM: usize = 4096;

/// `POST /oauth/tokens`, on hyper: read the form (bounded in size and
/// time, as every body here), answer a token or RFC 6749's JSON error.
pub(crate) async fn token_endpoint(
    apps: &Apps,
    client: IpAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if !apps.guessing.admits(client) {
        let mut refusal = text_response(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{TOKEN_PATH} answers a client at most {} times a second",
                apps.guessing.rps()
            ),
        );
        refusal
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return refusal;
    }
    if req.method() != Method::POST {
        let mut refusal = text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{TOKEN_PATH} takes POST with grant_type=client_credentials"),
        );
        refusal
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return refusal;
    }
    let (head, body) = req.into_parts();
    let read = Limited::new(body, MAX_FORM).collect();
    let form = match tokio::time::timeout(DEFAULT_CLIENT_BODY_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return text_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a token request's body is at most {MAX_FORM} bytes"),
            );
        }
        Ok(Err(e)) => {
            return text_response(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            );
        }
        Err(_) => {
            return text_response(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            );
        }
    };
    let authorization = head
        .headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let (status, body) = match apps.issue(authorization, &form) {
        Ok(token) => (StatusCode::OK, token),
        Err(refusal) => {
            let (status, code, description) = refusal.answer();
            let body = serde_json::json!({"error": code, "error_description": description});
            (status, body.to_string())
        }
    };
    let mut response = complete_response(status, "application/json", body);
    let headers = response.headers_mut();
    // RFC 6749 §5.1: a token is never cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"step11-gateway\""),
        );
    }
    response
}
