//! File structs → validated [`Config`], collecting every problem on the way.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::file::{self, RateFile, RouteFile, ServerFile, UpstreamFile};
use super::*;

/// Collects problems while building; every helper returns a usable default on error so
/// validation can go on and report the rest.
struct Validator {
    file: PathBuf,
    dir: PathBuf,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    fn warn(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// Deserialize one section (or array element) on its own, so a mistake in one does
    /// not hide the mistakes in the others.
    fn section<T: DeserializeOwned>(&mut self, key: &str, value: &toml::Value) -> Option<T> {
        match value.clone().try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, e.message().trim().to_string());
                None
            }
        }
    }

    fn duration(&mut self, key: &str, raw: Option<&str>, default: Duration) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw.trim()) {
            Ok(d) if d.is_zero() => {
                self.problem(key, format!("\"{raw}\" must be longer than zero"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(key, format!("\"{raw}\" is not a duration ({e}); use e.g. \"30s\", \"15m\", \"12h\", \"7d\""));
                default
            }
        }
    }

    fn int(&mut self, key: &str, raw: Option<i64>, default: i64, min: i64, max: i64) -> i64 {
        match raw {
            None => default,
            Some(v) if (min..=max).contains(&v) => v,
            Some(v) => {
                self.problem(key, format!("{v} is out of range {min}..={max}"));
                default
            }
        }
    }

    fn path(&self, raw: &str) -> PathBuf {
        let p = Path::new(raw);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn socket_addr(&mut self, key: &str, raw: &str) -> Option<SocketAddr> {
        if let Ok(addr) = raw.parse::<SocketAddr>() {
            return Some(addr);
        }
        match raw.to_socket_addrs().map(|mut it| it.next()) {
            Ok(Some(addr)) => Some(addr),
            Ok(None) => {
                self.problem(key, format!("\"{raw}\" resolves to no address"));
                None
            }
            Err(e) => {
                self.problem(key, format!("\"{raw}\" is not host:port ({e})"));
                None
            }
        }
    }

    fn rate(&mut self, key: &str, raw: RateFile, fallback: RedisFallback) -> RateSpec {
        if !(raw.per_second.is_finite() && raw.per_second > 0.0 && raw.per_second <= 1e9) {
            self.problem(format!("{key}.per_second"), "must be a number above 0");
        }
        let burst = self.int(
            &format!("{key}.burst"),
            Some(raw.burst),
            1,
            1,
            u32::MAX as i64,
        );
        let on_redis_error = match raw.on_redis_error.as_deref() {
            None => fallback,
            Some("local") => RedisFallback::Local,
            Some("deny") => RedisFallback::Deny,
            Some(other) => {
                self.problem(
                    format!("{key}.on_redis_error"),
                    format!("\"{other}\" is not one of local, deny"),
                );
                fallback
            }
        };
        RateSpec {
            per_second: raw.per_second,
            burst: u32::try_from(burst).unwrap_or(1),
            on_redis_error,
        }
    }
}

pub(super) fn build(path: &Path, text: &str) -> Result<Loaded, ConfigErrors> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut v = Validator {
        file: path.to_path_buf(),
        dir,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let table = match text.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => {
            let at = e
                .span()
                .map(|s| line_col(text, s.start))
                .unwrap_or_else(|| "(syntax)".into());
            v.problem(at, e.message().trim().to_string());
            return Err(ConfigErrors(v.problems));
        }
    };
    for key in table.keys() {
        if !file::SECTIONS.contains(&key.as_str()) {
            v.problem(
                key.clone(),
                format!(
                    "unknown section; expected one of {}",
                    file::SECTIONS.join(", ")
                ),
            );
        }
    }
    let config = assemble(&mut v, &table);
    if v.problems.is_empty() {
        Ok(Loaded {
            config,
            warnings: v.warnings,
        })
    } else {
        Err(ConfigErrors(v.problems))
    }
}

