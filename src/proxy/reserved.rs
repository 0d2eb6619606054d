//! Reserved paths (`/.partnergate/…`): the request is handed, in process, to the portal's
//! axum router on the background runtime, and its answer written back through pingora.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use tower::ServiceExt;

use crate::admission::{CleanRequest, Decision, Reason, Rejection};
use crate::portal::PortalContext;

use super::ctx::{Outcome, RequestCtx};
use super::respond;
use super::state::{Services, Snapshot};

/// Largest request body a reserved path accepts (forms, admin API documents).
const MAX_BODY: usize = 256 * 1024;
/// Largest response body the portal may produce.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;

pub async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    request: CleanRequest,
    snapshot: &Arc<Snapshot>,
    services: &Services,
) -> Result<()> {
    let portal = portal_request(session, ctx, &request, snapshot);
    ctx.outcome = Outcome::Reserved {
        request,
        portal: None,
    };
    let Some(body) = read_body(session).await? else {
        let rejection = Rejection::malformed(Reason::BodyTooLarge);
        ctx.failure = Some((rejection.decision, rejection.reason));
        return respond::reject(session, ctx, &rejection).await;
    };
    let request = match portal.and_then(|b| b.body(axum::body::Body::from(body)).ok()) {
        Some(r) => r,
        None => {
            let rejection = Rejection::malformed(Reason::Unparsable);
            ctx.failure = Some((rejection.decision, rejection.reason));
            return respond::reject(session, ctx, &rejection).await;
        }
    };
    let router = services.portal.clone();
    let answer = services
        .background
        .spawn(async move {
            let response = router.oneshot(request).await.map_err(|e| match e {})?;
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_RESPONSE).await?;
            Ok::<_, axum::Error>((parts, bytes))
        })
        .await;
    match answer {
        Ok(Ok((parts, bytes))) => write(session, ctx, parts, bytes).await,
        Ok(Err(e)) => fail(session, ctx, e.to_string()).await,
        Err(e) => fail(session, ctx, e.to_string()).await,
    }
}

async fn fail(session: &mut Session, ctx: &mut RequestCtx, e: String) -> Result<()> {
    tracing::error!(request_id = %ctx.request_id, "portal failed: {e}");
    ctx.failure = Some((Decision::Error, Reason::Internal));
    respond::error(session, ctx, 503).await
}

/// The request body, or `None` when it is over [`MAX_BODY`].
async fn read_body(session: &mut Session) -> Result<Option<Bytes>> {
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// The portal's request, less its body: the cleaned target, the client's headers, and
/// what the proxy knows in a [`PortalContext`].
fn portal_request(
    session: &Session,
    ctx: &RequestCtx,
    request: &CleanRequest,
    snapshot: &Arc<Snapshot>,
) -> Option<http::request::Builder> {
    let req = session.req_header();
    let target = match &request.query {
        Some(q) => format!("{}?{q}", request.path),
        None => request.path.clone(),
    };
    let mut builder = http::Request::builder()
        .method(req.method.clone())
        .uri(target);
    for (name, value) in req.headers.iter() {
        builder = builder.header(name, value);
    }
    let portal_ctx = PortalContext {
        config: snapshot.config.clone(),
        jwks: snapshot.jwks.clone(),
        client_ip: request.peer.client_ip?,
        request_id: ctx.request_id.to_string(),
        bearer: snapshot.bearer.clone(),
    };
    Some(builder.extension(portal_ctx))
}

async fn write(
    session: &mut Session,
    ctx: &mut RequestCtx,
    parts: http::response::Parts,
    body: Bytes,
) -> Result<()> {
    if let (Some(outcome), Outcome::Reserved { portal, .. }) = (
        parts.extensions.get::<crate::portal::PortalOutcome>(),
        &mut ctx.outcome,
    ) {
        *portal = Some(outcome.clone());
    }
    let status = parts.status.as_u16();
    ctx.local_status = Some(status);
    let mut resp = ResponseHeader::build(status, Some(parts.headers.len() + 5))?;
    for (name, value) in parts.headers.iter() {
        resp.append_header(name.clone(), value.clone())?;
    }
    resp.insert_header("content-length", body.len().to_string())?;
    respond::add_security_headers(&mut resp, respond::is_tls(session), &ctx.request_id)?;
    session.write_response_header(Box::new(resp), false).await?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_body(if head_only { None } else { Some(body) }, true)
        .await
}
