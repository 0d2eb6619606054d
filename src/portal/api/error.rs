//! The admin API's one error type, the axum way: an [`ApiError`] is a finished answer
//! (status, safe public JSON body, the outcome for the access log) that handlers return
//! with `?`. A refusal also carries its audit record; [`audit_refusals`] appends it before
//! the answer leaves, so no refusal goes unrecorded and no handler awaits the audit.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::directory::{AuditEntry, Timestamp};
use crate::portal::{with_outcome, PortalOutcome, PortalState, Verdict};

/// What a handler answers: a success, or an [`ApiError`].
pub type ApiResult = Result<Response, ApiError>;

/// A refused, invalid or failed API request, as the client is told. Boxed: it travels
/// through every `?` of a handler.
#[derive(Debug)]
pub struct ApiError(Box<Answer>);

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Value,
    outcome: PortalOutcome,
    /// 401: ask for credentials.
    challenge: bool,
    audit: Option<PendingAudit>,
}

/// The audit record of a refusal, appended by [`audit_refusals`].
#[derive(Debug, Clone)]
pub struct PendingAudit {
    pub entry: AuditEntry,
    pub at: Timestamp,
}

impl ApiError {
    /// A 400/404/409/503-style answer: `error` is a fixed code, `message` safe to show.
    pub fn new(status: StatusCode, error: &str, message: &str, request_id: &str) -> Self {
        ApiError(Box::new(Answer {
            status,
            body: json!({ "error": error, "message": message, "request_id": request_id }),
            outcome: PortalOutcome::allow(),
            challenge: false,
            audit: None,
        }))
    }

    /// 403 for an authenticated caller: the body names the reason, and the refusal is
    /// appended to the audit log.
    pub fn forbidden(reason: &'static str, request_id: &str, audit: PendingAudit) -> Self {
        ApiError(Box::new(Answer {
            status: StatusCode::FORBIDDEN,
            body: json!({ "error": "forbidden", "reason": reason, "request_id": request_id }),
            outcome: PortalOutcome::deny(reason),
            challenge: false,
            audit: Some(audit),
        }))
    }

    /// 401 without valid credentials.
    pub fn unauthenticated(request_id: &str) -> Self {
        let mut e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in, or send Authorization: Bearer <token>",
            request_id,
        )
        .logged(Verdict::Unauthenticated, "no_credentials");
        e.0.challenge = true;
        e
    }

    /// 503: the directory cannot answer (the detail goes to the log only).
    pub fn unavailable(detail: &dyn std::fmt::Display, request_id: &str) -> Self {
        tracing::error!(request_id = %request_id, "directory error: {detail}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the directory is unavailable",
            request_id,
        )
        .logged(Verdict::Error, "directory_unavailable")
    }

    /// How the access log records it.
    pub fn logged(mut self, verdict: Verdict, reason: &'static str) -> Self {
        self.0.outcome.verdict = verdict;
        self.0.outcome.reason = Some(reason);
        self
    }

    /// The caller the access log names.
    pub fn by(mut self, user: &str, org: &str) -> Self {
        self.0.outcome.user = Some(user.to_string());
        self.0.outcome.org = Some(org.to_string());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let answer = *self.0;
        let mut response = (answer.status, Json(answer.body)).into_response();
        if answer.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(audit) = answer.audit {
            response.extensions_mut().insert(audit);
        }
        with_outcome(response, answer.outcome)
    }
}

/// Middleware of the API router: append the audit record of a refusal before its answer
/// goes out. If the audit log cannot be written the refusal still stands (fail closed)
/// and the operator sees why it is not audited.
pub async fn audit_refusals(request: Request, next: Next) -> Response {
    let state = request.extensions().get::<Arc<PortalState>>().cloned();
    let mut response = next.run(request).await;
    let Some(pending) = response.extensions_mut().remove::<PendingAudit>() else {
        return response;
    };
    let request_id = pending.entry.request_id.clone().unwrap_or_default();
    match state {
        Some(state) => {
            let store = state.sessions().directory().store().clone();
            if let Err(e) = store.append_audit(&pending.entry, pending.at).await {
                tracing::error!(request_id = %request_id, "refusal not audited: {e}");
            }
        }
        None => tracing::error!(request_id = %request_id, "refusal not audited: no portal state"),
    }
    response
}
