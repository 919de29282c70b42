//! The gateway's configuration file (TOML), read and checked whole.
//!
//! A gateway is configured by a file, not by flags: many services, each
//! with its own upstreams, balancing and limits. The example
//! (`steps/11-gateway/gateway.toml`) lists every key with a comment, and
//! NOTES chapter 11 explains them. Every mistake is reported with
//! the file, line and column it is at and what was expected — an unknown
//! key, a value of the wrong type, an upstream that is not a URL, a
//! balancing strategy that does not exist, two services with one name —
//! so that a config either loads whole or not at all.
//!
//! A service's table fills the same plain settings the steps' flags fill:
//! step 04's [`BalanceSettings`] (`balance`, `hash_key`, `health`,
//! `retries`), step 03's [`ProxySettings`] (`timeout`, `flush_interval`,
//! `client_body_timeout`) and the middleware crate's [`ChainSettings`] (`rate_limit`, `auth`,
//! `breaker`, `rewrite`), so a key means what the flag of the same name
//! means, and is checked by the same parser (`operator_input`): durations
//! are written `500ms`, `2s`, `5m`, `1h`; none may be zero, and no count
//! that needs one may be zero either.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use ipnet::IpNet;
use load_balance::{HashKey, Kind};
use middleware::auth::JwtKey;
use middleware::headers::{HeaderEdits, not_editable};
use middleware::rate_limit::RateKey;
use middleware::rewrite::Rule;
use middleware::settings::{
    AuthSettings, BreakerSettings, ChainSettings, JwtSettings, RateLimitSettings,
};
use proxy_core::DEFAULT_CLIENT_BODY_TIMEOUT;
use serde::Deserialize;
use shared_limit::Fail;
use step03_reverse_proxy::ProxySettings;
use step04_load_balance::{BalanceSettings, HealthSettings};
use step09_cache::CacheSettings;
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
    engine: Option<Spanned<String>>,
    tls: Option<TlsFile>,
    upstream_ca: Option<String>,
    admin: Option<AdminFile>,
    redis: Option<RedisFile>,
    global: Option<GlobalFile>,
    tokens: Option<TokensFile>,
    zookeeper: Option<ZooKeeperFile>,
    #[serde(default)]
    apps: Vec<AppFile>,
    #[serde(default)]
    services: Vec<ServiceFile>,
    #[serde(default)]
    tcp_services: Vec<TcpServiceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpServiceFile {
    name: Spanned<String>,
    listen: Spanned<String>,
    balance: Option<Spanned<String>>,
    upstreams: Option<Spanned<Vec<Spanned<String>>>>,
    discover: Option<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    health_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZooKeeperFile {
    servers: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    secret: Spanned<String>,
    ttl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFile {
    id: Spanned<String>,
    secret: Spanned<String>,
    qps: Option<Spanned<u64>>,
    qpd: Option<Spanned<u64>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
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
    rps: Option<Spanned<u32>>,
    burst: Option<Spanned<u32>>,
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
    upstreams: Option<Spanned<Vec<Spanned<String>>>>,
    discover: Option<Spanned<String>>,
    retries: Option<u32>,
    timeout: Option<Spanned<String>>,
    flush_interval: Option<Spanned<String>>,
    client_body_timeout: Option<Spanned<String>>,
    health: Option<Spanned<HealthFile>>,
    rate_limit: Option<Spanned<RateLimitFile>>,
    auth: Option<Spanned<AuthFile>>,
    breaker: Option<Spanned<BreakerFile>>,
    #[serde(default)]
    rewrite: Vec<Spanned<String>>,
    request_headers: Option<Spanned<HeadersFile>>,
    response_headers: Option<Spanned<HeadersFile>>,
    open_auth: Option<Spanned<bool>>,
    cache: Option<Spanned<CacheFile>>,
}

/// `cache = { size, max_entry_size, compress, rewrite_body, rewrite_limit }`:
/// step 09's flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    size: Spanned<String>,
    max_entry_size: Option<Spanned<String>>,
    #[serde(default)]
    compress: bool,
    #[serde(default)]
    rewrite_body: Vec<Spanned<String>>,
    rewrite_limit: Option<Spanned<String>>,
}

/// `{ set = { NAME = VALUE, … }, remove = [NAME, …] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersFile {
    #[serde(default)]
    set: std::collections::BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
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
    jwt_public_key: Option<String>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
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

/// Which engine serves the listeners' HTTP/1.1 clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// hyper for everything (step 03's engine).
    Hyper,
    /// Step 10's engine for HTTP/1.1 clients, at a lower cost; hyper
    /// behind it for HTTP/2 clients and for services whose upstreams speak
    /// h2c or https.
    #[default]
    Fast,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The engine of the HTTP/1.1 clients, on both listeners.
    pub engine: Engine,
    /// An https listener for the same services.
    pub tls: Option<Tls>,
    /// Trust only these CAs for https upstreams (default: the system's).
    pub upstream_ca: Option<PathBuf>,
    pub admin: Option<Admin>,
    pub redis: Option<Redis>,
    /// The chain every request passes before it is routed: request id,
    /// statistics, and the `[global]` rate limit and auth.
    pub global: ChainSettings,
    /// How `POST /oauth/tokens` signs the tokens it hands to apps.
    pub tokens: Option<Tokens>,
    /// Where `discover` paths are read: `host:port[,host:port…]`.
    pub zookeeper: Option<String>,
    /// The tenants, in the file's order.
    pub apps: Vec<App>,
    pub services: Vec<Service>,
    /// Step 08's proxy, one listener each.
    pub tcp_services: Vec<TcpService>,
}

