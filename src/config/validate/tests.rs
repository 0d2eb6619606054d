use std::path::Path;
use std::time::Duration;

use super::{build, validator};
use crate::config::*;

fn load(text: &str) -> Result<Loaded, ConfigErrors> {
    build(Path::new("/etc/pg/test.toml"), text)
}

const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8080"

[upstreams.portal]
addrs = ["127.0.0.1:9000"]

[[routes]]
name = "all"
path = "/"
upstream = "portal"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let loaded = load(MINIMAL).expect("valid");
    let c = loaded.config;
    assert_eq!(
        c.server.admin_listen,
        "127.0.0.1:9090".parse().expect("addr")
    );
    assert_eq!(c.server.max_request_header_bytes, 16_384);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(10));
    assert_eq!(c.server.request_header_timeout, Duration::from_secs(10));
    assert_eq!(c.server.public_url.origin(), "http://localhost:8080");
    assert_eq!(c.upstreams[0].connect_timeout, Duration::from_secs(2));
    assert_eq!(c.upstreams[0].read_timeout, Duration::from_secs(30));
    // Fail closed: a route that does not name its auth needs a login.
    assert_eq!(c.routes[0].auth, AuthMode::Session);
    assert_eq!(
        c.session.cookie_name, "partnergate",
        "http public_url drops __Host-"
    );
    assert!(!c.session.cookie_secure);
    assert_eq!(c.access_log.path, AccessLogPath::Stdout);
    assert_eq!(c.directory.url, "sqlite:///etc/pg/data/partnergate.db");
    assert_eq!(c.lifecycle.usage_flush, Duration::from_secs(60));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn usage_flush_is_a_duration_from_a_second_to_an_hour() {
    let with = |value: &str| format!("{MINIMAL}\n[lifecycle]\nusage_flush = \"{value}\"\n");
    let loaded = load(&with("5s")).expect("valid");
    assert_eq!(loaded.config.lifecycle.usage_flush, Duration::from_secs(5));
    for bad in ["2h", "500ms", "0s", "often"] {
        let errors = load(&with(bad)).expect_err(bad).0;
        let keys: Vec<&str> = errors.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["lifecycle.usage_flush"], "{bad}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[server]
listen = "not-an-addr"
shutdown_grace = "soon"
bogus = 1

[upstreams.portal]
addrs = []
connect_timeout = "0s"

[[routes]]
name = "a"
path = "dashboard"
upstream = "missing"
methods = ["get"]

[[routes]]
name = "b"
path = "/x"
upstream = "portal"
colour = "blue"

[[routes]]
name = "c"
path = "/c/../d"
upstream = "portal"
mode = "loud"
auth = "magic"

[nonsense]
x = 1
"#;
    let errors = load(text).expect_err("invalid").0;
    let keys: Vec<&str> = errors.iter().map(|p| p.key.as_str()).collect();
    for want in [
        "server",
        "upstreams.portal.addrs",
        "upstreams.portal.connect_timeout",
        "routes[0] (a).path",
        "routes[0] (a).upstream",
        "routes[0] (a).methods",
        "routes[1]",
        "routes[2] (c).path",
        "routes[2] (c).mode",
        "routes[2] (c).auth",
        "nonsense",
    ] {
        assert!(keys.contains(&want), "missing problem for {want}: {keys:?}");
    }
    assert!(errors
        .iter()
        .all(|p| p.file == Path::new("/etc/pg/test.toml")));
    let unknown = errors
        .iter()
        .find(|p| p.key == "routes[1]")
        .expect("route 1");
    assert!(unknown.reason.contains("colour"), "{}", unknown.reason);
}

#[test]
fn server_errors_name_their_keys() {
    let text = r#"
[server]
listen = "127.0.0.1:8080"
tls_listen = "127.0.0.1:8443"
admin_listen = "127.0.0.1:8080"
public_url = "ftp://x"
trusted_proxies = ["10.0.0.0/8", "banana"]
threads = 0
"#;
    let errors = load(text).expect_err("invalid").0;
    let keys: Vec<&str> = errors.iter().map(|p| p.key.as_str()).collect();
    for want in [
        "server.tls_cert_file",
        "server.tls_key_file",
        "server.admin_listen",
        "server.public_url",
        "server.trusted_proxies[1]",
        "server.threads",
    ] {
        assert!(keys.contains(&want), "missing problem for {want}: {keys:?}");
    }
}

#[test]
fn syntax_error_names_line_and_column() {
    let errors = load("[server]\nlisten = \n").expect_err("invalid").0;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].key.starts_with("line 2"), "{:?}", errors[0]);
}

#[test]
fn shadowed_routes_are_warnings() {
    let text = format!(
        "{MINIMAL}\n[[routes]]\nname = \"later\"\npath = \"/dashboard\"\nupstream = \"portal\"\n"
    );
    let loaded = load(&text).expect("valid");
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].reason.contains("\"all\""));
}

