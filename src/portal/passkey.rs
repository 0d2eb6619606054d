//! Passkey pages: `GET /.partnergate/account/passkey` and its two JSON calls (options,
//! then the new credential), and `GET /.partnergate/login/passkey` with its two calls
//! (options, then the signed answer) for the second step of a sign-in. The WebAuthn work
//! is `mfa::passkey`; a ceremony's state is a `login_challenges` row: the pending
//! sign-in's own row, or, for a registration, one keyed by a short-lived cookie.

use std::sync::Arc;

use axum::extract::Query;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directory::{Amr, Factor, FactorKind, LoginChallenge};
use crate::mfa::passkey::Passkeys;
use crate::mfa::{self, recovery, CHALLENGE_TTL};
use crate::session::{cookie, hash_token, new_token, LoginResult, Proof, SecondStep};

use super::account::{me, needs_step_up, renew_session, ACCOUNT_PATH};
use super::login::{csrf_ok, csrf_token, finish_sign_in, scope, set_cookie, set_csrf_cookie};
use super::second::challenge_cookie_name;
use super::{pages, safe_redirect, with_outcome, PortalContext, PortalOutcome, PortalState};

pub const SCRIPT_PATH: &str = "/.partnergate/static/passkey.js";
const SCRIPT: &str = include_str!("passkey.js");

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

fn registration_cookie(ctx: &PortalContext) -> String {
    format!("{}-pk", ctx.config.session.cookie_name)
}

fn passkeys(ctx: &PortalContext) -> Result<Passkeys, Box<Response>> {
    Passkeys::new(&ctx.config.server.public_url.origin()).map_err(|e| {
        tracing::warn!("passkeys unavailable: {e}");
        Box::new(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "passkeys are not available here",
        ))
    })
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `GET /account/passkey`.
pub async fn register_page(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
) -> Response {
    let me = match me(&state, &ctx, &headers, "/.partnergate/account/passkey").await {
        Ok(me) => me,
        Err(r) => return r,
    };
    if let Some(r) = needs_step_up(&me) {
        return r;
    }
    let (csrf, fresh) = csrf_token(&ctx, &headers);
    let mut response = pages::passkey_register(StatusCode::OK, &csrf);
    if fresh {
        set_csrf_cookie(&ctx, &mut response, &csrf);
    }
    with_outcome(response, me.outcome(None))
}

#[derive(Deserialize)]
pub struct CsrfBody {
    #[serde(default)]
    csrf: String,
}

/// `POST /account/passkey/options`: the creation options; the ceremony's state is kept.
pub async fn register_options(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Json(body): Json<CsrfBody>,
) -> Response {
    let me = match me(&state, &ctx, &headers, ACCOUNT_PATH).await {
        Ok(me) => me,
        Err(_) => return json_error(StatusCode::UNAUTHORIZED, "sign in first"),
    };
    if needs_step_up(&me).is_some() {
        return json_error(
            StatusCode::FORBIDDEN,
            "sign in with your second factor first",
        );
    }
    if !csrf_ok(&ctx, &headers, &body.csrf) {
        return with_outcome(
            json_error(StatusCode::FORBIDDEN, "the form expired"),
            PortalOutcome::deny("csrf"),
        );
    }
    let keys = match passkeys(&ctx) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let store = state.sessions().directory().store().clone();
    let id = me.identity();
    let factors = match store.factors(&id.user_id).await {
        Ok(f) => f,
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let (options, ceremony) = match keys.start_registration(&id.user_id, &id.email, &factors) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("passkey registration: {e}");
            return json_error(
                StatusCode::BAD_REQUEST,
                "cannot start a passkey registration",
            );
        }
    };
    let now = state.sessions().clock().now();
    let token = new_token();
    let row = LoginChallenge {
        token_hash: hash_token(&token),
        user_id: id.user_id.clone(),
        created_at: now,
        expires_at: now + CHALLENGE_TTL,
        state: Some(ceremony),
    };
    if let Err(e) = store.insert_challenge(&row).await {
        return super::unavailable(&ctx, &e);
    }
    let mut response = Json(options).into_response();
    let value = cookie::set(&registration_cookie(&ctx), &token, scope(&ctx));
    set_cookie(&mut response, &value);
    with_outcome(response, me.outcome(None))
}

#[derive(Deserialize)]
pub struct RegisterBody {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    credential: Value,
}

