//! The authorisation decision for a matched route: the route's rules (`auth`, `methods`,
//! `allow_org_types`, `allow_roles`, `allow_permissions`, `account_permission`,
//! `require_mfa`, `max_auth_age`) and the user's and org's status.
//!
//! Pure: the route, the request's method and `{account}` capture, the resolved identity
//! and the time go in; a [`Decision`] comes out, and [`enforce`] applies the route's mode
//! to it. [`decide`] runs [`check`] rule by rule in [`Rule::ORDER`]; `partnergate
//! explain` shows each rule's [`check`] next to the verdict the request path reached.
//! Owner-admin users get no implicit bypass: they pass only the rules they satisfy, like
//! everyone else.

use http::Method;

use crate::config::{AccountLevel, AuthMode, Mode, RouteConfig};
use crate::directory::{Amr, Identity, OrgStatus, Timestamp, UserStatus};

/// Why a request was denied: the closed set the access log and
/// `partnergate_policy_denials_total{reason}` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    NoRoute,
    Method,
    Role,
    Permission,
    OrgType,
    OrgInactive,
    UserInactive,
    AccountGrant,
    GrantExpired,
    /// `require_mfa` (or the org's `mfa = "required"`): no second factor in this sign-in.
    MfaRequired,
    /// `max_auth_age`: the sign-in is older than the route allows.
    ReauthRequired,
}

impl DenyReason {
    pub const ALL: [DenyReason; 11] = [
        DenyReason::NoRoute,
        DenyReason::Method,
        DenyReason::Role,
        DenyReason::Permission,
        DenyReason::OrgType,
        DenyReason::OrgInactive,
        DenyReason::UserInactive,
        DenyReason::AccountGrant,
        DenyReason::GrantExpired,
        DenyReason::MfaRequired,
        DenyReason::ReauthRequired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::NoRoute => "no_route",
            DenyReason::Method => "method",
            DenyReason::Role => "role",
            DenyReason::Permission => "permission",
            DenyReason::OrgType => "org_type",
            DenyReason::OrgInactive => "org_inactive",
            DenyReason::UserInactive => "user_inactive",
            DenyReason::AccountGrant => "account_grant",
            DenyReason::GrantExpired => "grant_expired",
            DenyReason::MfaRequired => "mfa_required",
            DenyReason::ReauthRequired => "reauth_required",
        }
    }

    /// Whether `mode = "shadow"` may let a request denied for this reason through.
    /// Revocation (a suspended user or org) is never shadowed: shadow mode is for
    /// trying out route rules, not for undoing a suspension.
    pub fn shadowable(self) -> bool {
        !matches!(self, DenyReason::UserInactive | DenyReason::OrgInactive)
    }

    /// Whether the answer is to authenticate again (step-up), not a plain refusal.
    pub fn is_step_up(self) -> bool {
        matches!(self, DenyReason::MfaRequired | DenyReason::ReauthRequired)
    }
}

/// How the caller authenticated and when: what `require_mfa` and `max_auth_age` check.
/// A session knows both; a bearer token says what its `amr` and `auth_time` claims say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStrength {
    pub amr: Amr,
    pub auth_time: Option<Timestamp>,
}

/// The outcome of the policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
    /// The route needs an identity and the request has none.
    Unauthenticated,
}

/// The policy's answer as the gateway applies it: [`decide`] with the route's `mode` on
/// top. This is the one place the shadow rule lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// `mode = "shadow"`: the rules deny it for this reason, the gateway lets it through
    /// and counts it.
    ShadowDeny(DenyReason),
    Deny(DenyReason),
    Unauthenticated,
}

impl Verdict {
    /// Whether the request goes on to its upstream.
    pub fn lets_through(self) -> bool {
        matches!(self, Verdict::Allow | Verdict::ShadowDeny(_))
    }
}

/// Decide, then apply the route's mode. Shadow mode lets through what the route's rules
/// would deny, but never a suspended user or org ([`DenyReason::shadowable`]).
pub fn enforce(route: &RouteConfig, req: &Request<'_>, identity: Option<&Identity>) -> Verdict {
    match decide(route, req, identity) {
        Decision::Allow => Verdict::Allow,
        Decision::Deny(reason) if route.mode == Mode::Shadow && reason.shadowable() => {
            Verdict::ShadowDeny(reason)
        }
        Decision::Deny(reason) => Verdict::Deny(reason),
        Decision::Unauthenticated => Verdict::Unauthenticated,
    }
}

/// The rules of a route, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Auth,
    UserStatus,
    OrgStatus,
    Method,
    OrgType,
    Roles,
    Permissions,
    Account,
    Mfa,
    AuthAge,
}

impl Rule {
    pub const ORDER: [Rule; 10] = [
        Rule::Auth,
        Rule::UserStatus,
        Rule::OrgStatus,
        Rule::Method,
        Rule::OrgType,
        Rule::Roles,
        Rule::Permissions,
        Rule::Account,
        Rule::Mfa,
        Rule::AuthAge,
    ];

