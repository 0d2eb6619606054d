//! The pure part of `partnergate explain`: the [`Explanation`] of one request, built
//! from the configuration, the identity the directory returned and the time. No I/O; the
//! JSON output is this struct serialised, and the text output is rendered from it, so
//! both always say the same.
//!
//! The verdict comes from [`admission::admit`], the function the proxy runs on every
//! request, with the identity assumed instead of authenticated and rate limits that only
//! take note of which limits apply. The route trace and the rule lines only explain.

use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderMap;

use crate::admission::{
    self, Admission, AuthFailure, Caller, Connection, Identify, Limit, LimitScope, Limits, Reason,
    Refused, Rules, Via,
};
use crate::config::{AuthMode, Config, Mode, RateSpec, RouteConfig};
use crate::directory::{CachedIdentity, Timestamp};
use crate::metrics::Metrics;
use crate::policy::decide::{self as policy, Request, Rule};
use crate::policy::{AuthStrength, DenyReason, Verdict};
use crate::ratelimit::{RateLimits, Verdict as LimitVerdict};

use super::lines::{
    identity_view, mark_decisive, rate_view, rfc3339, route_line, route_view, rule_line,
};
use super::target::Target;
use super::view::{Explanation, RequestView, Who};

/// The client address `explain` assumes (documentation range): any address counts
/// against the per-IP limits the same way.
const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

/// An identity taken as authenticated: what `--user` named in the directory.
struct Assumed<'a> {
    who: &'a Who,
    now: Timestamp,
    strength: AuthStrength,
}

impl Identify for Assumed<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }

    async fn identify(&self, _headers: &HeaderMap, mode: AuthMode) -> Result<Caller, AuthFailure> {
        match self.who {
            Who::Anonymous => Err(AuthFailure::NoCredentials),
            // A session when the route takes one (as a browser would have), else a token.
            Who::Unknown(_) => Err(AuthFailure::UnknownUser {
                bearer: mode == AuthMode::Bearer,
            }),
            Who::Known(identity) => Ok(Caller {
                via: Via::Assumed,
                entry: Arc::new(CachedIdentity::new((**identity).clone(), 0)),
                strength: self.strength,
            }),
        }
    }
}

/// Limits that never refuse and note which ones the request is counted against.
#[derive(Default)]
struct Noted(Mutex<Vec<(LimitScope, RateSpec)>>);

impl Limits for Noted {
    async fn check(&self, limit: Limit<'_>) -> LimitVerdict {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((limit.scope, limit.limiter.spec()));
        LimitVerdict::Allow
    }
}

/// What admission said about the request, and the limits it was counted against.
fn admit(
    rules: &Rules,
    target: &Target,
    who: &Who,
    now: Timestamp,
    strength: AuthStrength,
    browser: bool,
) -> (Result<Admission, Refused>, Vec<(LimitScope, RateSpec)>) {
    let head = target.head(browser);
    let conn = Connection {
        addr: Some(CLIENT),
        ..Connection::default()
    };
    let noted = Noted::default();
    let assumed = Assumed { who, now, strength };
    // Nothing awaited here ever waits: the identity is known and the limits only note.
    let outcome =
        futures::executor::block_on(admission::admit(&head, &conn, rules, &assumed, &noted));
    let limits = noted.0.into_inner().unwrap_or_else(PoisonError::into_inner);
    (outcome, limits)
}

/// Explain `target` from `who` at `now` under `config`, the user taken as signed in just
/// now with a password only.
#[cfg(test)]
pub fn explain(config: &Arc<Config>, target: &Target, who: &Who, now: Timestamp) -> Explanation {
    let strength = AuthStrength {
        amr: crate::directory::Amr::PWD,
        auth_time: Some(now),
    };
    explain_with(config, target, who, now, strength)
}

