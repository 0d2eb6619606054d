//! The pure part of `partnergate explain`: request target parsing and the
//! [`Explanation`] of one request, built from the configuration, the identity the
//! directory returned and the time. No I/O; the JSON output is this struct serialised,
//! and the text output is rendered from it, so both always say the same.
//!
//! Every verdict comes from the functions the proxy calls: [`RouteTable::lookup`] for the
//! route, [`policy::check`] for each rule, [`policy::decide`] for the decision, and the
//! proxy's shadow-mode rule on top. The route trace and the rule details only explain.

use std::sync::Arc;

use http::Method;
use serde::Serialize;

use crate::config::{AuthMode, Config, Mode, PublicUrl, RateKey, RateSpec, RouteConfig};
use crate::directory::{Identity, Timestamp};
use crate::normalize;
use crate::policy::decide::{self as policy, Failure, Outcome, Request, Rule};
use crate::policy::route::RouteTrace;
use crate::policy::{Decision, DenyReason, RouteLookup, RouteTable};

/// Paths the gateway serves itself (CONTRACT §3 "Reserved paths").
const RESERVED: &str = "/.partnergate";
const LOGIN_PATH: &str = "/.partnergate/login";

/// The request `explain` looks at: what the proxy would see after step 1 (normalise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: Method,
    /// `--url` as given.
    pub url: String,
    /// Lower-case, without port.
    pub host: String,
    /// Normalised.
    pub path: String,
    pub query: Option<String>,
}

/// `--method`: any HTTP method token, case-insensitive (`get` = `GET`).
pub fn parse_method(raw: &str) -> Result<Method, String> {
    let upper = raw.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err("must not be empty".into());
    }
    Method::from_bytes(upper.as_bytes()).map_err(|_| format!("{raw:?} is not an HTTP method"))
}

/// `--url`: an absolute `http(s)://host[:port]/path?query` URL, or a path (`/path?query`)
/// on `server.public_url`'s host. The host loses its port and the path is normalised as
/// the proxy does; a target the proxy would answer with 400 is an error here.
pub fn parse_target(method: Method, url: &str, public_url: &PublicUrl) -> Result<Target, String> {
    let trimmed = url.trim();
    let without_fragment = trimmed.split('#').next().unwrap_or_default();
    let (authority, path_and_query) = if without_fragment.starts_with('/') {
        // Checked like an origin-form request target.
        let uri: http::Uri = without_fragment
            .parse()
            .map_err(|e| format!("not a valid request path ({e}); the gateway would answer 400"))?;
        let pq = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        (public_url.authority.clone(), pq)
    } else if without_fragment.starts_with("http://") || without_fragment.starts_with("https://") {
        let uri: http::Uri = without_fragment
            .parse()
            .map_err(|e| format!("not a valid URL ({e})"))?;
        let authority = uri.authority().ok_or("the URL has no host")?.as_str();
        if authority.contains('@') {
            return Err("user information (user@host) in the URL is not supported".into());
        }
        let pq = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        (authority.to_string(), pq)
    } else {
        return Err(
            "must be an absolute http:// or https:// URL, or a path starting with '/'".into(),
        );
    };
    let host = normalize::normalize_host(&authority)
        .map_err(|m| format!("host {authority:?}: {m}; the gateway would answer 400"))?
        .into_owned();
    let (path, query) = normalize::normalize_target(&path_and_query)
        .map_err(|m| format!("{m}; the gateway would answer 400 (reason {})", m.reason()))?;
    Ok(Target {
        method,
        url: trimmed.to_string(),
        host,
        path: path.into_owned(),
        query: query.map(str::to_string),
    })
}

/// Who the request is from, as the directory answered.
#[derive(Debug, Clone)]
pub enum Who {
    /// No `--user`: a request without credentials.
    Anonymous,
    /// `--user` names nobody in the directory.
    Unknown(String),
    Known(Box<Identity>),
}

