//! The gateway's own pages under `/.partnergate/` (the reserved paths): login,
//! logout, whoami, the assertion JWKS, onboarding, the admin API and its web console. An
//! axum router the proxy calls in-process for reserved paths; what the proxy knows about
//! the request travels in [`PortalContext`], and what the access log needs comes back in
//! [`PortalOutcome`].

mod account;
pub mod api;
mod console;
mod login;
mod onboarding;
mod pages;
mod passkey;
mod rd;
mod reset;
mod second;
mod sso;

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use crate::admission::{AuthFailure, Authenticator, Identify};
use crate::config::{AuthMode, Config};
use crate::directory::{CachedIdentity, StoreError};
use crate::jwt::BearerVerifier;
use crate::lifecycle::Notifier;
use crate::metrics::LoginMetrics;
use crate::session::{cookie, LiveSession, LoginService, Sessions};

pub use pages::escape as escape_html;
pub use rd::safe_redirect;

pub const PREFIX: &str = "/.partnergate";
pub const LOGIN_PATH: &str = "/.partnergate/login";

/// What the proxy tells the portal about a request.
#[derive(Clone)]
pub struct PortalContext {
    pub config: Arc<Config>,
    /// The assertion public key set, when `[assertion]` is configured.
    pub jwks: Option<Arc<str>>,
    pub client_ip: IpAddr,
    pub request_id: String,
    /// Bearer tokens accepted by the admin API (`[[issuers]]`).
    pub bearer: Arc<BearerVerifier>,
}

impl PortalContext {
    /// Authentication of requests under this request's configuration: the one
    /// authenticator the proxy uses too.
    pub fn authenticator<'a>(&'a self, sessions: &'a Sessions) -> Authenticator<'a> {
        Authenticator {
            sessions,
            bearer: &self.bearer,
            session: &self.config.session,
        }
    }
}

/// How the portal decided, for the access log and the request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    Unauthenticated,
    Error,
}

/// Attached to every portal response as an extension.
#[derive(Debug, Clone)]
pub struct PortalOutcome {
    pub verdict: Verdict,
    pub reason: Option<&'static str>,
    pub user: Option<String>,
    pub org: Option<String>,
}

impl PortalOutcome {
    pub fn allow() -> Self {
        PortalOutcome {
            verdict: Verdict::Allow,
            reason: None,
            user: None,
            org: None,
        }
    }

    pub fn deny(reason: &'static str) -> Self {
        PortalOutcome {
            verdict: Verdict::Deny,
            reason: Some(reason),
            user: None,
            org: None,
        }
    }

    fn with(mut self, verdict: Verdict, reason: &'static str) -> Self {
        self.verdict = verdict;
        self.reason = Some(reason);
        self
    }
}

/// Shared by every portal handler.
pub struct PortalState {
    pub login: LoginService,
    pub metrics: LoginMetrics,
    /// Told about every new invitation (logs it without the link).
    pub notifier: Arc<dyn Notifier>,
    /// With `[mail]`: invitations, reset links and lockout notices go out as mail.
    pub mail: Option<crate::mail::Mail>,
    /// Partner SSO: the OpenID Connect client of every org's connection.
    pub sso: Arc<crate::sso::Sso>,
    /// Registration requests per client IP in the last 24 hours (this instance).
    pub registrations: moka::sync::Cache<IpAddr, u32>,
}

/// The per-IP registration counter of [`PortalState::registrations`].
pub fn registration_counter() -> moka::sync::Cache<IpAddr, u32> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(std::time::Duration::from_secs(24 * 3600))
        .build()
}

impl PortalState {
    pub fn sessions(&self) -> &Arc<Sessions> {
        self.login.sessions()
    }
}

