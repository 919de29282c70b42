//! The gateway's configuration file (TOML), read and checked whole.
//!
//! A gateway is configured by a file, not by flags: many services, each
//! with its own upstreams, balancing and limits. The keys are the contract
//! in DESIGN.md's "Gateway configuration". Every mistake is reported with
//! the file, line and column it is at and what was expected — an unknown
//! key, a value of the wrong type, an upstream that is not a URL, a
//! balancing strategy that does not exist, two services with one name —
//! so that a config either loads whole or not at all.
//!
//! Beyond DESIGN.md's keys, a service may set `hash_key`, `retries`,
//! `health = { path, interval, max_fails, cooldown, fail_status }`,
//! `auth = { basic, jwt_secret, allow, deny }`, `breaker = { error_rate,
//! min_requests, open, max_concurrent }` and `rewrite = ["REGEX=REPLACEMENT"]`;
//! the file may add `[tls]` (an https listener), `upstream_ca`, `[global]`
//! (`rate_limit`, `auth` for every request) and, in `[redis]`, `fail` and
//! `timeout`. Durations are written as step 04's flags take them: `500ms`,
//! `2s`, `5m`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Uri;
use ipnet::IpNet;
use load_balance::Kind;
use middleware::rate_limit::RateKey;
use middleware::rewrite::Rule;
use serde::Deserialize;
use shared_limit::Fail;
use step04_load_balance::HashKey;
use toml::Spanned;

/// A mistake in a config file, where it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<Spanned<String>>,
    tls: Option<TlsFile>,
    upstream_ca: Option<String>,
    admin: Option<AdminFile>,
    redis: Option<RedisFile>,
    global: Option<GlobalFile>,
    #[serde(default)]
    services: Vec<ServiceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    listen: Spanned<String>,
    cert: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalFile {
    rate_limit: Option<Spanned<RateLimitFile>>,
    auth: Option<Spanned<AuthFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    listen: Spanned<String>,
    token: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisFile {
    url: Spanned<String>,
    fail: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    name: Spanned<String>,
    host: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    #[serde(default)]
    strip_prefix: bool,
    balance: Option<Spanned<String>>,
    hash_key: Option<Spanned<String>>,
    upstreams: Spanned<Vec<Spanned<String>>>,
    retries: Option<u32>,
    health: Option<Spanned<HealthFile>>,
    rate_limit: Option<Spanned<RateLimitFile>>,
    auth: Option<Spanned<AuthFile>>,
    breaker: Option<Spanned<BreakerFile>>,
    #[serde(default)]
    rewrite: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthFile {
    path: Option<String>,
    interval: Option<String>,
    max_fails: Option<u32>,
    cooldown: Option<String>,
    #[serde(default)]
    fail_status: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    basic: Vec<String>,
    jwt_secret: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerFile {
    error_rate: Option<u8>,
    min_requests: Option<u64>,
    open: Option<String>,
    max_concurrent: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    rps: u32,
    burst: Option<u32>,
    key: Option<String>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// An https listener for the same services.
    pub tls: Option<Tls>,
    /// Trust only these CAs for https upstreams (default: the system's).
    pub upstream_ca: Option<PathBuf>,
    pub admin: Option<Admin>,
    pub redis: Option<Redis>,
    /// Middleware every request passes before it is routed.
    pub global: Global,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where limits are shared, and what to do when it does not answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Redis {
    pub url: String,
    pub fail: Fail,
    /// The longest a request waits for Redis.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Global {
    pub rate_limit: Option<RateLimit>,
    pub auth: Option<Auth>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    pub basic: Vec<String>,
    pub jwt_secret: Option<String>,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    /// Open at this share of failed requests (percent), if set.
    pub error_rate: Option<u8>,
    pub min_requests: u64,
    pub open: Duration,
    pub max_concurrent: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Probe this path on every upstream, if set.
    pub path: Option<String>,
    pub interval: Duration,
    pub max_fails: u32,
    pub cooldown: Duration,
    /// Statuses that count as failures (none: only failed connections).
    pub fail_status: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    pub token: String,
}

/// One service: which requests it takes, and where they go.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// The host it answers for (lower case, no port), if only one.
    pub host: Option<String>,
    /// Starts with `/`; `/` takes every path.
    pub path_prefix: String,
    pub strip_prefix: bool,
    pub balance: Kind,
    pub hash_key: HashKey,
    pub upstreams: Vec<(Uri, u32)>,
    pub retries: u32,
    pub health: Health,
    pub rate_limit: Option<RateLimit>,
    pub auth: Option<Auth>,
    pub breaker: Option<Breaker>,
    /// `REGEX=REPLACEMENT` rules, as written (each one checked).
    pub rewrite: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub rps: NonZeroU32,
    pub burst: NonZeroU32,
    pub key: RateKey,
}

/// Read and check the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read it: {e}"),
    })?;
    parse(&text, &path.display().to_string())
}

