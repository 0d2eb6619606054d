//! Self-service password reset: `GET/POST /.partnergate/reset` asks for the email and
//! always gives the same answer; when the email names an active user of an active org, a
//! single-use link (`login.reset_ttl`, stored as SHA-256) goes out by mail, queued in the
//! same transaction as the request. `GET/POST /.partnergate/reset/{token}` sets a new
//! password under the password policy, ends every session of the user, and sends them to
//! sign in (a user with a second factor still passes it there).

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use crate::directory::{AuditActor, OrgStatus, PasswordReset, ResetRequested, UserStatus};
use crate::password::PasswordPolicy;
use crate::session::{hash_token, new_token, token_shape_ok};

use super::login::{csrf_ok, csrf_token, see_other, set_csrf_cookie};
use super::{pages, with_outcome, PortalContext, PortalOutcome, PortalState, Verdict};

pub const RESET_PATH: &str = "/.partnergate/reset";

/// Reset requests an account may have within an hour; more are answered the same but
/// not sent.
const MAX_PER_HOUR: u32 = 3;

/// The one answer to every reset request.
const SENT: &str = "If the address belongs to an account, we have sent it a link to choose a new password. The link works once and expires soon. Check your mail (and its spam folder).";

fn no_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn form(
    ctx: &PortalContext,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
    outcome: PortalOutcome,
) -> Response {
    let (csrf, fresh) = csrf_token(ctx, headers);
    let mut response = pages::reset_request(status, &csrf, error);
    if fresh {
        set_csrf_cookie(ctx, &mut response, &csrf);
    }
    with_outcome(response, outcome)
}

pub async fn page(Extension(ctx): Extension<PortalContext>, headers: HeaderMap) -> Response {
    form(&ctx, &headers, StatusCode::OK, None, PortalOutcome::allow())
}

#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    csrf: String,
}

pub async fn request(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(f): Form<RequestForm>,
) -> Response {
    if !csrf_ok(&ctx, &headers, &f.csrf) {
        let error = Some("The form expired. Please try again.");
        return form(
            &ctx,
            &headers,
            StatusCode::FORBIDDEN,
            error,
            PortalOutcome::deny("csrf"),
        );
    }
    let reason = match queue_reset(&state, &ctx, &f.email).await {
        Ok(reason) => reason,
        Err(e) => {
            tracing::error!(request_id = %ctx.request_id, "password reset: {e}");
            "directory_unavailable"
        }
    };
    // The same page whatever happened: nothing says whether the email is known.
    let outcome = PortalOutcome {
        reason: Some(reason),
        ..PortalOutcome::allow()
    };
    with_outcome(
        no_referrer(pages::message(StatusCode::OK, "Check your mail", SENT)),
        outcome,
    )
}

/// Queue the reset mail if the email names a user who may sign in; the reason for the
/// access log (never shown to the client).
async fn queue_reset(
    state: &PortalState,
    ctx: &PortalContext,
    email: &str,
) -> Result<&'static str, crate::directory::StoreError> {
    let Some(email) = crate::session::normalized_email(email) else {
        return Ok("reset_unknown");
    };
    // An org that enforces SSO has no passwords here to reset.
    if super::sso::enforced(state, &email).await?.is_some() {
        return Ok("reset_sso_required");
    }
    let store = state.sessions().directory().store().clone();
    let Some(user) = store.user_by_email(&email).await? else {
        return Ok("reset_unknown");
    };
    let Some(identity) = store.identity(&user.id).await? else {
        return Ok("reset_unknown");
    };
    if user.status != UserStatus::Active || identity.org.status != OrgStatus::Active {
        return Ok("reset_inactive");
    }
    let Some(mail) = &state.mail else {
        tracing::warn!(
            request_id = %ctx.request_id,
            "password reset asked for, but no [mail] is configured: nothing was sent"
        );
        return Ok("reset_no_mail");
    };
    let now = state.sessions().clock().now();
    let ttl = ctx.config.login.reset_ttl;
    let token = new_token();
    let link = mail.letters.url(&format!("{RESET_PATH}/{token}"));
    let letter = mail
        .letters
        .password_reset(&user.email, &link, ttl.as_secs().div_ceil(60));
    let reset = PasswordReset {
        token_hash: hash_token(&token),
        user_id: user.id.clone(),
        expires_at: now + ttl.as_secs() as i64,
    };
    let actor = AuditActor {
        actor_email: Some(user.email.clone()),
        ip: Some(ctx.client_ip.to_string()),
        request_id: Some(ctx.request_id.clone()),
        ..AuditActor::new(crate::directory::audit::ACTOR_ANONYMOUS)
    };
    let done = store
        .request_password_reset(&reset, &letter, MAX_PER_HOUR, now - 3600, &actor, now)
        .await?;
    Ok(match done {
        ResetRequested::Queued => {
            mail.queued();
            "reset_sent"
        }
        ResetRequested::TooMany => "reset_too_many",
    })
}

