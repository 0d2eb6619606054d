//! The pingora glue: one `ProxyHttp` phase per method, each calling named stages
//! (CONTRACT §3). Only this module, `app`, `admin` and `tls` know about pingora.

mod auth;
mod ctx;
mod forward;
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

pub use ctx::{Decision, RequestCtx};
pub use sni::SniCapture;
pub use state::{InflightGuard, Services, Shared, Snapshot};
pub use streams::Streams;

use auth::Refusal;

use crate::accesslog::{rfc3339_ms, AccessRecord};
use crate::config::RateKey;
use crate::metrics::{method_label, status_label};
use crate::normalize;
use crate::policy::{self, DenyReason, RouteLookup};
use crate::ratelimit::{LimitKey, Limiter, Verdict};

/// Route label used when no route matched, and for the gateway's reserved paths.
pub const NO_ROUTE: &str = "none";
pub const RESERVED_ROUTE: &str = "partnergate";
const RESERVED_PREFIX: &str = "/.partnergate";

/// The login form's path: its POSTs have their own per-IP limit.
const LOGIN_PATH: &str = "/.partnergate/login";

/// One rate limit to check, with the labels a rejection is counted and logged under.
struct Limit<'a> {
    limiter: &'a Limiter,
    key: LimitKey<'a>,
    route: &'a str,
    key_label: &'static str,
    reason: &'static str,
}