/// One `[[tcp_services]]` entry: a listener whose connections go, bytes
/// unread, to one of its upstreams.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpService {
    pub name: String,
    pub listen: SocketAddr,
    pub balance: Kind,
    /// `tcp://HOST:PORT` and a weight.
    pub upstreams: Vec<(Uri, u32)>,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    /// Connect to every upstream this often (off without).
    pub health_interval: Option<Duration>,
    /// A ZooKeeper path whose children are more upstreams.
    pub discover: Option<String>,
}

/// `[tokens]`: the key the gateway signs apps' JWTs with (HS256), and how
/// long one lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub secret: String,
    pub ttl: Duration,
}

/// How long a token lasts unless `[tokens]` says.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// One `[[apps]]` entry: a tenant, its credentials and its quotas.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub id: String,
    pub secret: String,
    /// Requests a second, all its clients together.
    pub qps: Option<u64>,
    /// Requests a UTC day.
    pub qpd: Option<u64>,
    /// Client addresses it may call from (empty: any).
    pub allow: Vec<IpNet>,
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

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    pub token: String,
    /// Requests a second each client address may make, and the burst.
    pub rps: NonZeroU32,
    pub burst: NonZeroU32,
}

/// One service: which requests it takes, and where and how they go.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// The host it answers for (lower case, no port), if only one.
    pub host: Option<String>,
    /// Starts with `/`; `/` takes every path.
    pub path_prefix: String,
    pub strip_prefix: bool,
    pub upstreams: Vec<(Uri, u32)>,
    /// Picking, health and retries (step 04's settings).
    pub balance: BalanceSettings,
    /// Timeout and flushing (step 03's settings).
    pub proxy: ProxySettings,
    /// The service's own links: rate limit, auth, breaker, rewrite.
    pub chain: ChainSettings,
    /// Requests need an app's token from `POST /oauth/tokens`.
    pub open_auth: bool,
    /// A ZooKeeper path whose children are more upstreams.
    pub discover: Option<String>,
    /// Step 09's cache in front of its upstreams, if `cache` is set.
    pub cache: Option<CacheSettings>,
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
    let at = Positions { text, file };
    let raw: File = toml::from_str(text).map_err(|e| {
        at.error(
            e.span().unwrap_or(0..0),
            e.message().trim_end().replace('\n', " "),
        )
    })?;
    let listen = match &raw.listen {
        Some(listen) => at.address(listen, "listen")?,
        None => SocketAddr::from(([127, 0, 0, 1], 2002)),
    };
    let engine = match raw.engine.as_ref() {
        None => Engine::default(),
        Some(engine) => match engine.get_ref().as_str() {
            "hyper" => Engine::Hyper,
            "fast" => Engine::Fast,
            other => {
                return Err(at.error(
                    engine.span(),
                    format!("unknown engine {other:?}; expected hyper or fast"),
                ));
            }
        },
    };
    let admin = raw.admin.as_ref().map(|a| admin(a, &at)).transpose()?;
    // Files named in the config are relative to the config's directory.
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let tls = match &raw.tls {
        Some(tls) => Some(Tls {
            listen: at.address(&tls.listen, "tls listen")?,
            cert: base.join(&tls.cert),
            key: base.join(&tls.key),
        }),
        None => None,
    };
    let redis = raw.redis.as_ref().map(|r| redis(r, &at)).transpose()?;
    let global = raw.global.as_ref();
    let global = ChainSettings {
        request_id: true,
        statistics: true,
        rate_limit: rate_limit(global.and_then(|g| g.rate_limit.as_ref()), &at)?,
        auth: auth(global.and_then(|g| g.auth.as_ref()), base, &at)?,
        ..ChainSettings::default()
    };
    let tokens = raw.tokens.as_ref().map(|t| tokens(t, &at)).transpose()?;
    let mut apps: Vec<App> = Vec::new();
    for raw_app in &raw.apps {
        if tokens.is_none() {
            return Err(at.error(
                raw_app.id.span(),
                "[[apps]] need [tokens]: its secret signs the tokens apps are given".into(),
            ));
        }
        let app = app(raw_app, &at)?;
        if apps.iter().any(|a| a.id == app.id) {
            return Err(at.error(
                raw_app.id.span(),
                format!("app ids must be unique: {:?}", app.id),
            ));
        }
        apps.push(app);
    }
    if raw.services.is_empty() {
        return Err(at.error(0..0, "no [[services]]: a gateway needs at least one".into()));
    }
    let mut services: Vec<Service> = Vec::new();
    for raw_service in &raw.services {
        // The first mistake in the file is the one reported: the name
        // comes before the rest of the entry.
        let name = raw_service.name.get_ref();
        if name.is_empty() || services.iter().any(|s| &s.name == name) {
            return Err(at.error(
                raw_service.name.span(),
                format!("service names must be unique and not empty: {name:?}"),
            ));
        }
        if let Some(discover) = &raw_service.discover
            && raw.zookeeper.is_none()
        {
            return Err(at.error(
                discover.span(),
                "discover needs [zookeeper]: its servers hold the path".into(),
            ));
        }
        if let Some(open_auth) = &raw_service.open_auth
            && *open_auth.get_ref()
            && tokens.is_none()
        {
            return Err(at.error(
                open_auth.span(),
                "open_auth needs [tokens]: the tokens it checks are signed with its secret".into(),
            ));
        }
        let service = service(raw_service, base, &at)?;
        if services
            .iter()
            .any(|s| s.host == service.host && s.path_prefix == service.path_prefix)
        {
            return Err(at.error(
                raw_service.name.span(),
                format!(
                    "{:?} takes the same host and path_prefix as another service",
                    service.name
                ),
            ));
        }
        services.push(service);
    }
    let mut tcp_services: Vec<TcpService> = Vec::new();
    for raw_service in &raw.tcp_services {
        if let Some(discover) = &raw_service.discover
            && raw.zookeeper.is_none()
        {
            return Err(at.error(
                discover.span(),
                "discover needs [zookeeper]: its servers hold the path".into(),
            ));
        }
        let service = tcp_service(raw_service, &at)?;
        if tcp_services.iter().any(|s| s.name == service.name) {
            return Err(at.error(
                raw_service.name.span(),
                format!("tcp service names must be unique: {:?}", service.name),
            ));
        }
        // Port 0 is "any free port": two of those never clash.
        let taken = [
            Some(listen),
            tls.as_ref().map(|t| t.listen),
            admin.as_ref().map(|a| a.listen),
        ]
        .into_iter()
        .flatten()
        .chain(tcp_services.iter().map(|s| s.listen))
        .any(|other| other == service.listen);
        if taken && service.listen.port() != 0 {
            return Err(at.error(
                raw_service.listen.span(),
                format!("{} is already a listener of this file", service.listen),
            ));
        }
        tcp_services.push(service);
    }
    Ok(Config {
        listen,
        engine,
        tls,
        upstream_ca: raw.upstream_ca.as_ref().map(|ca| base.join(ca)),
        admin,
        redis,
        global,
        tokens,
        zookeeper: raw
            .zookeeper
            .as_ref()
            .map(|z| zookeeper_servers(&z.servers, &at))
            .transpose()?,
        apps,
        services,
        tcp_services,
    })
}

