//! The limit stage: which rate limits a request is counted against (the global per-IP
//! limit before routing, the login limit on the public forms, the route's own after the
//! policy), and their answer as a [`Rejection`].

use std::future::Future;

use http::Method;

use crate::config::RateKey;
use crate::ratelimit::{LimitKey, Limiter, Verdict};

use super::authn::Caller;
use super::clean::CleanRequest;
use super::rejection::{LimitScope, Reason, Rejection};
use super::rules::{Route, Rules, NO_ROUTE, RESERVED_ROUTE};

/// The public forms anyone may post without a session: sign-in (both steps), the
/// registration request, password reset and invitation acceptance. They share `login.rate_limit_per_ip` (password guessing,
/// registration spam, token guessing).
fn public_form(path: &str) -> bool {
    path == "/.partnergate/login"
        || path == "/.partnergate/login/second"
        || path == "/.partnergate/login/passkey"
        || path == "/.partnergate/register"
        || path == "/.partnergate/reset"
        || path.starts_with("/.partnergate/reset/")
        || path.starts_with("/.partnergate/invite/")
}

/// One limit to check for one request.
#[derive(Debug, Clone, Copy)]
pub struct Limit<'a> {
    pub scope: LimitScope,
    pub limiter: &'a Limiter,
    pub key: LimitKey<'a>,
    /// The route label the check is counted under.
    pub route: &'a str,
}

/// Counts requests against limits: the real buckets (local or Redis) on live traffic;
/// in `partnergate explain`, a note of which limits apply.
pub trait Limits: Sync {
    fn check(&self, limit: Limit<'_>) -> impl Future<Output = Verdict> + Send;
}

pub(super) async fn check<L: Limits>(limits: &L, limit: Limit<'_>) -> Result<(), Rejection> {
    match limits.check(limit).await {
        Verdict::Allow => Ok(()),
        verdict @ Verdict::Limited { .. } => Err(Rejection::rate_limited(
            limit.scope,
            verdict.retry_after_secs().unwrap_or(1),
        )),
        Verdict::Unavailable => Err(Rejection::unavailable(Reason::RateLimitUnavailable)),
    }
}

/// `server.rate_limit_per_ip`, for every request with a client address.
pub(super) fn global<'a>(rules: &'a Rules, request: &CleanRequest) -> Option<Limit<'a>> {
    Some(Limit {
        scope: LimitScope::Global,
        limiter: rules.limits.global()?,
        key: LimitKey::Ip(request.peer.client_ip?),
        route: NO_ROUTE,
    })
}

/// `login.rate_limit_per_ip`, for POSTs to the public forms.
pub(super) fn login<'a>(
    rules: &'a Rules,
    request: &CleanRequest,
    method: &Method,
) -> Option<Limit<'a>> {
    if method != Method::POST || !public_form(&request.path) {
        return None;
    }
    Some(Limit {
        scope: LimitScope::Login,
        limiter: rules.limits.login(),
        key: LimitKey::Ip(request.peer.client_ip?),
        route: RESERVED_ROUTE,
    })
}

/// The route's own limit, keyed as configured.
pub(super) fn route<'a>(
    route: &'a Route,
    request: &CleanRequest,
    caller: Option<&'a Caller>,
) -> Option<Limit<'a>> {
    let (key, limiter) = route.limit.as_ref()?;
    Some(Limit {
        scope: LimitScope::Route(*key),
        limiter,
        key: route_key(*key, request, caller)?,
        route: route.name(),
    })
}

/// What a route limit keyed by `key` counts this request against. Validation requires
/// an identity for user and org keys; without one the request was refused already, but
/// fail closed to one shared bucket anyway. `None`: an IP key without a client address.
pub fn route_key<'a>(
    key: RateKey,
    request: &CleanRequest,
    caller: Option<&'a Caller>,
) -> Option<LimitKey<'a>> {
    let identity = caller.map(Caller::identity);
    Some(match key {
        RateKey::Ip => LimitKey::Ip(request.peer.client_ip?),
        RateKey::User => identity.map_or(LimitKey::Whole, |id| LimitKey::Name(&id.user_id)),
        RateKey::Org => identity.map_or(LimitKey::Whole, |id| LimitKey::Name(&id.org.id)),
        RateKey::Route => LimitKey::Whole,
    })
}
