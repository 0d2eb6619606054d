//! Admission: the request path's decision as a chain of typed stages, each a plain
//! function over the request head and one configuration's [`Rules`]:
//!
//! ```text
//! head ─clean→ CleanRequest ─(global limit)→ ─route→ RouteMatch
//!      ─authenticate→ Principal ─resolve→ Caller ─policy::enforce→ Verdict
//!      ─limit→ Admitted                       (any stage: Refused with a Rejection)
//! ```
//!
//! [`admit`] runs them in order. The proxy calls it with the live [`Authenticator`] and
//! rate limits; `partnergate explain` calls the same function with an assumed identity
//! and limits that only take note, so what `explain` prints is what the proxy does.
//! Nothing here knows about pingora or sockets: the stages are unit-tested as plain
//! functions.

mod authn;
mod clean;
mod limit;
mod rejection;
mod rules;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use http::request::Parts;

use crate::config::AuthMode;
use crate::policy::{self, DenyReason, Verdict};

pub use authn::{
    credentials, AuthFailure, Authenticator, Caller, Credentials, Identify, Principal, Via,
};
pub use clean::{
    clean, client_ip, forwarded_for, is_browser_navigation, request_host, CleanRequest, Connection,
    Peer,
};
pub use limit::{route_key, Limit, Limits};
pub use rejection::{
    login_location, Decision, LimitScope, Reason, Rejection, SessionFailure, TokenProblem,
    CHALLENGE, CHALLENGE_INVALID_TOKEN,
};
pub use rules::{
    count_denial, count_rate_limited, route_metrics, Route, RouteMatch, Rules, NO_ROUTE,
    RESERVED_ROUTE,
};

/// Paths the gateway serves itself.
pub const RESERVED_PREFIX: &str = "/.partnergate";

/// What admission decided for a request that passed.
#[derive(Debug)]
pub enum Admission {
    /// A `/.partnergate/…` path: the gateway's own pages answer it (they do their own
    /// checks); no route applies.
    Reserved(CleanRequest),
    /// Let through to the route's upstream.
    Forward(Admitted),
}

/// A request let through to its route's upstream.
#[derive(Debug)]
pub struct Admitted {
    pub request: CleanRequest,
    pub route: RouteMatch,
    /// The authenticated user; `None` on `auth = "none"` routes.
    pub caller: Option<Caller>,
    /// [`Verdict::Allow`], or [`Verdict::ShadowDeny`] on a shadow-mode route.
    pub verdict: Verdict,
}

impl Admitted {
    pub fn decision(&self) -> Decision {
        match self.verdict {
            Verdict::ShadowDeny(_) => Decision::ShadowDeny,
            _ => Decision::Allow,
        }
    }
}

/// A request the gateway answers itself, with what was known when it was refused.
#[derive(Debug)]
pub struct Refused {
    pub rejection: Rejection,
    pub peer: Peer,
    /// `None` when the head itself was refused.
    pub request: Option<CleanRequest>,
    /// The route the refusal is attributed to (also a `method` denial's route).
    pub route: Option<Arc<Route>>,
    pub caller: Option<Caller>,
}

/// When each stage of one request ended (for its trace): `(stage, start, end)`.
#[derive(Debug, Clone)]
pub struct Stages {
    last: std::time::Instant,
    pub spans: Vec<(&'static str, std::time::Instant, std::time::Instant)>,
}

impl Stages {
    pub fn new(start: std::time::Instant) -> Self {
        Stages {
            last: start,
            spans: Vec::with_capacity(5),
        }
    }