/// A list of networks (`allow`, `deny`), each at its place in the file.
fn networks(
    list: &[Spanned<String>],
    what: &str,
    at: &Positions,
) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|net| {
            net.get_ref().parse::<IpNet>().map_err(|_| {
                at.error(
                    net.span(),
                    format!(
                        "{what}: expected a network like 10.0.0.0/8, not {:?}",
                        net.get_ref()
                    ),
                )
            })
        })
        .collect()
}

/// One `[[tcp_services]]` entry (names are compared by the caller).
fn tcp_service(service: &TcpServiceFile, at: &Positions) -> Result<TcpService, ConfigError> {
    let name = service.name.get_ref();
    if name.is_empty() {
        return Err(at.error(service.name.span(), "a tcp service needs a name".into()));
    }
    let balance = match &service.balance {
        Some(balance) => balance_kind(balance, at)?,
        None => Kind::RoundRobin,
    };
    let (listed, discover) = upstream_sources(
        "a tcp service",
        &service.name,
        &service.upstreams,
        service.discover.as_ref(),
        at,
    )?;
    let upstreams = listed
        .iter()
        .map(|upstream| {
            step08_tcp_proxy::parse_upstream(upstream.get_ref())
                .map_err(|e| at.error(upstream.span(), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TcpService {
        name: name.clone(),
        listen: at.address(&service.listen, "tcp service listen")?,
        balance,
        upstreams,
        allow: networks(&service.allow, "allow", at)?,
        deny: networks(&service.deny, "deny", at)?,
        health_interval: service
            .health_interval
            .as_ref()
            .map(|interval| at.duration(interval, "health_interval"))
            .transpose()?,
        discover,
    })
}

/// `[zookeeper] servers`: `host:port`, comma-separated.
fn zookeeper_servers(servers: &Spanned<String>, at: &Positions) -> Result<String, ConfigError> {
    let valid = |server: &str| {
        server.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        })
    };
    if servers.get_ref().split(',').all(valid) {
        Ok(servers.get_ref().clone())
    } else {
        Err(at.error(
            servers.span(),
            format!(
                "zookeeper servers: expected host:port[,host:port…], not {:?}",
                servers.get_ref()
            ),
        ))
    }
}

/// Where a service's upstreams come from: the ones it lists, and its
/// `discover` path; it needs one or the other. `what` names it in the
/// error ("a service", "a tcp service").
fn upstream_sources<'a>(
    what: &str,
    name: &Spanned<String>,
    upstreams: &'a Option<Spanned<Vec<Spanned<String>>>>,
    discover: Option<&Spanned<String>>,
    at: &Positions,
) -> Result<(&'a [Spanned<String>], Option<String>), ConfigError> {
    let discover = discover_path(discover, at)?;
    let listed = upstreams
        .as_ref()
        .map_or(&[][..], |u| u.get_ref().as_slice());
    if listed.is_empty() && discover.is_none() {
        let span = upstreams.as_ref().map_or(name.span(), |u| u.span());
        return Err(at.error(
            span,
            format!("{what} needs at least one upstream, or discover = a ZooKeeper path"),
        ));
    }
    Ok((listed, discover))
}

