//! Partner SSO pages: leaving for an org's identity provider (from the login page's
//! email step, or `/.partnergate/sso/{org}/start`), coming back
//! (`/.partnergate/sso/callback`), the provider's back-channel logout
//! (`/.partnergate/sso/{org}/backchannel-logout`) and RP-initiated logout
//! (`/.partnergate/sso/{org}/logout`).
//!
//! Every refusal is audited (`sso.refused`, with the reason word) and counted in
//! `partnergate_logins_total{method="sso"}`; the browser sees a page that says what to do,
//! never a token or a provider's error text.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::directory::audit::{AuditEntry, AuditOutcome, ACTOR_ANONYMOUS, ACTOR_SYSTEM};
use crate::directory::{Amr, AuditActor, SsoConnection, SsoSignIn, StoreError};
use crate::session::cookie;
use crate::sso::{self, SsoError};

use super::login::{scope, see_other, set_cookie};
use super::{
    pages, safe_redirect, session_cookie, with_outcome, PortalContext, PortalOutcome, PortalState,
    Verdict, LOGIN_PATH,
};

pub const METHOD: &str = "sso";

fn flow_cookie_name(ctx: &PortalContext) -> String {
    format!("{}-sso", ctx.config.session.cookie_name)
}

fn redirect_uri(ctx: &PortalContext) -> String {
    format!(
        "{}{}",
        ctx.config.server.public_url.origin(),
        sso::CALLBACK_PATH
    )
}

/// The connection an email's domain routes to, if its org has one.
pub(super) async fn routed(
    state: &PortalState,
    email: &str,
) -> Result<Option<SsoConnection>, StoreError> {
    let Some(domain) = sso::email_domain(email) else {
        return Ok(None);
    };
    let store = state.sessions().directory().store().clone();
    let Some(org) = store.domain_org(&domain).await? else {
        return Ok(None);
    };
    store.sso_connection(&org).await
}

/// The connection of an email's domain when it enforces SSO: password sign-in and
/// password reset are refused for it.
pub(super) async fn enforced(
    state: &PortalState,
    email: &str,
) -> Result<Option<SsoConnection>, StoreError> {
    Ok(routed(state, email).await?.filter(|c| c.enforce))
}

/// Where the login page sends a user of an org with a connection.
pub(super) fn start_path(org_id: &str, rd: &str) -> String {
    let mut path = format!("/.partnergate/sso/{org_id}/start?");
    sso::push_form(&mut path, &[("rd", rd)]);
    path
}

/// Send the browser to `c`'s provider: the flow remembered in the directory (any
/// instance can take the callback), `state` in a cookie bound to this browser. A plain
/// navigation (`navigation`: a link, a bookmark) is redirected; the answer to the login
/// form is a page that goes on by itself ([`pages::onward`]).
pub(super) async fn depart(
    state: &PortalState,
    ctx: &PortalContext,
    c: &SsoConnection,
    rd: &str,
    login_hint: Option<&str>,
    navigation: bool,
) -> Response {
    let now = state.sessions().clock().now();
    let departure = match state
        .sso
        .depart(c, &redirect_uri(ctx), rd, login_hint, now)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            return refused(
                state,
                ctx,
                Some(&c.org_id),
                None,
                &e,
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .await
        }
    };
    let flow = departure.flow;
    let stored = state
        .sessions()
        .directory()
        .call(move |s| async move { s.insert_sso_flow(&flow, now).await })
        .await;
    if let Err(e) = stored {
        return super::unavailable(ctx, &e);
    }
    let mut response = if navigation {
        see_other(&departure.url)
    } else {
        pages::onward(&departure.url)
    };
    let value = cookie::set(&flow_cookie_name(ctx), &departure.state, scope(ctx));
    set_cookie(&mut response, &value);
    with_outcome(
        response,
        PortalOutcome {
            org: Some(c.org_id.clone()),
            reason: Some("sso_redirect"),
            ..PortalOutcome::allow()
        },
    )
}

#[derive(Deserialize)]
pub struct StartQuery {
    rd: Option<String>,
}