/// The gateway's `ProxyHttp` implementation.
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    pub fn new(shared: Arc<Shared>) -> Self {
        Gateway { shared }
    }

    /// Stage 0: who is on the other end of the connection; returns the peer address.
    fn identify_peer(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> Option<IpAddr> {
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let peer = peer_ip(session)?;
        let server = &snapshot.config.server;
        ctx.peer_trusted = server.is_trusted_proxy(peer);
        let xff = header_str(session.req_header(), "x-forwarded-for");
        ctx.client_ip = Some(forward::client_ip(peer, xff, |ip| {
            server.is_trusted_proxy(ip)
        }));
        if ctx.peer_trusted {
            if let Some(id) = header_str(session.req_header(), "x-request-id")
                .filter(|v| normalize::is_valid_request_id(v))
            {
                ctx.request_id = id.to_string();
            }
        }
        Some(peer)
    }

    /// Stage 1: header limit, target and host. `Err(status)` answers the request.
    fn clean_request(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        limit: usize,
    ) -> Result<(), u16> {
        let req = session.req_header();
        if header_bytes(req) > limit {
            ctx.deny("header_too_large");
            return Err(431);
        }
        if let Err(refused) = crate::wire::check_head(session) {
            ctx.path = truncate(req.uri.path(), 512);
            ctx.deny(refused.reason());
            return Err(refused.status());
        }
        let (path, query) = match normalize::normalize_target(
            req.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or(""),
        ) {
            Ok(parts) => parts,
            Err(m) => {
                ctx.path = truncate(req.uri.path(), 512);
                ctx.deny(m.reason());
                return Err(400);
            }
        };
        ctx.path = path.into_owned();
        ctx.query = query.map(str::to_string);
        let host = request_host(req).ok_or(Malformed::BadHost);
        match host.and_then(normalize::normalize_host) {
            Ok(h) => ctx.host = h.into_owned(),
            Err(m) => {
                ctx.deny(m.reason());
                return Err(400);
            }
        }
        if sni::of(session).is_some_and(|name| name != ctx.host) {
            ctx.deny("misdirected");
            return Err(421);
        }
        Ok(())
    }

    /// Stages 4–6 for this build: route lookup and the route's WebSocket rule.
    fn route_request(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        snapshot: &Arc<Snapshot>,
    ) -> Result<(), u16> {
        let method = &session.req_header().method;
        let (found, status) = match snapshot.routes.lookup(&ctx.host, &ctx.path, method) {
            RouteLookup::Matched(m) => (m, None),
            RouteLookup::MethodNotAllowed(m) => (m, Some(403)),
            RouteLookup::NoRoute => {
                self.policy_deny(ctx, NO_ROUTE, DenyReason::NoRoute);
                return Err(404);
            }
        };
        let index = found.index;
        ctx.route = Some(index);
        ctx.account = found.account.map(str::to_string);
        let route = &snapshot.routes.routes()[index];
        if let Some(status) = status {
            self.policy_deny(ctx, &route.name, DenyReason::Method);
            return Err(status);
        }
        if is_websocket_upgrade(session.req_header()) && !route.websocket {
            ctx.deny("websocket_not_allowed");
            return Err(403);
        }
        ctx.upstream = snapshot.route_upstream(index).cloned();
        Ok(())
    }

    /// Stages 3–5: authenticate, resolve the identity and apply the route's policy;
    /// answer the request on refusal. `Ok(true)`: the request was answered.
    async fn authorize(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Arc<Snapshot>,
    ) -> Result<bool> {
        let Some(route) = ctx.route.and_then(|i| snapshot.routes.get(i)) else {
            return Ok(false);
        };
        let services = &self.shared.services;
        if route.auth != crate::config::AuthMode::None {
            let refused =
                auth::authenticate(session.req_header(), ctx, route, snapshot, services).await;
            if let Err(refusal) = refused {
                self.refuse(session, ctx, refusal).await?;
                return Ok(true);
            }
        }
        let request = policy::Request {
            method: &session.req_header().method,
            account: ctx.account.as_deref(),
            now: services.sessions.clock().now(),
        };
        let identity = ctx.identity.as_ref().map(|e| &*e.identity);
        match policy::decide(route, &request, identity) {
            policy::Decision::Allow => ctx.decision = Decision::Allow,
            policy::Decision::Deny(reason)
                if route.mode == crate::config::Mode::Shadow && reason.shadowable() =>
            {
                self.count_denial(&route.name, reason);
                ctx.decision = Decision::ShadowDeny;
                ctx.reason = Some(reason.as_str());
            }
            policy::Decision::Deny(reason) => {
                self.policy_deny(ctx, &route.name, reason);
                respond::error(session, ctx, 403).await?;
                return Ok(true);
            }
            policy::Decision::Unauthenticated => {
                let refusal = Refusal::Unauthenticated {
                    reason: "no_credentials",
                    bad_token: false,
                };
                self.refuse(session, ctx, refusal).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stage 6: the route's own limit, keyed as configured.
    async fn route_rate_limit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Arc<Snapshot>,
    ) -> Result<bool> {
        let Some((index, (rate_key, limiter))) = ctx
            .route
            .and_then(|i| Some((i, snapshot.ratelimits.route(i)?)))
        else {
            return Ok(false);
        };
        let identity = ctx.identity.clone();
        let key = match rate_key {
            RateKey::Ip => match ctx.client_ip {
                Some(ip) => LimitKey::Ip(ip),
                None => return Ok(false),
            },
            // Validation requires an identity for user and org keys; without one the
            // request was already refused, but fail closed to one shared bucket anyway.
            RateKey::User => identity
                .as_deref()
                .map_or(LimitKey::Whole, |e| LimitKey::Name(&e.identity.user_id)),
            RateKey::Org => identity
                .as_deref()
                .map_or(LimitKey::Whole, |e| LimitKey::Name(&e.identity.org.id)),
            RateKey::Route => LimitKey::Whole,
        };
        let limit = Limit {
            limiter,
            key,
            route: &snapshot.routes.routes()[index].name,
            key_label: rate_key.as_str(),
            reason: "rate_limit",
        };
        self.rate_limit(session, ctx, snapshot, limit).await
    }

    /// Check one limit; over it, answer 429 with `Retry-After` (or 503 when Redis is down
    /// and the limit fails closed). `Ok(true)`: the request was answered.
    async fn rate_limit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
        limit: Limit<'_>,
    ) -> Result<bool> {
        let limits = &snapshot.ratelimits;
        let (verdict, fallback) = match limits.check_fast(limit.limiter, limit.key) {
            Some(answer) => answer,
            None => limits.check(limit.limiter, limit.key).await,
        };
        let m = &self.shared.metrics;
        if let Some(action) = fallback {
            m.ratelimit_fallbacks
                .with_label_values(&[limit.route, action.as_str()])
                .inc();
        }
        let status = match verdict {
            Verdict::Allow => return Ok(false),
            Verdict::Limited { .. } => {
                m.ratelimit_rejections
                    .with_label_values(&[limit.route, limit.key_label])
                    .inc();
                ctx.decision = Decision::RateLimited;
                ctx.reason = Some(limit.reason);
                429
            }
            Verdict::Unavailable => {
                ctx.decision = Decision::Error;
                ctx.reason = Some("rate_limit_unavailable");
                503
            }
        };
        let retry = verdict.retry_after_secs().unwrap_or(1).to_string();
        let body = respond::error_body(status, &ctx.request_id);
        let extra = [("retry-after", retry.as_str())];
        respond::send(session, ctx, status, "application/json", body, &extra).await?;
        Ok(true)
    }

    /// Usage data: a request about to be forwarded for an authenticated user (policy
    /// allow or shadow_deny, rate limits passed) counts for its user, org and route.
    fn count_usage(&self, ctx: &RequestCtx, snapshot: &Snapshot) {
        if !matches!(ctx.decision, Decision::Allow | Decision::ShadowDeny) {
            return;
        }
        let (Some(entry), Some(route)) = (
            ctx.identity.as_deref(),
            ctx.route.and_then(|i| snapshot.routes.get(i)),
        ) else {
            return;
        };
        let services = &self.shared.services;
        let identity = &entry.identity;
        services.usage.record(
            services.sessions.clock().now(),
            &identity.org.id,
            &identity.user_id,
            &route.name,
        );
    }

    fn count_denial(&self, route: &str, reason: DenyReason) {
        self.shared
            .metrics
            .policy_denials
            .with_label_values(&[route, reason.as_str()])
            .inc();
    }

    /// A policy denial: counted by route and reason, logged with the reason.
    fn policy_deny(&self, ctx: &mut RequestCtx, route: &str, reason: DenyReason) {
        self.count_denial(route, reason);
        ctx.deny(reason.as_str());
    }

    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        refusal: Refusal,
    ) -> Result<()> {
        match refusal {
            Refusal::Unauthenticated { reason, bad_token } => {
                ctx.decision = Decision::Unauthenticated;
                ctx.reason = Some(reason);
                if !bad_token && auth::is_browser_navigation(session.req_header()) {
                    let location = auth::login_location(&ctx.path, ctx.query.as_deref());
                    let extra = [("location", location.as_str())];
                    let body = Bytes::from_static(b"");
                    return respond::send(session, ctx, 302, "text/plain", body, &extra).await;
                }
                let challenge = if bad_token {
                    "Bearer realm=\"partnergate\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"partnergate\""
                };
                let body = respond::error_body(401, &ctx.request_id);
                let extra = [("www-authenticate", challenge)];
                respond::send(session, ctx, 401, "application/json", body, &extra).await
            }
            Refusal::Unavailable => {
                ctx.decision = Decision::Error;
                ctx.reason = Some("directory_unavailable");
                respond::error(session, ctx, 503).await
            }
        }
    }

    /// Register the request as a stream of its user, so that a revocation closes it
    /// (CONTRACT §7); only for authenticated requests.
    fn track_stream(&self, session: &Session, ctx: &mut RequestCtx) {
        let (Some(entry), Some(fd)) = (&ctx.identity, ctx.upstream_fd) else {
            return;
        };
        let streams = &self.shared.services.streams;
        let Some(conn) = ctx.upstream_conn.clone().or_else(|| streams.conn(fd)) else {
            tracing::debug!(request_id = %ctx.request_id, "upstream connection not known: stream not tracked");
            return;
        };
        let request = match (&ctx.snapshot, ctx.route) {
            (Some(snapshot), Some(route)) => Some(streams::RouteRequest {
                snapshot: snapshot.clone(),
                route,
                method: session.req_header().method.clone(),
                account: ctx.account.clone(),
            }),
            _ => None,
        };
        let holder = streams::Holder {
            user_id: entry.identity.user_id.clone(),
            org_id: entry.identity.org.id.clone(),
            session: ctx.session.as_ref().map(|s| s.id_hash.clone()),
            request,
        };
        ctx.stream = streams.track(conn, holder);
    }

    /// Metrics and the access-log line; the last use of `ctx`, so its strings move out.
    fn record(&self, session: &Session, ctx: &mut RequestCtx) {
        let req = session.req_header();
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.local_status)
            .unwrap_or(0);
        let route = ctx
            .route_name()
            .unwrap_or(if ctx.path.starts_with(RESERVED_PREFIX) {
                RESERVED_ROUTE
            } else {
                NO_ROUTE
            });
        let elapsed = ctx.started.elapsed().as_secs_f64();
        let m = &self.shared.metrics;
        m.http_requests
            .with_label_values(&[
                route,
                method_label(req.method.as_str()),
                status_label(status),
                ctx.decision.as_str(),
            ])
            .inc();
        m.request_duration
            .with_label_values(&[route])
            .observe(elapsed);
        if let (Some(pool), Some(ms)) = (&ctx.upstream, ctx.upstream_ms) {
            m.upstream_duration
                .with_label_values(&[pool.name()])
                .observe(ms / 1000.0);
        }
        let route_name = ctx.route_name().map(str::to_string);
        self.shared.access_log.log(AccessRecord {
            ts: rfc3339_ms(std::time::SystemTime::now()),
            request_id: std::mem::take(&mut ctx.request_id),
            client_ip: ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            method: req.method.as_str().to_string(),
            host: std::mem::take(&mut ctx.host),
            path: redact_path(std::mem::take(&mut ctx.path)),
            status,
            bytes_sent: session.body_bytes_sent() as u64,
            duration_ms: round3(elapsed * 1000.0),
            upstream_ms: ctx.upstream_ms.map(round3),
            route: route_name,
            upstream: ctx
                .upstream
                .as_ref()
                .filter(|_| ctx.upstream_started.is_some())
                .map(|p| p.name().to_string()),
            user: ctx.user.take(),
            org: ctx.org.take(),
            decision: ctx.decision.as_str(),
            reason: ctx.reason,
            user_agent: header_str(req, "user-agent").map(|ua| truncate(ua, 256)),
        });
    }
}