pub fn router(state: Arc<PortalState>) -> Router {
    Router::new()
        .route("/.partnergate/login", get(login::page).post(login::submit))
        .route(second::SECOND_PATH, get(second::page).post(second::submit))
        .route("/.partnergate/logout", post(login::logout))
        .route(reset::RESET_PATH, get(reset::page).post(reset::request))
        .route(
            "/.partnergate/reset/{token}",
            get(reset::token_page).post(reset::token_submit),
        )
        .route(account::ACCOUNT_PATH, get(account::page))
        .route(passkey::SCRIPT_PATH, get(passkey::script))
        .route(
            "/.partnergate/account/passkey",
            get(passkey::register_page).post(passkey::register),
        )
        .route(
            "/.partnergate/account/passkey/options",
            post(passkey::register_options),
        )
        .route(
            "/.partnergate/login/passkey",
            get(passkey::sign_in_page).post(passkey::sign_in),
        )
        .route(
            "/.partnergate/login/passkey/options",
            post(passkey::sign_in_options),
        )
        .route(
            account::ENROL_PATH,
            get(account::enrol_page).post(account::enrol_submit),
        )
        .route(
            "/.partnergate/account/factors/remove",
            post(account::remove_factor),
        )
        .route(
            "/.partnergate/account/recovery",
            post(account::new_recovery_codes),
        )
        .route(
            "/.partnergate/account/password",
            post(account::change_password),
        )
        .route(
            "/.partnergate/account/sessions/end",
            post(account::end_session),
        )
        .route(
            "/.partnergate/account/sessions/end-others",
            post(account::end_other_sessions),
        )
        .route("/.partnergate/sso/callback", get(sso::callback))
        .route("/.partnergate/sso/{org}/start", get(sso::start))
        .route("/.partnergate/sso/{org}/logout", get(sso::provider_logout))
        .route(
            "/.partnergate/sso/{org}/backchannel-logout",
            post(sso::backchannel),
        )
        .route("/.partnergate/whoami", get(whoami))
        .route("/.partnergate/jwks.json", get(jwks))
        .route(
            "/.partnergate/register",
            get(onboarding::register_page).post(onboarding::register_submit),
        )
        .route(
            "/.partnergate/invite/{token}",
            get(onboarding::invite_page).post(onboarding::invite_submit),
        )
        .merge(console::router())
        .nest(api::PREFIX, api::router())
        .fallback(not_found)
        .layer(middleware::from_fn(check_origin))
        .layer(Extension(state))
}

/// Writes must come from a page of `public_url`: `Origin`, else `Referer`.
/// A request with `Authorization: Bearer` is exempt: a browser never adds that header on
/// its own, and the admin API then authenticates it by the token alone (never the cookie).
/// So is an identity provider's back-channel logout: server to server, with no cookie,
/// authenticated by the signed logout token it carries.
async fn check_origin(
    Extension(ctx): Extension<PortalContext>,
    request: Request,
    next: Next,
) -> Response {
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let bearer = crate::jwt::bearer_token(request.headers()).is_some();
    let path = request.uri().path();
    let backchannel =
        path.starts_with("/.partnergate/sso/") && path.ends_with("/backchannel-logout");
    if write && !bearer && !backchannel && !same_origin(request.headers(), &ctx) {
        if let Some((state, entry)) = origin_refusal(&request, &ctx) {
            let now = state.sessions().clock().now();
            let store = state.sessions().directory().store().clone();
            if let Err(e) = store.append_audit(&entry, now).await {
                tracing::error!(request_id = %ctx.request_id, "origin refusal not audited: {e}");
            }
        }
        return with_outcome(
            pages::message(
                StatusCode::FORBIDDEN,
                "Request refused",
                "This form was sent from another site.",
            ),
            PortalOutcome::deny("origin_mismatch"),
        );
    }
    next.run(request).await
}

/// A refused cross-origin write is audited (`request.origin_refused`): what was sent where,
/// from which address and page, never the body.
fn origin_refusal(
    request: &Request,
    ctx: &PortalContext,
) -> Option<(Arc<PortalState>, crate::directory::AuditEntry)> {
    use crate::directory::audit::{AuditEntry, AuditOutcome, ACTOR_ANONYMOUS};
    let state = request.extensions().get::<Arc<PortalState>>().cloned()?;
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(|v| v.chars().take(200).collect::<String>())
    };
    let path: String = request.uri().path().chars().take(200).collect();
    let entry = AuditEntry {
        ip: Some(ctx.client_ip.to_string()),
        request_id: Some(ctx.request_id.clone()),
        target: Some(format!("path:{path}")),
        reason: Some("origin_mismatch".into()),
        after: Some(serde_json::json!({
            "method": request.method().as_str(),
            "origin": header(header::ORIGIN),
            "referer_sent": header(header::REFERER).is_some(),
        })),
        ..AuditEntry::new(
            ACTOR_ANONYMOUS,
            "request.origin_refused",
            AuditOutcome::Denied,
        )
    };
    Some((state, entry))
}

