//! `/.partnergate/account`: a signed-in user's own page: their second factors (add an
//! authenticator app, remove one, new recovery codes), their password, and their sessions
//! (see them, end one, end all others). Enrolment (`/account/mfa`) is the one page a
//! session without a second factor of an org that requires one may reach.
//!
//! Changing factors or recovery codes of a user who has a factor needs a session that was
//! signed in with one (otherwise: sign in again with it); changing the password needs the
//! current password. Every change is audited.

use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use crate::admission::{AuthFailure, Caller};
use crate::config::AuthMode;
use crate::directory::{
    Amr, AuditEntry, AuditOutcome, Factor, FactorKind, FactorSummary, Identity, SessionRecord,
    StoreError,
};
use crate::mfa::{self, recovery, totp};
use crate::password::PasswordPolicy;
use crate::session::cookie;

use super::login::{csrf_ok, csrf_token, scope, see_other, set_cookie, set_csrf_cookie};
use super::{pages, safe_redirect, with_outcome, PortalContext, PortalOutcome, PortalState};

pub const ACCOUNT_PATH: &str = "/.partnergate/account";
pub const ENROL_PATH: &str = "/.partnergate/account/mfa";

/// The enrolment page with `rd` to come back to.
pub fn enrol_path(rd: &str) -> String {
    let encoded = crate::admission::login_location(rd, None);
    format!(
        "{ENROL_PATH}?rd={}",
        encoded.trim_start_matches("/.partnergate/login?rd=")
    )
}

/// The signed-in user of an account page, or the response to send instead.
pub(super) struct Me {
    pub(super) caller: Caller,
    session_hash: String,
}

impl Me {
    pub(super) fn identity(&self) -> &Identity {
        self.caller.identity()
    }

    fn multi_factor(&self) -> bool {
        self.caller.strength.amr.is_multi_factor()
    }

    pub(super) fn audit(&self, ctx: &PortalContext, action: &str) -> AuditEntry {
        let id = self.identity();
        AuditEntry {
            actor_email: Some(id.email.clone()),
            ip: Some(ctx.client_ip.to_string()),
            request_id: Some(ctx.request_id.clone()),
            target: Some(format!("user:{}", id.user_id)),
            org_id: Some(id.org.id.clone()),
            ..AuditEntry::new(id.user_id.clone(), action, AuditOutcome::Ok)
        }
    }

    pub(super) fn outcome(&self, reason: Option<&'static str>) -> PortalOutcome {
        PortalOutcome {
            reason,
            user: Some(self.identity().email.clone()),
            org: Some(self.identity().org.id.clone()),
            ..PortalOutcome::allow()
        }
    }
}

/// The session's user (any second-factor state), if usable; else the login page.
pub(super) async fn me(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    rd: &str,
) -> Result<Me, Response> {
    let authn = ctx.authenticator(state.sessions());
    let to_login = || {
        with_outcome(
            see_other(&super::login::login_path_with(rd)),
            PortalOutcome::allow().with(super::Verdict::Unauthenticated, "no_session"),
        )
    };
    let principal = match authn.authenticate(headers, AuthMode::Session).await {
        Ok(p) => p,
        Err(AuthFailure::Unavailable(e)) => return Err(super::unavailable(ctx, &e)),
        Err(_) => return Err(to_login()),
    };
    let caller = match authn.resolve_any(principal).await {
        Ok(c) => c,
        Err(AuthFailure::Unavailable(e)) => return Err(super::unavailable(ctx, &e)),
        Err(_) => return Err(to_login()),
    };
    let Some(session_hash) = caller.session().map(|s| s.id_hash.clone()) else {
        return Err(to_login());
    };
    if !caller.identity().is_usable() {
        return Err(to_login());
    }
    Ok(Me {
        caller,
        session_hash,
    })
}

/// A user with a factor must have used one in this sign-in to change factors.
pub(super) fn needs_step_up(me: &Me) -> Option<Response> {
    if me.identity().second_factors > 0 && !me.multi_factor() {
        let back = super::login::login_path_with(ACCOUNT_PATH);
        return Some(with_outcome(
            see_other(&format!("{back}&step_up=mfa")),
            me.outcome(Some("mfa_required")),
        ));
    }
    None
}

