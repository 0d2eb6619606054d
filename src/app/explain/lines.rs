//! The lines of an explanation: why each route matched or not, what each rule of the
//! route says about the request, the identity and the rate limits, in words.

use http::Method;

use crate::admission::LimitScope;
use crate::config::{AuthMode, Config, RateKey, RateSpec, RouteConfig};
use crate::directory::{Identity, Timestamp};
use crate::policy::decide::{Failure, Outcome, Request, Rule};
use crate::policy::route::RouteTrace;

use super::view::{
    GrantView, IdentityView, OrgView, RateLimitView, RouteLine, RouteView, RuleLine, Who,
};

pub(super) fn mark_decisive(rules: &mut [RuleLine], rule: Rule) {
    if let Some(line) = rules.iter_mut().find(|r| r.rule == rule.as_str()) {
        line.decisive = true;
    }
}

pub(super) fn route_line(t: &RouteTrace<'_>, method: &Method) -> RouteLine {
    let route = t.route;
    let account = t.path.and_then(|c| c.account);
    let why = if t.matched() {
        let mut parts = vec![match &route.host {
            Some(h) => format!("host {h}"),
            None => "any host".to_string(),
        }];
        parts.push(format!("path prefix {:?}", route.path.as_str()));
        if let Some(account) = account {
            parts.push(format!("account {account:?}"));
        }
        parts.push(match &route.methods {
            Some(_) => format!("{method} in methods {}", methods_list(route)),
            None => "any method".into(),
        });
        format!("matched: {}", parts.join(", "))
    } else {
        let mut why = Vec::new();
        if let (false, Some(h)) = (t.host, &route.host) {
            why.push(format!("host is not {h}"));
        }
        if t.path.is_none() {
            why.push(format!(
                "path does not match prefix {:?}",
                route.path.as_str()
            ));
        }
        if !t.method {
            why.push(format!("{method} not in methods {}", methods_list(route)));
        }
        format!("no match: {}", why.join("; "))
    };
    RouteLine {
        index: t.index,
        name: route.name.clone(),
        matched: t.matched(),
        host_matches: t.host,
        path_matches: t.path.is_some(),
        method_allowed: t.method,
        why,
    }
}

fn methods_list(route: &RouteConfig) -> String {
    match &route.methods {
        Some(ms) => format!(
            "[{}]",
            ms.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
        ),
        None => "(any)".into(),
    }
}

pub(super) fn route_view(
    route: &RouteConfig,
    index: usize,
    matched: bool,
    account: Option<&str>,
) -> RouteView {
    RouteView {
        index,
        name: route.name.clone(),
        matched,
        host: route.host.as_ref().map(|h| h.to_string()),
        path: route.path.as_str().to_string(),
        methods: route
            .methods
            .as_ref()
            .map(|ms| ms.iter().map(|m| m.as_str().to_string()).collect()),
        upstream: route.upstream.clone(),
        auth: route.auth.as_str(),
        mode: route.mode.as_str(),
        account: account.map(str::to_string),
        websocket: route.websocket,
    }
}

pub(super) fn identity_view(config: &Config, id: &Identity, now: Timestamp) -> IdentityView {
    IdentityView {
        user_id: id.user_id.clone(),
        email: id.email.clone(),
        status: id.status.as_str(),
        org: OrgView {
            id: id.org.id.clone(),
            name: id.org.name.clone(),
            org_type: id.org.org_type.clone(),
            status: id.org.status.as_str(),
        },
        owner_admin: id.org.org_type == config.server.owner_org_type,
        roles: id.roles.clone(),
        permissions: id.permissions.clone(),
        grants: id
            .grants
            .iter()
            .map(|g| GrantView {
                account: g.account.clone(),
                level: g.level.as_str(),
                expires_at: g.expires_at.map(rfc3339),
                expired: g.expires_at.is_some_and(|t| t <= now),
            })
            .collect(),
    }
}