fn line_col(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("line {line}, column {col}")
}

fn optional<T: DeserializeOwned + Default>(v: &mut Validator, table: &toml::Table, key: &str) -> T {
    table
        .get(key)
        .and_then(|value| v.section::<T>(key, value))
        .unwrap_or_default()
}

fn assemble(v: &mut Validator, table: &toml::Table) -> Config {
    let server_file: ServerFile = match table.get("server") {
        Some(value) => v.section("server", value).unwrap_or_default(),
        None => {
            v.problem("server", "missing section [server]");
            ServerFile::default()
        }
    };
    let server = server(v, server_file);
    let upstreams = upstreams(v, table.get("upstreams"));
    let routes = routes(v, table.get("routes"), &upstreams);
    shadow_warnings(v, &routes);
    let session_file = optional(v, table, "session");
    let mut session = session(v, session_file);
    if !server.public_url.https {
        // `__Host-` cookies must be Secure; on a plain-HTTP public URL (demo, tests)
        // the prefix and the flag are dropped together.
        session.cookie_secure = false;
        if let Some(rest) = session.cookie_name.strip_prefix("__Host-") {
            session.cookie_name = rest.to_string();
        }
    }
    let login_file = optional(v, table, "login");
    let login = login(v, login_file);
    let directory_file = optional(v, table, "directory");
    let directory = directory(v, directory_file);
    let issuers = issuers(v, table.get("issuers"));
    if issuers.is_empty() {
        for (i, r) in routes.iter().enumerate() {
            if matches!(r.auth, AuthMode::Bearer | AuthMode::Any) {
                v.problem(
                    format!("routes[{i}].auth"),
                    format!(
                        "auth = \"{}\" needs at least one [[issuers]]",
                        r.auth.as_str()
                    ),
                );
            }
        }
    }
    let assertion = table
        .get("assertion")
        .and_then(|value| v.section::<file::AssertionFile>("assertion", value))
        .map(|a| AssertionConfig {
            key_file: v.path(&a.key_file),
            ttl: v.duration("assertion.ttl", a.ttl.as_deref(), Duration::from_secs(60)),
        });
    let redis = table
        .get("redis")
        .and_then(|value| v.section::<file::RedisFile>("redis", value))
        .map(|mut r| {
            // As for the directory: a password in the URL can stay out of the file.
            if let Some(url) = std::env::var("PARTNERGATE_REDIS_URL")
                .ok()
                .filter(|u| !u.is_empty())
            {
                r.url = url;
            }
            if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://")) {
                v.problem("redis.url", "must start with redis:// or rediss://");
            }
            let key_prefix = r.key_prefix.unwrap_or_else(|| "partnergate:".into());
            if key_prefix.len() > 64
                || key_prefix
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                v.problem(
                    "redis.key_prefix",
                    "at most 64 characters, no spaces or control characters",
                );
            }
            let timeout = v.duration(
                "redis.timeout",
                r.timeout.as_deref(),
                Duration::from_millis(50),
            );
            if timeout.is_zero() || timeout > Duration::from_secs(5) {
                v.problem(
                    "redis.timeout",
                    "must be above 0 and at most 5s (it is on the request path)",
                );
            }
            RedisConfig {
                url: r.url,
                key_prefix,
                timeout,
            }
        });
    let access_log_file = optional(v, table, "access_log");
    let access_log = access_log(v, access_log_file);
    let metrics_file: file::MetricsFile = optional(v, table, "metrics");
    let metrics = MetricsConfig {
        top_orgs: v.int("metrics.top_orgs", metrics_file.top_orgs, 100, 1, 10_000) as usize,
    };
    let lifecycle_file = optional(v, table, "lifecycle");
    let lifecycle = lifecycle(v, lifecycle_file);
    Config {
        source: v.file.clone(),
        server,
        upstreams,
        routes,
        session,
        login,
        directory,
        issuers,
        assertion,
        redis,
        access_log,
        metrics,
        lifecycle,
    }
}

