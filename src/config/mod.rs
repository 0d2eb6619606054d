//! Configuration: the TOML file ([`file`]) → a validated [`Config`] the runtime uses.
//!
//! Loading never stops at the first problem: every error is collected with the file,
//! the key and the reason, and `check` prints them all.

mod file;
mod pattern;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use pattern::{HostPattern, PathCaptures, PathTemplate};

/// One thing wrong with a configuration: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
    }
}

/// Every problem found in a configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A loaded configuration plus the warnings `check` shows (shadowed routes, …).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

/// The validated configuration. Immutable; a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub server: ServerConfig,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    pub session: SessionConfig,
    pub login: LoginConfig,
    pub directory: DirectoryConfig,
    pub issuers: Vec<IssuerConfig>,
    pub assertion: Option<AssertionConfig>,
    pub redis: Option<RedisConfig>,
    pub access_log: AccessLogConfig,
    pub metrics: MetricsConfig,
    pub lifecycle: LifecycleConfig,
    pub mail: Option<MailConfig>,
    pub tracing: Option<TracingConfig>,
}

/// `[tracing]`: OpenTelemetry traces of requests, exported over OTLP/HTTP (JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The collector's base URL; spans go to `{otlp_endpoint}/v1/traces`.
    pub otlp_endpoint: String,
    /// The share of new traces recorded (a request with a `traceparent` follows its
    /// caller's sampling decision).
    pub sample_ratio: f64,
    pub service_name: String,
}

impl Config {
    /// Read, parse and validate `path`.
    pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![Problem {
                file: path.to_path_buf(),
                key: "(file)".into(),
                reason: format!("cannot read: {e}"),
            }])
        })?;
        Self::from_toml(path, &text)
    }

    /// Parse and validate TOML text that came from `path` (used for relative paths and messages).
    pub fn from_toml(path: &Path, text: &str) -> Result<Loaded, ConfigErrors> {
        validate::build(path, text)
    }

    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct TlsListenConfig {
    pub listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `public_url` split into the parts redirects and cookies need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub https: bool,
    /// `host[:port]` as written, lower-cased.
    pub authority: String,
}

impl PublicUrl {
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

/// A token-bucket rate: `burst` requests at once, then `per_second` on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    pub per_second: f64,
    pub burst: u32,
    /// What to do when `[redis]` is configured but cannot answer.
    pub on_redis_error: RedisFallback,
}

/// The fallback when the shared (Redis) counter cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFallback {
    /// Fail open to this instance's own limiter at the same rate.
    Local,
    /// Fail closed: refuse the request (503 with `Retry-After`).
    Deny,
}

impl RedisFallback {
    pub const ALL: [RedisFallback; 2] = [RedisFallback::Local, RedisFallback::Deny];