    /// The configuration key (or directory fact) the rule checks.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Auth => "auth",
            Rule::UserStatus => "user_status",
            Rule::OrgStatus => "org_status",
            Rule::Method => "methods",
            Rule::OrgType => "allow_org_types",
            Rule::Roles => "allow_roles",
            Rule::Permissions => "allow_permissions",
            Rule::Account => "account_permission",
            Rule::Mfa => "require_mfa",
            Rule::AuthAge => "max_auth_age",
        }
    }
}

/// What one rule said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The route does not use this rule.
    NotApplicable,
    Pass,
    Fail(Failure),
}

/// A failed rule: a denial, or (for [`Rule::Auth`]) a missing identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Deny(DenyReason),
    Unauthenticated,
}

/// The request facts the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a Method,
    /// What the route's `{account}` segment captured.
    pub account: Option<&'a str>,
    /// Unix seconds, for grant expiry and `max_auth_age`.
    pub now: Timestamp,
    /// How the caller authenticated (default: not at all).
    pub strength: AuthStrength,
}

/// Check every rule of `route` in order; the first failure decides.
pub fn decide(route: &RouteConfig, req: &Request<'_>, identity: Option<&Identity>) -> Decision {
    for rule in Rule::ORDER {
        if let Outcome::Fail(failure) = check(rule, route, req, identity) {
            return match failure {
                Failure::Deny(reason) => Decision::Deny(reason),
                Failure::Unauthenticated => Decision::Unauthenticated,
            };
        }
    }
    Decision::Allow
}

/// One rule. A missing identity fails every rule that needs one (fail closed), even on
/// a route with `auth = "none"`, which configuration validation does not allow anyway.
pub fn check(
    rule: Rule,
    route: &RouteConfig,
    req: &Request<'_>,
    identity: Option<&Identity>,
) -> Outcome {
    use Outcome::{NotApplicable, Pass};
    let deny = |reason| Outcome::Fail(Failure::Deny(reason));
    match rule {
        Rule::Auth => match (route.auth, identity) {
            (AuthMode::None, _) | (_, Some(_)) => Pass,
            (_, None) => Outcome::Fail(Failure::Unauthenticated),
        },
        Rule::UserStatus => match identity {
            None => NotApplicable,
            Some(id) if id.status == UserStatus::Active => Pass,
            Some(_) => deny(DenyReason::UserInactive),
        },
        Rule::OrgStatus => match identity {
            None => NotApplicable,
            Some(id) if id.org.status == OrgStatus::Active => Pass,
            Some(_) => deny(DenyReason::OrgInactive),
        },
        Rule::Method => match &route.methods {
            None => NotApplicable,
            Some(methods) if methods.contains(req.method) => Pass,
            Some(_) => deny(DenyReason::Method),
        },
        Rule::OrgType => any_of(&route.allow_org_types, DenyReason::OrgType, |t| {
            identity.is_some_and(|id| id.org.org_type == t)
        }),
        Rule::Roles => any_of(&route.allow_roles, DenyReason::Role, |r| {
            identity.is_some_and(|id| id.has_role(r))
        }),
        Rule::Permissions => any_of(&route.allow_permissions, DenyReason::Permission, |p| {
            identity.is_some_and(|id| id.has_permission(p))
        }),
        Rule::Account => match route.account_permission {
            None => NotApplicable,
            Some(required) => match account_level(identity, req.account, req.now) {
                Ok(level) if level >= required => Pass,
                Ok(_) => deny(DenyReason::AccountGrant),
                Err(reason) => deny(reason),
            },
        },
        Rule::Mfa if !route.require_mfa => NotApplicable,
        Rule::Mfa if req.strength.amr.is_multi_factor() => Pass,
        Rule::Mfa => deny(DenyReason::MfaRequired),
        Rule::AuthAge => match (route.max_auth_age, req.strength.auth_time) {
            (None, _) => NotApplicable,
            (Some(age), Some(t)) if req.now - t <= age.as_secs() as i64 => Pass,
            (Some(_), _) => deny(DenyReason::ReauthRequired),
        },
    }
}

fn any_of(list: &[String], reason: DenyReason, holds: impl Fn(&str) -> bool) -> Outcome {
    if list.is_empty() {
        Outcome::NotApplicable
    } else if list.iter().any(|item| holds(item)) {
        Outcome::Pass
    } else {
        Outcome::Fail(Failure::Deny(reason))
    }
}

/// The user's level on `account`: no grant (or no account, or no identity) is
/// `account_grant`; a grant whose expiry has passed is `grant_expired`.
pub fn account_level(
    identity: Option<&Identity>,
    account: Option<&str>,
    now: Timestamp,
) -> Result<AccountLevel, DenyReason> {
    let grant = identity
        .zip(account)
        .and_then(|(id, account)| id.grant(account))
        .ok_or(DenyReason::AccountGrant)?;
    match grant.expires_at {
        Some(t) if t <= now => Err(DenyReason::GrantExpired),
        _ => Ok(grant.level),
    }
}

#[cfg(test)]
mod tests;