/// A `discover` path: absolute, not the root, kept without a trailing `/`.
fn discover_path(
    path: Option<&Spanned<String>>,
    at: &Positions,
) -> Result<Option<String>, ConfigError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let kept = path.get_ref().trim_end_matches('/');
    // ZooKeeper refuses empty, `.` and `..` components: a watch on such a
    // path would fail forever. The root is every service's parent.
    let refused = !kept.starts_with('/')
        || kept
            .split('/')
            .skip(1)
            .any(|part| part.is_empty() || part == "." || part == "..");
    if refused {
        return Err(at.error(
            path.span(),
            format!(
                "discover is a ZooKeeper path like /workbench/services/api, not {:?}",
                path.get_ref()
            ),
        ));
    }
    Ok(Some(kept.to_owned()))
}

/// A `balance` name: one of load_balance's strategies.
fn balance_kind(balance: &Spanned<String>, at: &Positions) -> Result<Kind, ConfigError> {
    balance.get_ref().parse::<Kind>().map_err(|_| {
        at.error(
            balance.span(),
            format!(
                "unknown balance {:?}; expected one of {}",
                balance.get_ref(),
                Kind::names().join(", ")
            ),
        )
    })
}

/// Turns a byte span of the file into a line and column.
struct Positions<'a> {
    text: &'a str,
    file: &'a str,
}