fn server(v: &mut Validator, f: ServerFile) -> ServerConfig {
    let listen = f
        .listen
        .as_deref()
        .and_then(|s| v.socket_addr("server.listen", s));
    let tls = f.tls_listen.as_deref().and_then(|s| {
        let listen = v.socket_addr("server.tls_listen", s)?;
        let cert = f.tls_cert_file.as_deref();
        let key = f.tls_key_file.as_deref();
        if cert.is_none() {
            v.problem("server.tls_cert_file", "required when tls_listen is set");
        }
        if key.is_none() {
            v.problem("server.tls_key_file", "required when tls_listen is set");
        }
        Some(TlsListenConfig {
            listen,
            cert_file: v.path(cert?),
            key_file: v.path(key?),
        })
    });
    if f.listen.is_none() && f.tls_listen.is_none() {
        v.problem("server.listen", "set listen, tls_listen or both");
    }
    if f.tls_listen.is_none() && (f.tls_cert_file.is_some() || f.tls_key_file.is_some()) {
        v.warn("server.tls_cert_file", "ignored: tls_listen is not set");
    }
    let admin_raw = f.admin_listen.as_deref().unwrap_or("127.0.0.1:9090");
    let admin_listen = v
        .socket_addr("server.admin_listen", admin_raw)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090)));
    let public_addrs = [listen, tls.as_ref().map(|t| t.listen)];
    if public_addrs.contains(&Some(admin_listen)) {
        v.problem(
            "server.admin_listen",
            "must differ from the public listeners",
        );
    }
    if listen.is_some() && listen == tls.as_ref().map(|t| t.listen) {
        v.problem("server.tls_listen", "must differ from listen");
    }
    let public_url = match f.public_url.as_deref() {
        Some(raw) => public_url(v, raw),
        None => default_public_url(listen, tls.as_ref()),
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let threads = v.int("server.threads", f.threads, cpus, 1, 256) as usize;
    let trusted_proxies = f
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| cidr(v, &format!("server.trusted_proxies[{i}]"), raw))
        .collect();
    let max_request_header_bytes = v.int(
        "server.max_request_header_bytes",
        f.max_request_header_bytes,
        16_384,
        1_024,
        1_048_576,
    ) as usize;
    let request_header_timeout = v.duration(
        "server.request_header_timeout",
        f.request_header_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let shutdown_grace = v.duration(
        "server.shutdown_grace",
        f.shutdown_grace.as_deref(),
        Duration::from_secs(10),
    );
    let rate_limit_per_ip = f
        .rate_limit_per_ip
        .map(|r| v.rate("server.rate_limit_per_ip", r, RedisFallback::Local));
    let owner_org_type = f.owner_org_type.unwrap_or_else(|| "owner".into());
    if owner_org_type.trim().is_empty() {
        v.problem("server.owner_org_type", "must not be empty");
    }
    ServerConfig {
        listen,
        tls,
        admin_listen,
        public_url,
        threads,
        trusted_proxies,
        max_request_header_bytes,
        request_header_timeout,
        shutdown_grace,
        rate_limit_per_ip,
        owner_org_type,
    }
}

fn default_public_url(listen: Option<SocketAddr>, tls: Option<&TlsListenConfig>) -> PublicUrl {
    match (tls, listen) {
        (Some(t), _) => PublicUrl {
            https: true,
            authority: format!("localhost:{}", t.listen.port()),
        },
        (None, Some(l)) => PublicUrl {
            https: false,
            authority: format!("localhost:{}", l.port()),
        },
        (None, None) => PublicUrl {
            https: false,
            authority: "localhost".into(),
        },
    }
}

