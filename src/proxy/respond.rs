//! Answers the gateway writes itself (refusals, errors). They carry the request id and no
//! detail about the upstream; the reason goes to the access log only.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::admission::Rejection;
use crate::request_id::RequestId;

use super::ctx::RequestCtx;

pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Whether the request came over TLS.
pub fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// The headers every gateway-made response carries.
pub fn add_security_headers(
    resp: &mut ResponseHeader,
    tls: bool,
    request_id: &RequestId,
) -> Result<()> {
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("x-content-type-options", "nosniff")?;
    resp.insert_header("x-request-id", request_id.header_value())?;
    if tls {
        resp.insert_header("strict-transport-security", HSTS)?;
    }
    Ok(())
}

/// A small JSON error body: `{"error": "...", "request_id": "..."}`.
pub fn error_body(status: u16, request_id: &str) -> Bytes {
    let phrase = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
        .to_ascii_lowercase();
    let body = serde_json::json!({ "error": phrase, "request_id": request_id });
    Bytes::from(body.to_string())
}

/// Answer a refused request: its status, its headers, and a JSON error body (none for a
/// redirect). The one place a [`Rejection`] becomes a response.
pub async fn reject(
    session: &mut Session,
    ctx: &mut RequestCtx,
    rejection: &Rejection,
) -> Result<()> {
    let (content_type, body) = if rejection.has_body() {
        (
            "application/json",
            error_body(rejection.status, ctx.request_id.as_str()),
        )
    } else {
        ("text/plain", Bytes::new())
    };
    let extra: Vec<(&str, std::borrow::Cow<'_, str>)> = rejection.headers().collect();
    let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    send(session, ctx, rejection.status, content_type, body, &extra).await
}

/// Answer with `status` and a JSON error body.
pub async fn error(session: &mut Session, ctx: &mut RequestCtx, status: u16) -> Result<()> {
    let body = error_body(status, ctx.request_id.as_str());
    send(session, ctx, status, "application/json", body, &[]).await
}

/// Answer with any body; `extra` headers are added after the security headers.
pub async fn send(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    content_type: &str,
    body: Bytes,
    extra: &[(&str, &str)],
) -> Result<()> {
    ctx.local_status = Some(status);
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    resp.insert_header("content-type", content_type)?;
    resp.insert_header("content-length", body.len().to_string())?;
    add_security_headers(&mut resp, is_tls(session), &ctx.request_id)?;
    for (name, value) in extra {
        resp.append_header(name.to_string(), *value)?;
    }
    if status >= 400 {
        // A refused request may have left a body unread; do not reuse the connection.
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(resp), false).await?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_body(if head_only { None } else { Some(body) }, true)
        .await?;
    Ok(())
}
