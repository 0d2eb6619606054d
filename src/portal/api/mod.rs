//! The admin REST API (`/.partnergate/api/v1/…`, CONTRACT §3 and §7): JSON, authenticated
//! by the gateway's own session cookie or a bearer JWT of a configured issuer, and
//! authorised in two steps:
//!
//! 1. the policy engine, with a built-in route per operation ([`ops::OPS`]): the caller
//!    must be an active user of an active org holding one of the operation's permissions
//!    (and, for owner-only operations, be in an org of `server.owner_org_type`);
//! 2. the lifecycle bounds ([`crate::lifecycle::Admin`]): a delegated partner admin acts
//!    only inside their own org, hands out only delegable roles the org allows, never
//!    above their own rights, within the seat cap.
//!
//! Every refusal of an authenticated caller is a 403 whose body names the reason, and is
//! appended to the audit log. Cookie-authenticated writes pass the portal's Origin check;
//! a request with `Authorization: Bearer` is authenticated by the token alone.

// The `Err` of the helpers here is the HTTP answer itself (the axum idiom of returning
// early with a response); boxing it would only add an allocation per refusal.
#![allow(clippy::result_large_err)]

/// `let caller = caller!(op, req);` or return the refusal.
macro_rules! caller {
    ($op:expr, $req:expr) => {
        match $crate::portal::api::authorize(&$op, &$req).await {
            Ok(caller) => caller,
            Err(response) => return response,
        }
    };
}

/// `let x = try_store!(caller, expr[, target, org]);` or return the answer to the error.
macro_rules! try_store {
    ($caller:expr, $e:expr, $target:expr, $org:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $caller.store_error(e, $target, $org).await,
        }
    };
    ($caller:expr, $e:expr) => {
        try_store!($caller, $e, None, None)
    };
}

/// `let x = or_answer!(result);`: the value, or return the `Err` (a finished answer).
macro_rules! or_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}

/// `let body: T = json_body!(caller, bytes);` or return the 400.
macro_rules! json_body {
    ($caller:expr, $body:expr) => {
        or_answer!($crate::portal::api::parse_body(&$caller, &$body))
    };
}

mod audit;
mod grants;
pub mod openapi;
pub mod ops;
mod orgs;
mod users;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use crate::directory::{
    AuditActor, AuditEntry, AuditOutcome, CachedIdentity, Identity, StoreError, Timestamp,
};
use crate::jwt::bearer_token;
use crate::lifecycle::{Admin, Refusal};
use crate::policy::decide::{decide, Decision, Request as PolicyRequest};
use crate::session::SessionState;

