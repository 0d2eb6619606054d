//! The admin REST API (`/.partnergate/api/v1/…`): JSON, authenticated by the gateway's
//! own session cookie or a bearer JWT of a configured issuer (the one [`Authenticator`]
//! the proxy uses too), and authorised in two steps:
//!
//! 1. the policy engine, with a built-in route per operation ([`ops::OPS`]): the caller
//!    must be an active user of an active org holding one of the operation's permissions
//!    (and, for owner-only operations, be in an org of `server.owner_org_type`);
//! 2. the lifecycle bounds ([`crate::lifecycle::Admin`]): a delegated partner admin acts
//!    only inside their own org, hands out only delegable roles the org allows, never
//!    above their own rights, within the seat cap.
//!
//! Handlers return [`ApiResult`]: every refusal, bad request or failure is an
//! [`ApiError`] answered with `?`. Every refusal of an authenticated caller is a 403
//! whose body names the reason, and is appended to the audit log. Cookie-authenticated
//! writes pass the portal's Origin check; a request with `Authorization: Bearer` is
//! authenticated by the token alone.

mod audit;
mod error;
mod grants;
mod invitations;
pub mod openapi;
pub mod ops;
mod orgs;
mod scope;
mod sso;
mod users;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::Value;

use crate::admission::{AuthFailure, Identify};
use crate::config::AuthMode;
use crate::directory::{
    AuditActor, AuditEntry, AuditOutcome, CachedIdentity, Identity, StoreError, StoreResult,
    Timestamp,
};
use crate::lifecycle::{Admin, Refusal};
use crate::policy::decide::{decide, Decision, Request as PolicyRequest};

use super::{with_outcome, PortalContext, PortalOutcome, PortalState};

pub use error::{ApiError, ApiResult, PendingAudit};
pub use ops::Op;
pub use orgs::{slug, validate_org};

pub const PREFIX: &str = "/.partnergate/api/v1";

pub fn router() -> Router {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/me", get(users::me))
        .route("/orgs", get(orgs::list).post(orgs::create))
        .route("/orgs/{org}", get(orgs::get).patch(orgs::update))
        .route("/orgs/{org}/{action}", post(orgs::status))
        .route("/orgs/{org}/users", get(users::list))
        .route(
            "/orgs/{org}/sso",
            get(sso::get).put(sso::put).delete(sso::delete),
        )
        .route("/orgs/{org}/domains", get(sso::domains))
        .route(
            "/orgs/{org}/domains/{domain}",
            put(sso::add_domain).delete(sso::remove_domain),
        )
        .route(
            "/orgs/{org}/invitations",
            get(invitations::list).post(invitations::invite),
        )
        .route(
            "/users/{user}",
            get(users::get).patch(users::update).delete(users::remove),
        )
        .route("/users/{user}/{action}", post(users::status))
        .route("/users/{user}/factors/reset", post(users::reset_factors))
        .route("/users/{user}/grants", get(grants::list))
        .route(
            "/users/{user}/grants/{account}",
            put(grants::put).delete(grants::revoke),
        )
        .route("/roles", get(orgs::roles))
        .route("/roles/{role}", put(orgs::put_role))
        .route("/accounts", get(grants::accounts).post(grants::put_account))
        .route("/review", get(audit::review))
        .route("/review/{user}", post(audit::decide))
        .route("/audit", get(audit::list))
        .route("/usage", get(audit::usage))
        .fallback(not_found)
        .layer(middleware::from_fn(error::audit_refusals))
}

