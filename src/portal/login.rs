//! `GET/POST /.partnergate/login` and `POST /.partnergate/logout`.

use std::sync::Arc;

use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::session::cookie::{self, CookieScope};
use crate::session::{new_token, LoginAttempt, LoginError, LoginOutcome, LoginResult};

use super::{
    pages, safe_redirect, session_cookie, with_outcome, PortalContext, PortalOutcome, PortalState,
    Verdict, LOGIN_PATH,
};

/// The one message for every failed login (no hint whether the email exists).
pub const GENERIC_FAILURE: &str =
    "Sign-in failed. Check your email and password, or ask your partner admin for help.";

#[derive(Deserialize)]
pub struct LoginQuery {
    rd: Option<String>,
    /// Why a signed-in user is asked to sign in again: `mfa` (the page needs a second
    /// factor) or `reauth` (the sign-in is too old for the page).
    step_up: Option<String>,
    /// `done`: the user just chose a new password.
    reset: Option<String>,
    /// The email step is done: ask for the password of this email.
    email: Option<String>,
    /// Just signed out of an SSO session of this org: offer to sign out at its
    /// identity provider too.
    signed_out: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    /// Absent on the email step.
    password: Option<String>,
    #[serde(default)]
    csrf: String,
    rd: Option<String>,
}

pub(super) fn scope(ctx: &PortalContext) -> CookieScope {
    CookieScope {
        secure: ctx.config.session.cookie_secure,
    }
}

fn csrf_cookie_name(ctx: &PortalContext) -> String {
    format!("{}-csrf", ctx.config.session.cookie_name)
}