use normalize::Malformed;

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
        let peer = self.identify_peer(session, ctx, &snapshot);
        let limit = snapshot.config.server.max_request_header_bytes;
        if let Err(status) = self.clean_request(session, ctx, limit) {
            respond::error(session, ctx, status).await?;
            return Ok(true);
        }
        if crate::wire::stream_reset(session) {
            ctx.deny("stream_reset");
            return Ok(true);
        }
        if let Some(ip) = peer {
            ctx.forwarded = forward::forwarded(
                session.req_header(),
                ip,
                ctx.peer_trusted,
                ctx.tls,
                request_host(session.req_header()).unwrap_or(""),
            );
        }
        if let (Some(limiter), Some(ip)) = (snapshot.ratelimits.global(), ctx.client_ip) {
            let limit = Limit {
                limiter,
                key: LimitKey::Ip(ip),
                route: NO_ROUTE,
                key_label: "global",
                reason: "rate_limit_global",
            };
            if self.rate_limit(session, ctx, &snapshot, limit).await? {
                return Ok(true);
            }
        }
        if ctx.path == RESERVED_PREFIX || ctx.path.starts_with("/.partnergate/") {
            if session.req_header().method == http::Method::POST && public_form(&ctx.path) {
                if let Some(ip) = ctx.client_ip {
                    let limit = Limit {
                        limiter: snapshot.ratelimits.login(),
                        key: LimitKey::Ip(ip),
                        route: RESERVED_ROUTE,
                        key_label: "login",
                        reason: "rate_limit_login",
                    };
                    if self.rate_limit(session, ctx, &snapshot, limit).await? {
                        return Ok(true);
                    }
                }
            }
            ctx.decision = Decision::Allow;
            reserved::serve(session, ctx, &snapshot, &self.shared.services).await?;
            return Ok(true);
        }
        if let Err(status) = self.route_request(session, ctx, &snapshot) {
            respond::error(session, ctx, status).await?;
            return Ok(true);
        }
        if self.authorize(session, ctx, &snapshot).await? {
            return Ok(true);
        }
        if self.route_rate_limit(session, ctx, &snapshot).await? {
            return Ok(true);
        }
        self.count_usage(ctx, &snapshot);
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let pool = ctx
            .upstream
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(502), "route without upstream"))?;
        ctx.connect_attempts += 1;
        ctx.upstream_started.get_or_insert_with(Instant::now);
        let Some(addr) = pool.select() else {
            ctx.reason = Some("no_healthy_upstream");
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "no healthy upstream address",
            ));
        };
        let websocket = ctx
            .snapshot
            .as_ref()
            .and_then(|s| s.routes.get(ctx.route?))
            .is_some_and(|r| r.websocket);
        let mut peer = pool.peer(addr, websocket);
        // Every upstream connection carries a tracer, so that a long-lived request on it
        // (now, or later when the pooled connection is reused) can be closed safely.
        let (conn, tracer) = self.shared.services.streams.tracer();
        peer.options.tracer = Some(tracer);
        ctx.upstream_conn = Some(conn);
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
        ctx.stream = None;
        let fresh = ctx.upstream_conn.take();
        if !reused {
            if let Some(conn) = &fresh {
                self.shared.services.streams.opened(fd, conn);
            }
            ctx.upstream_conn = fresh;
        }
        ctx.upstream_fd = Some(fd);
        if session.is_http2() || session.is_upgrade_req() {
            self.track_stream(session, ctx);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(snapshot) = ctx.snapshot.clone() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no configuration snapshot",
            ));
        };
        forward::strip(upstream_request, &snapshot.config.session.cookie_name);
        let route = ctx.route.and_then(|i| snapshot.routes.get(i));
        let path = match route.and_then(|r| r.strip_prefix.as_deref()) {
            Some(prefix) => strip_path_prefix(&ctx.path, prefix),
            None => ctx.path.as_str(),
        };
        let target = match &ctx.query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let uri = http::Uri::try_from(target)
            .or_err(ErrorType::InternalError, "normalised target is not a URI")?;
        upstream_request.set_uri(uri);
        if upstream_request.headers.get("host").is_none() {
            upstream_request.insert_header("host", ctx.forwarded.host.clone())?;
        }
        upstream_request.insert_header("x-forwarded-for", ctx.forwarded.for_chain.clone())?;
        upstream_request.insert_header("x-forwarded-proto", ctx.forwarded.proto.clone())?;
        upstream_request.insert_header("x-forwarded-host", ctx.forwarded.host.clone())?;
        upstream_request.insert_header("x-request-id", ctx.request_id.clone())?;
        auth::identity_headers(upstream_request, ctx, &snapshot, &self.shared.services)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.upstream_started {
            ctx.upstream_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        // An event stream over HTTP/1 is long-lived too (HTTP/2 is tracked already).
        if ctx.stream.is_none() && ctx.identity.is_some() && is_event_stream(upstream_response) {
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
            ctx.stream = None;
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header("x-request-id", ctx.request_id.clone())?;
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
        let addrs = ctx.upstream.as_ref().map(|p| p.len()).unwrap_or(0);
        e.set_retry(ctx.connect_attempts < addrs);
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, reason) = classify_failure(e);
        if ctx.reason.is_none() || ctx.decision == Decision::Allow {
            ctx.reason = ctx.reason.or(Some(reason));
        }
        ctx.decision = if status == 400 {
            Decision::Deny
        } else {
            Decision::Error
        };
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
        self.record(session, ctx);
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        // Client hang-ups are ordinary; everything else is already in the access log.
        matches!(error.esource(), pingora::ErrorSource::Downstream)
    }
}