/// `POST /account/passkey`: verify the new credential and store it as a factor.
pub async fn register(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Json(body): Json<RegisterBody>,
) -> Response {
    let me = match me(&state, &ctx, &headers, ACCOUNT_PATH).await {
        Ok(me) => me,
        Err(_) => return json_error(StatusCode::UNAUTHORIZED, "sign in first"),
    };
    if needs_step_up(&me).is_some() {
        return json_error(
            StatusCode::FORBIDDEN,
            "sign in with your second factor first",
        );
    }
    if !csrf_ok(&ctx, &headers, &body.csrf) {
        return with_outcome(
            json_error(StatusCode::FORBIDDEN, "the form expired"),
            PortalOutcome::deny("csrf"),
        );
    }
    let Some(name) = mfa::factor_name(&body.name) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "give the passkey a name (up to 64 characters)",
        );
    };
    let keys = match passkeys(&ctx) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let store = state.sessions().directory().store().clone();
    let now = state.sessions().clock().now();
    let id = me.identity();
    let ceremony = match cookie::in_headers(&headers, &registration_cookie(&ctx)) {
        Some(token) if crate::session::token_shape_ok(token) => {
            match store.challenge(&hash_token(token), now).await {
                Ok(c) => c.filter(|c| c.user_id == id.user_id),
                Err(e) => return super::unavailable(&ctx, &e),
            }
        }
        _ => None,
    };
    let Some(ceremony) = ceremony else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the registration expired; start again",
        );
    };
    let _ = store.delete_challenge(&ceremony.token_hash, now).await;
    let credential =
        match keys.finish_registration(&body.credential, ceremony.state.as_deref().unwrap_or("")) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(user = %id.email, "passkey registration refused: {e}");
                return with_outcome(
                    json_error(StatusCode::BAD_REQUEST, "the passkey could not be verified"),
                    me.outcome(Some("passkey_refused"))
                        .with(super::Verdict::Deny, "passkey_refused"),
                );
            }
        };
    let first = id.second_factors == 0;
    let factor = Factor {
        id: mfa::new_factor_id(),
        user_id: id.user_id.clone(),
        kind: FactorKind::Passkey,
        name: name.clone(),
        secret: credential,
        last_step: None,
        created_at: now,
        last_used_at: Some(now),
    };
    let (codes, hashes) = recovery::generate();
    let mut audit = me.audit(&ctx, "factor.enrol");
    audit.after = Some(json!({
        "factor": factor.id, "kind": "passkey", "name": name, "recovery_codes": first,
    }));
    if let Err(e) = store
        .add_factor(&factor, first.then_some(hashes.as_slice()), &audit, now)
        .await
    {
        return super::unavailable(&ctx, &e);
    }
    state.sessions().directory().invalidate_user(&id.user_id);
    let amr = me.caller.strength.amr.with(Amr::PWD).with(Amr::HWK);
    let renewed = match renew_session(&state, &ctx, &headers, &id.user_id, amr).await {
        Ok(r) => r,
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let body = json!({
        "redirect": format!("{ACCOUNT_PATH}?notice=factor_added"),
        "recovery_codes": first.then_some(codes),
    });
    let mut response = Json(body).into_response();
    for c in renewed.headers().get_all(header::SET_COOKIE) {
        response.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    let clear = cookie::clear(&registration_cookie(&ctx), scope(&ctx));
    set_cookie(&mut response, &clear);
    with_outcome(response, me.outcome(Some("factor_enrolled")))
}

#[derive(Deserialize)]
pub struct RdQuery {
    rd: Option<String>,
}

/// `GET /login/passkey`: for a pending sign-in.
pub async fn sign_in_page(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Query(q): Query<RdQuery>,
    headers: HeaderMap,
) -> Response {
    let rd = safe_redirect(q.rd.as_deref());
    let pending = match cookie::in_headers(&headers, &challenge_cookie_name(&ctx)) {
        Some(token) => state.login.pending(token).await.ok().flatten(),
        None => None,
    };
    if pending.is_none() {
        return super::login::see_other(&super::login::login_path_with(&rd));
    }
    let (csrf, fresh) = csrf_token(&ctx, &headers);
    let mut response = pages::passkey_sign_in(StatusCode::OK, &csrf, &rd);
    if fresh {
        set_csrf_cookie(&ctx, &mut response, &csrf);
    }
    with_outcome(response, PortalOutcome::allow())
}

/// The pending sign-in of the request and the user's passkeys.
async fn pending_passkeys(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
) -> Result<(LoginChallenge, Vec<Factor>), Response> {
    let expired = || json_error(StatusCode::UNAUTHORIZED, "the sign-in expired; start again");
    let Some(token) = cookie::in_headers(headers, &challenge_cookie_name(ctx)) else {
        return Err(expired());
    };
    let challenge = match state.login.pending(token).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(expired()),
        Err(_) => {
            return Err(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "try again in a moment",
            ))
        }
    };
    let store = state.sessions().directory().store().clone();
    match store.factors(&challenge.user_id).await {
        Ok(f) => Ok((challenge, f)),
        Err(e) => Err(super::unavailable(ctx, &e)),
    }
}