/// Check `text`, the contents of `file`.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let at = |span: Range<usize>, message: String| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
        ConfigError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    };
    let raw: File = toml::from_str(text).map_err(|e| {
        at(
            e.span().unwrap_or(0..0),
            e.message().trim_end().replace('\n', " "),
        )
    })?;
    let address = |value: &Spanned<String>, what: &str| {
        value.get_ref().parse::<SocketAddr>().map_err(|_| {
            at(
                value.span(),
                format!(
                    "{what} must be an address like 127.0.0.1:2002, not {:?}",
                    value.get_ref()
                ),
            )
        })
    };
    let listen = match &raw.listen {
        Some(listen) => address(listen, "listen")?,
        None => SocketAddr::from(([127, 0, 0, 1], 2002)),
    };
    let admin = match &raw.admin {
        Some(admin) => {
            if admin.token.get_ref().is_empty() {
                return Err(at(
                    admin.token.span(),
                    "the admin token may not be empty".into(),
                ));
            }
            Some(Admin {
                listen: address(&admin.listen, "admin listen")?,
                token: admin.token.get_ref().clone(),
            })
        }
        None => None,
    };
    // Files named in the config are relative to the config's directory.
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let tls = match &raw.tls {
        Some(tls) => Some(Tls {
            listen: address(&tls.listen, "tls listen")?,
            cert: base.join(&tls.cert),
            key: base.join(&tls.key),
        }),
        None => None,
    };
    let redis = match &raw.redis {
        Some(redis) => {
            let url = redis.url.get_ref();
            if !url.starts_with("redis://") {
                return Err(at(
                    redis.url.span(),
                    format!("expected a redis:// URL, not {url:?}"),
                ));
            }
            let fail = match &redis.fail {
                Some(fail) => fail
                    .get_ref()
                    .parse::<Fail>()
                    .map_err(|e| at(fail.span(), format!("redis fail: {e}")))?,
                None => Fail::Open,
            };
            let timeout = match &redis.timeout {
                Some(timeout) => duration(timeout.get_ref())
                    .map_err(|e| at(timeout.span(), format!("redis timeout: {e}")))?,
                None => shared_limit::DEFAULT_BOUND,
            };
            Some(Redis {
                url: url.clone(),
                fail,
                timeout,
            })
        }
        None => None,
    };
    let global = match &raw.global {
        Some(global) => Global {
            rate_limit: rate_limit(&global.rate_limit, &at)?,
            auth: auth(&global.auth, &at)?,
        },
        None => Global::default(),
    };
    if raw.services.is_empty() {
        return Err(at(
            0..0,
            "no [[services]]: a gateway needs at least one".into(),
        ));
    }
    let mut services: Vec<Service> = Vec::new();
    for service in &raw.services {
        let name = service.name.get_ref();
        if name.is_empty() || services.iter().any(|s| &s.name == name) {
            return Err(at(
                service.name.span(),
                format!("service names must be unique and not empty: {name:?}"),
            ));
        }
        let path_prefix = match &service.path_prefix {
            Some(prefix) if !prefix.get_ref().starts_with('/') => {
                return Err(at(
                    prefix.span(),
                    format!("path_prefix must start with /, not {:?}", prefix.get_ref()),
                ));
            }
            Some(prefix) => prefix.get_ref().clone(),
            None => "/".to_owned(),
        };
        let host = service
            .host
            .as_ref()
            .map(|h| h.get_ref().to_ascii_lowercase());
        if services
            .iter()
            .any(|s| s.host == host && s.path_prefix == path_prefix)
        {
            return Err(at(
                service.name.span(),
                format!("{name:?} takes the same host and path_prefix as another service"),
            ));
        }
        let balance = match &service.balance {
            Some(balance) => balance.get_ref().parse::<Kind>().map_err(|_| {
                at(
                    balance.span(),
                    format!(
                        "unknown balance {:?}; expected one of {}",
                        balance.get_ref(),
                        Kind::names().join(", ")
                    ),
                )
            })?,
            None => Kind::RoundRobin,
        };
        let hash_key = match &service.hash_key {
            Some(key) => key
                .get_ref()
                .parse::<HashKey>()
                .map_err(|e| at(key.span(), format!("hash_key: {e}")))?,
            None => HashKey::Url,
        };
        if service.upstreams.get_ref().is_empty() {
            return Err(at(
                service.upstreams.span(),
                "a service needs at least one upstream".into(),
            ));
        }
        let mut upstreams = Vec::new();
        for upstream in service.upstreams.get_ref() {
            upstreams.push(
                step04_load_balance::parse_weighted(upstream.get_ref())
                    .map_err(|e| at(upstream.span(), e))?,
            );
        }
        let health = match &service.health {
            Some(health) => {
                let span = health.span();
                let health = health.get_ref();
                let bad = |e: String| at(span.clone(), format!("health: {e}"));
                if let Some(path) = &health.path
                    && !path.starts_with('/')
                {
                    return Err(bad(format!("path must start with /, not {path:?}")));
                }
                for status in &health.fail_status {
                    step04_load_balance::parse_status(&status.to_string()).map_err(&bad)?;
                }
                Health {
                    path: health.path.clone(),
                    interval: duration(health.interval.as_deref().unwrap_or("1s")).map_err(&bad)?,
                    max_fails: health.max_fails.unwrap_or(3).max(1),
                    cooldown: duration(health.cooldown.as_deref().unwrap_or("10s"))
                        .map_err(&bad)?,
                    fail_status: health.fail_status.clone(),
                }
            }
            None => Health {
                path: None,
                interval: Duration::from_secs(1),
                max_fails: 3,
                cooldown: Duration::from_secs(10),
                fail_status: Vec::new(),
            },
        };
        let breaker = match &service.breaker {
            Some(breaker) => {
                let span = breaker.span();
                let breaker = breaker.get_ref();
                if let Some(rate) = breaker.error_rate
                    && !(1..=100).contains(&rate)
                {
                    return Err(at(
                        span,
                        format!("breaker error_rate is a percentage from 1 to 100, not {rate}"),
                    ));
                }
                if breaker.error_rate.is_none() && breaker.max_concurrent.is_none() {
                    return Err(at(
                        span,
                        "breaker needs error_rate (percent) or max_concurrent, or both".into(),
                    ));
                }
                Some(Breaker {
                    error_rate: breaker.error_rate,
                    min_requests: breaker.min_requests.unwrap_or(20).max(1),
                    open: duration(breaker.open.as_deref().unwrap_or("10s"))
                        .map_err(|e| at(span, format!("breaker open: {e}")))?,
                    max_concurrent: breaker.max_concurrent,
                })
            }
            None => None,
        };
        for rule in &service.rewrite {
            rule.get_ref()
                .parse::<Rule>()
                .map_err(|e| at(rule.span(), format!("rewrite: {e}")))?;
        }
        services.push(Service {
            name: name.clone(),
            host,
            path_prefix,
            strip_prefix: service.strip_prefix,
            balance,
            hash_key,
            upstreams,
            retries: service.retries.unwrap_or(2),
            health,
            rate_limit: rate_limit(&service.rate_limit, &at)?,
            auth: auth(&service.auth, &at)?,
            breaker,
            rewrite: service
                .rewrite
                .iter()
                .map(|r| r.get_ref().clone())
                .collect(),
        });
    }
    Ok(Config {
        listen,
        tls,
        upstream_ca: raw.upstream_ca.as_ref().map(|ca| base.join(ca)),
        admin,
        redis,
        global,
        services,
    })
}