/// [`explain`] with the sign-in assumed to have been as `strength` says (`--mfa`,
/// `--auth-age`).
pub fn explain_with(
    config: &Arc<Config>,
    target: &Target,
    who: &Who,
    now: Timestamp,
    strength: AuthStrength,
) -> Explanation {
    let assumed_strength = strength;
    let limits = RateLimits::build(config, None, None);
    let rules = Rules::new(Arc::clone(config), limits, &Metrics::new());
    let (outcome, noted) = admit(&rules, target, who, now, strength, false);
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
        rate_limits: noted
            .iter()
            .map(|(scope, spec)| rate_view(config, *scope, *spec, who))
            .collect(),
        notes: Vec::new(),
    };
    if let Who::Unknown(user) = who {
        e.notes.push(format!(
            "no user {user:?} in the directory: the gateway would accept no session or token for it, so the request counts as one without credentials"
        ));
    }
    let (route, refused) = match &outcome {
        Ok(Admission::Reserved(_)) => {
            e.reserved = true;
            e.notes.push(RESERVED_NOTE.into());
            return e;
        }
        Ok(Admission::Forward(a)) => (Some(&a.route.route), None),
        Err(refused) => (refused.route.as_ref(), Some(refused)),
    };
    e.routes = rules
        .table()
        .trace(&target.host, &target.path, &target.method)
        .iter()
        .map(|t| route_line(t, &target.method))
        .collect();
    let Some(route) = route else {
        no_route(&mut e, target, refused);
        return e;
    };
    let account = match &outcome {
        Ok(Admission::Forward(a)) => a.route.account.clone(),
        _ => route
            .config
            .path
            .matches(&target.path)
            .and_then(|c| c.account.map(str::to_string)),
    };
    let method_refused = refused.is_some_and(|r| r.denial() == Some(DenyReason::Method));
    let config_route = &route.config;
    e.route = Some(route_view(
        config_route,
        route.position,
        !method_refused,
        account.as_deref(),
    ));
    e.identity_used = !method_refused && config_route.auth != AuthMode::None;
    // The proxy authenticates (and so resolves an identity) only on routes that need one.
    let identity = who
        .identity()
        .filter(|_| config_route.auth != AuthMode::None);
    let req = Request {
        method: &target.method,
        account: account.as_deref(),
        now,
        strength: assumed_strength,
    };
    e.rules = Rule::ORDER
        .iter()
        .map(|&rule| {
            let outcome = policy::check(rule, config_route, &req, identity);
            rule_line(rule, outcome, config_route, &req, identity, who)
        })
        .collect();
    if method_refused {
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
    if config_route.auth == AuthMode::None && who.identity().is_some() {
        e.notes.push(
            "auth = \"none\": the gateway does not authenticate on this route, so it resolves no identity and sends no identity headers; the rules see none".into(),
        );
    }
    let first_failure = e
        .rules
        .iter()
        .position(|r| r.outcome == "fail")
        .map(|i| Rule::ORDER[i]);
    if let Some(rule) = first_failure {
        mark_decisive(&mut e.rules, rule);
    }
    e.decided_by = first_failure.map(Rule::as_str);
    match &outcome {
        Ok(Admission::Forward(a)) => forwarded(&mut e, config_route, a.verdict),
        Ok(Admission::Reserved(_)) => {}
        Err(refused) => refused_by_policy(
            &mut e,
            config_route,
            refused,
            || {
                let (browser, _) = admit(&rules, target, who, now, assumed_strength, true);
                browser.err().map(|r| r.rejection.status)
            },
            &target.method,
        ),
    }
    if let (Some(limit), false) = (config_route.rate_limit, e.upstream.is_some()) {
        e.notes.push(format!(
            "the route's rate limit (key = {}) is not reached: the request is refused before rate limiting",
            limit.key.as_str()
        ));
    }
    e
}

const RESERVED_NOTE: &str = "reserved path: the gateway serves it itself (login, logout, whoami, invitations, registration, admin console and API, JWKS); it is never forwarded and no route or route policy applies: the page does its own checks";

fn no_route(e: &mut Explanation, target: &Target, refused: Option<&Refused>) {
    e.decision = "deny";
    e.reason = Some(DenyReason::NoRoute.as_str());
    e.decided_by = Some("routes");
    e.status = refused.map(|r| r.rejection.status).or(Some(404));
    e.notes.push(format!(
        "no route matches host {:?} and path {:?}",
        target.host, target.path
    ));
}

/// Let through: forwarded to the upstream, allowed or in shadow mode.
fn forwarded(e: &mut Explanation, route: &RouteConfig, verdict: Verdict) {
    e.status = Some(200);
    e.upstream = Some(route.upstream.clone());
    if let Verdict::ShadowDeny(reason) = verdict {
        e.decision = "shadow_deny";
        e.reason = Some(reason.as_str());
        e.notes.push(format!(
            "mode = \"shadow\": {} would deny this request (reason {}), but the gateway lets it through and logs and counts it as shadow_deny",
            e.decided_by.unwrap_or("a rule"),
            reason.as_str()
        ));
    }
}

/// Refused after routing: unauthenticated, or denied by a rule.
fn refused_by_policy(
    e: &mut Explanation,
    route: &RouteConfig,
    refused: &Refused,
    browser_status: impl FnOnce() -> Option<u16>,
    method: &http::Method,
) {
    let rejection = &refused.rejection;
    e.reason = Some(rejection.reason.as_str());
    e.status = Some(rejection.status);
    match rejection.reason {
        Reason::Policy(reason) if !reason.is_step_up() => {
            e.decision = "deny";
            if route.mode == Mode::Shadow {
                e.notes.push(format!(
                    "mode = \"shadow\" never lets {} through: shadow mode tries out route rules, it does not undo a suspension",
                    reason.as_str()
                ));
            }
        }
        _ => {
            e.decision = rejection.decision.as_str();
            // The same request from a browser navigating (Accept: text/html) may be sent to
            // the login page instead.
            if *method == http::Method::GET {
                e.browser_status = browser_status().filter(|s| *s != rejection.status);
            }
        }
    }
}
