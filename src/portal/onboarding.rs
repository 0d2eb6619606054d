//! The two onboarding pages: `/.partnergate/register` (a new partner org asks to join; it
//! is `pending` until an owner admin approves) and `/.partnergate/invite/{token}` (the
//! invitee sets a password and lands, signed in, on the dashboard for their role).

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use crate::directory::audit::ACTOR_ANONYMOUS;
use crate::directory::{AuditActor, NewOrg, OrgStatus, StoreError};
use crate::password::PasswordPolicy;
use crate::session::{cookie, hash_token, token_shape_ok};

use super::api::{slug, validate_org};
use super::login::{csrf_ok, csrf_token, scope, see_other, set_cookie, set_csrf_cookie};
use super::pages::{document, escape, message};
use super::{with_outcome, PortalContext, PortalOutcome, PortalState, Verdict};

/// Where a new user lands: the portal's start page, which shows the dashboard for the
/// user's role (the demo portal does; a real portal routes its own `/`).
const DASHBOARD: &str = "/";

const INVALID_TITLE: &str = "Invitation not valid";
const INVALID_TEXT: &str = "This invitation link is not valid: it may have expired or already been used. Ask your partner admin to send a new invitation.";

fn field(label: &str, name: &str, kind: &str, value: &str, autocomplete: &str) -> String {
    format!(
        "<label for=\"{name}\">{}</label><input id=\"{name}\" name=\"{name}\" type=\"{kind}\" \
         required autocomplete=\"{autocomplete}\" value=\"{}\">",
        escape(label),
        escape(value)
    )
}

fn error_html(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default()
}

/// A form: heading, intro (HTML), where it posts, its fields (HTML) and the button.
struct FormSpec<'a> {
    title: &'a str,
    intro: String,
    action: String,
    fields: String,
    submit: &'a str,
}

/// A form page with its CSRF token (and the cookie when the browser has none yet).
fn form_page(
    ctx: &PortalContext,
    headers: &HeaderMap,
    status: StatusCode,
    spec: FormSpec<'_>,
    outcome: PortalOutcome,
) -> Response {
    let (csrf, fresh) = csrf_token(ctx, headers);
    let body = format!(
        "<h1>{}</h1>{}<form method=\"post\" action=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">{}\
         <button type=\"submit\">{}</button></form>",
        escape(spec.title),
        spec.intro,
        escape(&spec.action),
        escape(&csrf),
        spec.fields,
        escape(spec.submit)
    );
    let mut response = document(status, spec.title, &body);
    if fresh {
        set_csrf_cookie(ctx, &mut response, &csrf);
    }
    with_outcome(response, outcome)
}

#[derive(Deserialize, Default)]
pub struct RegisterForm {
    #[serde(default)]
    org_name: String,
    #[serde(default)]
    org_type: String,
    #[serde(default)]
    contact_email: String,
    #[serde(default)]
    csrf: String,
}

fn register_form(
    ctx: &PortalContext,
    headers: &HeaderMap,
    status: StatusCode,
    form: &RegisterForm,
    error: Option<&str>,
    outcome: PortalOutcome,
) -> Response {
    let intro = format!(
        "{}<p>Tell us about your organisation. An administrator reviews every request; \
         you will receive an invitation once it is approved.</p>",
        error_html(error)
    );
    let fields = [
        field(
            "Organisation name",
            "org_name",
            "text",
            &form.org_name,
            "organization",
        ),
        field(
            "Partner type (e.g. reseller, referral, agency)",
            "org_type",
            "text",
            &form.org_type,
            "off",
        ),
        field(
            "Contact email",
            "contact_email",
            "email",
            &form.contact_email,
            "email",
        ),
    ]
    .concat();
    let spec = FormSpec {
        title: "Become a partner",
        intro,
        action: "/.partnergate/register".into(),
        fields,
        submit: "Send request",
    };
    form_page(ctx, headers, status, spec, outcome)
}

pub async fn register_page(
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
) -> Response {
    let form = RegisterForm::default();
    register_form(
        &ctx,
        &headers,
        StatusCode::OK,
        &form,
        None,
        PortalOutcome::allow(),
    )
}