/// `POST /login/passkey/options`.
pub async fn sign_in_options(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Json(body): Json<CsrfBody>,
) -> Response {
    if !csrf_ok(&ctx, &headers, &body.csrf) {
        return with_outcome(
            json_error(StatusCode::FORBIDDEN, "the form expired"),
            PortalOutcome::deny("csrf"),
        );
    }
    let (challenge, factors) = match pending_passkeys(&state, &ctx, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let keys = match passkeys(&ctx) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let Ok(Some((options, ceremony))) = keys.start_authentication(&factors) else {
        return json_error(StatusCode::BAD_REQUEST, "no passkey to sign in with");
    };
    let store = state.sessions().directory().store().clone();
    if let Err(e) = store
        .set_challenge_state(&challenge.token_hash, Some(&ceremony))
        .await
    {
        return super::unavailable(&ctx, &e);
    }
    with_outcome(Json(options).into_response(), PortalOutcome::allow())
}

#[derive(Deserialize)]
pub struct SignInBody {
    #[serde(default)]
    csrf: String,
    rd: Option<String>,
    credential: Value,
}

/// `POST /login/passkey`: a verified passkey finishes the sign-in; anything else counts
/// like a wrong code.
pub async fn sign_in(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Json(body): Json<SignInBody>,
) -> Response {
    let rd = safe_redirect(body.rd.as_deref());
    if !csrf_ok(&ctx, &headers, &body.csrf) {
        return with_outcome(
            json_error(StatusCode::FORBIDDEN, "the form expired"),
            PortalOutcome::deny("csrf"),
        );
    }
    let (challenge, factors) = match pending_passkeys(&state, &ctx, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let keys = match passkeys(&ctx) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let verified = challenge
        .state
        .as_deref()
        .ok_or(crate::mfa::passkey::PasskeyError::State)
        .and_then(|s| keys.finish_authentication(&body.credential, s, &factors));
    if let Err(e) = &verified {
        tracing::info!("passkey sign-in refused: {e}");
    }
    let Some(token) = cookie::in_headers(&headers, &challenge_cookie_name(&ctx)) else {
        return json_error(StatusCode::UNAUTHORIZED, "the sign-in expired; start again");
    };
    let step = SecondStep {
        challenge: token.to_string(),
        proof: Proof::Passkey(verified.ok()),
        client_ip: ctx.client_ip,
        request_id: ctx.request_id.clone(),
    };
    let config = &ctx.config;
    let outcome = match state
        .login
        .second_factor(step, &config.login, config.session.absolute_timeout)
        .await
    {
        Ok(o) => o,
        Err(_) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "sign-in is unavailable right now",
            )
        }
    };
    if outcome.result != LoginResult::Success {
        state
            .metrics
            .login(outcome.org.as_deref(), outcome.result.as_str(), "passkey");
        for kind in &outcome.new_lockouts {
            state.metrics.lockout(kind);
        }
        let log = PortalOutcome {
            verdict: super::Verdict::Deny,
            reason: Some(outcome.result.as_str()),
            user: outcome.user.clone(),
            org: outcome.org.clone(),
        };
        return with_outcome(
            json_error(StatusCode::UNAUTHORIZED, super::login::GENERIC_FAILURE),
            log,
        );
    }
    // The HTML sign-in's answer (a 303 with the session cookie), as JSON for the script.
    let signed_in = finish_sign_in(&state, &ctx, &headers, &rd, outcome, "passkey").await;
    let location = signed_in
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("/")
        .to_string();
    let mut response = Json(json!({ "redirect": location })).into_response();
    for c in signed_in.headers().get_all(header::SET_COOKIE) {
        response.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    if let Some(o) = signed_in.extensions().get::<PortalOutcome>() {
        response.extensions_mut().insert(o.clone());
    }
    let clear = cookie::clear(&challenge_cookie_name(&ctx), scope(&ctx));
    set_cookie(&mut response, &clear);
    response
}