/// While the org requires a second factor the user lacks, only enrolment is open.
fn enrolment_only(me: &Me) -> Option<Response> {
    let id = me.identity();
    (id.org.mfa_required && !me.multi_factor())
        .then(|| with_outcome(see_other(ENROL_PATH), me.outcome(Some("mfa_required"))))
}

#[derive(Deserialize)]
pub struct RdQuery {
    rd: Option<String>,
    notice: Option<String>,
}

/// The account overview.
pub async fn page(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Query(q): Query<RdQuery>,
    headers: HeaderMap,
) -> Response {
    let me = match me(&state, &ctx, &headers, ACCOUNT_PATH).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    if let Some(r) = enrolment_only(&me) {
        return r;
    }
    let notice = q.notice.as_deref().and_then(notice_text);
    overview(&state, &ctx, &headers, &me, StatusCode::OK, notice, None).await
}

fn notice_text(key: &str) -> Option<&'static str> {
    Some(match key {
        "factor_added" => "Your authenticator app was added.",
        "factor_removed" => "The factor was removed.",
        "password_changed" => "Your password was changed. Your other sessions were signed out.",
        "session_ended" => "The session was signed out.",
        "sessions_ended" => "All your other sessions were signed out.",
        _ => return None,
    })
}

async fn overview(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    me: &Me,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let store = state.sessions().directory().store().clone();
    let id = me.identity();
    let factors = match store.factors(&id.user_id).await {
        Ok(f) => f,
        Err(e) => return super::unavailable(ctx, &e),
    };
    let codes_left = match store.recovery_codes_left(&id.user_id).await {
        Ok(n) => n,
        Err(e) => return super::unavailable(ctx, &e),
    };
    let sessions = match state.sessions().of_user(&id.user_id).await {
        Ok(s) => s,
        Err(e) => return super::unavailable(ctx, &e),
    };
    let (csrf, fresh) = csrf_token(ctx, headers);
    let view = pages::AccountView {
        email: &id.email,
        org: &id.org.name,
        roles: &id.roles,
        mfa_required: id.org.mfa_required,
        factors: factors.iter().map(FactorSummary::from).collect(),
        recovery_codes_left: codes_left,
        sessions: sessions
            .iter()
            .map(|s| session_line(s, &me.session_hash))
            .collect(),
        csrf: &csrf,
        notice,
        error,
        password_min: ctx.config.login.password_min_length,
    };
    let mut response = pages::account(status, &view);
    if fresh {
        set_csrf_cookie(ctx, &mut response, &csrf);
    }
    with_outcome(response, me.outcome(None))
}

fn session_line(s: &SessionRecord, current: &str) -> pages::SessionLine {
    pages::SessionLine {
        id: s.id_hash.clone(),
        started: crate::clock::rfc3339(s.created_at).unwrap_or_default(),
        last_seen: crate::clock::rfc3339(s.last_seen_at).unwrap_or_default(),
        methods: s.amr.names().join(", "),
        current: s.id_hash == current,
    }
}

#[derive(Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
    rd: Option<String>,
}

/// `GET /account/mfa`: a new secret as a QR code and as text, and the form to confirm it
/// with a first code.
pub async fn enrol_page(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    Query(q): Query<RdQuery>,
    headers: HeaderMap,
) -> Response {
    let rd = safe_redirect(q.rd.as_deref());
    let me = match me(&state, &ctx, &headers, &enrol_path(&rd)).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    if let Some(r) = needs_step_up(&me) {
        return r;
    }
    let secret = totp::new_secret();
    enrol_form(&ctx, &headers, &me, StatusCode::OK, &secret, &rd, "", None)
}