use super::{session_cookie, with_outcome, PortalContext, PortalOutcome, PortalState, Verdict};

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
            "/orgs/{org}/invitations",
            get(users::invitations).post(users::invite),
        )
        .route(
            "/users/{user}",
            get(users::get).patch(users::update).delete(users::remove),
        )
        .route("/users/{user}/{action}", post(users::status))
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

    /// 403 with `reason`, after appending the refused attempt to the audit log.
    pub async fn refuse(
        &self,
        reason: &'static str,
        target: Option<String>,
        org_id: Option<String>,
    ) -> Response {
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
        let store = self.state.sessions().directory().store().clone();
        if let Err(e) = store.append_audit(&entry, self.now).await {
            // Fail closed: the refusal stands; the operator sees why it is not audited.
            tracing::error!(request_id = %self.ctx.request_id, "refusal not audited: {e}");
        }
        let body =
            json!({ "error": "forbidden", "reason": reason, "request_id": self.ctx.request_id });
        let outcome = PortalOutcome {
            verdict: Verdict::Deny,
            reason: Some(reason),
            ..self.outcome()
        };
        with_outcome((StatusCode::FORBIDDEN, Json(body)).into_response(), outcome)
    }

    /// A refusal from the lifecycle bounds.
    pub async fn refuse_bounds(
        &self,
        refusal: Refusal,
        target: Option<String>,
        org_id: Option<String>,
    ) -> Response {
        self.refuse(refusal.as_str(), target, org_id).await
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

    /// The answer to a store error: 404, 409, 400, 403 (a store refusal, audited) or 503.
    pub async fn store_error(
        &self,
        e: StoreError,
        target: Option<String>,
        org_id: Option<String>,
    ) -> Response {
        match e {
            StoreError::NotFound(m) => self.error(StatusCode::NOT_FOUND, "not_found", &m),
            StoreError::Conflict(m) => self.error(StatusCode::CONFLICT, "conflict", &m),
            StoreError::Invalid(problems) => {
                self.error(StatusCode::BAD_REQUEST, "invalid", &problems.join("; "))
            }
            StoreError::Refused(reason) => self.refuse(reason, target, org_id).await,
            StoreError::Unavailable(m) => unavailable(&self.ctx, &m, self.outcome()),
        }
    }

    /// A 400/404/409 answer (not a refusal: nothing to audit).
    pub fn error(&self, status: StatusCode, error: &str, message: &str) -> Response {
        with_outcome(
            error_body(status, error, message, &self.ctx.request_id),
            self.outcome(),
        )
    }

    pub fn bad_request(&self, message: &str) -> Response {
        self.error(StatusCode::BAD_REQUEST, "bad_request", message)
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

/// Authenticate the request and run the policy engine for `op`. `Err` is the answer:
/// 401 without valid credentials, 403 (audited) when the policy denies, 503 when the
/// directory cannot answer.
pub async fn authorize(op: &'static Op, req: &ApiRequest) -> Result<Caller, Response> {
    let (state, ctx, headers) = (&req.state, &req.ctx, &req.headers);
    let now = state.sessions().clock().now();
    let entry = match authenticate(state, ctx, headers, now).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return Err(unauthenticated(ctx)),
        Err(e) => return Err(unavailable(ctx, &e, PortalOutcome::allow())),
    };
    let owner_type = &ctx.config.server.owner_org_type;
    let caller = Caller {
        owner: entry.identity.org.org_type == *owner_type,
        entry,
        op,
        ctx: ctx.clone(),
        state: state.clone(),
        now,
    };
    let route = op.route(owner_type);
    let request = PolicyRequest {
        method: &op.method,
        account: None,
        now,
    };
    match decide(&route, &request, Some(caller.identity())) {
        Decision::Allow => Ok(caller),
        Decision::Deny(reason) => {
            let org = Some(caller.identity().org.id.clone());
            Err(caller.refuse(reason.as_str(), None, org).await)
        }
        Decision::Unauthenticated => Err(unauthenticated(ctx)),
    }
}

/// The caller's identity: bearer token first when present (and then only it), else the
/// session cookie. `Ok(None)`: no valid credentials.
async fn authenticate(
    state: &Arc<PortalState>,
    ctx: &PortalContext,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Option<Arc<CachedIdentity>>, StoreError> {
    let directory = state.sessions().directory();
    let user_id = if let Some(token) = bearer_token(headers) {
        let Ok(verified) = ctx.bearer.verify(token, now) else {
            return Ok(None);
        };
        directory.user_id_for_claim(&verified.user).await?
    } else if let Some(token) = session_cookie(headers, &ctx.config) {
        let idle = ctx.config.session.idle_timeout;
        match state.sessions().resolve(token, idle).await? {
            SessionState::Valid(live) => Some(live.user_id.clone()),
            _ => None,
        }
    } else {
        None
    };
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    directory.identity(&user_id).await
}

fn error_body(status: StatusCode, error: &str, message: &str, request_id: &str) -> Response {
    let body = json!({ "error": error, "message": message, "request_id": request_id });
    (status, Json(body)).into_response()
}

fn unauthenticated(ctx: &PortalContext) -> Response {
    let mut response = error_body(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "sign in, or send Authorization: Bearer <token>",
        &ctx.request_id,
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    with_outcome(
        response,
        PortalOutcome {
            verdict: Verdict::Unauthenticated,
            reason: Some("no_credentials"),
            ..PortalOutcome::allow()
        },
    )
}

/// 503: the directory cannot answer (the reason goes to the log only).
fn unavailable(ctx: &PortalContext, e: &dyn std::fmt::Display, outcome: PortalOutcome) -> Response {
    tracing::error!(request_id = %ctx.request_id, "directory error: {e}");
    with_outcome(
        error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the directory is unavailable",
            &ctx.request_id,
        ),
        PortalOutcome {
            verdict: Verdict::Error,
            reason: Some("directory_unavailable"),
            ..outcome
        },
    )
}

async fn not_found(Extension(ctx): Extension<PortalContext>) -> Response {
    with_outcome(
        error_body(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such API endpoint",
            &ctx.request_id,
        ),
        PortalOutcome::deny("no_route"),
    )
}

/// Parse a JSON body; `Err` is a 400 naming the problem.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    caller: &Caller,
    body: &[u8],
) -> Result<T, Response> {
    // Raw control characters are already invalid JSON; escaped ones are refused too (no
    // field of the API takes one, and PostgreSQL text cannot hold NUL).
    if has_escaped_control(&body.to_ascii_lowercase()) {
        return Err(caller.bad_request("control characters are not allowed in the body"));
    }
    serde_json::from_slice(body).map_err(|e| caller.bad_request(&format!("invalid JSON body: {e}")))
}

/// Whether a (lower-cased) JSON text has a `\u0000`–`\u001f` or `\u007f` escape.
fn has_escaped_control(lower: &[u8]) -> bool {
    lower.windows(6).any(|w| {
        w.starts_with(b"\\u00")
            && ((w[4] == b'0' || w[4] == b'1') && w[5].is_ascii_hexdigit()
                || (w[4] == b'7' && w[5] == b'f'))
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