/// `GET /.partnergate/sso/{org}/start`: sign in with the org's provider (a bookmark or
/// the link of the enforced-SSO page).
pub async fn start(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Path(org): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    let rd = safe_redirect(q.rd.as_deref());
    let store = state.sessions().directory().store().clone();
    match store.sso_connection(&org).await {
        Ok(Some(c)) => depart(&state, &ctx, &c, &rd, None, true).await,
        Ok(None) => with_outcome(
            pages::message(
                StatusCode::NOT_FOUND,
                "No single sign-on here",
                "This organisation does not sign in through its own identity provider. Sign in with your email and password.",
            ),
            PortalOutcome::deny("no_connection"),
        ),
        Err(e) => super::unavailable(&ctx, &e),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /.partnergate/sso/callback`: the provider sent the browser back.
pub async fn callback(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let now = state.sessions().clock().now();
    let cookie_state = cookie::in_headers(&headers, &flow_cookie_name(&ctx)).unwrap_or("");
    let sent_state = q.state.as_deref().unwrap_or("");
    let bound = !sent_state.is_empty()
        && crate::session::token_shape_ok(sent_state)
        && bool::from(sent_state.as_bytes().ct_eq(cookie_state.as_bytes()));
    if !bound {
        let e = SsoError::new("state_mismatch", "state missing or not this browser's");
        return refused(&state, &ctx, None, None, &e, StatusCode::BAD_REQUEST).await;
    }
    let hash = crate::session::hash_token(sent_state);
    let directory = state.sessions().directory().clone();
    let flow = match directory
        .call(move |s| async move { s.take_sso_flow(&hash, now).await })
        .await
    {
        Ok(Some(f)) => f,
        Ok(None) => {
            let e = SsoError::new("flow_expired", "no sign-in waits for this state");
            return refused(&state, &ctx, None, None, &e, StatusCode::BAD_REQUEST).await;
        }
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let org = flow.org_id.clone();
    let store = directory.store().clone();
    let connection = match store.sso_connection(&org).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            let e = SsoError::new("no_connection", "the org's connection was removed");
            return refused(&state, &ctx, Some(&org), None, &e, StatusCode::BAD_REQUEST).await;
        }
        Err(e) => return super::unavailable(&ctx, &e),
    };
    if let Some(error) = &q.error {
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        let e = SsoError::new("idp_error", code);
        return refused(&state, &ctx, Some(&org), None, &e, StatusCode::UNAUTHORIZED).await;
    }
    let Some(code) = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 2048)
    else {
        let e = SsoError::new("code_missing", "the provider sent no code");
        return refused(&state, &ctx, Some(&org), None, &e, StatusCode::BAD_REQUEST).await;
    };
    let arrival = match state
        .sso
        .arrive(&connection, &flow, code, &redirect_uri(&ctx), now)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            let status = match e.reason {
                "discovery_failed" | "keys_unavailable" | "client_secret_unavailable" => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::UNAUTHORIZED,
            };
            return refused(&state, &ctx, Some(&org), None, &e, status).await;
        }
    };
    let email = match sso::claimed_email(&connection, &arrival.claims) {
        Ok(e) => e,
        Err(e) => return refused(&state, &ctx, Some(&org), None, &e, StatusCode::FORBIDDEN).await,
    };
    match sign_in(
        &state,
        &ctx,
        &headers,
        &connection,
        &flow.rd,
        &email,
        &arrival,
    )
    .await
    {
        Ok(response) => response,
        Err((e, status)) => refused(&state, &ctx, Some(&org), Some(&email), &e, status).await,
    }
}

/// The verified user into the directory (within the org's bounds), then a session.
async fn sign_in(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    c: &SsoConnection,
    rd: &str,
    email: &str,
    arrival: &sso::Arrival,
) -> Result<Response, (SsoError, StatusCode)> {
    let store = state.sessions().directory().store().clone();
    let unavailable = |e: StoreError| {
        (
            SsoError::new("directory_unavailable", e.to_string()),
            StatusCode::SERVICE_UNAVAILABLE,
        )
    };
    // The provider may vouch only for its own org's domains.
    let domains = store.org_domains(&c.org_id).await.map_err(unavailable)?;
    let in_org = sso::email_domain(email).is_some_and(|d| domains.contains(&d));
    if !in_org {
        let e = SsoError::new("domain_not_in_org", "the email's domain is not the org's");
        return Err((e, StatusCode::FORBIDDEN));
    }
    let org = store.org(&c.org_id).await.map_err(unavailable)?;
    let mfa = sso::mfa_attested(c, &arrival.claims);
    if org.as_ref().is_some_and(|o| o.mfa_required) && !mfa {
        let e = SsoError::new(
            "mfa_missing",
            "the org requires a second factor the provider did not vouch for",
        );
        return Err((e, StatusCode::FORBIDDEN));
    }
    let amr = if mfa {
        Amr::FED.with(Amr::MFA)
    } else {
        Amr::FED
    };
    let sid = arrival
        .claims
        .get("sid")
        .and_then(serde_json::Value::as_str)
        .filter(|s| s.len() <= 255)
        .map(str::to_string);
    let sign_in = SsoSignIn {
        org_id: c.org_id.clone(),
        subject: arrival.subject.clone(),
        email: email.to_string(),
        sid,
        roles: sso::mapped_roles(c, &arrival.claims),
        default_roles: c.default_roles.clone(),
        jit: c.jit,
        actor: AuditActor {
            ip: Some(ctx.client_ip.to_string()),
            request_id: Some(ctx.request_id.clone()),
            ..AuditActor::new(ACTOR_ANONYMOUS)
        },
    };
    let after = serde_json::json!({
        "method": METHOD,
        "amr": amr.names(),
        "issuer": c.issuer,
    });
    let now = state.sessions().clock().now();
    let done = match store.sso_sign_in(&sign_in, after, now).await {
        Ok(done) => done,
        Err(StoreError::Refused(reason)) => {
            let e = SsoError::new(reason, "refused by the org's bounds");
            return Err((e, StatusCode::FORBIDDEN));
        }
        Err(e) => return Err(unavailable(e)),
    };
    let directory = state.sessions().directory();
    directory.invalidate_user(&done.user_id);
    state.sessions().forget_user_cached(&done.user_id);
    if !done.refused_roles.is_empty() {
        tracing::warn!(
            request_id = %ctx.request_id,
            org = %c.org_id,
            roles = ?done.refused_roles,
            "SSO role mapping names roles outside the org's bounds: not granted"
        );
    }
    let absolute = ctx.config.session.absolute_timeout;
    let new = state
        .sessions()
        .create(&done.user_id, amr, absolute)
        .await
        .map_err(unavailable)?;
    if let Some(old) = session_cookie(headers, &ctx.config) {
        let _ = state.sessions().end(old).await;
    }
    state.metrics.login(Some(&c.org_id), "success", METHOD);
    let mut response = see_other(rd);
    let value = cookie::set(&ctx.config.session.cookie_name, &new.token, scope(ctx));
    set_cookie(&mut response, &value);
    set_cookie(
        &mut response,
        &cookie::clear(&flow_cookie_name(ctx), scope(ctx)),
    );
    Ok(with_outcome(
        response,
        PortalOutcome {
            verdict: Verdict::Allow,
            reason: Some(if done.provisioned {
                "sso_provisioned"
            } else {
                "success"
            }),
            user: Some(email.to_string()),
            org: Some(c.org_id.clone()),
        },
    ))
}

/// An SSO sign-in refused: audited, counted, and answered with a page that says what
/// to do (the reason word is in the audit record and the access log, not on the page).
async fn refused(
    state: &PortalState,
    ctx: &PortalContext,
    org: Option<&str>,
    email: Option<&str>,
    e: &SsoError,
    status: StatusCode,
) -> Response {
    tracing::warn!(request_id = %ctx.request_id, org = ?org, "SSO sign-in refused: {e}");
    let entry = AuditEntry {
        actor_email: email.map(str::to_string),
        ip: Some(ctx.client_ip.to_string()),
        request_id: Some(ctx.request_id.clone()),
        target: org.map(|o| format!("org:{o}")),
        org_id: org.map(str::to_string),
        reason: Some(e.reason.to_string()),
        after: Some(serde_json::json!({ "detail": e.detail })),
        ..AuditEntry::new(ACTOR_ANONYMOUS, "sso.refused", AuditOutcome::Denied)
    };
    let now = state.sessions().clock().now();
    let store = state.sessions().directory().store().clone();
    if let Err(err) = store.sso_audit(&entry, now).await {
        tracing::error!(request_id = %ctx.request_id, "SSO refusal not audited: {err}");
    }
    state.metrics.login(org, e.reason, METHOD);
    let (title, text) = explain(e.reason);
    let mut outcome = PortalOutcome::deny(e.reason);
    outcome.org = org.map(str::to_string);
    outcome.user = email.map(str::to_string);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        outcome.verdict = Verdict::Error;
    }
    with_outcome(pages::message(status, title, text), outcome)
}

/// What the browser is told for each refusal.
fn explain(reason: &str) -> (&'static str, &'static str) {
    match reason {
        "seat_cap" => (
            "Your organisation has no free seat",
            "Your organisation has used every seat it has on this portal. Ask your partner admin to free a seat, or your partner manager for more.",
        ),
        "org_inactive" => (
            "Sign-in refused",
            "Your organisation's access to this portal is suspended. Ask your partner manager.",
        ),
        "user_inactive" => (
            "Sign-in refused",
            "Your account on this portal is suspended or removed. Ask your partner admin.",
        ),
        "unknown_user" => (
            "No account yet",
            "Your organisation signs in through its own identity provider, but you have no account on this portal yet. Ask your partner admin to invite you.",
        ),
        "mfa_missing" => (
            "A second factor is required",
            "Your organisation requires a second factor, and your identity provider did not confirm one for this sign-in. Sign in again with your second factor, or ask your IT team.",
        ),
        "domain_not_in_org" | "other_org" | "other_subject" => (
            "Sign-in refused",
            "Your identity provider signed you in with an email this organisation does not own. Ask your partner admin.",
        ),
        "state_mismatch" | "flow_expired" => (
            "Sign-in expired",
            "This sign-in was started in another browser tab, or took too long. Please sign in again.",
        ),
        "discovery_failed" | "keys_unavailable" | "client_secret_unavailable"
        | "directory_unavailable" => (
            "Sign-in unavailable",
            "Your organisation's sign-in cannot be reached right now. Please try again in a moment.",
        ),
        _ => (
            "Sign-in failed",
            "Your identity provider's answer could not be accepted. Please sign in again, or ask your partner admin for help.",
        ),
    }
}

/// `POST /.partnergate/sso/{org}/backchannel-logout` (OpenID Connect Back-Channel Logout
/// 1.0): the provider says a user signed out there. Every session of the user ends on
/// every instance (the directory change that a suspension makes too), open streams
/// close. 200 when the token verified (also for a replay or an unknown user), 400 when
/// it did not.
pub async fn backchannel(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Path(org): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let answer = |status: StatusCode, error: Option<&str>, outcome: PortalOutcome| {
        let body = match error {
            Some(e) => serde_json::json!({ "error": "invalid_request", "error_description": e }),
            None => serde_json::json!({}),
        };
        let mut r = (status, Json(body)).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        with_outcome(r, outcome)
    };
    let now = state.sessions().clock().now();
    let store = state.sessions().directory().store().clone();
    let connection = match store.sso_connection(&org).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return answer(
                StatusCode::BAD_REQUEST,
                Some("no such connection"),
                PortalOutcome::deny("no_connection"),
            )
        }
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let Some(token) = form.get("logout_token") else {
        return answer(
            StatusCode::BAD_REQUEST,
            Some("logout_token missing"),
            PortalOutcome::deny("logout_token_missing"),
        );
    };
    let verified = match state.sso.logout_token(&connection, token, now).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id, %org, "back-channel logout refused: {e}");
            let entry = AuditEntry {
                ip: Some(ctx.client_ip.to_string()),
                request_id: Some(ctx.request_id.clone()),
                target: Some(format!("org:{org}")),
                org_id: Some(org.clone()),
                reason: Some(e.reason.to_string()),
                after: Some(serde_json::json!({ "detail": e.detail })),
                ..AuditEntry::new(
                    ACTOR_ANONYMOUS,
                    "sso.backchannel_logout",
                    AuditOutcome::Denied,
                )
            };
            if let Err(err) = store.sso_audit(&entry, now).await {
                tracing::error!(request_id = %ctx.request_id, "refusal not audited: {err}");
            }
            return answer(
                StatusCode::BAD_REQUEST,
                Some("the logout token is not valid"),
                PortalOutcome::deny(e.reason),
            );
        }
    };
    let Some(t) = verified else {
        return answer(StatusCode::OK, None, PortalOutcome::allow());
    };
    let user = match store
        .sso_user(&org, t.subject.as_deref(), t.sid.as_deref())
        .await
    {
        Ok(u) => u,
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let Some(user) = user else {
        return answer(
            StatusCode::OK,
            None,
            PortalOutcome::allow().with(Verdict::Allow, "unknown_subject"),
        );
    };
    let ended = match state.sessions().end_user(&user).await {
        Ok(n) => n,
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let entry = AuditEntry {
        ip: Some(ctx.client_ip.to_string()),
        request_id: Some(ctx.request_id.clone()),
        target: Some(format!("user:{user}")),
        org_id: Some(org.clone()),
        reason: Some("backchannel_logout".into()),
        after: Some(serde_json::json!({ "sessions_ended": ended, "sid": t.sid })),
        ..AuditEntry::new(ACTOR_SYSTEM, "sso.backchannel_logout", AuditOutcome::Ok)
    };
    if let Err(err) = store.sso_audit(&entry, now).await {
        tracing::error!(request_id = %ctx.request_id, "back-channel logout not audited: {err}");
    }
    let outcome = PortalOutcome {
        org: Some(org),
        ..PortalOutcome::allow().with(Verdict::Allow, "backchannel_logout")
    };
    answer(StatusCode::OK, None, outcome)
}

/// `GET /.partnergate/sso/{org}/logout`: after signing out here, end the session at the
/// org's provider too (RP-initiated logout), when it publishes an end-session endpoint.
pub async fn provider_logout(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Path(org): Path<String>,
) -> Response {
    let store = state.sessions().directory().store().clone();
    let back = format!("{}{}", ctx.config.server.public_url.origin(), LOGIN_PATH);
    let target = match store.sso_connection(&org).await {
        Ok(Some(c)) => state.sso.end_session_url(&c, &back).await.ok().flatten(),
        Ok(None) => None,
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let outcome = PortalOutcome {
        org: Some(org),
        ..PortalOutcome::allow().with(Verdict::Allow, "sso_logout")
    };
    with_outcome(see_other(target.as_deref().unwrap_or(LOGIN_PATH)), outcome)
}