#[allow(clippy::too_many_arguments)]
fn enrol_form(
    ctx: &PortalContext,
    headers: &HeaderMap,
    me: &Me,
    status: StatusCode,
    secret: &str,
    rd: &str,
    name: &str,
    error: Option<&str>,
) -> Response {
    let id = me.identity();
    let uri = totp::provisioning_uri(secret, &id.email).unwrap_or_default();
    let qr = totp::qr_svg(&uri).unwrap_or_default();
    let (csrf, fresh) = csrf_token(ctx, headers);
    let view = pages::EnrolView {
        secret,
        uri: &uri,
        qr_svg: &qr,
        csrf: &csrf,
        rd,
        name,
        error,
        required: id.org.mfa_required && id.second_factors == 0,
    };
    let mut response = pages::enrol(status, &view);
    if fresh {
        set_csrf_cookie(ctx, &mut response, &csrf);
    }
    with_outcome(response, me.outcome(None))
}

/// `POST /account/mfa`: the first code proves the app holds the secret; the factor is
/// stored with that code's time step used, and the session is renewed as a sign-in with a
/// second factor. The first factor comes with ten recovery codes, shown once.
pub async fn enrol_submit(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(f): Form<EnrolForm>,
) -> Response {
    let rd = safe_redirect(f.rd.as_deref());
    let me = match me(&state, &ctx, &headers, &enrol_path(&rd)).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    if let Some(r) = needs_step_up(&me) {
        return r;
    }
    let again = |status, error: &str, reason| {
        let mut r = enrol_form(
            &ctx,
            &headers,
            &me,
            status,
            &f.secret,
            &rd,
            &f.name,
            Some(error),
        );
        r.extensions_mut()
            .insert(me.outcome(Some(reason)).with(super::Verdict::Deny, reason));
        r
    };
    if !csrf_ok(&ctx, &headers, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            "The form expired. Please try again.",
            "csrf",
        );
    }
    let Some(name) = mfa::factor_name(&f.name) else {
        return again(
            StatusCode::BAD_REQUEST,
            "Give the authenticator a name (up to 64 characters), e.g. \"Work phone\".",
            "bad_name",
        );
    };
    let secret_ok = f.secret.len() == 32 && totp::provisioning_uri(&f.secret, "x").is_some();
    if !secret_ok {
        return again(
            StatusCode::BAD_REQUEST,
            "The form was changed. Please start again.",
            "bad_secret",
        );
    }
    let now = state.sessions().clock().now();
    let Some(step) = totp::matching_step(&f.secret, &f.code, now) else {
        return again(
            StatusCode::BAD_REQUEST,
            "That code is not right. Enter the six digits your app shows now.",
            "bad_code",
        );
    };
    let id = me.identity();
    let first = id.second_factors == 0;
    let factor = Factor {
        id: mfa::new_factor_id(),
        user_id: id.user_id.clone(),
        kind: FactorKind::Totp,
        name: name.clone(),
        secret: f.secret.clone(),
        last_step: Some(step),
        created_at: now,
        last_used_at: Some(now),
    };
    let (codes, hashes) = recovery::generate();
    let mut audit = me.audit(&ctx, "factor.enrol");
    audit.after = Some(serde_json::json!({
        "factor": factor.id, "kind": "totp", "name": name, "recovery_codes": first,
    }));
    let store = state.sessions().directory().store().clone();
    let with_codes = first.then_some(hashes.as_slice());
    if let Err(e) = store.add_factor(&factor, with_codes, &audit, now).await {
        return super::unavailable(&ctx, &e);
    }
    state.sessions().directory().invalidate_user(&id.user_id);
    let amr = me.caller.strength.amr.with(Amr::PWD).with(Amr::OTP);
    let mut response = match renew_session(&state, &ctx, &headers, &id.user_id, amr).await {
        Ok(r) => r,
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let body = if first {
        pages::recovery_codes(StatusCode::OK, &codes, &rd)
    } else {
        see_other(&format!("{ACCOUNT_PATH}?notice=factor_added"))
    };
    merge(&mut response, body);
    with_outcome(response, me.outcome(Some("factor_enrolled")))
}

/// End the request's session and start one for `user_id` with `amr`: the answer carries
/// the new cookie (a sign-in that gained a factor gets a new session token).
pub(super) async fn renew_session(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    user_id: &str,
    amr: Amr,
) -> Result<Response, StoreError> {
    let config = &ctx.config;
    let new = state
        .sessions()
        .create(user_id, amr, config.session.absolute_timeout)
        .await?;
    if let Some(old) = cookie::in_headers(headers, &config.session.cookie_name) {
        state.sessions().end(old).await?;
    }
    let mut response = see_other(ACCOUNT_PATH);
    let value = cookie::set(&config.session.cookie_name, &new.token, scope(ctx));
    set_cookie(&mut response, &value);
    Ok(response)
}

