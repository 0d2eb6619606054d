//! `GET/POST /.partnergate/login/second`: the second step of a sign-in, after the password
//! was right: a code from the user's authenticator app (or a recovery code), or a passkey.
//! The browser carries the pending sign-in in a short-lived cookie; a wrong code counts and
//! answers like a wrong password.

use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use crate::directory::FactorKind;
use crate::session::cookie;
use crate::session::{LoginResult, Proof, SecondStep};

use super::login::{
    csrf_ok, csrf_token, finish_sign_in, login_unavailable, scope, see_other, set_cookie,
    set_csrf_cookie, GENERIC_FAILURE,
};
use super::{pages, safe_redirect, with_outcome, PortalContext, PortalOutcome, PortalState};

pub const SECOND_PATH: &str = "/.partnergate/login/second";

/// The cookie of a sign-in waiting for its second factor.
pub fn challenge_cookie_name(ctx: &PortalContext) -> String {
    format!("{}-mfa", ctx.config.session.cookie_name)
}

#[derive(Deserialize)]
pub struct SecondQuery {
    rd: Option<String>,
}

#[derive(Deserialize)]
pub struct SecondForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
    rd: Option<String>,
}

/// The code form (and the passkey button when the user has a passkey).
pub async fn page(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Query(q): Query<SecondQuery>,
    headers: HeaderMap,
) -> Response {
    let rd = safe_redirect(q.rd.as_deref());
    let pending = match cookie::in_headers(&headers, &challenge_cookie_name(&ctx)) {
        Some(token) => state.login.pending(token).await,
        None => Ok(None),
    };
    let challenge = match pending {
        Ok(Some(c)) => c,
        Ok(None) => return see_other(&super::login::login_path_with(&rd)),
        Err(e) => return login_unavailable(&ctx, &headers, &rd, e),
    };
    let passkeys = match state
        .sessions()
        .directory()
        .store()
        .factors(&challenge.user_id)
        .await
    {
        Ok(f) => f.iter().any(|f| f.kind == FactorKind::Passkey),
        Err(_) => false,
    };
    form(
        &ctx,
        &headers,
        StatusCode::OK,
        &rd,
        None,
        passkeys,
        PortalOutcome::allow(),
    )
}

fn form(
    ctx: &PortalContext,
    headers: &HeaderMap,
    status: StatusCode,
    rd: &str,
    error: Option<&str>,
    passkeys: bool,
    outcome: PortalOutcome,
) -> Response {
    let (csrf, fresh) = csrf_token(ctx, headers);
    let mut response = pages::second_factor(status, &csrf, rd, error, passkeys);
    if fresh {
        set_csrf_cookie(ctx, &mut response, &csrf);
    }
    with_outcome(response, outcome)
}

pub async fn submit(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(f): Form<SecondForm>,
) -> Response {
    let rd = safe_redirect(f.rd.as_deref());
    if !csrf_ok(&ctx, &headers, &f.csrf) {
        let error = Some("Your sign-in form expired. Please try again.");
        return form(
            &ctx,
            &headers,
            StatusCode::FORBIDDEN,
            &rd,
            error,
            false,
            PortalOutcome::deny("csrf"),
        );
    }
    let Some(token) = cookie::in_headers(&headers, &challenge_cookie_name(&ctx)) else {
        return see_other(&super::login::login_path_with(&rd));
    };
    let step = SecondStep {
        challenge: token.to_string(),
        proof: Proof::Code(f.code),
        client_ip: ctx.client_ip,
        request_id: ctx.request_id.clone(),
    };
    answer(&state, &ctx, &headers, &rd, step).await
}

/// Run the second step and answer it: signed in (to `rd`), the same form again with the
/// one failure message, or back to the password form when the sign-in ended.
pub(super) async fn answer(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    rd: &str,
    step: SecondStep,
) -> Response {
    let config = &ctx.config;
    let outcome = state
        .login
        .second_factor(step, &config.login, config.session.absolute_timeout)
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return login_unavailable(ctx, headers, rd, e),
    };
    let still_waiting = outcome.challenge.is_some();
    if outcome.result == LoginResult::Success {
        let mut response = finish_sign_in(state, ctx, headers, rd, outcome, "otp").await;
        let clear = cookie::clear(&challenge_cookie_name(ctx), scope(ctx));
        set_cookie(&mut response, &clear);
        return response;
    }
    state
        .metrics
        .login(outcome.org.as_deref(), outcome.result.as_str(), "otp");
    for kind in &outcome.new_lockouts {
        state.metrics.lockout(kind);
    }
    let log = PortalOutcome {
        verdict: super::Verdict::Deny,
        reason: Some(outcome.result.as_str()),
        user: outcome.user.clone(),
        org: outcome.org.clone(),
    };
    if still_waiting {
        return form(
            ctx,
            headers,
            StatusCode::UNAUTHORIZED,
            rd,
            Some(GENERIC_FAILURE),
            false,
            log,
        );
    }
    // The sign-in ended (locked, expired): the password form, with the same message.
    let mut response = super::login::failure_page(ctx, headers, rd, log);
    let clear = cookie::clear(&challenge_cookie_name(ctx), scope(ctx));
    set_cookie(&mut response, &clear);
    response
}
