//! The TOML file format, mirrored field by field (every key is described in
//! docs/reference.md, "Configuration").
//!
//! These structs only describe what an operator may write; validation turns them into
//! the runtime [`super::Config`]. Every struct denies unknown keys. Durations, addresses
//! and enums stay strings here so validation can name the key that is wrong.

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<String>,
    pub tls_listen: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub admin_listen: Option<String>,
    pub public_url: Option<String>,
    pub threads: Option<i64>,
    pub trusted_proxies: Option<Vec<String>>,
    pub max_request_header_bytes: Option<i64>,
    pub request_header_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    pub rate_limit_per_ip: Option<RateFile>,
    pub owner_org_type: Option<String>,
    pub watch_config: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RateFile {
    pub per_second: f64,
    pub burst: i64,
    pub on_redis_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRateFile {
    pub key: String,
    pub per_second: f64,
    pub burst: i64,
    pub on_redis_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub addrs: Vec<String>,
    pub tls: Option<bool>,
    pub sni: Option<String>,
    pub ca_file: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub health_check: Option<HealthCheckFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub path: String,
    pub interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: String,
    pub host: Option<String>,
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub upstream: String,
    pub auth: Option<String>,
    pub allow_roles: Option<Vec<String>>,
    pub allow_permissions: Option<Vec<String>>,
    pub allow_org_types: Option<Vec<String>>,
    pub account_permission: Option<String>,
    pub mode: Option<String>,
    pub rate_limit: Option<RouteRateFile>,
    pub strip_prefix: Option<String>,
    pub websocket: Option<bool>,
    pub require_mfa: Option<bool>,
    pub max_auth_age: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    pub cookie_name: Option<String>,
    pub idle_timeout: Option<String>,
    pub absolute_timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LoginFile {
    pub max_failures: Option<i64>,
    pub max_failures_per_ip: Option<i64>,
    pub lockout: Option<String>,
    pub rate_limit_per_ip: Option<RateFile>,
    pub password_min_length: Option<i64>,
    pub reset_ttl: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MailFile {
    pub smtp_url: Option<String>,
    pub from: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub max_attempts: Option<i64>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    pub url: Option<String>,
    pub cache_ttl: Option<String>,
    pub cache_capacity: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerFile {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub jwks_file: Option<String>,
    pub jwks_url: Option<String>,
    pub hmac_secret_file: Option<String>,
    pub user_claim: Option<String>,
    pub leeway: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionFile {
    pub key_file: String,
    pub ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    pub url: String,
    pub key_prefix: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFile {
    pub path: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    pub top_orgs: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LifecycleFile {
    pub invitation_ttl: Option<String>,
    pub inactive_after: Option<String>,
    pub max_grant_ttl: Option<String>,
    pub usage_flush: Option<String>,
    pub max_pending_registrations: Option<i64>,
    pub registrations_per_ip: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TracingFile {
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: Option<f64>,
    pub service_name: Option<String>,
}

/// The top-level sections a config file may hold.
pub const SECTIONS: &[&str] = &[
    "mail",
    "tracing",
    "server",
    "upstreams",
    "routes",
    "session",
    "login",
    "directory",
    "issuers",
    "assertion",
    "redis",
    "access_log",
    "metrics",
    "lifecycle",
];