pub(super) fn rule_line(
    rule: Rule,
    outcome: Outcome,
    route: &RouteConfig,
    req: &Request<'_>,
    identity: Option<&Identity>,
    who: &Who,
) -> RuleLine {
    let (word, reason) = match outcome {
        Outcome::NotApplicable => ("n/a", None),
        Outcome::Pass => ("pass", None),
        Outcome::Fail(Failure::Deny(r)) => ("fail", Some(r.as_str())),
        Outcome::Fail(Failure::Unauthenticated) => ("fail", Some("unauthenticated")),
    };
    let verdict = match reason {
        Some(r) => format!("fail ({r})"),
        None => word.to_string(),
    };
    let detail = match rule {
        Rule::Auth => auth_detail(route, identity, who, &verdict),
        Rule::UserStatus => match identity {
            None => "no identity".into(),
            Some(id) => format!("user {} is {} → {verdict}", id.email, id.status),
        },
        Rule::OrgStatus => match identity {
            None => "no identity".into(),
            Some(id) => format!("org {} is {} → {verdict}", id.org.id, id.org.status),
        },
        Rule::Method => match &route.methods {
            None => "not set: every method".into(),
            Some(_) => format!(
                "methods {}: {} → {verdict}",
                methods_list(route),
                req.method
            ),
        },
        Rule::OrgType => list_detail(
            rule,
            &route.allow_org_types,
            identity.map(|id| format!("org type {:?}", id.org.org_type)),
            &verdict,
        ),
        Rule::Roles => list_detail(
            rule,
            &route.allow_roles,
            identity.map(|id| format!("user has {}", quoted(&id.roles))),
            &verdict,
        ),
        Rule::Permissions => list_detail(
            rule,
            &route.allow_permissions,
            identity.map(|id| format!("user has {}", quoted(&id.permissions))),
            &verdict,
        ),
        Rule::Account => account_detail(route, req, identity, &verdict),
        Rule::Mfa if !route.require_mfa => "not set: any sign-in".into(),
        Rule::Mfa => {
            let how = if req.strength.amr.is_multi_factor() {
                "with a second factor"
            } else {
                "with a password only"
            };
            format!(
                "require_mfa = true: signed in {how} (assumed; --mfa to assume one) → {verdict}"
            )
        }
        Rule::AuthAge => match (route.max_auth_age, req.strength.auth_time) {
            (None, _) => "not set: any sign-in age".into(),
            (Some(age), t) => format!(
                "max_auth_age = {}: signed in {}s ago (assumed; --auth-age to change) → {verdict}",
                humantime::format_duration(age),
                t.map_or(0, |t| req.now - t)
            ),
        },
    };
    RuleLine {
        rule: rule.as_str(),
        outcome: word,
        reason,
        decisive: false,
        detail,
    }
}

fn auth_detail(
    route: &RouteConfig,
    identity: Option<&Identity>,
    who: &Who,
    verdict: &str,
) -> String {
    let auth = route.auth;
    if auth == AuthMode::None {
        return "auth = none: no credentials needed".into();
    }
    let credential = match auth {
        AuthMode::Session => "a session",
        AuthMode::Bearer => "a bearer token",
        _ => "a session or a bearer token",
    };
    match (identity, who) {
        (Some(id), _) => format!(
            "auth = {}: assuming the request carries {credential} of {} → {verdict}",
            auth.as_str(),
            id.email
        ),
        (None, Who::Unknown(user)) => format!(
            "auth = {}: needs {credential}; no user {user:?} in the directory → {verdict}",
            auth.as_str()
        ),
        (None, _) => format!(
            "auth = {}: needs {credential}; the request carries no credentials → {verdict}",
            auth.as_str()
        ),
    }
}

fn list_detail(rule: Rule, list: &[String], has: Option<String>, verdict: &str) -> String {
    if list.is_empty() {
        return "not set".into();
    }
    let has = has.unwrap_or_else(|| "no identity".into());
    format!("{} {}: {has} → {verdict}", rule.as_str(), quoted(list))
}

fn account_detail(
    route: &RouteConfig,
    req: &Request<'_>,
    identity: Option<&Identity>,
    verdict: &str,
) -> String {
    let Some(required) = route.account_permission else {
        return "not set".into();
    };
    let needs = match req.account {
        Some(account) => format!("needs {} on {account}", required.as_str()),
        None => format!("needs {} on the {{account}} of the path", required.as_str()),
    };
    let has = match (identity, req.account) {
        (None, _) => "no identity".to_string(),
        (Some(_), None) => "no account in the path".to_string(),
        (Some(id), Some(account)) => match id.grant(account) {
            None => "user has no grant on it".into(),
            Some(g) => match g.expires_at {
                Some(t) if t <= req.now => format!(
                    "user's grant ({}) expired at {}",
                    g.level.as_str(),
                    rfc3339(t)
                ),
                Some(t) => format!("user has {} (until {})", g.level.as_str(), rfc3339(t)),
                None => format!("user has {}", g.level.as_str()),
            },
        },
    };
    format!("{needs}: {has} → {verdict}")
}

pub(super) fn rate_view(
    config: &Config,
    scope: LimitScope,
    spec: RateSpec,
    who: &Who,
) -> RateLimitView {
    let (scope, key) = match scope {
        LimitScope::Global => ("global", RateKey::Ip),
        LimitScope::Login => ("login", RateKey::Ip),
        LimitScope::Route(key) => ("route", key),
    };
    let identity = who.identity();
    let bucket = match key {
        RateKey::Ip => "per client IP (IPv6: per /64)".to_string(),
        RateKey::User => match identity {
            Some(id) => format!("per user: {}", id.email),
            None => "per user".into(),
        },
        RateKey::Org => match identity {
            Some(id) => format!("per org: {}", id.org.id),
            None => "per org".into(),
        },
        RateKey::Route => "one bucket for the whole route".into(),
    };
    RateLimitView {
        scope,
        key: key.as_str(),
        bucket,
        per_second: spec.per_second,
        burst: spec.burst,
        shared: config.redis.is_some(),
        on_redis_error: spec.on_redis_error.as_str(),
    }
}

/// `["a", "b"]`.
pub fn quoted(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", inner.join(", "))
}

/// RFC 3339 (UTC, seconds) of Unix seconds.
pub fn rfc3339(t: Timestamp) -> String {
    crate::clock::rfc3339(t).unwrap_or_else(|| t.to_string())
}