pub async fn register_submit(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Response {
    if !csrf_ok(&ctx, &headers, &form.csrf) {
        let error = Some("This form expired. Please send it again.");
        let status = StatusCode::FORBIDDEN;
        return register_form(
            &ctx,
            &headers,
            status,
            &form,
            error,
            PortalOutcome::deny("csrf"),
        );
    }
    let org_type = form.org_type.trim().to_lowercase();
    let org = NewOrg {
        id: slug(form.org_name.trim()),
        name: form.org_name.trim().to_string(),
        org_type: org_type.clone(),
        status: OrgStatus::Pending,
        max_users: None,
        allowed_roles: None,
        max_grant_ttl: None,
        contact_email: Some(form.contact_email.trim().to_lowercase()),
    };
    let problem = if org_type == ctx.config.server.owner_org_type {
        Some("That partner type cannot be requested.".to_string())
    } else {
        validate_org(&org).err()
    };
    if let Some(problem) = problem {
        let status = StatusCode::BAD_REQUEST;
        let outcome = PortalOutcome::deny("invalid_form");
        return register_form(&ctx, &headers, status, &form, Some(&problem), outcome);
    }
    let actor = AuditActor {
        actor_email: org.contact_email.clone(),
        ip: Some(ctx.client_ip.to_string()),
        request_id: Some(ctx.request_id.clone()),
        ..AuditActor::new(ACTOR_ANONYMOUS)
    };
    let store = state.sessions().directory().store().clone();
    let now = state.sessions().clock().now();
    if let Some(refused) = registration_limit(&state, &ctx, &actor, now).await {
        return refused;
    }
    let mut created = store.create_org(&org, &actor, now).await;
    if matches!(created, Err(StoreError::Conflict(_))) {
        // The random suffix of the id collided: once more with a new one.
        let again = NewOrg {
            id: slug(&org.name),
            ..org.clone()
        };
        created = store.create_org(&again, &actor, now).await;
    }
    match created {
        Ok(_) => with_outcome(
            message(
                StatusCode::OK,
                "Request received",
                "Thank you. An administrator will review your request; the contact email will receive an invitation once it is approved.",
            ),
            PortalOutcome::allow(),
        ),
        Err(e) => unavailable(&ctx, e),
    }
}

/// Registration requests are capped per client IP (per 24 hours) and in total (pending
/// at once), so the form cannot be used to flood the owner's queue. A refusal is a 429
/// page and an audited `org.register` with outcome denied.
async fn registration_limit(
    state: &PortalState,
    ctx: &PortalContext,
    actor: &AuditActor,
    now: i64,
) -> Option<Response> {
    let limits = &ctx.config.lifecycle;
    let store = state.sessions().directory().store().clone();
    let sent = state.registrations.get(&ctx.client_ip).unwrap_or(0);
    let reason = if sent >= limits.registrations_per_ip {
        Some("registration_limit_ip")
    } else {
        match store.orgs().await {
            Ok(orgs) => {
                let pending = orgs
                    .iter()
                    .filter(|o| o.status == OrgStatus::Pending)
                    .count();
                (pending >= limits.max_pending_registrations as usize)
                    .then_some("registration_limit_total")
            }
            Err(e) => return Some(unavailable(ctx, e)),
        }
    };
    let Some(reason) = reason else {
        state.registrations.insert(ctx.client_ip, sent + 1);
        return None;
    };
    let mut entry = actor.entry(
        "org.register",
        "org:(new)".to_string(),
        None,
        serde_json::Value::Null,
        serde_json::Value::Null,
    );
    entry.outcome = crate::directory::AuditOutcome::Denied;
    entry.reason = Some(reason.to_string());
    if let Err(e) = store.append_audit(&entry, now).await {
        tracing::error!(request_id = %ctx.request_id, "registration refusal not audited: {e}");
    }
    Some(with_outcome(
        message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "We cannot take more partner registration requests right now. Please try again tomorrow, or contact your partner manager.",
        ),
        PortalOutcome::deny(reason),
    ))
}

fn unavailable(ctx: &PortalContext, e: StoreError) -> Response {
    tracing::error!(request_id = %ctx.request_id, "onboarding: {e}");
    with_outcome(
        message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again later",
            "This page is unavailable right now. Please try again in a moment.",
        ),
        PortalOutcome::allow().with(Verdict::Error, "directory_unavailable"),
    )
}

#[derive(Deserialize, Default)]
pub struct InviteForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    csrf: String,
}

/// The invitation pages' URLs hold the token: never send them as a `Referer`.
fn no_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    response
}

fn invalid_invitation() -> Response {
    with_outcome(
        message(StatusCode::NOT_FOUND, INVALID_TITLE, INVALID_TEXT),
        PortalOutcome::deny("invitation_invalid"),
    )
}