    fn done(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        self.spans.push((stage, self.last, now));
        self.last = now;
    }
}

/// Mark the end of a stage when the request is traced.
fn stage(stages: &mut Option<&mut Stages>, name: &'static str) {
    if let Some(s) = stages.as_deref_mut() {
        s.done(name);
    }
}

/// Run every stage for one request. `conn` describes its connection, `identify` turns
/// credentials into a caller, `limits` counts the request against a limit.
pub async fn admit<I: Identify, L: Limits>(
    head: &Parts,
    conn: &Connection<'_>,
    rules: &Rules,
    identify: &I,
    limits: &L,
) -> Result<Admission, Refused> {
    admit_traced(head, conn, rules, identify, limits, None).await
}

/// [`admit`], noting when each stage ends in `stages` (a traced request).
pub async fn admit_traced<I: Identify, L: Limits>(
    head: &Parts,
    conn: &Connection<'_>,
    rules: &Rules,
    identify: &I,
    limits: &L,
    mut stages: Option<&mut Stages>,
) -> Result<Admission, Refused> {
    let server = &rules.config.server;
    let peer = Peer::of(conn, head, server);
    let mut refused = Refused {
        rejection: Rejection::malformed(Reason::Internal),
        peer,
        request: None,
        route: None,
        caller: None,
    };
    let request = match clean(head, conn, peer, server.max_request_header_bytes) {
        Ok(request) => request,
        Err(rejection) => return Err(refused.with(rejection)),
    };
    stage(&mut stages, "clean");
    if let Some(limit) = limit::global(rules, &request) {
        if let Err(rejection) = limit::check(limits, limit).await {
            refused.request = Some(request);
            return Err(refused.with(rejection));
        }
    }
    if is_reserved(&request.path) {
        if let Some(limit) = limit::login(rules, &request, &head.method) {
            if let Err(rejection) = limit::check(limits, limit).await {
                refused.request = Some(request);
                return Err(refused.with(rejection));
            }
        }
        return Ok(Admission::Reserved(request));
    }
    let found = match rules.route(&request, &head.method) {
        Ok(found) => found,
        Err((route, rejection)) => {
            refused.request = Some(request);
            refused.route = route;
            return Err(refused.with(rejection));
        }
    };
    stage(&mut stages, "route");
    refused.route = Some(found.route.clone());
    let route = &found.route.config;
    let caller = if route.auth == AuthMode::None {
        None
    } else {
        match identify.identify(&head.headers, route.auth).await {
            Ok(caller) => Some(caller),
            Err(failure) => {
                let browser = is_browser_navigation(head);
                let rejection = failure.rejection(browser, &request.path, request.query.as_deref());
                refused.request = Some(request);
                return Err(refused.with(rejection));
            }
        }
    };
    stage(&mut stages, "authenticate");
    let facts = policy::Request {
        method: &head.method,
        account: found.account.as_deref(),
        now: identify.now(),
        strength: caller.as_ref().map(|c| c.strength).unwrap_or_default(),
    };
    let verdict = policy::enforce(route, &facts, caller.as_ref().map(Caller::identity));
    let rejection = match verdict {
        Verdict::Allow | Verdict::ShadowDeny(_) => None,
        Verdict::Deny(reason) if reason.is_step_up() => {
            // A bearer client chose its token: a login page would not help it.
            let browser =
                is_browser_navigation(head) && !caller.as_ref().is_some_and(Caller::is_bearer);
            let enrol = caller.as_ref().is_some_and(|c| {
                c.identity().second_factors == 0 && reason == DenyReason::MfaRequired
            });
            Some(Rejection::step_up(
                reason,
                enrol,
                browser,
                &request.path,
                request.query.as_deref(),
            ))
        }
        Verdict::Deny(reason) => Some(Rejection::denied(reason)),
        Verdict::Unauthenticated => Some(AuthFailure::NoCredentials.rejection(
            is_browser_navigation(head),
            &request.path,
            request.query.as_deref(),
        )),
    };
    stage(&mut stages, "policy");
    if let Some(rejection) = rejection {
        refused.request = Some(request);
        refused.caller = caller;
        return Err(refused.with(rejection));
    }
    if let Some(limit) = limit::route(&found.route, &request, caller.as_ref()) {
        if let Err(rejection) = limit::check(limits, limit).await {
            refused.request = Some(request);
            refused.caller = caller;
            return Err(refused.with(rejection));
        }
    }
    stage(&mut stages, "limit");
    Ok(Admission::Forward(Admitted {
        request,
        route: found,
        caller,
        verdict,
    }))
}

impl Refused {
    fn with(mut self, rejection: Rejection) -> Self {
        self.rejection = rejection;
        self
    }

    /// The policy deny reason, if the route policy (or route lookup) refused it.
    pub fn denial(&self) -> Option<DenyReason> {
        match self.rejection.reason {
            Reason::Policy(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Whether `path` (normalised) is one of the gateway's own.
pub fn is_reserved(path: &str) -> bool {
    path == RESERVED_PREFIX || path.starts_with("/.partnergate/")
}