fn invalid() -> Response {
    with_outcome(
        no_referrer(pages::message(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This password link is not valid: it may have been used or have expired. Ask for a new one.",
        )),
        PortalOutcome::deny("reset_invalid"),
    )
}

async fn token_user(
    state: &PortalState,
    token: &str,
) -> Result<Option<String>, crate::directory::StoreError> {
    if !token_shape_ok(token) {
        return Ok(None);
    }
    let now = state.sessions().clock().now();
    let store = state.sessions().directory().store().clone();
    store.reset_user(&hash_token(token), now).await
}

fn new_password_form(
    ctx: &PortalContext,
    headers: &HeaderMap,
    token: &str,
    status: StatusCode,
    error: Option<&str>,
    outcome: PortalOutcome,
) -> Response {
    let (csrf, fresh) = csrf_token(ctx, headers);
    let mut response = pages::reset_password(
        status,
        token,
        &csrf,
        ctx.config.login.password_min_length,
        error,
    );
    if fresh {
        set_csrf_cookie(ctx, &mut response, &csrf);
    }
    with_outcome(no_referrer(response), outcome)
}

pub async fn token_page(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    match token_user(&state, &token).await {
        Ok(Some(_)) => new_password_form(
            &ctx,
            &headers,
            &token,
            StatusCode::OK,
            None,
            PortalOutcome::allow(),
        ),
        Ok(None) => invalid(),
        Err(e) => super::unavailable(&ctx, &e),
    }
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn token_submit(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<NewPasswordForm>,
) -> Response {
    match token_user(&state, &token).await {
        Ok(Some(_)) => {}
        Ok(None) => return invalid(),
        Err(e) => return super::unavailable(&ctx, &e),
    }
    let again = |status, text: &str, reason| {
        new_password_form(
            &ctx,
            &headers,
            &token,
            status,
            Some(text),
            PortalOutcome::deny(reason),
        )
    };
    if !csrf_ok(&ctx, &headers, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            "The form expired. Please try again.",
            "csrf",
        );
    }
    let policy = PasswordPolicy::new(ctx.config.login.password_min_length);
    if let Err(problem) = policy.check(&f.password) {
        return again(
            StatusCode::BAD_REQUEST,
            &problem.to_string(),
            "password_policy",
        );
    }
    // argon2id runs on the hasher's own threads, never on the proxy's.
    let hash = match state.login.hasher().hash(f.password).await {
        Ok(h) => h,
        Err(_) => {
            let text = "Setting the password is unavailable right now. Please try again.";
            return again(StatusCode::SERVICE_UNAVAILABLE, text, "login_busy");
        }
    };
    let actor = AuditActor {
        ip: Some(ctx.client_ip.to_string()),
        request_id: Some(ctx.request_id.clone()),
        ..AuditActor::new(crate::directory::audit::ACTOR_ANONYMOUS)
    };
    let now = state.sessions().clock().now();
    let store = state.sessions().directory().store().clone();
    match store
        .reset_password(&hash_token(&token), &hash, &actor, now)
        .await
    {
        Ok(Some(user_id)) => {
            state.sessions().forget_user_cached(&user_id);
            state.sessions().directory().invalidate_user(&user_id);
            let response = see_other("/.partnergate/login?rd=/&reset=done");
            with_outcome(
                no_referrer(response),
                PortalOutcome {
                    verdict: Verdict::Allow,
                    reason: Some("password_reset"),
                    user: None,
                    org: None,
                },
            )
        }
        Ok(None) => invalid(),
        Err(e) => super::unavailable(&ctx, &e),
    }
}
