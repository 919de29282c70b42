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
//! Left out on purpose (so far): the `[admin]` API and `[redis]`-shared
//! limits are read and checked but not served yet.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::Path;

use hyper::Uri;
use load_balance::Kind;
use middleware::rate_limit::RateKey;
use serde::Deserialize;
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
    admin: Option<AdminFile>,
    redis: Option<RedisFile>,
    #[serde(default)]
    services: Vec<ServiceFile>,
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
    upstreams: Spanned<Vec<Spanned<String>>>,
    rate_limit: Option<Spanned<RateLimitFile>>,
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
    pub admin: Option<Admin>,
    pub redis: Option<String>,
    pub services: Vec<Service>,
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
    pub upstreams: Vec<(Uri, u32)>,
    pub rate_limit: Option<RateLimit>,
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
    let redis = match &raw.redis {
        Some(redis) if !redis.url.get_ref().starts_with("redis://") => {
            return Err(at(
                redis.url.span(),
                format!("expected a redis:// URL, not {:?}", redis.url.get_ref()),
            ));
        }
        Some(redis) => Some(redis.url.get_ref().clone()),
        None => None,
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
        let rate_limit = match &service.rate_limit {
            Some(limit) => {
                let span = limit.span();
                let limit = limit.get_ref();
                let rps = NonZeroU32::new(limit.rps)
                    .ok_or_else(|| at(span.clone(), "rate_limit rps must be at least 1".into()))?;
                let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.rps)).ok_or_else(|| {
                    at(span.clone(), "rate_limit burst must be at least 1".into())
                })?;
                let key = limit
                    .key
                    .as_deref()
                    .unwrap_or("global")
                    .parse::<RateKey>()
                    .map_err(|e| at(span, format!("rate_limit key: {e}")))?;
                Some(RateLimit { rps, burst, key })
            }
            None => None,
        };
        services.push(Service {
            name: name.clone(),
            host,
            path_prefix,
            strip_prefix: service.strip_prefix,
            balance,
            upstreams,
            rate_limit,
        });
    }
    Ok(Config {
        listen,
        admin,
        redis,
        services,
    })
}