fn public_url(v: &mut Validator, raw: &str) -> PublicUrl {
    let (https, rest) = if let Some(rest) = raw.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = raw.strip_prefix("http://") {
        (false, rest)
    } else {
        v.problem(
            "server.public_url",
            format!("\"{raw}\" must start with https:// or http://"),
        );
        return default_public_url(None, None);
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest).to_ascii_lowercase();
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&authority);
    let host_ok = crate::config::HostPattern::parse(host).is_ok()
        || host.parse::<std::net::IpAddr>().is_ok()
        || (host.starts_with('[') && host.ends_with(']'));
    let port_ok = authority
        .rsplit_once(':')
        .map(|(_, p)| p.parse::<u16>().is_ok())
        .unwrap_or(true);
    if authority.is_empty()
        || !host_ok
        || !port_ok
        || authority.contains('/')
        || host.starts_with("*.")
    {
        v.problem(
            "server.public_url",
            format!("\"{raw}\" must be scheme://host[:port] with no path"),
        );
    }
    PublicUrl { https, authority }
}

fn cidr(v: &mut Validator, key: &str, raw: &str) -> Option<ipnet::IpNet> {
    if let Ok(net) = raw.parse::<ipnet::IpNet>() {
        return Some(net);
    }
    if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
        return Some(ipnet::IpNet::from(ip));
    }
    v.problem(key, format!("\"{raw}\" is not an IP address or CIDR range"));
    None
}

fn upstreams(v: &mut Validator, value: Option<&toml::Value>) -> Vec<UpstreamConfig> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(table) = value.as_table() else {
        v.problem("upstreams", "must be a table of [upstreams.NAME] sections");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in table {
        let key = format!("upstreams.{name}");
        if !valid_name(name) {
            v.problem(&key, "upstream names use letters, digits, '-', '_' and '.'");
        }
        if let Some(f) = v.section::<UpstreamFile>(&key, value) {
            out.push(upstream(v, &key, name, f));
        }
    }
    out
}