impl Who {
    fn identity(&self) -> Option<&Identity> {
        match self {
            Who::Known(identity) => Some(identity),
            _ => None,
        }
    }
}

/// Everything `explain` reports; serialised as is for `--json` (field names are part of
/// the command's interface: add fields, never rename them).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub request: RequestView,
    /// A reserved `/.partnergate/…` path: the gateway serves it itself, no route applies.
    pub reserved: bool,
    /// The routes the lookup looked at, in file order, up to and including the match
    /// (all of them when none matches).
    pub routes: Vec<RouteLine>,
    /// The route the request is attributed to: the match, or the route whose `methods`
    /// refused it; `null` when no route matched.
    pub route: Option<RouteView>,
    /// The user from the directory; `null` for an anonymous request or an unknown user.
    pub identity: Option<IdentityView>,
    /// Whether the gateway resolves and checks an identity for this request (false on
    /// `auth = "none"` routes, reserved paths and when no route matched).
    pub identity_used: bool,
    /// Every rule of the route in the order the gateway checks them, all evaluated.
    pub rules: Vec<RuleLine>,
    /// `allow`, `deny`, `shadow_deny` or `unauthenticated` (the access log's decision).
    pub decision: &'static str,
    /// The deny reason (also for `shadow_deny`), as in the access log and metrics.
    pub reason: Option<&'static str>,
    /// What decided: a rule name (`allow_roles`, `methods`, `auth`, …) or `routes` (no
    /// route matched); `null` when allowed.
    pub decided_by: Option<&'static str>,
    /// The gateway's answer: 200 = forwarded to the upstream (whose status the client
    /// gets), 401, 403 or 404; `null` on reserved paths (the gateway's own page decides).
    pub status: Option<u16>,
    /// For `unauthenticated` GET requests: a browser navigation (Accept: text/html) gets
    /// 302 to the login page instead of 401.
    pub browser_status: Option<u16>,
    /// The upstream the request is forwarded to (allow and shadow_deny).
    pub upstream: Option<String>,
    /// The rate limits the request is counted against.
    pub rate_limits: Vec<RateLimitView>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub method: String,
    pub url: String,
    pub host: String,
    pub path: String,
    pub query: Option<String>,
    /// `--user` as given (lower-cased); `null` for an anonymous request.
    pub user: Option<String>,
    /// The time grant expiry is judged at (RFC 3339, UTC).
    pub now: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteLine {
    pub index: usize,
    pub name: String,
    pub matched: bool,
    pub host_matches: bool,
    pub path_matches: bool,
    pub method_allowed: bool,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    pub index: usize,
    pub name: String,
    /// False when host and path matched but `methods` refused the method.
    pub matched: bool,
    pub host: Option<String>,
    pub path: String,
    /// `null`: every method.
    pub methods: Option<Vec<String>>,
    pub upstream: String,
    pub auth: &'static str,
    pub mode: &'static str,
    /// What `{account}` captured.
    pub account: Option<String>,
    pub websocket: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdentityView {
    pub user_id: String,
    pub email: String,
    pub status: &'static str,
    pub org: OrgView,
    /// The org's type is `server.owner_org_type`. Owner admins get no bypass.
    pub owner_admin: bool,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub grants: Vec<GrantView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub org_type: String,
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    pub account: String,
    pub level: &'static str,
    pub expires_at: Option<String>,
    pub expired: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleLine {
    /// The configuration key (or directory fact) the rule checks.
    pub rule: &'static str,
    /// `pass`, `fail` or `n/a`.
    pub outcome: &'static str,
    /// For `fail`: the deny reason, or `unauthenticated`.
    pub reason: Option<&'static str>,
    /// The rule that decided the request.
    pub decisive: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateLimitView {
    /// `global` (server.rate_limit_per_ip), `login` (login.rate_limit_per_ip) or `route`.
    pub scope: &'static str,
    /// What the buckets are keyed by: `ip`, `user`, `org` or `route` (one bucket).
    pub key: &'static str,
    /// The bucket this request counts against, in words.
    pub bucket: String,
    pub per_second: f64,
    pub burst: u32,
    /// Counted in Redis, shared by every instance (`[redis]` is configured).
    pub shared: bool,
    /// When Redis cannot answer: `local` (this instance's buckets) or `deny` (503).
    pub on_redis_error: &'static str,
}

/// Explain `target` from `who` at `now` under `config`.
pub fn explain(config: &Arc<Config>, target: &Target, who: &Who, now: Timestamp) -> Explanation {
    let mut e = Explanation {
        request: RequestView {
            method: target.method.to_string(),
            url: target.url.clone(),
            host: target.host.clone(),
            path: target.path.clone(),
            query: target.query.clone(),
            user: match who {
                Who::Anonymous => None,
                Who::Unknown(user) => Some(user.clone()),
                Who::Known(id) => Some(id.email.clone()),
            },
            now: rfc3339(now),
        },
        reserved: false,
        routes: Vec::new(),
        route: None,
        identity: who.identity().map(|id| identity_view(config, id, now)),
        identity_used: false,
        rules: Vec::new(),
        decision: "allow",
        reason: None,
        decided_by: None,
        status: None,
        browser_status: None,
        upstream: None,
        rate_limits: Vec::new(),
        notes: Vec::new(),
    };
    if let Who::Unknown(user) = who {
        e.notes.push(format!(
            "no user {user:?} in the directory: the gateway would accept no session or token for it, so the request counts as one without credentials"
        ));
    }
    if let Some(limit) = config.server.rate_limit_per_ip {
        e.rate_limits
            .push(rate_view(config, "global", RateKey::Ip, limit, who));
    }
    if target.path == RESERVED || target.path.starts_with("/.partnergate/") {
        reserved(config, target, who, &mut e);
        return e;
    }
    let table = RouteTable::new(Arc::clone(config));
    let traces = table.trace(&target.host, &target.path, &target.method);
    e.routes = traces
        .iter()
        .map(|t| route_line(t, &target.method))
        .collect();
    let found = match table.lookup(&target.host, &target.path, &target.method) {
        RouteLookup::Matched(m) => Some((m, true)),
        RouteLookup::MethodNotAllowed(m) => Some((m, false)),
        RouteLookup::NoRoute => None,
    };
    let Some((found, matched)) = found else {
        e.decision = "deny";
        e.reason = Some(DenyReason::NoRoute.as_str());
        e.decided_by = Some("routes");
        e.status = Some(404);
        e.notes.push(format!(
            "no route matches host {:?} and path {:?}",
            target.host, target.path
        ));
        return e;
    };
    let route = found.route;
    e.route = Some(route_view(route, found.index, matched, found.account));
    // The proxy authenticates (and so resolves an identity) only on routes that need one.
    let identity = who.identity().filter(|_| route.auth != AuthMode::None);
    e.identity_used = matched && route.auth != AuthMode::None;
    let req = Request {
        method: &target.method,
        account: found.account,
        now,
    };
    let rule_lines = Rule::ORDER.iter().map(|&rule| {
        let outcome = policy::check(rule, route, &req, identity);
        rule_line(rule, outcome, route, &req, identity, who)
    });
    e.rules = rule_lines.collect();
    if !matched {
        // Route lookup refuses it before authentication; shadow mode does not apply.
        mark_decisive(&mut e.rules, Rule::Method);
        e.decision = "deny";
        e.reason = Some(DenyReason::Method.as_str());
        e.decided_by = Some(Rule::Method.as_str());
        e.status = Some(403);
        e.notes.push(
            "refused at route lookup, before authentication (mode = \"shadow\" does not apply to it); the other rules are shown for information".into(),
        );
        return e;
    }
    if route.auth == AuthMode::None && who.identity().is_some() {
        e.notes.push(
            "auth = \"none\": the gateway does not authenticate on this route, so it resolves no identity and sends no identity headers; the rules see none".into(),
        );
    }
    let decision = policy::decide(route, &req, identity);
    let first_failure = e
        .rules
        .iter()
        .position(|r| r.outcome == "fail")
        .map(|i| Rule::ORDER[i]);
    // `decide` stops at the first failing rule: the one marked here.
    debug_assert_eq!(first_failure.is_none(), decision == Decision::Allow);
    if let Some(rule) = first_failure {
        mark_decisive(&mut e.rules, rule);
    }
    match decision {
        Decision::Allow => forward(&mut e, config, route, who, identity.is_some()),
        Decision::Unauthenticated => {
            e.decision = "unauthenticated";
            e.reason = Some(match who {
                Who::Unknown(_) => "unknown_user",
                _ => "no_credentials",
            });
            e.decided_by = first_failure.map(Rule::as_str);
            e.status = Some(401);
            e.browser_status = (target.method == Method::GET).then_some(302);
        }
        Decision::Deny(reason) => {
            e.reason = Some(reason.as_str());
            e.decided_by = first_failure.map(Rule::as_str);
            if route.mode == Mode::Shadow && reason.shadowable() {
                forward(&mut e, config, route, who, identity.is_some());
                e.decision = "shadow_deny";
                e.notes.push(format!(
                    "mode = \"shadow\": {} would deny this request (reason {}), but the gateway lets it through and logs and counts it as shadow_deny",
                    e.decided_by.unwrap_or("a rule"),
                    reason.as_str()
                ));
            } else {
                e.decision = "deny";
                e.status = Some(403);
                if route.mode == Mode::Shadow {
                    e.notes.push(format!(
                        "mode = \"shadow\" never lets {} through: shadow mode tries out route rules, it does not undo a suspension",
                        reason.as_str()
                    ));
                }
            }
        }
    }
    if let (Some(limit), false) = (route.rate_limit, e.upstream.is_some()) {
        e.notes.push(format!(
            "the route's rate limit (key = {}) is not reached: the request is refused before rate limiting",
            limit.key.as_str()
        ));
    }
    e
}

/// The request passes the policy: forwarded, counted against the route's limit.
fn forward(e: &mut Explanation, config: &Config, route: &RouteConfig, who: &Who, identity: bool) {
    e.status = Some(200);
    e.upstream = Some(route.upstream.clone());
    if let Some(limit) = route.rate_limit {
        let who = if identity { who } else { &Who::Anonymous };
        e.rate_limits
            .push(rate_view(config, "route", limit.key, limit.rate, who));
    }
}

fn reserved(config: &Config, target: &Target, who: &Who, e: &mut Explanation) {
    e.reserved = true;
    e.notes.push(
        "reserved path: the gateway serves it itself (login, logout, whoami, invitations, registration, admin console and API, JWKS); it is never forwarded and no route or route policy applies: the page does its own checks".into(),
    );
    if target.method == Method::POST && target.path == LOGIN_PATH {
        e.rate_limits.push(rate_view(
            config,
            "login",
            RateKey::Ip,
            config.login.rate_limit_per_ip,
            who,
        ));
    }
}

fn mark_decisive(rules: &mut [RuleLine], rule: Rule) {
    if let Some(line) = rules.iter_mut().find(|r| r.rule == rule.as_str()) {
        line.decisive = true;
    }
}

fn route_line(t: &RouteTrace<'_>, method: &Method) -> RouteLine {
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

fn route_view(
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
        mode: match route.mode {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        },
        account: account.map(str::to_string),
        websocket: route.websocket,
    }
}

fn identity_view(config: &Config, id: &Identity, now: Timestamp) -> IdentityView {
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

fn rule_line(
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

fn rate_view(
    config: &Config,
    scope: &'static str,
    key: RateKey,
    spec: RateSpec,
    who: &Who,
) -> RateLimitView {
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