/// What every handler needs from the request: the portal's state and context (request
/// extensions the portal router sets) and the headers.
pub struct ApiRequest {
    pub state: Arc<PortalState>,
    pub ctx: PortalContext,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for ApiRequest {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let state = parts.extensions.get::<Arc<PortalState>>().cloned();
        let ctx = parts.extensions.get::<PortalContext>().cloned();
        match (state, ctx) {
            (Some(state), Some(ctx)) => Ok(ApiRequest {
                state,
                ctx,
                headers: parts.headers.clone(),
            }),
            // The portal router always sets both; without them, fail closed.
            _ => Err(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl ApiRequest {
    /// Authenticate the request and run the policy engine for `op`: 401 without valid
    /// credentials, 403 (audited) when the policy denies, 503 when the directory cannot
    /// answer.
    pub async fn authorize(&self, op: &'static Op) -> Result<Caller, ApiError> {
        let ctx = &self.ctx;
        let sessions = self.state.sessions();
        let now = sessions.clock().now();
        // Bearer first when present (and then only the token), else the session cookie.
        let entry = match ctx
            .authenticator(sessions)
            .identify(&self.headers, AuthMode::Any)
            .await
        {
            Ok(caller) => caller.entry,
            Err(AuthFailure::Unavailable(e)) => {
                return Err(ApiError::unavailable(&e, &ctx.request_id))
            }
            Err(_) => return Err(ApiError::unauthenticated(&ctx.request_id)),
        };
        let owner_type = &ctx.config.server.owner_org_type;
        let caller = Caller {
            owner: entry.identity.org.org_type == *owner_type,
            entry,
            op,
            ctx: self.ctx.clone(),
            state: self.state.clone(),
            now,
        };
        let route = op.route(owner_type);
        let request = PolicyRequest {
            method: &op.method,
            account: None,
            now,
            strength: Default::default(),
        };
        match decide(&route, &request, Some(caller.identity())) {
            Decision::Allow => Ok(caller),
            Decision::Deny(reason) => {
                let org = Some(caller.identity().org.id.clone());
                Err(caller.refuse(reason.as_str(), None, org))
            }
            Decision::Unauthenticated => Err(ApiError::unauthenticated(&caller.ctx.request_id)),
        }
    }
}

/// An authenticated, authorised caller of one operation.
pub struct Caller {
    pub entry: Arc<CachedIdentity>,
    pub owner: bool,
    pub op: &'static Op,
    pub ctx: PortalContext,
    pub state: Arc<PortalState>,
    pub now: Timestamp,
}

impl Caller {
    pub fn identity(&self) -> &Identity {
        &self.entry.identity
    }

    pub fn admin(&self) -> Admin<'_> {
        Admin {
            identity: &self.entry.identity,
            owner: self.owner,
        }
    }

    /// Who the audit records name for this caller's changes.
    pub fn actor(&self) -> AuditActor {
        AuditActor {
            actor_email: Some(self.identity().email.clone()),
            ip: Some(self.ctx.client_ip.to_string()),
            request_id: Some(self.ctx.request_id.clone()),
            ..AuditActor::new(self.identity().user_id.clone())
        }
    }

    /// 403 with `reason`; the refused attempt is appended to the audit log.
    pub fn refuse(
        &self,
        reason: &'static str,
        target: Option<String>,
        org_id: Option<String>,
    ) -> ApiError {
        let entry = AuditEntry {
            actor_email: Some(self.identity().email.clone()),
            ip: Some(self.ctx.client_ip.to_string()),
            request_id: Some(self.ctx.request_id.clone()),
            target,
            org_id,
            reason: Some(reason.to_string()),
            ..AuditEntry::new(
                self.identity().user_id.clone(),
                self.op.action,
                AuditOutcome::Denied,
            )
        };
        let audit = PendingAudit {
            entry,
            at: self.now,
        };
        self.named(ApiError::forbidden(reason, &self.ctx.request_id, audit))
    }

    /// A refusal from the lifecycle bounds.
    pub fn refuse_bounds(
        &self,
        refusal: Refusal,
        target: Option<String>,
        org_id: Option<String>,
    ) -> ApiError {
        self.refuse(refusal.as_str(), target, org_id)
    }

    /// A successful answer, logged as allowed for this caller.
    pub fn ok(&self, status: StatusCode, body: Value) -> Response {
        with_outcome((status, Json(body)).into_response(), self.outcome())
    }

    fn outcome(&self) -> PortalOutcome {
        PortalOutcome {
            user: Some(self.identity().email.clone()),
            org: Some(self.identity().org.id.clone()),
            ..PortalOutcome::allow()
        }
    }

    fn named(&self, e: ApiError) -> ApiError {
        e.by(&self.identity().email, &self.identity().org.id)
    }

    /// The answer to a store error: 404, 409, 400, 403 (a store refusal, audited) or 503.
    pub fn store_error(
        &self,
        e: StoreError,
        target: Option<String>,
        org_id: Option<String>,
    ) -> ApiError {
        match e {
            StoreError::NotFound(m) => self.error(StatusCode::NOT_FOUND, "not_found", &m),
            StoreError::Conflict(m) => self.error(StatusCode::CONFLICT, "conflict", &m),
            StoreError::Invalid(problems) => {
                self.error(StatusCode::BAD_REQUEST, "invalid", &problems.join("; "))
            }
            StoreError::Refused(reason) => self.refuse(reason, target, org_id),
            StoreError::Unavailable(m) => {
                self.named(ApiError::unavailable(&m, &self.ctx.request_id))
            }
        }
    }

    /// A 400/404/409 answer (not a refusal: nothing to audit).
    pub fn error(&self, status: StatusCode, error: &str, message: &str) -> ApiError {
        self.named(ApiError::new(status, error, message, &self.ctx.request_id))
    }

    pub fn bad_request(&self, message: &str) -> ApiError {
        self.error(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Parse a JSON body; `Err` is a 400 naming the problem.
    pub fn json<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError> {
        // Raw control characters are already invalid JSON; escaped ones are refused too
        // (no field of the API takes one, and PostgreSQL text cannot hold NUL).
        if has_escaped_control(&body.to_ascii_lowercase()) {
            return Err(self.bad_request("control characters are not allowed in the body"));
        }
        serde_json::from_slice(body)
            .map_err(|e| self.bad_request(&format!("invalid JSON body: {e}")))
    }

    /// Drop what this instance caches about a user or org at once (the watchers of the
    /// other instances do it from the recorded change).
    pub fn forget_user(&self, user_id: &str) {
        let sessions = self.state.sessions();
        sessions.directory().invalidate_user(user_id);
        sessions.forget_user_cached(user_id);
        sessions.directory().changed_here();
    }

    pub fn forget_org(&self, org_id: &str) {
        let sessions = self.state.sessions();
        sessions.directory().invalidate_org(org_id);
        sessions.forget_all_cached();
        sessions.directory().changed_here();
    }
}

/// `store.op().await.answer(&caller)?`: a store error as the caller's answer.
pub trait Answer<T> {
    fn answer(self, caller: &Caller) -> Result<T, ApiError>;
    /// The same, naming the target and org a store refusal is audited under.
    fn answer_for(
        self,
        caller: &Caller,
        target: &Option<String>,
        org_id: &Option<String>,
    ) -> Result<T, ApiError>;
}

impl<T> Answer<T> for StoreResult<T> {
    fn answer(self, caller: &Caller) -> Result<T, ApiError> {
        self.map_err(|e| caller.store_error(e, None, None))
    }

    fn answer_for(
        self,
        caller: &Caller,
        target: &Option<String>,
        org_id: &Option<String>,
    ) -> Result<T, ApiError> {
        self.map_err(|e| caller.store_error(e, target.clone(), org_id.clone()))
    }
}

async fn not_found(Extension(ctx): Extension<PortalContext>) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API endpoint",
        &ctx.request_id,
    )
    .logged(super::Verdict::Deny, "no_route")
    .into_response()
}

/// Whether a (lower-cased) JSON text has a `\u0000`–`\u001f` or `\u007f` escape.
fn has_escaped_control(lower: &[u8]) -> bool {
    lower.windows(6).any(|w| {
        w.starts_with(b"\\u00")
            && ((w[4] == b'0' || w[4] == b'1') && w[5].is_ascii_hexdigit()
                || (w[4] == b'7' && w[5] == b'f'))
    })
}

/// Most roles one request may hand out.
const MAX_ROLES: usize = 20;

/// A role list from a request: at least `min`, at most [`MAX_ROLES`], duplicates dropped.
pub fn role_list(mut roles: Vec<String>, min: usize) -> Result<Vec<String>, &'static str> {
    roles.sort();
    roles.dedup();
    match roles.len() {
        n if n < min => Err("roles must name at least one role"),
        n if n > MAX_ROLES => Err("roles may name at most 20 roles"),
        _ => Ok(roles),
    }
}

/// A plausible email: one '@' with text on both sides, no spaces, at most 254 bytes.
pub fn email_ok(email: &str) -> bool {
    email.len() <= 254
        && !email
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

/// Free text from a request: no control characters (a 400 otherwise).
pub fn text_ok(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// An RFC 3339 time or Unix seconds, from a JSON value.
pub fn parse_time(value: &Value) -> Option<Timestamp> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp())
        }
        _ => None,
    }
}

/// RFC 3339 (UTC) for a Unix time.
pub fn rfc3339(ts: Timestamp) -> Value {
    crate::clock::rfc3339(ts).map_or(Value::Null, Value::String)
}