fn same_origin(headers: &HeaderMap, ctx: &PortalContext) -> bool {
    let origin = ctx.config.server.public_url.origin();
    if let Some(o) = headers.get(header::ORIGIN) {
        return o.as_bytes().eq_ignore_ascii_case(origin.as_bytes());
    }
    match headers.get(header::REFERER).and_then(|r| r.to_str().ok()) {
        Some(r) => {
            r.get(..origin.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(&origin))
                && matches!(r.as_bytes().get(origin.len()), None | Some(b'/'))
        }
        None => false,
    }
}

/// The session cookie of a request, if any.
fn session_cookie<'a>(headers: &'a HeaderMap, config: &Config) -> Option<&'a str> {
    cookie::in_headers(headers, &config.session.cookie_name)
}

async fn whoami(
    Extension(state): Extension<Arc<PortalState>>,
    Extension(ctx): Extension<PortalContext>,
    headers: HeaderMap,
) -> Response {
    let session = &ctx.config.session;
    let unauthenticated = || {
        with_outcome(
            json_error(StatusCode::UNAUTHORIZED, "unauthenticated", &ctx.request_id),
            PortalOutcome::allow().with(Verdict::Unauthenticated, "no_session"),
        )
    };
    let (live, identity) = match signed_in(&state, &ctx, &headers).await {
        Ok(Some((live, entry))) => (live, entry.identity.clone()),
        Ok(None) => return unauthenticated(),
        Err(e) => return unavailable(&ctx, &e),
    };
    let body = serde_json::json!({
        "user": identity.email,
        "user_id": identity.user_id,
        "org": identity.org.id,
        "org_name": identity.org.name,
        "org_type": identity.org.org_type,
        "roles": identity.roles,
        "idle_expires_at": rfc3339(live.idle_expires_at(session.idle_timeout)),
        "absolute_expires_at": rfc3339(live.expires_at),
    });
    let outcome = PortalOutcome {
        user: Some(identity.email.clone()),
        org: Some(identity.org.id.clone()),
        ..PortalOutcome::allow()
    };
    with_outcome(Json(body).into_response(), outcome)
}

/// The live session of the request's cookie and its user, when both are valid and the user
/// (and their org) may act; `Ok(None)` otherwise.
async fn signed_in(
    state: &PortalState,
    ctx: &PortalContext,
    headers: &HeaderMap,
) -> Result<Option<(Arc<LiveSession>, Arc<CachedIdentity>)>, StoreError> {
    let authn = ctx.authenticator(state.sessions());
    match authn.identify(headers, AuthMode::Session).await {
        Ok(caller) => Ok(caller
            .session()
            .cloned()
            .filter(|_| caller.identity().is_usable())
            .map(|live| (live, caller.entry))),
        Err(AuthFailure::Unavailable(e)) => Err(e),
        Err(_) => Ok(None),
    }
}

async fn jwks(Extension(ctx): Extension<PortalContext>) -> Response {
    let body = match &ctx.jwks {
        Some(keys) => keys.to_string(),
        None => r#"{"keys":[]}"#.to_string(),
    };
    with_outcome(
        ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        PortalOutcome::allow(),
    )
}

async fn not_found(Extension(ctx): Extension<PortalContext>) -> Response {
    with_outcome(
        json_error(StatusCode::NOT_FOUND, "not found", &ctx.request_id),
        PortalOutcome::deny("no_route"),
    )
}

fn unavailable(ctx: &PortalContext, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(request_id = %ctx.request_id, "directory error: {e}");
    with_outcome(
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable",
            &ctx.request_id,
        ),
        PortalOutcome::allow().with(Verdict::Error, "directory_unavailable"),
    )
}

fn json_error(status: StatusCode, message: &str, request_id: &str) -> Response {
    let body = serde_json::json!({ "error": message, "request_id": request_id });
    (status, Json(body)).into_response()
}

pub(crate) fn with_outcome(mut response: Response, outcome: PortalOutcome) -> Response {
    response.extensions_mut().insert(outcome);
    response
}

fn rfc3339(ts: i64) -> String {
    crate::clock::rfc3339(ts).unwrap_or_default()
}
