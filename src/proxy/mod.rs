//! The pingora glue: one `ProxyHttp` phase per method. `request_filter` runs admission
//! ([`crate::admission::admit`]) and either answers the request itself or lets it
//! through; the later phases read the admitted request. Only this module, `app`, `admin`
//! and `tls` know about pingora.

mod authz;
mod ctx;
mod forward;
mod limits;
mod record;
mod reserved;
mod respond;
mod sni;
mod state;
pub mod streams;
pub mod upstream;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorType;

pub use ctx::{Forward, Outcome, RequestCtx};
pub use sni::SniCapture;
pub use state::{InflightGuard, Services, Shared, Snapshot};
pub use streams::Streams;

use crate::admission::{
    self, count_denial, count_rate_limited, Admission, Admitted, Connection, Decision, Reason,
    Refused,
};
use crate::policy::Verdict;
use crate::request_id::RequestId;

use limits::LiveLimits;

/// The gateway's `ProxyHttp` implementation.
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    pub fn new(shared: Arc<Shared>) -> Self {
        Gateway { shared }
    }

    /// Count what admission decided (policy denials, also shadow ones; rate-limit
    /// rejections) and note the user's activity.
    fn count_admission(&self, snapshot: &Snapshot, outcome: &Result<Admission, Refused>) {
        let services = &self.shared.services;
        let now = services.sessions.clock().now();
        let (caller, route_metrics) = match outcome {
            Ok(Admission::Forward(a)) => {
                if let Verdict::ShadowDeny(reason) = a.verdict {
                    count_denial(&a.route.route.metrics, reason);
                }
                (a.caller.as_ref(), None)
            }
            Ok(Admission::Reserved(_)) => (None, None),
            Err(refused) => {
                let metrics = match &refused.route {
                    Some(route) => &route.metrics,
                    None if refused
                        .request
                        .as_ref()
                        .is_some_and(|r| admission::is_reserved(&r.path)) =>
                    {
                        &snapshot.rules.reserved
                    }
                    None => &snapshot.rules.no_route,
                };
                (refused.caller.as_ref(), Some((metrics, refused)))
            }
        };
        if let Some((metrics, refused)) = route_metrics {
            match refused.rejection.reason {
                Reason::Policy(reason) => count_denial(metrics, reason),
                Reason::RateLimited(scope) => count_rate_limited(metrics, scope),
                _ => {}
            }
        }
        // A suspended user or org is refused by the policy; only usable users are active.
        if let Some(caller) = caller.filter(|c| c.identity().is_usable()) {
            services.directory.saw(&caller.entry, now);
        }
    }

    /// Usage data: a request about to be forwarded for an authenticated user counts for
    /// its user, org and route.
    fn count_usage(&self, admitted: &Admitted) {
        let Some(caller) = &admitted.caller else {
            return;
        };
        let services = &self.shared.services;
        let identity = caller.identity();
        services.usage.record(
            services.sessions.clock().now(),
            &identity.org.id,
            &identity.user_id,
            admitted.route.route.name(),
        );
    }

    /// Register the request as a stream of its user, so that a revocation closes it;
    /// only for authenticated requests.
    fn track_stream(&self, session: &Session, ctx: &mut RequestCtx) {
        let Some(fd) = ctx.upstream.fd else { return };
        let Some(forward) = ctx.forward() else { return };
        let Some(caller) = &forward.admitted.caller else {
            return;
        };
        let streams = &self.shared.services.streams;
        let Some(conn) = ctx.upstream.conn.clone().or_else(|| streams.conn(fd)) else {
            tracing::debug!(request_id = %ctx.request_id, "upstream connection not known: stream not tracked");
            return;
        };
        let identity = caller.identity();
        let holder = streams::Holder {
            user_id: identity.user_id.clone(),
            org_id: identity.org.id.clone(),
            session: caller.session().map(|s| s.id_hash.clone()),
            request: Some(streams::RouteRequest {
                route: forward.admitted.route.route.clone(),
                method: session.req_header().method.clone(),
                account: forward.admitted.route.account.clone(),
                strength: caller.strength,
            }),
        };
        ctx.upstream.stream = streams.track(conn, holder);
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(
            self.shared.next_request_id(),
            InflightGuard::new(self.shared.clone()),
        )
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let snapshot = self.shared.snapshot();
        ctx.snapshot = Some(snapshot.clone());
        if crate::wire::stream_reset(session) {
            // Nobody waits for the answer: forward nothing, answer nothing.
            ctx.failure = Some((Decision::Deny, Reason::StreamReset));
            return Ok(true);
        }
        let services = &self.shared.services;
        let conn = Connection {
            addr: peer_ip(session),
            tls: respond::is_tls(session),
            sni: sni::of(session),
            raw_head: crate::wire::check_head(session).err(),
        };
        let authn = snapshot.authenticator(&services.sessions);
        let limits = LiveLimits {
            limits: &snapshot.rules.limits,
            fallbacks: &self.shared.metrics.ratelimit_fallbacks,
        };
        let head = session.req_header();
        if let Some(tracer) = &services.tracer {
            let ids = tracer.begin(head.headers.get("traceparent"));
            if ids.sampled {
                ctx.stages = Some(admission::Stages::new(ctx.started));
            }
            ctx.trace = Some(ids);
        }
        let outcome = admission::admit_traced(
            head,
            &conn,
            &snapshot.rules,
            &authn,
            &limits,
            ctx.stages.as_mut(),
        )
        .await;
        let (conn_addr, conn_tls) = (conn.addr, conn.tls);
        let peer = match &outcome {
            Ok(Admission::Forward(a)) => a.request.peer,
            Ok(Admission::Reserved(r)) => r.peer,
            Err(refused) => refused.peer,
        };
        if let Some(id) = peer.request_id(head).and_then(RequestId::adopt) {
            ctx.request_id = id;
        }
        self.count_admission(&snapshot, &outcome);
        match outcome {
            Ok(Admission::Forward(admitted)) => {
                let Some(pool) = snapshot.pool(&admitted.route.route).cloned() else {
                    // Validation ties every route to a pool; fail closed if not.
                    ctx.failure = Some((Decision::Error, Reason::Internal));
                    respond::error(session, ctx, 502).await?;
                    return Ok(true);
                };
                self.count_usage(&admitted);
                ctx.outcome = Outcome::Forward(Forward { admitted, pool });
                Ok(false)
            }
            Ok(Admission::Reserved(request)) => {
                if let Some(mode) = authz::Mode::of(&request.path) {
                    let metrics = &self.shared.metrics;
                    let prepared =
                        authz::prepare(session, ctx, mode, request, conn_tls, &snapshot, metrics)
                            .await?;
                    let Some((head, tls)) = prepared else {
                        return Ok(true);
                    };
                    // The original request, through the same admission as a proxied one.
                    let inner = Connection {
                        addr: conn_addr,
                        tls,
                        sni: None,
                        raw_head: None,
                    };
                    let outcome = admission::admit_traced(
                        &head,
                        &inner,
                        &snapshot.rules,
                        &authn,
                        &limits,
                        ctx.stages.as_mut(),
                    )
                    .await;
                    self.count_admission(&snapshot, &outcome);
                    if let Ok(Admission::Forward(admitted)) = &outcome {
                        self.count_usage(admitted);
                    }
                    let now = services.sessions.clock().now();
                    authz::answer(session, ctx, mode, outcome, &snapshot, now, metrics).await?;
                    return Ok(true);
                }
                reserved::serve(session, ctx, request, &snapshot, services).await?;
                Ok(true)
            }
            Err(refused) => {
                let rejection = refused.rejection.clone();
                ctx.outcome = Outcome::Refused(refused);
                respond::reject(session, ctx, &rejection).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(forward) = ctx.forward() else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "request not admitted",
            ));
        };
        let pool = forward.pool.clone();
        let websocket = forward.admitted.route.route.config.websocket;
        ctx.upstream.connects += 1;
        ctx.upstream.started.get_or_insert_with(Instant::now);
        let Some(addr) = pool.select() else {
            ctx.failure = Some((Decision::Error, Reason::NoHealthyUpstream));
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "no healthy upstream address",
            ));
        };
        let mut peer = pool.peer(addr, websocket);
        // Every upstream connection carries a tracer, so that a long-lived request on it
        // (now, or later when the pooled connection is reused) can be closed safely.
        let (conn, tracer) = self.shared.services.streams.tracer();
        peer.options.tracer = Some(tracer);
        ctx.upstream.conn = Some(conn);
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        fd: std::os::fd::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A retry on another connection replaces what the failed attempt registered.
        ctx.upstream.stream = None;
        let fresh = ctx.upstream.conn.take();
        if !reused {
            if let Some(conn) = &fresh {
                self.shared.services.streams.opened(fd, conn);
            }
            ctx.upstream.conn = fresh;
        }
        ctx.upstream.fd = Some(fd);
        if session.is_http2() || session.is_upgrade_req() {
            self.track_stream(session, ctx);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(snapshot), Some(forward)) = (ctx.snapshot.as_deref(), ctx.forward()) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "request not admitted",
            ));
        };
        let with = forward::Upstream {
            forward,
            snapshot,
            request_id: &ctx.request_id,
            host: host_value(session.req_header()),
            now: self.shared.services.sessions.clock().now(),
            traceparent: ctx.trace.map(|t| t.traceparent()),
        };
        forward::rewrite(upstream_request, &with)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.upstream.started {
            ctx.upstream.ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        // An event stream over HTTP/1 is long-lived too (HTTP/2 is tracked already).
        let authenticated = ctx.forward().is_some_and(|f| f.admitted.caller.is_some());
        if ctx.upstream.stream.is_none() && authenticated && is_event_stream(upstream_response) {
            self.track_stream(session, ctx);
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        // The response is complete: forget the stream now, before pingora returns the
        // upstream connection to the pool for another request (a cut must not reach it).
        if end_of_stream {
            ctx.upstream.stream = None;
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // As plain parts: one map insert (see `forward` on pingora's header setters).
        let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
        let mut parts: http::response::Parts =
            std::mem::replace(upstream_response, placeholder).into();
        parts
            .headers
            .insert(forward::X_REQUEST_ID, ctx.request_id.header_value());
        *upstream_response = ResponseHeader::from(parts);
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Try the next healthy address, at most once per address.
        let addrs = ctx.forward().map_or(0, |f| f.pool.len());
        e.set_retry(ctx.upstream.connects < addrs);
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, reason) = classify_failure(e);
        let decision = if status == 400 {
            Decision::Deny
        } else {
            Decision::Error
        };
        let reason = match ctx.failure {
            Some((_, earlier)) => earlier,
            None => reason,
        };
        ctx.failure = Some((decision, reason));
        if status > 0 && session.response_written().is_none() {
            if let Err(err) = respond::error(session, ctx, status).await {
                tracing::debug!(request_id = %ctx.request_id, "could not send error response: {err}");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(e) = e {
            tracing::debug!(request_id = %ctx.request_id, "request ended with error: {e}");
        }
        if let Some(tracer) = &self.shared.services.tracer {
            record::trace(tracer, session, ctx);
        }
        record::record(&self.shared.metrics, &self.shared.access_log, session, ctx);
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        // Client hang-ups are ordinary; everything else is already in the access log.
        matches!(error.esource(), pingora::ErrorSource::Downstream)
    }
}

/// Map a proxy failure to (status, access-log reason). Status 0: the client is gone.
fn classify_failure(e: &Error) -> (u16, Reason) {
    use pingora::ErrorSource;
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => (*code, Reason::UpstreamUnavailable),
        (
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ErrorSource::Upstream,
        ) => (504, Reason::UpstreamTimeout),
        (ErrorType::ConnectTimedout, _) => (504, Reason::UpstreamTimeout),
        (_, ErrorSource::Upstream) => (502, Reason::UpstreamUnavailable),
        (
            ErrorType::ReadError
            | ErrorType::WriteError
            | ErrorType::ConnectionClosed
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout,
            ErrorSource::Downstream,
        ) => (0, Reason::ClientClosed),
        (_, ErrorSource::Downstream) => (400, Reason::Unparsable),
        (
            ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::TLSHandshakeFailure,
            _,
        ) => (502, Reason::UpstreamUnavailable),
        _ => (502, Reason::Internal),
    }
}

fn is_event_stream(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// The client's Host header as sent, or the `:authority` (HTTP/2, absolute-form).
fn host_value(req: &RequestHeader) -> http::HeaderValue {
    if req.uri.authority().is_none() {
        if let Some(host) = req.headers.get(http::header::HOST) {
            return host.clone();
        }
    }
    admission::request_host(req)
        .and_then(|h| http::HeaderValue::from_str(h).ok())
        .unwrap_or(http::HeaderValue::from_static(""))
}

/// The address of an incoming connection, as an IP, if it has one.
fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_502_and_504() {
        let cases = [
            (
                Error::explain(ErrorType::ConnectRefused, "x"),
                pingora::ErrorSource::Upstream,
                502,
            ),
            (
                Error::explain(ErrorType::ConnectTimedout, "x"),
                pingora::ErrorSource::Upstream,
                504,
            ),
            (
                Error::explain(ErrorType::ReadTimedout, "x"),
                pingora::ErrorSource::Upstream,
                504,
            ),
            (
                Error::explain(ErrorType::HTTPStatus(502), "x"),
                pingora::ErrorSource::Internal,
                502,
            ),
            (
                Error::explain(ErrorType::ConnectionClosed, "x"),
                pingora::ErrorSource::Downstream,
                0,
            ),
            (
                Error::explain(ErrorType::InvalidHTTPHeader, "x"),
                pingora::ErrorSource::Downstream,
                400,
            ),
        ];
        for (mut e, source, want) in cases {
            e.esource = source;
            assert_eq!(classify_failure(&e).0, want, "{e}");
        }
    }
}