impl Positions<'_> {
    fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message,
        }
    }

    fn address(&self, value: &Spanned<String>, what: &str) -> Result<SocketAddr, ConfigError> {
        value.get_ref().parse::<SocketAddr>().map_err(|_| {
            self.error(
                value.span(),
                format!(
                    "{what} must be an address like 127.0.0.1:2002, not {:?}",
                    value.get_ref()
                ),
            )
        })
    }

    /// A `Spanned` duration, checked by `operator_input`.
    fn duration(&self, value: &Spanned<String>, what: &str) -> Result<Duration, ConfigError> {
        operator_input::duration(value.get_ref())
            .map_err(|e| self.error(value.span(), format!("{what}: {e}")))
    }
}

/// At least one, or the table's position and what was wrong.
fn at_least_one<T: PartialOrd + From<u8> + std::fmt::Display>(
    value: T,
    what: &str,
    span: &Range<usize>,
    at: &Positions,
) -> Result<T, ConfigError> {
    if value < T::from(1) {
        return Err(at.error(
            span.clone(),
            format!("{what} must be at least 1, not {value}"),
        ));
    }
    Ok(value)
}

fn admin(admin: &AdminFile, at: &Positions) -> Result<Admin, ConfigError> {
    if admin.token.get_ref().is_empty() {
        return Err(at.error(
            admin.token.span(),
            "the admin token may not be empty".into(),
        ));
    }
    let at_least_one = |value: &Option<Spanned<u32>>, default: u32, what: &str| match value {
        None => Ok(NonZeroU32::new(default).expect("defaults are not zero")),
        Some(value) => NonZeroU32::new(*value.get_ref())
            .ok_or_else(|| at.error(value.span(), format!("admin {what} must be at least 1"))),
    };
    Ok(Admin {
        listen: at.address(&admin.listen, "admin listen")?,
        token: admin.token.get_ref().clone(),
        rps: at_least_one(&admin.rps, crate::admin_guard::PER_SECOND, "rps")?,
        burst: at_least_one(&admin.burst, crate::admin_guard::BURST, "burst")?,
    })
}

fn redis(redis: &RedisFile, at: &Positions) -> Result<Redis, ConfigError> {
    let url = redis.url.get_ref();
    if !url.starts_with("redis://") {
        return Err(at.error(
            redis.url.span(),
            format!("expected a redis:// URL, not {url:?}"),
        ));
    }
    let fail = match &redis.fail {
        Some(fail) => fail
            .get_ref()
            .parse::<Fail>()
            .map_err(|e| at.error(fail.span(), format!("redis fail: {e}")))?,
        None => Fail::Open,
    };
    let timeout = match &redis.timeout {
        Some(timeout) => at.duration(timeout, "redis timeout")?,
        None => shared_limit::DEFAULT_BOUND,
    };
    Ok(Redis {
        url: url.clone(),
        fail,
        timeout,
    })
}