/// The login form, with a CSRF token that is also set as a cookie (double submit).
pub async fn page(
    Extension(ctx): Extension<PortalContext>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let rd = safe_redirect(q.rd.as_deref());
    let notice = match q.step_up.as_deref() {
        Some("mfa") => {
            Some("This page needs a sign-in with your second factor. Please sign in again.")
        }
        Some("reauth") => Some("This page needs a recent sign-in. Please sign in again."),
        _ if q.reset.as_deref() == Some("done") => {
            Some("Your password was changed. Sign in with the new one.")
        }
        _ if q.signed_out.is_some() => Some("You are signed out of the portal."),
        _ => None,
    };
    let org = q.signed_out.as_deref().filter(|o| {
        !o.is_empty()
            && o.len() <= 64
            && o.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let link = org.map(|o| format!("/.partnergate/sso/{o}/logout"));
    let link = link
        .as_deref()
        .map(|href| (href, "Also sign out of your organisation's account"));
    let email = q
        .email
        .as_deref()
        .and_then(crate::session::normalized_email);
    form_page(
        &ctx,
        &headers,
        StatusCode::OK,
        &rd,
        email.as_deref(),
        notice,
        link,
        PortalOutcome::allow(),
    )
}

/// The password form's path with `rd`.
pub(super) fn login_path_with(rd: &str) -> String {
    crate::admission::login_location(rd, None)
}

/// The password form again with the one failure message (401).
pub(super) fn failure_page(
    ctx: &PortalContext,
    headers: &HeaderMap,
    rd: &str,
    outcome: PortalOutcome,
) -> Response {
    form_response(
        ctx,
        headers,
        StatusCode::UNAUTHORIZED,
        rd,
        "",
        Some(GENERIC_FAILURE),
        outcome,
    )
}

/// The login page: the email step (`email` `None`) or the password step.
#[allow(clippy::too_many_arguments)]
fn form_page(
    ctx: &PortalContext,
    headers: &HeaderMap,
    status: StatusCode,
    rd: &str,
    email: Option<&str>,
    error: Option<&str>,
    link: Option<(&str, &str)>,
    outcome: PortalOutcome,
) -> Response {
    let (csrf, fresh) = csrf_token(ctx, headers);
    let mut response = pages::login(status, &csrf, rd, email, error, link);
    if fresh {
        set_csrf_cookie(ctx, &mut response, &csrf);
    }
    with_outcome(response, outcome)
}

/// A sign-in that succeeded: end the session the browser had, set the new one, count it,
/// and go to `rd` (or to enrolment first when the org requires a second factor the user
/// does not have yet).
pub(super) async fn finish_sign_in(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    rd: &str,
    outcome: LoginOutcome,
    method: &str,
) -> Response {
    let config = &ctx.config;
    state
        .metrics
        .login(outcome.org.as_deref(), outcome.result.as_str(), method);
    let Some(new) = outcome.session else {
        return failure_page(ctx, headers, rd, PortalOutcome::deny("no_session"));
    };
    // A session cookie sent with the login belongs to whoever was here before.
    if let Some(old) = session_cookie(headers, config) {
        let _ = state.sessions().end(old).await;
    }
    let next = if outcome.must_enrol {
        super::account::enrol_path(rd)
    } else {
        rd.to_string()
    };
    let mut response = see_other(&next);
    let value = cookie::set(&config.session.cookie_name, &new.token, scope(ctx));
    set_cookie(&mut response, &value);
    with_outcome(
        response,
        PortalOutcome {
            verdict: Verdict::Allow,
            reason: Some(outcome.result.as_str()),
            user: outcome.user,
            org: outcome.org,
        },
    )
}

fn form_response(
    ctx: &PortalContext,
    headers: &HeaderMap,
    status: StatusCode,
    rd: &str,
    email: &str,
    error: Option<&str>,
    outcome: PortalOutcome,
) -> Response {
    form_page(ctx, headers, status, rd, Some(email), error, None, outcome)
}

/// The CSRF token of the browser's cookie, or a new one (`true`: set it as a cookie).
pub(super) fn csrf_token(ctx: &PortalContext, headers: &HeaderMap) -> (String, bool) {
    let existing = cookie::in_headers(headers, &csrf_cookie_name(ctx))
        .filter(|t| crate::session::token_shape_ok(t))
        .map(str::to_string);
    match existing {
        Some(t) => (t, false),
        None => (new_token(), true),
    }
}

pub(super) fn set_csrf_cookie(ctx: &PortalContext, response: &mut Response, csrf: &str) {
    let name = csrf_cookie_name(ctx);
    set_cookie(response, &cookie::set(&name, csrf, scope(ctx)));
}

pub(super) fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(super) fn csrf_ok(ctx: &PortalContext, headers: &HeaderMap, submitted: &str) -> bool {
    let name = csrf_cookie_name(ctx);
    let cookie = cookie::in_headers(headers, &name);
    match cookie {
        Some(c) if !c.is_empty() => c.as_bytes().ct_eq(submitted.as_bytes()).into(),
        _ => false,
    }
}

pub async fn submit(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let rd = safe_redirect(form.rd.as_deref());
    let Some(password) = form.password else {
        return email_step(&state, &ctx, &headers, &rd, &form.email, &form.csrf).await;
    };
    let attempt = LoginAttempt {
        email: form.email,
        password,
        client_ip: ctx.client_ip,
        request_id: ctx.request_id.clone(),
    };
    if !csrf_ok(&ctx, &headers, &form.csrf) {
        // Audited like every login attempt; the answer is the same whether that works.
        if let Err(e) = state.login.refuse(attempt, "csrf").await {
            tracing::error!(request_id = %ctx.request_id, "login attempt not audited: {e}");
        }
        let error = Some("Your sign-in form expired. Please try again.");
        let outcome = PortalOutcome::deny("csrf");
        return form_response(
            &ctx,
            &headers,
            StatusCode::FORBIDDEN,
            &rd,
            "",
            error,
            outcome,
        );
    }
    match super::sso::enforced(&state, &attempt.email).await {
        Ok(Some(c)) => return sso_required(&state, &ctx, &headers, &rd, attempt, &c).await,
        Ok(None) => {}
        Err(e) => return login_unavailable(&ctx, &headers, &rd, e.into()),
    }
    let config = &ctx.config;
    let outcome = state
        .login
        .attempt(attempt, &config.login, config.session.absolute_timeout)
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return login_unavailable(&ctx, &headers, &rd, e),
    };
    for kind in &outcome.new_lockouts {
        state.metrics.lockout(kind);
    }
    if outcome.result == LoginResult::Success {
        return finish_sign_in(&state, &ctx, &headers, &rd, outcome, METHOD_PASSWORD).await;
    }
    state.metrics.login(
        outcome.org.as_deref(),
        outcome.result.as_str(),
        METHOD_PASSWORD,
    );
    let log = PortalOutcome {
        verdict: Verdict::Deny,
        reason: Some(outcome.result.as_str()),
        user: outcome.user.clone(),
        org: outcome.org.clone(),
    };
    if let (LoginResult::SecondFactorRequired, Some(challenge)) =
        (outcome.result, &outcome.challenge)
    {
        let next = format!(
            "{}?rd={}",
            super::second::SECOND_PATH,
            login_path_with(&rd).trim_start_matches("/.partnergate/login?rd=")
        );
        let mut response = see_other(&next);
        let name = super::second::challenge_cookie_name(&ctx);
        set_cookie(&mut response, &cookie::set(&name, challenge, scope(&ctx)));
        return with_outcome(
            response,
            PortalOutcome {
                verdict: Verdict::Allow,
                ..log
            },
        );
    }
    failure_page(&ctx, &headers, &rd, log)
}

/// The `method` label of a sign-in with the password form.
pub const METHOD_PASSWORD: &str = "password";

/// The email step: an email of an org with its own identity provider leaves for it;
/// any other gets the password step (the same answer whether or not a user has it).
async fn email_step(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    rd: &str,
    email: &str,
    csrf: &str,
) -> Response {
    let Some(email) = crate::session::normalized_email(email) else {
        let error = Some("Enter your work email.");
        let outcome = PortalOutcome::deny("email_missing");
        return form_page(
            ctx,
            headers,
            StatusCode::BAD_REQUEST,
            rd,
            None,
            error,
            None,
            outcome,
        );
    };
    if !csrf_ok(ctx, headers, csrf) {
        let error = Some("Your sign-in form expired. Please try again.");
        let outcome = PortalOutcome::deny("csrf");
        return form_page(
            ctx,
            headers,
            StatusCode::FORBIDDEN,
            rd,
            None,
            error,
            None,
            outcome,
        );
    }
    match super::sso::routed(state, &email).await {
        Ok(Some(c)) => super::sso::depart(state, ctx, &c, rd, Some(&email), false).await,
        Ok(None) => form_page(
            ctx,
            headers,
            StatusCode::OK,
            rd,
            Some(&email),
            None,
            None,
            PortalOutcome::allow(),
        ),
        Err(e) => login_unavailable(ctx, headers, rd, e.into()),
    }
}

/// A password sent for an email whose org enforces SSO: refused (audited like any
/// refused attempt, nothing counts towards a lockout), with the way to its provider.
async fn sso_required(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    rd: &str,
    attempt: LoginAttempt,
    c: &crate::directory::SsoConnection,
) -> Response {
    let email = crate::session::normalized_email(&attempt.email).unwrap_or_default();
    if let Err(e) = state.login.refuse(attempt, "sso_required").await {
        tracing::error!(request_id = %ctx.request_id, "login attempt not audited: {e}");
    }
    state
        .metrics
        .login(Some(&c.org_id), "sso_required", METHOD_PASSWORD);
    let href = super::sso::start_path(&c.org_id, rd);
    let link = Some((href.as_str(), "Continue with your organisation's sign-in"));
    let error = Some(
        "Your organisation signs in through its own identity provider, not with a password here.",
    );
    let outcome = PortalOutcome {
        org: Some(c.org_id.clone()),
        ..PortalOutcome::deny("sso_required")
    };
    form_page(
        ctx,
        headers,
        StatusCode::FORBIDDEN,
        rd,
        Some(&email),
        error,
        link,
        outcome,
    )
}

pub(super) fn login_unavailable(
    ctx: &PortalContext,
    headers: &HeaderMap,
    rd: &str,
    e: LoginError,
) -> Response {
    tracing::error!(request_id = %ctx.request_id, "login unavailable: {e}");
    let reason = match e {
        LoginError::Busy => "login_busy",
        LoginError::Directory(_) => "directory_unavailable",
    };
    let outcome = PortalOutcome::allow().with(Verdict::Error, reason);
    let error = Some("Sign-in is unavailable right now. Please try again in a moment.");
    form_response(
        ctx,
        headers,
        StatusCode::SERVICE_UNAVAILABLE,
        rd,
        "",
        error,
        outcome,
    )
}

/// End the session server-side and clear the cookie.
pub async fn logout(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
) -> Response {
    let mut outcome = PortalOutcome::allow();
    outcome.reason = Some("logout");
    let mut next = LOGIN_PATH.to_string();
    if let Some(token) = session_cookie(&headers, &ctx.config) {
        // An SSO session: offer to sign out at the org's provider too.
        if let Ok(Some((live, entry))) = super::signed_in(&state, &ctx, &headers).await {
            if live.amr.contains(crate::directory::Amr::FED) {
                next = format!("{LOGIN_PATH}?signed_out={}", entry.identity.org.id);
            }
        }
        if let Err(e) = state.sessions().end(token).await {
            tracing::error!(request_id = %ctx.request_id, "logout: {e}");
            outcome = outcome.with(Verdict::Error, "directory_unavailable");
        }
    }
    let mut response = see_other(&next);
    set_cookie(
        &mut response,
        &cookie::clear(&ctx.config.session.cookie_name, scope(&ctx)),
    );
    with_outcome(response, outcome)
}

pub(super) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