/// The open invitation of a token, or the one page for unknown, used and expired links.
async fn open_invitation(
    state: &PortalState,
    ctx: &PortalContext,
    token: &str,
) -> Result<crate::directory::Invitation, Response> {
    if !token_shape_ok(token) {
        return Err(invalid_invitation());
    }
    let store = state.sessions().directory().store().clone();
    let now = state.sessions().clock().now();
    match store.invitation_by_token(&hash_token(token)).await {
        Ok(Some(i)) if i.is_open(now) => Ok(i),
        Ok(_) => Err(invalid_invitation()),
        Err(e) => Err(unavailable(ctx, e)),
    }
}

fn invite_form(
    ctx: &PortalContext,
    headers: &HeaderMap,
    status: StatusCode,
    invitation: &crate::directory::Invitation,
    token: &str,
    error: Option<&str>,
    outcome: PortalOutcome,
) -> Response {
    let intro = format!(
        "{}<p>You are invited to <strong>{}</strong> as <strong>{}</strong>. \
         Choose a password to finish.</p>",
        error_html(error),
        escape(&invitation.org_name),
        escape(&invitation.email)
    );
    let min = ctx.config.login.password_min_length;
    let fields = [
        field(
            &format!("Password (at least {min} characters)"),
            "password",
            "password",
            "",
            "new-password",
        ),
        field(
            "Repeat the password",
            "confirm",
            "password",
            "",
            "new-password",
        ),
    ]
    .concat();
    let spec = FormSpec {
        title: "Set your password",
        intro,
        action: format!("/.partnergate/invite/{token}"),
        fields,
        submit: "Finish and sign in",
    };
    no_referrer(form_page(ctx, headers, status, spec, outcome))
}

pub async fn invite_page(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    match open_invitation(&state, &ctx, &token).await {
        Ok(invitation) => invite_form(
            &ctx,
            &headers,
            StatusCode::OK,
            &invitation,
            &token,
            None,
            PortalOutcome::allow(),
        ),
        Err(r) => r,
    }
}

pub async fn invite_submit(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<InviteForm>,
) -> Response {
    let invitation = match open_invitation(&state, &ctx, &token).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let again = |status, error: &str, reason| {
        let outcome = PortalOutcome::deny(reason);
        invite_form(
            &ctx,
            &headers,
            status,
            &invitation,
            &token,
            Some(error),
            outcome,
        )
    };
    if !csrf_ok(&ctx, &headers, &form.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            "This form expired. Please send it again.",
            "csrf",
        );
    }
    if form.password != form.confirm {
        return again(
            StatusCode::BAD_REQUEST,
            "The two passwords differ.",
            "password_mismatch",
        );
    }
    let policy = PasswordPolicy::new(ctx.config.login.password_min_length);
    if let Err(problem) = policy.check(&form.password) {
        return again(
            StatusCode::BAD_REQUEST,
            &problem.to_string(),
            "password_policy",
        );
    }
    // argon2id runs on the hasher's own threads, never on the proxy's.
    let hash = match state.login.hasher().hash(form.password).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(request_id = %ctx.request_id, "invitation: password hashing: {e}");
            let text = "Setting the password is unavailable right now. Please try again.";
            return again(StatusCode::SERVICE_UNAVAILABLE, text, "login_busy");
        }
    };
    let actor = AuditActor {
        actor_email: Some(invitation.email.clone()),
        ip: Some(ctx.client_ip.to_string()),
        request_id: Some(ctx.request_id.clone()),
        ..AuditActor::new(invitation.user_id.clone())
    };
    let store = state.sessions().directory().store().clone();
    let now = state.sessions().clock().now();
    let user_id =
        match store
            .accept_invitation(&hash_token(&token), &hash, &actor, now)
            .await
        {
            Ok(id) => id,
            Err(StoreError::NotFound(_)) => return invalid_invitation(),
            Err(StoreError::Refused(_)) => return with_outcome(
                message(
                    StatusCode::FORBIDDEN,
                    "Organisation not active",
                    "Your organisation is not active yet. Please try again once it is approved.",
                ),
                PortalOutcome::deny("org_inactive"),
            ),
            Err(e) => return unavailable(&ctx, e),
        };
    state.sessions().directory().invalidate_user(&user_id);
    let absolute = ctx.config.session.absolute_timeout;
    let session = match state
        .sessions()
        .create(&user_id, crate::directory::Amr::PWD, absolute)
        .await
    {
        Ok(s) => s,
        Err(e) => return unavailable(&ctx, e),
    };
    let mut response = no_referrer(see_other(DASHBOARD));
    let value = cookie::set(&ctx.config.session.cookie_name, &session.token, scope(&ctx));
    set_cookie(&mut response, &value);
    with_outcome(
        response,
        PortalOutcome {
            user: Some(invitation.email.clone()),
            org: Some(invitation.org_id.clone()),
            ..PortalOutcome::allow()
        },
    )
}