/// Map a proxy failure to (status, access-log reason). Status 0: the client is gone.
fn classify_failure(e: &Error) -> (u16, &'static str) {
    use pingora::ErrorSource;
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => (*code, "upstream_unavailable"),
        (
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ErrorSource::Upstream,
        ) => (504, "upstream_timeout"),
        (ErrorType::ConnectTimedout, _) => (504, "upstream_timeout"),
        (_, ErrorSource::Upstream) => (502, "upstream_unavailable"),
        (
            ErrorType::ReadError
            | ErrorType::WriteError
            | ErrorType::ConnectionClosed
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout,
            ErrorSource::Downstream,
        ) => (0, "client_closed"),
        (_, ErrorSource::Downstream) => (400, "malformed"),
        (
            ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::TLSHandshakeFailure,
            _,
        ) => (502, "upstream_unavailable"),
        _ => (502, "internal"),
    }
}

fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request's host: `:authority` (HTTP/2, absolute-form) or the single Host header.
fn request_host(req: &RequestHeader) -> Option<&str> {
    if let Some(authority) = req.uri.authority() {
        return Some(authority.as_str());
    }
    let mut hosts = req.headers.get_all("host").iter();
    let first = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// Bytes of the request head as the client sent it (approximately: line + fields).
fn header_bytes(req: &RequestHeader) -> usize {
    let target = req.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + req.uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method.as_str().len() + target + 11;
    req.headers.iter().fold(line, |acc, (name, value)| {
        acc + name.as_str().len() + value.len() + 4
    })
}

fn is_websocket_upgrade(req: &RequestHeader) -> bool {
    req.headers.get_all("upgrade").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        })
    })
}