    pub fn as_str(self) -> &'static str {
        match self {
            RedisFallback::Local => "local",
            RedisFallback::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Option<SocketAddr>,
    pub tls: Option<TlsListenConfig>,
    pub admin_listen: SocketAddr,
    pub public_url: PublicUrl,
    pub threads: usize,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub max_request_header_bytes: usize,
    /// How long a request head may take once its first byte arrived (HTTP/1.x), an
    /// HTTP/2 client its preface, and an HTTP/2 connection may stay without a request.
    pub request_header_timeout: Duration,
    pub shutdown_grace: Duration,
    pub rate_limit_per_ip: Option<RateSpec>,
    pub owner_org_type: String,
    /// Poll the configuration file this often and reload when its content changed (a
    /// Kubernetes ConfigMap update); `None`: reload on SIGHUP or `POST /reload` only.
    pub watch_config: Option<Duration>,
}

impl ServerConfig {
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    pub path: String,
    pub interval: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    pub tls: bool,
    pub sni: String,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub health_check: Option<HealthCheckConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Session,
    Bearer,
    Any,
    None,
}

impl AuthMode {
    pub const ALL: [AuthMode; 4] = [
        AuthMode::Session,
        AuthMode::Bearer,
        AuthMode::Any,
        AuthMode::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Session => "session",
            AuthMode::Bearer => "bearer",
            AuthMode::Any => "any",
            AuthMode::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Shadow,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Enforce, Mode::Shadow];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// A client-account permission level; ordered view < standard < admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccountLevel {
    View,
    Standard,
    Admin,
}

impl AccountLevel {
    pub const ALL: [AccountLevel; 3] = [
        AccountLevel::View,
        AccountLevel::Standard,
        AccountLevel::Admin,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountLevel::View => "view",
            AccountLevel::Standard => "standard",
            AccountLevel::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKey {
    Ip,
    User,
    Org,
    Route,
}

impl RateKey {
    pub const ALL: [RateKey; 4] = [RateKey::Ip, RateKey::User, RateKey::Org, RateKey::Route];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The configuration value, also the `key` label of the rate-limit metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RateKey::Ip => "ip",
            RateKey::User => "user",
            RateKey::Org => "org",
            RateKey::Route => "route",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteRateLimit {
    pub key: RateKey,
    pub rate: RateSpec,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub host: Option<HostPattern>,
    pub path: PathTemplate,
    /// Upper-case method names; `None` = every method.
    pub methods: Option<Vec<http::Method>>,
    pub upstream: String,
    pub auth: AuthMode,
    pub allow_roles: Vec<String>,
    pub allow_permissions: Vec<String>,
    pub allow_org_types: Vec<String>,
    pub account_permission: Option<AccountLevel>,
    pub mode: Mode,
    pub rate_limit: Option<RouteRateLimit>,
    pub strip_prefix: Option<String>,
    pub websocket: bool,
    /// The caller must have signed in with a second factor (step-up otherwise).
    pub require_mfa: bool,
    /// The caller must have authenticated within this long (re-authentication otherwise).
    pub max_auth_age: Option<std::time::Duration>,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The cookie actually used: without the `__Host-` prefix when `public_url` is http://.
    pub cookie_name: String,
    /// `Secure` flag; false only when `public_url` is http://.
    pub cookie_secure: bool,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct LoginConfig {
    pub max_failures: u32,
    pub max_failures_per_ip: u32,
    pub lockout: Duration,
    pub rate_limit_per_ip: RateSpec,
    pub password_min_length: usize,
    /// How long a password reset link works.
    pub reset_ttl: Duration,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTls {
    /// `smtp://`: STARTTLS, required (the default).
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://…?tls=none`: plain text, for a relay on the same host only.
    None,
}

/// `[mail]`: where invitations, reset links and lockout notices go out.
#[derive(Clone)]
pub struct MailConfig {
    pub host: String,
    pub port: u16,
    pub tls: MailTls,
    /// The `From:` mailbox (`Partner Portal <portal@example.com>`).
    pub from: String,
    pub username: Option<String>,
    /// Read from `password_file` or `password_env` at load; never logged.
    pub password: Option<String>,
    /// Attempts per mail before it is given up (and kept, with its error).
    pub max_attempts: u32,
    pub timeout: Duration,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub url: String,
    pub cache_ttl: Duration,
    pub cache_capacity: u64,
}

#[derive(Debug, Clone)]
pub enum KeySource {
    JwksFile(PathBuf),
    JwksUrl(String),
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub keys: Option<KeySource>,
    pub hmac_secret_file: Option<PathBuf>,
    pub user_claim: String,
    pub leeway: Duration,
}

#[derive(Debug, Clone)]
pub struct AssertionConfig {
    pub key_file: PathBuf,
    pub ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Prefix of every key partnergate writes (instances sharing limits share the prefix).
    pub key_prefix: String,
    /// How long a rate-limit check waits for Redis before the route's fallback applies.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogPath {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct AccessLogConfig {
    pub path: AccessLogPath,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub top_orgs: usize,
}

#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub invitation_ttl: Duration,
    pub inactive_after: Duration,
    pub max_grant_ttl: Duration,
    /// How often the in-memory usage counts are added to the directory.
    pub usage_flush: Duration,
    /// The register form refuses new requests while this many wait for a decision.
    pub max_pending_registrations: u32,
    /// Registration requests one client IP may send per 24 hours (per instance).
    pub registrations_per_ip: u32,
}