#[test]
fn not_shadowed_when_methods_or_host_narrower() {
    let text = r#"
[server]
listen = "127.0.0.1:8080"
[upstreams.portal]
addrs = ["127.0.0.1:9000"]
[[routes]]
name = "gets"
path = "/"
methods = ["GET"]
upstream = "portal"
[[routes]]
name = "host"
host = "a.example.com"
path = "/"
upstream = "portal"
[[routes]]
name = "rest"
path = "/"
upstream = "portal"
"#;
    let loaded = load(text).expect("valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn policy_keys_are_validated() {
    let ok = format!(
        "{MINIMAL}\n[[routes]]\nname = \"p\"\npath = \"/clients/{{account}}/\"\nupstream = \"portal\"\nauth = \"session\"\nallow_roles = [\"x\"]\nallow_org_types = [\"reseller\"]\naccount_permission = \"standard\"\nmode = \"shadow\"\nrate_limit = {{ key = \"user\", per_second = 1, burst = 1, on_redis_error = \"deny\" }}\n"
    );
    let c = load(&ok).expect("valid").config;
    let r = c.routes.iter().find(|r| r.name == "p").expect("route p");
    assert_eq!(r.allow_roles, ["x"]);
    assert_eq!(r.account_permission, Some(AccountLevel::Standard));
    assert_eq!(r.mode, Mode::Shadow);
    let limit = r.rate_limit.expect("rate limit");
    assert_eq!(limit.key, RateKey::User);
    assert_eq!(limit.rate.on_redis_error, RedisFallback::Deny);
    assert_eq!(
        c.login.rate_limit_per_ip.on_redis_error,
        RedisFallback::Deny
    );

    let bad = format!(
        "{MINIMAL}\n[[routes]]\nname = \"p\"\npath = \"/p\"\nupstream = \"portal\"\nauth = \"none\"\nallow_roles = []\nallow_permissions = [\"a\"]\naccount_permission = \"view\"\nrate_limit = {{ key = \"org\", per_second = 1, burst = 1, on_redis_error = \"maybe\" }}\n"
    );
    let errors = load(&bad).expect_err("invalid").0;
    let keys: Vec<&str> = errors.iter().map(|p| p.key.as_str()).collect();
    for want in [
        "(p).allow_roles",
        "(p).allow_permissions",
        "(p).account_permission",
        "(p).rate_limit.key",
        "(p).rate_limit.on_redis_error",
    ] {
        assert!(
            keys.iter().any(|k| k.ends_with(want)),
            "{want} missing from {errors:?}"
        );
    }
}

#[test]
fn bearer_routes_need_an_issuer() {
    let text = format!(
        "{MINIMAL}\n[[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"portal\"\nauth = \"bearer\"\n"
    );
    let errors = load(&text).expect_err("invalid").0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].key.ends_with(".auth") && errors[0].reason.contains("[[issuers]]"));
}

#[test]
fn the_issuer_problem_names_the_route_like_every_route_problem() {
    // The second route cannot be read, so the bearer route is the third in the file.
    let text = format!(
        "{MINIMAL}\n[[routes]]\nname = \"odd\"\npath = \"/odd\"\nupstream = \"portal\"\ncolour = \"blue\"\n\n[[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"portal\"\nauth = \"any\"\n"
    );
    let errors = load(&text).expect_err("invalid").0;
    let keys: Vec<&str> = errors.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["routes[1]", "routes[2] (api).auth"]);
    assert_eq!(
        errors[1].reason,
        "auth = \"any\" needs at least one [[issuers]]"
    );
}

#[test]
fn relative_paths_follow_the_config_file() {
    let text = r#"
[server]
tls_listen = "127.0.0.1:8443"
tls_cert_file = "../certs/server.crt"
tls_key_file = "/abs/server.key"
[access_log]
path = "logs/access.log"
"#;
    let c = load(text).expect("valid").config;
    let tls = c.server.tls.expect("tls");
    assert_eq!(tls.cert_file, Path::new("/etc/pg/../certs/server.crt"));
    assert_eq!(tls.key_file, Path::new("/abs/server.key"));
    assert_eq!(
        c.access_log.path,
        AccessLogPath::File("/etc/pg/logs/access.log".into())
    );
    assert!(c.server.public_url.https);
}

#[test]
fn issuers_refuse_none_and_unkeyed_hmac() {
    let text = r#"
[server]
listen = "127.0.0.1:8080"
[[issuers]]
name = "idp"
issuer = "https://idp"
audiences = ["pg"]
algorithms = ["none", "HS256", "RS256"]
"#;
    let errors = load(text).expect_err("invalid").0;
    let keys: Vec<&str> = errors.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"issuers[0].algorithms"));
    assert!(keys.contains(&"issuers[0].hmac_secret_file"));
    assert!(keys.contains(&"issuers[0].jwks_file"));
}

#[test]
fn one_of_takes_a_listed_name_and_names_them_all_otherwise() {
    let mut v = validator::Validator::new(Path::new("/etc/pg/test.toml"));
    let mode = v.one_of("routes[0] (a).mode", "shadow", &Mode::ALL, Mode::as_str);
    assert_eq!(mode, Some(Mode::Shadow));
    let key = v.one_of(
        "routes[0] (a).rate_limit.key",
        "planet",
        &RateKey::ALL,
        RateKey::as_str,
    );
    assert_eq!(key, None);
    let algorithm = v.one_of("issuers[0].algorithms", "HS256", &["RS256", "HS256"], |a| a);
    assert_eq!(algorithm, Some("HS256"));
    let problems = v.into_errors().0;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0].to_string(),
        "/etc/pg/test.toml: routes[0] (a).rate_limit.key: \"planet\" is not one of ip, user, org, route"
    );
}