fn is_event_stream(resp: &ResponseHeader) -> bool {
    resp.headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

fn strip_path_prefix<'a>(path: &'a str, prefix: &str) -> &'a str {
    match path.strip_prefix(prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        // "/portalx" with strip_prefix "/portal": not a segment boundary, leave as is.
        _ => path,
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The address of an incoming connection, as an IP, if it has one.
fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// The access-log form of a path: an invitation link's token is a secret (whoever holds
/// it can accept the invitation), so it is logged as `{token}`.
fn redact_path(path: String) -> String {
    const INVITE: &str = "/.partnergate/invite/";
    if path.len() > INVITE.len() && path.starts_with(INVITE) {
        return format!("{INVITE}{{token}}");
    }
    path
}

/// The public forms that anyone can post without a session: sign-in, the registration
/// request and invitation acceptance. They share the per-IP `login.rate_limit_per_ip`
/// (password guessing, registration spam, token guessing).
fn public_form(path: &str) -> bool {
    path == LOGIN_PATH
        || path == "/.partnergate/register"
        || path.starts_with("/.partnergate/invite/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_tokens_never_reach_the_access_log() {
        let token = "/.partnergate/invite/q05LS-1I0YdWlg3nOJBoLb97y4WygarfGbGAKT7Mgrs";
        assert_eq!(redact_path(token.into()), "/.partnergate/invite/{token}");
        assert_eq!(
            redact_path("/.partnergate/invite/".into()),
            "/.partnergate/invite/"
        );
        assert_eq!(redact_path("/deals".into()), "/deals");
    }

    #[test]
    fn prefix_stripping_keeps_a_leading_slash() {
        assert_eq!(strip_path_prefix("/portal/x", "/portal"), "/x");
        assert_eq!(strip_path_prefix("/portal", "/portal"), "/");
        assert_eq!(strip_path_prefix("/portalx", "/portal"), "/portalx");
    }

    #[test]
    fn failures_map_to_502_and_504() {
        let cases = [
            (
                Error::explain(ErrorType::ConnectRefused, "x"),
                ErrorSourceSet::Upstream,
                502,
            ),
            (
                Error::explain(ErrorType::ConnectTimedout, "x"),
                ErrorSourceSet::Upstream,
                504,
            ),
            (
                Error::explain(ErrorType::ReadTimedout, "x"),
                ErrorSourceSet::Upstream,
                504,
            ),
            (
                Error::explain(ErrorType::HTTPStatus(502), "x"),
                ErrorSourceSet::Internal,
                502,
            ),
            (
                Error::explain(ErrorType::ConnectionClosed, "x"),
                ErrorSourceSet::Downstream,
                0,
            ),
            (
                Error::explain(ErrorType::InvalidHTTPHeader, "x"),
                ErrorSourceSet::Downstream,
                400,
            ),
        ];
        for (mut e, source, want) in cases {
            e.esource = match source {
                ErrorSourceSet::Upstream => pingora::ErrorSource::Upstream,
                ErrorSourceSet::Downstream => pingora::ErrorSource::Downstream,
                ErrorSourceSet::Internal => pingora::ErrorSource::Internal,
            };
            assert_eq!(classify_failure(&e).0, want, "{e}");
        }
    }

    enum ErrorSourceSet {
        Upstream,
        Downstream,
        Internal,
    }
}