/// `into`'s cookies on `body`'s status, headers and content.
fn merge(into: &mut Response, body: Response) {
    let cookies: Vec<_> = into
        .headers()
        .get_all(axum::http::header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    *into = body;
    for c in cookies {
        into.headers_mut().append(axum::http::header::SET_COOKIE, c);
    }
}

#[derive(Deserialize)]
pub struct IdForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /account/factors/remove`.
pub async fn remove_factor(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(f): Form<IdForm>,
) -> Response {
    let me = match guarded(&state, &ctx, &headers, &f.csrf).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let id = me.identity();
    if id.org.mfa_required && id.second_factors <= 1 {
        let text = "Your organisation requires a second factor: add another one before you remove this one.";
        return overview(
            &state,
            &ctx,
            &headers,
            &me,
            StatusCode::CONFLICT,
            None,
            Some(text),
        )
        .await;
    }
    let mut audit = me.audit(&ctx, "factor.remove");
    audit.after = Some(serde_json::json!({ "factor": f.id }));
    let now = state.sessions().clock().now();
    let store = state.sessions().directory().store().clone();
    match store.remove_factor(&id.user_id, &f.id, &audit, now).await {
        Ok(true) => {
            state.sessions().directory().invalidate_user(&id.user_id);
            with_outcome(
                see_other(&format!("{ACCOUNT_PATH}?notice=factor_removed")),
                me.outcome(Some("factor_removed")),
            )
        }
        Ok(false) => {
            let text = "No such factor.";
            overview(
                &state,
                &ctx,
                &headers,
                &me,
                StatusCode::NOT_FOUND,
                None,
                Some(text),
            )
            .await
        }
        Err(e) => super::unavailable(&ctx, &e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /account/recovery`: ten new recovery codes (the old ones stop working).
pub async fn new_recovery_codes(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let me = match guarded(&state, &ctx, &headers, &f.csrf).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let id = me.identity();
    if id.second_factors == 0 {
        let text = "Recovery codes come with a second factor: add an authenticator app first.";
        return overview(
            &state,
            &ctx,
            &headers,
            &me,
            StatusCode::CONFLICT,
            None,
            Some(text),
        )
        .await;
    }
    let (codes, hashes) = recovery::generate();
    let audit = me.audit(&ctx, "recovery_codes.replace");
    let now = state.sessions().clock().now();
    let store = state.sessions().directory().store().clone();
    if let Err(e) = store
        .replace_recovery_codes(&id.user_id, &hashes, &audit, now)
        .await
    {
        return super::unavailable(&ctx, &e);
    }
    with_outcome(
        pages::recovery_codes(StatusCode::OK, &codes, ACCOUNT_PATH),
        me.outcome(Some("recovery_codes_replaced")),
    )
}

/// The user of a form post on the account page, after CSRF, enrolment and step-up checks.
async fn guarded(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Me, Response> {
    let me = posted(state, ctx, headers, csrf).await?;
    if let Some(r) = needs_step_up(&me) {
        return Err(r);
    }
    Ok(me)
}

/// The user of a form post on the account page, after the CSRF and enrolment checks.
/// Seeing and ending one's own sessions needs no second factor (it only takes access
/// away), so the session forms stop here.
async fn posted(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Me, Response> {
    let me = me(state, ctx, headers, ACCOUNT_PATH).await?;
    if let Some(r) = enrolment_only(&me) {
        return Err(r);
    }
    if !csrf_ok(ctx, headers, csrf) {
        let text = "The form expired. Please try again.";
        let r = overview(
            state,
            ctx,
            headers,
            &me,
            StatusCode::FORBIDDEN,
            None,
            Some(text),
        )
        .await;
        return Err(with_outcome(r, PortalOutcome::deny("csrf")));
    }
    Ok(me)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /account/password`: the current password, then the new one under the password
/// policy; every other session of the user ends.
pub async fn change_password(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    let me = match guarded(&state, &ctx, &headers, &f.csrf).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let id = me.identity();
    let store = state.sessions().directory().store().clone();
    let refuse = |status, text: &'static str| {
        let me = &me;
        let (state, ctx, headers) = (&state, &ctx, &headers);
        async move { overview(state, ctx, headers, me, status, None, Some(text)).await }
    };
    let record = match store.user_by_email(&id.email).await {
        Ok(Some(r)) => r,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "No such user.").await,
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let hasher = state.login.hasher();
    match hasher.verify(f.current, record.password_hash).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(StatusCode::FORBIDDEN, "Your current password is not right.").await
        }
        Err(_) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            )
            .await
        }
    }
    let policy = PasswordPolicy::new(ctx.config.login.password_min_length);
    if let Err(problem) = policy.check(&f.password) {
        let text = problem.to_string();
        return overview(
            &state,
            &ctx,
            &headers,
            &me,
            StatusCode::BAD_REQUEST,
            None,
            Some(&text),
        )
        .await;
    }
    let hash = match hasher.hash(f.password).await {
        Ok(h) => h,
        Err(_) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            )
            .await
        }
    };
    let audit = me.audit(&ctx, "password.change");
    let now = state.sessions().clock().now();
    match store
        .change_password(&id.user_id, &hash, &me.session_hash, &audit, now)
        .await
    {
        Ok(_) => {
            state.sessions().forget_user_cached(&id.user_id);
            state.sessions().directory().invalidate_user(&id.user_id);
            with_outcome(
                see_other(&format!("{ACCOUNT_PATH}?notice=password_changed")),
                me.outcome(Some("password_changed")),
            )
        }
        Err(e) => super::unavailable(&ctx, &e),
    }
}

/// `POST /account/sessions/end`: end one of the user's sessions (`id`: its id hash).
pub async fn end_session(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(f): Form<IdForm>,
) -> Response {
    let me = match posted(&state, &ctx, &headers, &f.csrf).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let id = me.identity();
    match state.sessions().end_of_user(&id.user_id, &f.id).await {
        Ok(true) => {
            let audit = me.audit(&ctx, "session.end");
            append(&state, audit).await;
            let to = if f.id == me.session_hash {
                super::LOGIN_PATH.to_string()
            } else {
                format!("{ACCOUNT_PATH}?notice=session_ended")
            };
            with_outcome(see_other(&to), me.outcome(Some("session_ended")))
        }
        Ok(false) => {
            let text = "No such session.";
            overview(
                &state,
                &ctx,
                &headers,
                &me,
                StatusCode::NOT_FOUND,
                None,
                Some(text),
            )
            .await
        }
        Err(e) => super::unavailable(&ctx, &e),
    }
}

/// `POST /account/sessions/end-others`: sign out everywhere else.
pub async fn end_other_sessions(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let me = match posted(&state, &ctx, &headers, &f.csrf).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let id = me.identity();
    let sessions = match state.sessions().of_user(&id.user_id).await {
        Ok(s) => s,
        Err(e) => return super::unavailable(&ctx, &e),
    };
    let mut ended = 0;
    for s in sessions.iter().filter(|s| s.id_hash != me.session_hash) {
        match state.sessions().end_of_user(&id.user_id, &s.id_hash).await {
            Ok(true) => ended += 1,
            Ok(false) => {}
            Err(e) => return super::unavailable(&ctx, &e),
        }
    }
    let mut audit = me.audit(&ctx, "session.end_others");
    audit.after = Some(serde_json::json!({ "sessions_ended": ended }));
    append(&state, audit).await;
    with_outcome(
        see_other(&format!("{ACCOUNT_PATH}?notice=sessions_ended")),
        me.outcome(Some("sessions_ended")),
    )
}

async fn append(state: &PortalState, audit: AuditEntry) {
    let now = state.sessions().clock().now();
    let store = state.sessions().directory().store().clone();
    if let Err(e) = store.append_audit(&audit, now).await {
        tracing::error!("account change not audited: {e}");
    }
}
