//! `[[routes]]`: what a request matches, who may pass and what happens then; and the
//! warnings about routes an earlier one shadows.

use crate::config::file::{RateFile, RouteFile};
use crate::config::{
    AccountLevel, AuthMode, HostPattern, Mode, PathTemplate, RateKey, RedisFallback, RouteConfig,
    RouteRateLimit, UpstreamConfig,
};

use super::validator::{valid_name, Validator};

/// Every route that could be read, with its key (`routes[i] (name)`, `i` its place in the
/// file) for the checks that look at all of them.
pub(super) fn routes(
    v: &mut Validator,
    value: Option<&toml::Value>,
    upstreams: &[UpstreamConfig],
) -> Vec<(String, RouteConfig)> {
    let Some(value) = value else {
        v.warn("routes", "no [[routes]]: every request will get 404");
        return Vec::new();
    };
    let mut out: Vec<(String, RouteConfig)> = Vec::new();
    for (key, f) in v.array_of::<RouteFile>("routes", value) {
        let key = format!("{key} ({})", f.name);
        if out.iter().any(|(_, r)| r.name == f.name) {
            v.problem(format!("{key}.name"), "duplicate route name");
        }
        let route = route(v, &key, f, upstreams);
        out.push((key, route));
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
    let auth = v
        .one_of(
            format!("{key}.auth"),
            f.auth.as_deref().unwrap_or("session"),
            &AuthMode::ALL,
            AuthMode::as_str,
        )
        .unwrap_or(AuthMode::None);
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
        let level = v.one_of(
            format!("{key}.account_permission"),
            p,
            &AccountLevel::ALL,
            AccountLevel::as_str,
        )?;
        if !path.has_account() {
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
        Some(level)
    });
    let mode = v
        .one_of(
            format!("{key}.mode"),
            f.mode.as_deref().unwrap_or("enforce"),
            &Mode::ALL,
            Mode::as_str,
        )
        .unwrap_or(Mode::Enforce);
    let rate_limit = f.rate_limit.map(|r| {
        let rate_key = v
            .one_of(
                format!("{key}.rate_limit.key"),
                &r.key,
                &RateKey::ALL,
                RateKey::as_str,
            )
            .unwrap_or(RateKey::Ip);
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
    let require_mfa = f.require_mfa.unwrap_or(false);
    if require_mfa && auth == AuthMode::None {
        v.problem(
            format!("{key}.require_mfa"),
            "needs an identity, but the route has auth = \"none\"",
        );
    }
    let max_auth_age = f.max_auth_age.as_deref().map(|raw| {
        let age_key = format!("{key}.max_auth_age");
        if auth == AuthMode::None {
            v.problem(
                age_key.clone(),
                "needs an identity, but the route has auth = \"none\"",
            );
        }
        v.duration(&age_key, Some(raw), std::time::Duration::from_secs(900))
    });
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
        require_mfa,
        max_auth_age,
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

pub(super) fn shadow_warnings(v: &mut Validator, routes: &[(String, RouteConfig)]) {
    for (j, (key, later)) in routes.iter().enumerate() {
        let shadowing = routes[..j]
            .iter()
            .map(|(_, earlier)| earlier)
            .find(|earlier| covers(earlier, later));
        if let Some(earlier) = shadowing {
            v.warn(
                key.as_str(),
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

/// Bearer-token routes (`auth = "bearer"` or `"any"`) when no `[[issuers]]` is configured.
pub(super) fn need_issuers(v: &mut Validator, routes: &[(String, RouteConfig)]) {
    for (key, r) in routes {
        if matches!(r.auth, AuthMode::Bearer | AuthMode::Any) {
            v.problem(
                format!("{key}.auth"),
                format!(
                    "auth = \"{}\" needs at least one [[issuers]]",
                    r.auth.as_str()
                ),
            );
        }
    }
}
