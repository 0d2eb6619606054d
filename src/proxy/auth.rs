//! Stages 3–4 of CONTRACT §3: authenticate (session cookie or bearer JWT) and resolve the
//! identity through the directory cache; then the identity headers for the upstream.

use std::sync::Arc;

use pingora::http::RequestHeader;
use pingora::prelude::*;

use crate::config::{AuthMode, RouteConfig};
use crate::directory::{CachedIdentity, StoreError};
use crate::jwt::{bearer_token, AssertionClaims, Subject};
use crate::session::{cookie, SessionState};

use super::ctx::RequestCtx;
use super::state::{Services, Snapshot};

/// Why a request was not let through to its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or bad credentials: 302 to the login page (browsers) or 401.
    Unauthenticated {
        reason: &'static str,
        bad_token: bool,
    },
    /// The directory cannot answer and nothing is cached: 503 (fail closed).
    Unavailable,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!("directory lookup failed: {e}");
        Refusal::Unavailable
    }
}

fn unauthenticated(reason: &'static str) -> Refusal {
    Refusal::Unauthenticated {
        reason,
        bad_token: false,
    }
}

/// Authenticate the request for `route` and put the identity in `ctx`.
pub async fn authenticate(
    req: &RequestHeader,
    ctx: &mut RequestCtx,
    route: &RouteConfig,
    snapshot: &Snapshot,
    services: &Services,
) -> Result<(), Refusal> {
    let now = services.sessions.clock().now();
    let user_id = match credentials(req, route.auth, &snapshot.config.session.cookie_name) {
        Credentials::Bearer(token) => bearer_user(token, snapshot, services, now, ctx).await?,
        Credentials::Session(token) => {
            let idle = snapshot.config.session.idle_timeout;
            match services.sessions.resolve(token, idle).await? {
                SessionState::Valid(live) => {
                    let user_id = live.user_id.clone();
                    ctx.session = Some(live);
                    user_id
                }
                other => return Err(unauthenticated(other.reason())),
            }
        }
        Credentials::None => return Err(unauthenticated("no_credentials")),
    };
    let Some(entry) = services.directory.identity(&user_id).await? else {
        return Err(unauthenticated("unknown_user"));
    };
    ctx.user = Some(entry.identity.email.clone());
    ctx.org = Some(entry.identity.org.id.clone());
    // A suspended user or org is refused by the policy (`user_inactive`, `org_inactive`).
    if entry.identity.is_usable() {
        services.directory.saw(&entry, now);
    }
    ctx.identity = Some(entry);
    Ok(())
}

enum Credentials<'a> {
    Bearer(&'a str),
    Session(&'a str),
    None,
}

/// The credentials the route accepts, bearer first when both are allowed and present.
fn credentials<'a>(req: &'a RequestHeader, mode: AuthMode, cookie_name: &str) -> Credentials<'a> {
    if matches!(mode, AuthMode::Bearer | AuthMode::Any) {
        if let Some(token) = bearer_token(&req.headers) {
            return Credentials::Bearer(token);
        }
    }
    if matches!(mode, AuthMode::Session | AuthMode::Any) {
        if let Some(token) = cookie::in_headers(&req.headers, cookie_name) {
            return Credentials::Session(token);
        }
    }
    Credentials::None
}

async fn bearer_user(
    token: &str,
    snapshot: &Snapshot,
    services: &Services,
    now: i64,
    ctx: &mut RequestCtx,
) -> Result<String, Refusal> {
    let verified = snapshot
        .bearer
        .verify(token, now)
        .map_err(|e| Refusal::Unauthenticated {
            reason: e.reason(),
            bad_token: true,
        })?;
    ctx.bearer = true;
    let user = services.directory.user_id_for_claim(&verified.user).await?;
    user.ok_or(Refusal::Unauthenticated {
        reason: "unknown_user",
        bad_token: true,
    })
}