fn upstream(v: &mut Validator, key: &str, name: &str, f: UpstreamFile) -> UpstreamConfig {
    if f.addrs.is_empty() {
        v.problem(format!("{key}.addrs"), "needs at least one host:port");
    }
    let addrs = f
        .addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| v.socket_addr(&format!("{key}.addrs[{i}]"), a))
        .collect();
    let tls = f.tls.unwrap_or(false);
    let sni = f.sni.clone().unwrap_or_else(|| {
        f.addrs
            .first()
            .and_then(|a| {
                a.rsplit_once(':')
                    .map(|(host, _)| host.trim_matches(['[', ']']).to_string())
            })
            .unwrap_or_default()
    });
    if tls && sni.is_empty() {
        v.problem(
            format!("{key}.sni"),
            "must name the upstream's host when tls = true (certificate verification needs it)",
        );
    }
    if f.ca_file.is_some() && !tls {
        v.warn(format!("{key}.ca_file"), "ignored: tls = false");
    }
    let health_check = f.health_check.map(|h| {
        if !h.path.starts_with('/') {
            v.problem(format!("{key}.health_check.path"), "must start with '/'");
        }
        HealthCheckConfig {
            path: h.path,
            interval: v.duration(
                &format!("{key}.health_check.interval"),
                h.interval.as_deref(),
                Duration::from_secs(5),
            ),
        }
    });
    UpstreamConfig {
        name: name.to_string(),
        addrs,
        tls,
        sni,
        ca_file: f.ca_file.as_deref().map(|p| v.path(p)),
        connect_timeout: v.duration(
            &format!("{key}.connect_timeout"),
            f.connect_timeout.as_deref(),
            Duration::from_secs(2),
        ),
        read_timeout: v.duration(
            &format!("{key}.read_timeout"),
            f.read_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        health_check,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The elements of an array-of-tables section (`[[routes]]`, `[[issuers]]`), each
/// deserialized on its own, with its `section[i]` key.
fn array_of<T: DeserializeOwned>(
    v: &mut Validator,
    name: &str,
    value: &toml::Value,
) -> Vec<(String, T)> {
    let Some(items) = value.as_array() else {
        v.problem(name, format!("must be an array of [[{name}]] tables"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("{name}[{i}]");
        if let Some(f) = v.section::<T>(&key, item) {
            out.push((key, f));
        }
    }
    out
}

fn routes(
    v: &mut Validator,
    value: Option<&toml::Value>,
    upstreams: &[UpstreamConfig],
) -> Vec<RouteConfig> {
    let Some(value) = value else {
        v.warn("routes", "no [[routes]]: every request will get 404");
        return Vec::new();
    };
    let mut out: Vec<RouteConfig> = Vec::new();
    for (key, f) in array_of::<RouteFile>(v, "routes", value) {
        let key = format!("{key} ({})", f.name);
        if out.iter().any(|r| r.name == f.name) {
            v.problem(format!("{key}.name"), "duplicate route name");
        }
        out.push(route(v, &key, f, upstreams));
    }
    out
}

fn route(v: &mut Validator, key: &str, f: RouteFile, upstreams: &[UpstreamConfig]) -> RouteConfig {
    if !valid_name(&f.name) {
        v.problem(
            format!("{key}.name"),
            "route names use letters, digits, '-', '_' and '.' (it is a metric label)",
        );
    }
    let host = f.host.as_deref().and_then(|h| match HostPattern::parse(h) {
        Ok(p) => Some(p),
        Err(e) => {
            v.problem(format!("{key}.host"), e);
            None
        }
    });
    let path = match PathTemplate::parse(&f.path) {
        Ok(t) => {
            let literal = f.path.replace("{account}", "x");
            if crate::normalize::normalize_path(&literal)
                .map(|n| n != literal.as_str())
                .unwrap_or(true)
            {
                v.problem(format!("{key}.path"), format!("\"{}\" is not in normalised form (no '//', '.', '..' or escapes), so it could never match", f.path));
            }
            t
        }
        Err(e) => {
            v.problem(format!("{key}.path"), e);
            PathTemplate::root()
        }
    };
    let methods = f.methods.as_ref().map(|ms| methods(v, key, ms));
    if !upstreams.iter().any(|u| u.name == f.upstream) {
        v.problem(
            format!("{key}.upstream"),
            format!("no [upstreams.{}] section", f.upstream),
        );
    }
    // Fail closed: a route that does not say otherwise needs a login.
    let auth = match f.auth.as_deref().unwrap_or("session") {
        "none" => AuthMode::None,
        "session" => AuthMode::Session,
        "bearer" => AuthMode::Bearer,
        "any" => AuthMode::Any,
        other => {
            v.problem(
                format!("{key}.auth"),
                format!("\"{other}\" is not one of session, bearer, any, none"),
            );
            AuthMode::None
        }
    };
    for (name, list) in [
        ("allow_roles", &f.allow_roles),
        ("allow_permissions", &f.allow_permissions),
        ("allow_org_types", &f.allow_org_types),
    ] {
        let Some(list) = list else { continue };
        if list.is_empty() {
            v.problem(
                format!("{key}.{name}"),
                "an empty list allows nobody; leave the key out to not check it",
            );
        }
        if list
            .iter()
            .any(|item| item.trim().is_empty() || item.trim() != item)
        {
            v.problem(
                format!("{key}.{name}"),
                "entries must be non-empty names without surrounding spaces",
            );
        }
        if auth == AuthMode::None {
            v.problem(
                format!("{key}.{name}"),
                "needs an identity, but the route has auth = \"none\"",
            );
        }
    }
    let account_permission = f.account_permission.as_deref().and_then(|p| {
        let level = AccountLevel::parse(p);
        if level.is_none() {
            v.problem(
                format!("{key}.account_permission"),
                format!("\"{p}\" is not one of view, standard, admin"),
            );
        } else if !path.has_account() {
            v.problem(
                format!("{key}.account_permission"),
                format!(
                    "path \"{}\" has no {{account}} segment to check it on",
                    f.path
                ),
            );
        } else if auth == AuthMode::None {
            v.problem(
                format!("{key}.account_permission"),
                "needs an identity, but the route has auth = \"none\"",
            );
        }
        level
    });
    let mode = match f.mode.as_deref().unwrap_or("enforce") {
        "enforce" => Mode::Enforce,
        "shadow" => Mode::Shadow,
        other => {
            v.problem(
                format!("{key}.mode"),
                format!("\"{other}\" is not one of enforce, shadow"),
            );
            Mode::Enforce
        }
    };
    let rate_limit = f.rate_limit.map(|r| {
        let rate_key = RateKey::parse(&r.key).unwrap_or_else(|| {
            v.problem(
                format!("{key}.rate_limit.key"),
                format!("\"{}\" is not one of ip, user, org, route", r.key),
            );
            RateKey::Ip
        });
        if matches!(rate_key, RateKey::User | RateKey::Org) && auth == AuthMode::None {
            v.problem(
                format!("{key}.rate_limit.key"),
                format!(
                    "\"{}\" needs an identity, but the route has auth = \"none\"",
                    r.key
                ),
            );
        }
        let rate = v.rate(
            &format!("{key}.rate_limit"),
            RateFile {
                per_second: r.per_second,
                burst: r.burst,
                on_redis_error: r.on_redis_error,
            },
            RedisFallback::Local,
        );
        RouteRateLimit {
            key: rate_key,
            rate,
        }
    });
    if let Some(strip) = &f.strip_prefix {
        if !strip.starts_with('/') || !path.literal_prefix().starts_with(strip.as_str()) {
            v.problem(
                format!("{key}.strip_prefix"),
                format!(
                    "\"{strip}\" must start with '/' and be a prefix of path \"{}\"",
                    f.path
                ),
            );
        }
    }
    RouteConfig {
        name: f.name,
        host,
        path,
        methods,
        upstream: f.upstream,
        auth,
        allow_roles: f.allow_roles.unwrap_or_default(),
        allow_permissions: f.allow_permissions.unwrap_or_default(),
        allow_org_types: f.allow_org_types.unwrap_or_default(),
        account_permission,
        mode,
        rate_limit,
        strip_prefix: f.strip_prefix.filter(|s| s != "/"),
        websocket: f.websocket.unwrap_or(false),
    }
}

fn methods(v: &mut Validator, key: &str, raw: &[String]) -> Vec<http::Method> {
    if raw.is_empty() {
        v.problem(
            format!("{key}.methods"),
            "an empty list matches nothing; leave it out to allow every method",
        );
    }
    raw.iter()
        .filter_map(|m| {
            let ok = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
            match http::Method::from_bytes(m.as_bytes()) {
                Ok(method) if ok => Some(method),
                _ => {
                    v.problem(
                        format!("{key}.methods"),
                        format!("\"{m}\" is not an upper-case HTTP method"),
                    );
                    None
                }
            }
        })
        .collect()
}

fn shadow_warnings(v: &mut Validator, routes: &[RouteConfig]) {
    for (j, later) in routes.iter().enumerate() {
        let shadowing = routes[..j].iter().find(|earlier| covers(earlier, later));
        if let Some(earlier) = shadowing {
            v.warn(
                format!("routes[{j}] ({})", later.name),
                format!(
                    "shadowed by earlier route \"{}\": it can never match",
                    earlier.name
                ),
            );
        }
    }
}

fn covers(earlier: &RouteConfig, later: &RouteConfig) -> bool {
    let host = match (&earlier.host, &later.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.is_covered_by(e),
    };
    let methods = match (&earlier.methods, &later.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
    };
    host && methods && later.path.is_covered_by(&earlier.path)
}

fn session(v: &mut Validator, f: file::SessionFile) -> SessionConfig {
    let cookie_name = f.cookie_name.unwrap_or_else(|| "__Host-partnergate".into());
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        v.problem(
            "session.cookie_name",
            "use letters, digits, '-', '_' and '.'",
        );
    }
    let idle_timeout = v.duration(
        "session.idle_timeout",
        f.idle_timeout.as_deref(),
        Duration::from_secs(30 * 60),
    );
    let absolute_timeout = v.duration(
        "session.absolute_timeout",
        f.absolute_timeout.as_deref(),
        Duration::from_secs(12 * 3600),
    );
    if idle_timeout > absolute_timeout {
        v.problem(
            "session.idle_timeout",
            "must not be longer than absolute_timeout",
        );
    }
    SessionConfig {
        cookie_secure: true,
        cookie_name,
        idle_timeout,
        absolute_timeout,
    }
}

fn login(v: &mut Validator, f: file::LoginFile) -> LoginConfig {
    LoginConfig {
        max_failures: v.int("login.max_failures", f.max_failures, 5, 1, 1_000) as u32,
        max_failures_per_ip: v.int(
            "login.max_failures_per_ip",
            f.max_failures_per_ip,
            50,
            1,
            100_000,
        ) as u32,
        lockout: v.duration(
            "login.lockout",
            f.lockout.as_deref(),
            Duration::from_secs(15 * 60),
        ),
        rate_limit_per_ip: match f.rate_limit_per_ip {
            Some(r) => v.rate("login.rate_limit_per_ip", r, RedisFallback::Deny),
            None => RateSpec {
                per_second: 1.0,
                burst: 10,
                on_redis_error: RedisFallback::Deny,
            },
        },
        password_min_length: v.int(
            "login.password_min_length",
            f.password_min_length,
            12,
            8,
            128,
        ) as usize,
    }
}

fn directory(v: &mut Validator, f: file::DirectoryFile) -> DirectoryConfig {
    // The environment wins, so a database password need not be written in the file.
    let url = std::env::var("PARTNERGATE_DIRECTORY_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or(f.url)
        .unwrap_or_else(|| "sqlite://data/partnergate.db".into());
    let url = if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            v.problem("directory.url", "sqlite:// needs a file path");
        }
        format!("sqlite://{}", v.path(rest).display())
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url
    } else {
        v.problem("directory.url", "must start with sqlite:// or postgres://");
        url
    };
    DirectoryConfig {
        url,
        cache_ttl: v.duration(
            "directory.cache_ttl",
            f.cache_ttl.as_deref(),
            Duration::from_secs(30),
        ),
        cache_capacity: v.int(
            "directory.cache_capacity",
            f.cache_capacity,
            100_000,
            1,
            100_000_000,
        ) as u64,
    }
}

const JWT_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

fn issuers(v: &mut Validator, value: Option<&toml::Value>) -> Vec<IssuerConfig> {
    let Some(value) = value else {
        return Vec::new();
    };
    let mut out: Vec<IssuerConfig> = Vec::new();
    for (key, f) in array_of::<file::IssuerFile>(v, "issuers", value) {
        if out.iter().any(|o| o.name == f.name) {
            v.problem(format!("{key}.name"), "duplicate issuer name");
        }
        out.push(issuer(v, &key, f));
    }
    out
}

fn issuer(v: &mut Validator, key: &str, f: file::IssuerFile) -> IssuerConfig {
    if f.issuer.trim().is_empty() {
        v.problem(
            format!("{key}.issuer"),
            "must not be empty (tokens must carry iss)",
        );
    }
    if f.audiences.is_empty() {
        v.problem(
            format!("{key}.audiences"),
            "list at least one audience (tokens must carry aud)",
        );
    }
    if f.algorithms.is_empty() {
        v.problem(format!("{key}.algorithms"), "list at least one algorithm");
    }
    for alg in &f.algorithms {
        if alg.eq_ignore_ascii_case("none") {
            v.problem(format!("{key}.algorithms"), "\"none\" is never accepted");
        } else if !JWT_ALGORITHMS.contains(&alg.as_str()) {
            v.problem(
                format!("{key}.algorithms"),
                format!("\"{alg}\" is not one of {}", JWT_ALGORITHMS.join(", ")),
            );
        }
    }
    let uses_hmac = f.algorithms.iter().any(|a| a.starts_with("HS"));
    let uses_keys = f.algorithms.iter().any(|a| !a.starts_with("HS"));
    if uses_hmac && f.hmac_secret_file.is_none() {
        v.problem(
            format!("{key}.hmac_secret_file"),
            "HS* algorithms need an explicit secret file",
        );
    }
    let keys = match (&f.jwks_file, &f.jwks_url) {
        (Some(file), None) => Some(KeySource::JwksFile(v.path(file))),
        (None, Some(url)) => {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                v.problem(format!("{key}.jwks_url"), "must be an http(s) URL");
            }
            Some(KeySource::JwksUrl(url.clone()))
        }
        (Some(_), Some(_)) => {
            v.problem(
                format!("{key}.jwks_url"),
                "set jwks_file or jwks_url, not both",
            );
            None
        }
        (None, None) => None,
    };
    if uses_keys && keys.is_none() {
        v.problem(
            format!("{key}.jwks_file"),
            "asymmetric algorithms need jwks_file or jwks_url",
        );
    }
    IssuerConfig {
        name: f.name,
        issuer: f.issuer,
        audiences: f.audiences,
        algorithms: f.algorithms,
        keys,
        hmac_secret_file: f.hmac_secret_file.as_deref().map(|p| v.path(p)),
        user_claim: f.user_claim.unwrap_or_else(|| "email".into()),
        leeway: match f.leeway.as_deref() {
            Some("0s") => Duration::ZERO,
            other => v.duration(&format!("{key}.leeway"), other, Duration::from_secs(30)),
        },
    }
}

fn access_log(v: &mut Validator, f: file::AccessLogFile) -> AccessLogConfig {
    let path = match f.path.as_deref() {
        None | Some("-") => AccessLogPath::Stdout,
        Some("") => {
            v.problem("access_log.path", "use \"-\" for stdout or a file path");
            AccessLogPath::Stdout
        }
        Some(p) => AccessLogPath::File(v.path(p)),
    };
    AccessLogConfig { path }
}

/// The bounds of `lifecycle.usage_flush`: counts wait in memory (and are lost with a
/// crash) until the flush; each flush is a write transaction on the directory.
const MIN_USAGE_FLUSH: Duration = Duration::from_secs(1);
const MAX_USAGE_FLUSH: Duration = Duration::from_secs(3600);

fn lifecycle(v: &mut Validator, f: file::LifecycleFile) -> LifecycleConfig {
    let day = 24 * 3600;
    let usage_flush = v.duration(
        "lifecycle.usage_flush",
        f.usage_flush.as_deref(),
        Duration::from_secs(60),
    );
    if !(MIN_USAGE_FLUSH..=MAX_USAGE_FLUSH).contains(&usage_flush) {
        v.problem(
            "lifecycle.usage_flush",
            "must be between \"1s\" and \"1h\" (usage counts wait in memory until the flush)",
        );
    }
    LifecycleConfig {
        usage_flush: usage_flush.clamp(MIN_USAGE_FLUSH, MAX_USAGE_FLUSH),
        invitation_ttl: v.duration(
            "lifecycle.invitation_ttl",
            f.invitation_ttl.as_deref(),
            Duration::from_secs(7 * day),
        ),
        inactive_after: v.duration(
            "lifecycle.inactive_after",
            f.inactive_after.as_deref(),
            Duration::from_secs(90 * day),
        ),
        max_grant_ttl: v.duration(
            "lifecycle.max_grant_ttl",
            f.max_grant_ttl.as_deref(),
            Duration::from_secs(90 * day),
        ),
    }
}

#[cfg(test)]
mod tests;