/// One `[[services]]` entry, checked (names and routes are compared with
/// the other services by the caller).
fn service(service: &ServiceFile, base: &Path, at: &Positions) -> Result<Service, ConfigError> {
    let name = service.name.get_ref();
    let path_prefix = match &service.path_prefix {
        Some(prefix) if !prefix.get_ref().starts_with('/') => {
            return Err(at.error(
                prefix.span(),
                format!("path_prefix must start with /, not {:?}", prefix.get_ref()),
            ));
        }
        Some(prefix) => prefix.get_ref().clone(),
        None => "/".to_owned(),
    };
    let balance = match &service.balance {
        Some(balance) => balance_kind(balance, at)?,
        None => Kind::RoundRobin,
    };
    let hash_key = match &service.hash_key {
        Some(key) => key
            .get_ref()
            .parse::<HashKey>()
            .map_err(|e| at.error(key.span(), format!("hash_key: {e}")))?,
        None => HashKey::Url,
    };
    let (listed, discover) = upstream_sources(
        "a service",
        &service.name,
        &service.upstreams,
        service.discover.as_ref(),
        at,
    )?;
    let upstreams = listed
        .iter()
        .map(|upstream| {
            step04_load_balance::parse_upstream(upstream.get_ref())
                .map_err(|e| at.error(upstream.span(), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rewrite = Vec::new();
    for rule in &service.rewrite {
        rewrite.push(
            rule.get_ref()
                .parse::<Rule>()
                .map_err(|e| at.error(rule.span(), format!("rewrite: {e}")))?,
        );
    }
    Ok(Service {
        name: name.clone(),
        host: service
            .host
            .as_ref()
            .map(|h| crate::canonical::host(h.get_ref()).into_owned()),
        path_prefix,
        strip_prefix: service.strip_prefix,
        upstreams,
        balance: BalanceSettings {
            balance,
            hash_key,
            health: health(service.health.as_ref(), at)?,
            retries: service.retries.unwrap_or(2),
        },
        proxy: ProxySettings {
            timeout: service
                .timeout
                .as_ref()
                .map(|t| at.duration(t, "timeout"))
                .transpose()?,
            flush_interval: match &service.flush_interval {
                Some(interval) => at.duration(interval, "flush_interval")?,
                None => Duration::ZERO,
            },
            client_body_timeout: match &service.client_body_timeout {
                Some(timeout) => at.duration(timeout, "client_body_timeout")?,
                None => DEFAULT_CLIENT_BODY_TIMEOUT,
            },
            demo_modify: false,
        },
        chain: ChainSettings {
            rate_limit: rate_limit(service.rate_limit.as_ref(), at)?,
            auth: auth(service.auth.as_ref(), base, at)?,
            breaker: breaker(service.breaker.as_ref(), at)?,
            rewrite,
            request_headers: header_edits(service.request_headers.as_ref(), at)?,
            response_headers: header_edits(service.response_headers.as_ref(), at)?,
            ..ChainSettings::default()
        },
        open_auth: service.open_auth.as_ref().is_some_and(|o| *o.get_ref()),
        discover,
        cache: cache(service.cache.as_ref(), at)?,
    })
}

/// The name a gateway's caches give themselves in `Cache-Status`.
pub const CACHE_NAME: &str = "gateway";

/// A service's `cache` table, read as step 09's flags are.
fn cache(
    cache: Option<&Spanned<CacheFile>>,
    at: &Positions,
) -> Result<Option<CacheSettings>, ConfigError> {
    let Some(cache) = cache else {
        return Ok(None);
    };
    let span = cache.span();
    let cache = cache.get_ref();
    let size = |value: &Spanned<String>, what: &str| {
        operator_input::size(value.get_ref())
            .map_err(|e| at.error(value.span(), format!("cache {what}: {e}")))
    };
    let max_entry = cache
        .max_entry_size
        .as_ref()
        .map(|value| size(value, "max_entry_size"))
        .transpose()?;
    let sized =
        CacheSettings::sized(size(&cache.size, "size")?, max_entry, CACHE_NAME).map_err(|why| {
            let at_value = cache.max_entry_size.as_ref().map_or(span, Spanned::span);
            at.error(at_value, format!("cache max_entry_size: {why}"))
        })?;
    let rewrite = cache
        .rewrite_body
        .iter()
        .map(|rule| {
            step09_cache::rewrite::parse_rule(rule.get_ref())
                .map_err(|e| at.error(rule.span(), format!("cache rewrite_body: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let transform_limit = match &cache.rewrite_limit {
        Some(limit) => usize::try_from(size(limit, "rewrite_limit")?).unwrap_or(usize::MAX),
        None => sized.transform_limit,
    };
    Ok(Some(CacheSettings {
        rewrite,
        transform_limit,
        compress: cache.compress,
        ..sized
    }))
}

/// `[tokens]`: a secret that is not empty, and a lifetime.
fn tokens(tokens: &TokensFile, at: &Positions) -> Result<Tokens, ConfigError> {
    if tokens.secret.get_ref().is_empty() {
        return Err(at.error(
            tokens.secret.span(),
            "the tokens secret may not be empty".into(),
        ));
    }
    Ok(Tokens {
        secret: tokens.secret.get_ref().clone(),
        ttl: match &tokens.ttl {
            Some(ttl) => at.duration(ttl, "tokens ttl")?,
            None => DEFAULT_TOKEN_TTL,
        },
    })
}

/// One `[[apps]]` entry (ids are compared with the others by the caller).
fn app(app: &AppFile, at: &Positions) -> Result<App, ConfigError> {
    let id = app.id.get_ref();
    // An id goes into Redis keys and tokens: one word, no separators.
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(at.error(
            app.id.span(),
            format!("an app id is letters, digits, '-', '_' and '.', not {id:?}"),
        ));
    }
    if app.secret.get_ref().is_empty() {
        return Err(at.error(
            app.secret.span(),
            format!("app {id:?}: the secret may not be empty"),
        ));
    }
    let quota = |value: &Option<Spanned<u64>>, what: &str| {
        value
            .as_ref()
            .map(|v| at_least_one(*v.get_ref(), what, &v.span(), at))
            .transpose()
    };
    let allow = networks(&app.allow, "allow", at)?;
    Ok(App {
        id: id.clone(),
        secret: app.secret.get_ref().clone(),
        qps: quota(&app.qps, "qps")?,
        qpd: quota(&app.qpd, "qpd")?,
        allow,
    })
}

/// A `request_headers` or `response_headers` table: every name and value
/// one HTTP can carry, and no name the proxy keeps for itself.
fn header_edits(
    edits: Option<&Spanned<HeadersFile>>,
    at: &Positions,
) -> Result<HeaderEdits, ConfigError> {
    let Some(edits) = edits else {
        return Ok(HeaderEdits::default());
    };
    let name = |raw: &Spanned<String>| {
        let name = HeaderName::from_bytes(raw.get_ref().as_bytes()).map_err(|_| {
            at.error(
                raw.span(),
                format!("{:?} is not a header name", raw.get_ref()),
            )
        })?;
        match not_editable(&name) {
            Some(why) => Err(at.error(
                raw.span(),
                format!("{name} cannot be set or removed here: {why}"),
            )),
            None => Ok(name),
        }
    };
    let mut set = Vec::new();
    for (raw_name, raw_value) in &edits.get_ref().set {
        let value = HeaderValue::from_str(raw_value.get_ref()).map_err(|_| {
            at.error(
                raw_value.span(),
                format!("{:?} is not a header value", raw_value.get_ref()),
            )
        })?;
        set.push((name(raw_name)?, value));
    }
    let remove = edits
        .get_ref()
        .remove
        .iter()
        .map(name)
        .collect::<Result<_, _>>()?;
    Ok(HeaderEdits { set, remove })
}

/// A `health = { path, interval, max_fails, cooldown, fail_status }` table.
fn health(
    health: Option<&Spanned<HealthFile>>,
    at: &Positions,
) -> Result<HealthSettings, ConfigError> {
    let defaults = HealthSettings::default();
    let Some(health) = health else {
        return Ok(defaults);
    };
    let span = health.span();
    let health = health.get_ref();
    let bad = |e: String| at.error(span.clone(), format!("health: {e}"));
    if let Some(path) = &health.path {
        step04_load_balance::parse_path(path).map_err(&bad)?;
    }
    for status in &health.fail_status {
        operator_input::status(&status.to_string()).map_err(&bad)?;
    }
    let duration = |raw: &Option<String>, default: Duration| match raw {
        Some(raw) => operator_input::duration(raw).map_err(&bad),
        None => Ok(default),
    };
    Ok(HealthSettings {
        path: health.path.clone(),
        interval: duration(&health.interval, defaults.interval)?,
        max_fails: at_least_one(
            health.max_fails.unwrap_or(defaults.max_fails),
            "health max_fails",
            &span,
            at,
        )?,
        cooldown: duration(&health.cooldown, defaults.cooldown)?,
        fail_status: health.fail_status.clone(),
    })
}

/// A `breaker = { error_rate, min_requests, open, max_concurrent }` table.
fn breaker(
    breaker: Option<&Spanned<BreakerFile>>,
    at: &Positions,
) -> Result<Option<BreakerSettings>, ConfigError> {
    let Some(breaker) = breaker else {
        return Ok(None);
    };
    let span = breaker.span();
    let breaker = breaker.get_ref();
    if let Some(rate) = breaker.error_rate
        && !(1..=100).contains(&rate)
    {
        return Err(at.error(
            span,
            format!("breaker error_rate is a percentage from 1 to 100, not {rate}"),
        ));
    }
    if breaker.error_rate.is_none() && breaker.max_concurrent.is_none() {
        return Err(at.error(
            span,
            "breaker needs error_rate (percent) or max_concurrent, or both".into(),
        ));
    }
    let max_concurrent = breaker
        .max_concurrent
        .map(|n| at_least_one(n as u64, "breaker max_concurrent", &span, at))
        .transpose()?
        .map(|n| n as usize);
    Ok(Some(BreakerSettings {
        error_rate: breaker.error_rate,
        min_requests: at_least_one(
            breaker.min_requests.unwrap_or(20),
            "breaker min_requests",
            &span,
            at,
        )?,
        open: operator_input::duration(breaker.open.as_deref().unwrap_or("10s"))
            .map_err(|e| at.error(span, format!("breaker open: {e}")))?,
        max_concurrent,
    }))
}

/// A `rate_limit = { rps, burst, key }` table.
fn rate_limit(
    limit: Option<&Spanned<RateLimitFile>>,
    at: &Positions,
) -> Result<Option<RateLimitSettings>, ConfigError> {
    let Some(limit) = limit else {
        return Ok(None);
    };
    let span = limit.span();
    let limit = limit.get_ref();
    let rps = NonZeroU32::new(limit.rps)
        .ok_or_else(|| at.error(span.clone(), "rate_limit rps must be at least 1".into()))?;
    let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.rps))
        .ok_or_else(|| at.error(span.clone(), "rate_limit burst must be at least 1".into()))?;
    let key = limit
        .key
        .as_deref()
        .unwrap_or("global")
        .parse::<RateKey>()
        .map_err(|e| at.error(span, format!("rate_limit key: {e}")))?;
    Ok(Some(RateLimitSettings::new(rps, burst, key)))
}

/// An `auth = { basic, jwt_secret | jwt_public_key, jwt_issuer,
/// jwt_audience, allow, deny }` table: all of step 05's auth.
fn auth(
    auth: Option<&Spanned<AuthFile>>,
    base: &Path,
    at: &Positions,
) -> Result<Option<AuthSettings>, ConfigError> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let span = auth.span();
    let auth = auth.get_ref();
    let bad = |message: String| at.error(span.clone(), format!("auth {message}"));
    for pair in &auth.basic {
        if !pair.contains(':') {
            return Err(bad(format!(
                "basic: expected \"USER:PASSWORD\", not {pair:?}"
            )));
        }
    }
    let networks = |list: &[String], what: &str| {
        list.iter()
            .map(|net| {
                net.parse::<IpNet>().map_err(|_| {
                    bad(format!(
                        "{what}: expected a network like 10.0.0.0/8, not {net:?}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let key = match (&auth.jwt_secret, &auth.jwt_public_key) {
        (Some(_), Some(_)) => {
            return Err(bad("takes jwt_secret or jwt_public_key, not both".into()));
        }
        (Some(secret), None) => Some(JwtKey::Hs256Secret(secret.as_bytes().to_vec())),
        (None, Some(file)) => {
            let path = base.join(file);
            let pem = std::fs::read(&path).map_err(|e| {
                bad(format!(
                    "jwt_public_key: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            Some(JwtKey::Rs256PublicPem(pem))
        }
        (None, None) => None,
    };
    if key.is_none() && (auth.jwt_issuer.is_some() || auth.jwt_audience.is_some()) {
        return Err(bad(
            "jwt_issuer and jwt_audience need jwt_secret or jwt_public_key".into(),
        ));
    }
    let settings = AuthSettings {
        basic: auth.basic.clone(),
        jwt: key.map(|key| JwtSettings {
            key,
            issuer: auth.jwt_issuer.clone(),
            audience: auth.jwt_audience.clone(),
        }),
        allow: networks(&auth.allow, "allow")?,
        deny: networks(&auth.deny, "deny")?,
    };
    if settings == AuthSettings::default() {
        return Err(bad(
            "needs basic, jwt_secret, jwt_public_key, allow or deny".into(),
        ));
    }
    // A key that is not a key is a mistake in the file, found now.
    settings
        .build()
        .map_err(|e| bad(format!("jwt_public_key: {e}")))?;
    Ok(Some(settings))
}