/// Write the identity headers of CONTRACT §3 (incoming `X-Partner-*` are already gone).
pub fn identity_headers(
    upstream: &mut RequestHeader,
    ctx: &RequestCtx,
    snapshot: &Snapshot,
    services: &Services,
) -> Result<()> {
    let Some(entry) = &ctx.identity else {
        return Ok(());
    };
    let identity = &entry.identity;
    let h = &entry.headers;
    upstream.insert_header("x-partner-user", h.user.clone())?;
    upstream.insert_header("x-partner-user-id", h.user_id.clone())?;
    upstream.insert_header("x-partner-org", h.org.clone())?;
    upstream.insert_header("x-partner-org-type", h.org_type.clone())?;
    upstream.insert_header("x-partner-roles", h.roles.clone())?;
    let now = services.sessions.clock().now();
    let account = account_level(ctx, entry, now);
    if let Some((account, level)) = account {
        upstream.insert_header("x-partner-account", account)?;
        if let Some(level) = level {
            upstream.insert_header("x-partner-account-permission", level)?;
        }
    }
    if let (Some(signer), Some(pool)) = (&snapshot.assertion, &ctx.upstream) {
        let subject = Subject {
            user_id: &identity.user_id,
            generation: entry.generation,
            audience: pool.name(),
            account: account.map(|(a, _)| a),
        };
        let token = signer.sign_with(subject, now, || AssertionClaims {
            sub: identity.user_id.clone(),
            email: identity.email.clone(),
            org: identity.org.id.clone(),
            org_type: identity.org.org_type.clone(),
            roles: identity.roles.clone(),
            account: account.map(|(a, _)| a.to_string()),
            account_permission: account.and_then(|(_, l)| l.map(str::to_string)),
            generation: entry.generation,
        });
        upstream.insert_header("x-partner-assertion", token.as_ref())?;
    }
    if ctx.bearer {
        // The caller's token is for the gateway; the upstream gets the identity instead.
        upstream.remove_header("authorization");
    }
    Ok(())
}

/// On `{account}` routes: the account id and the user's unexpired level on it, if any.
fn account_level<'a>(
    ctx: &'a RequestCtx,
    entry: &'a Arc<CachedIdentity>,
    now: i64,
) -> Option<(&'a str, Option<&'static str>)> {
    let account = ctx.account.as_deref()?;
    let level = crate::policy::decide::account_level(Some(&entry.identity), Some(account), now)
        .ok()
        .map(|l| l.as_str());
    Some((account, level))
}

/// Browser navigation (GET accepting HTML) is sent to the login page; the rest get 401.
pub fn is_browser_navigation(req: &RequestHeader) -> bool {
    req.method == http::Method::GET
        && req
            .headers
            .get_all("accept")
            .iter()
            .any(|v| contains_ci(v.as_bytes(), b"text/html"))
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `/.partnergate/login?rd=<path and query, percent-encoded>`.
pub fn login_location(path: &str, query: Option<&str>) -> String {
    let mut rd = String::from(path);
    if let Some(q) = query {
        rd.push('?');
        rd.push_str(q);
    }
    let mut out = String::from("/.partnergate/login?rd=");
    for b in rd.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_location_encodes_rd() {
        assert_eq!(
            login_location("/clients/42", Some("a=1&b=2")),
            "/.partnergate/login?rd=/clients/42%3Fa%3D1%26b%3D2"
        );
        assert_eq!(login_location("/", None), "/.partnergate/login?rd=/");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("authorization", "bearer abc").unwrap();
        assert_eq!(bearer_token(&req.headers), Some("abc"));
        req.insert_header("authorization", "Bearer ").unwrap();
        assert_eq!(bearer_token(&req.headers), None);
        req.insert_header("authorization", "Basic abc").unwrap();
        assert_eq!(bearer_token(&req.headers), None);
    }

    #[test]
    fn browser_navigation_is_a_get_accepting_html() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(!is_browser_navigation(&req));
        req.insert_header("accept", "text/HTML,application/xhtml+xml")
            .unwrap();
        assert!(is_browser_navigation(&req));
        let mut post = RequestHeader::build("POST", b"/", None).unwrap();
        post.insert_header("accept", "text/html").unwrap();
        assert!(!is_browser_navigation(&post));
    }
}