/// `500ms`, `2s`, `5m`: step 04's durations.
fn duration(raw: &str) -> Result<Duration, String> {
    step04_load_balance::parse_duration(raw)
}

/// A `rate_limit = { rps, burst, key }` table, checked.
fn rate_limit(
    limit: &Option<Spanned<RateLimitFile>>,
    at: &impl Fn(Range<usize>, String) -> ConfigError,
) -> Result<Option<RateLimit>, ConfigError> {
    let Some(limit) = limit else {
        return Ok(None);
    };
    let span = limit.span();
    let limit = limit.get_ref();
    let rps = NonZeroU32::new(limit.rps)
        .ok_or_else(|| at(span.clone(), "rate_limit rps must be at least 1".into()))?;
    let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.rps))
        .ok_or_else(|| at(span.clone(), "rate_limit burst must be at least 1".into()))?;
    let key = limit
        .key
        .as_deref()
        .unwrap_or("global")
        .parse::<RateKey>()
        .map_err(|e| at(span, format!("rate_limit key: {e}")))?;
    Ok(Some(RateLimit { rps, burst, key }))
}

/// An `auth = { basic, jwt_secret, allow, deny }` table, checked.
fn auth(
    auth: &Option<Spanned<AuthFile>>,
    at: &impl Fn(Range<usize>, String) -> ConfigError,
) -> Result<Option<Auth>, ConfigError> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let span = auth.span();
    let auth = auth.get_ref();
    for pair in &auth.basic {
        if !pair.contains(':') {
            return Err(at(
                span,
                format!("auth basic: expected \"USER:PASSWORD\", not {pair:?}"),
            ));
        }
    }
    let networks = |list: &[String], what: &str| {
        list.iter()
            .map(|net| {
                net.parse::<IpNet>().map_err(|_| {
                    at(
                        span.clone(),
                        format!("auth {what}: expected a network like 10.0.0.0/8, not {net:?}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let (allow, deny) = (
        networks(&auth.allow, "allow")?,
        networks(&auth.deny, "deny")?,
    );
    if auth.basic.is_empty() && auth.jwt_secret.is_none() && allow.is_empty() && deny.is_empty() {
        return Err(at(
            span,
            "auth needs basic, jwt_secret, allow or deny".into(),
        ));
    }
    Ok(Some(Auth {
        basic: auth.basic.clone(),
        jwt_secret: auth.jwt_secret.clone(),
        allow,
        deny,
    }))
}
