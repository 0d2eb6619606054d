//! The last phase of a request: its metrics and its access-log line, from what the
//! request context says became of it.

use pingora::proxy::Session;

use std::sync::Arc;

use crate::accesslog::{AccessLog, AccessRecord, Text};
use crate::admission::{is_reserved, Caller, Decision};
use crate::metrics::{Metrics, RouteMetrics};
use crate::policy::Verdict;
use crate::portal::{PortalOutcome, Verdict as PortalVerdict};

use super::authz::Answer;
use super::ctx::{Outcome, RequestCtx};
use super::state::Snapshot;

/// What the log line and the request metrics say about a request.
struct Facts<'a> {
    route: Option<&'a Arc<str>>,
    metrics: Option<&'a RouteMetrics>,
    decision: Decision,
    reason: Option<&'static str>,
    user: Option<Text>,
    org: Option<Text>,
}

fn facts<'a>(ctx: &'a RequestCtx, snapshot: Option<&'a Snapshot>, path: &str) -> Facts<'a> {
    let fallback_metrics = snapshot.map(|s| {
        if is_reserved(path) {
            &s.rules.reserved
        } else {
            &s.rules.no_route
        }
    });
    let who = |caller: Option<&Caller>| -> Person {
        caller.map_or((None, None), |c| {
            let h = &c.entry.headers;
            (
                Some(Text::Shared(h.user.clone())),
                Some(Text::Shared(h.org.clone())),
            )
        })
    };
    let (route, decision, reason, person) = match &ctx.outcome {
        Outcome::Forward(f) => {
            let a = &f.admitted;
            let reason = match a.verdict {
                Verdict::ShadowDeny(r) => Some(r.as_str()),
                _ => None,
            };
            (
                Some(&a.route.route),
                a.decision(),
                reason,
                who(a.caller.as_ref()),
            )
        }
        Outcome::Refused(r) => (
            r.route.as_ref(),
            r.rejection.decision,
            Some(r.rejection.reason.as_str()),
            who(r.caller.as_ref()),
        ),
        Outcome::Reserved { portal, .. } => {
            let (decision, reason, person) = portal
                .as_ref()
                .map_or((Decision::Error, None, (None, None)), portal_facts);
            (None, decision, reason, person)
        }
        Outcome::Authz(a) => match &a.answer {
            Answer::Allowed(f) => {
                let adm = &f.admitted;
                let reason = match adm.verdict {
                    Verdict::ShadowDeny(r) => Some(r.as_str()),
                    _ => None,
                };
                (
                    Some(&adm.route.route),
                    adm.decision(),
                    reason,
                    who(adm.caller.as_ref()),
                )
            }
            Answer::Reserved(_) => (None, Decision::Allow, None, (None, None)),
            Answer::Refused(r) => (
                r.route.as_ref(),
                r.rejection.decision,
                Some(r.rejection.reason.as_str()),
                who(r.caller.as_ref()),
            ),
        },
        Outcome::Pending => (None, Decision::Error, None, (None, None)),
    };
    let (decision, reason) = match ctx.failure {
        Some((decision, reason)) => (decision, Some(reason.as_str())),
        None => (decision, reason),
    };
    let (user, org) = person;
    Facts {
        route: route.map(|r| &r.label),
        metrics: route.map(|r| &r.metrics).or(fallback_metrics),
        decision,
        reason,
        user,
        org,
    }
}

type Person = (Option<Text>, Option<Text>);

fn portal_facts(p: &PortalOutcome) -> (Decision, Option<&'static str>, Person) {
    let decision = match p.verdict {
        PortalVerdict::Allow => Decision::Allow,
        PortalVerdict::Deny => Decision::Deny,
        PortalVerdict::Unauthenticated => Decision::Unauthenticated,
        PortalVerdict::Error => Decision::Error,
    };
    let text = |s: &Option<String>| s.clone().map(Text::Owned);
    (decision, p.reason, (text(&p.user), text(&p.org)))
}

/// Count the request and queue its access-log line; the last use of `ctx`.
pub fn record(metrics: &Metrics, log: &AccessLog, session: &Session, ctx: &mut RequestCtx) {
    let req = session.req_header();
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .or(ctx.local_status)
        .unwrap_or(0);
    let snapshot = ctx.snapshot.clone();
    let (host, path, client_ip) = where_from(ctx, req);
    let f = facts(ctx, snapshot.as_deref(), &path);
    let elapsed = ctx.started.elapsed().as_secs_f64();
    if let Some(m) = f.metrics {
        m.request(
            &req.method,
            status,
            (f.decision.index(), f.decision.as_str()),
        );
        m.observe_duration(elapsed);
    }
    let mode = match &ctx.outcome {
        Outcome::Authz(a) => a.mode.as_str(),
        _ => "proxy",
    };
    let forward = ctx.forward();
    let upstream = forward
        .filter(|_| ctx.upstream.started.is_some())
        .map(|f| &f.pool);
    if let (Some(pool), Some(ms)) = (upstream, ctx.upstream.ms) {
        pool.observe_duration(metrics, ms / 1000.0);
    }
    log.log(AccessRecord {
        ts: std::time::SystemTime::now(),
        request_id: ctx.request_id.clone(),
        client_ip,
        method: req.method.clone(),
        host,
        path: redact_path(path),
        status,
        bytes_sent: session.body_bytes_sent() as u64,
        duration_ms: elapsed * 1000.0,
        upstream_ms: ctx.upstream.ms,
        route: f.route.cloned(),
        upstream: upstream.map(|p| p.label.clone()),
        user: f.user,
        org: f.org,
        decision: f.decision.as_str(),
        reason: f.reason,
        mode,
        user_agent: req.headers.get(http::header::USER_AGENT).cloned(),
    });
}

/// Hand the request's spans to the tracer, when it was sampled: the server span, a
/// child span per admission stage, and the upstream call. Run before [`record`] (which
/// takes the request's path for the log line).
pub fn trace(tracer: &crate::telemetry::Tracer, session: &Session, ctx: &RequestCtx) {
    use crate::telemetry::{span_id, unix_nanos, Kind, Span};
    let Some(ids) = ctx.trace.filter(|t| t.sampled) else {
        return;
    };
    let anchor = (std::time::Instant::now(), std::time::SystemTime::now());
    let req = session.req_header();
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .or(ctx.local_status)
        .unwrap_or(0);
    let path = match &ctx.outcome {
        Outcome::Forward(f) => Some(f.admitted.request.path.clone()),
        Outcome::Reserved { request, .. } => Some(request.path.clone()),
        Outcome::Refused(r) => r.request.as_ref().map(|r| r.path.clone()),
        Outcome::Authz(_) | Outcome::Pending => None,
    }
    .unwrap_or_else(|| truncate(req.uri.path(), 512));
    let path = redact_path(path);
    let f = facts(ctx, ctx.snapshot.as_deref(), &path);
    let route = f.route.map_or("none", |r| r.as_ref()).to_string();
    let mut attributes = vec![
        ("http.request.method", req.method.as_str().to_string()),
        ("url.path", path),
        ("http.route", route.clone()),
        ("http.response.status_code", status.to_string()),
        ("partnergate.decision", f.decision.as_str().to_string()),
    ];
    if let Some(reason) = f.reason {
        attributes.push(("partnergate.reason", reason.to_string()));
    }
    if let Some(org) = &f.org {
        attributes.push((
            "partnergate.org",
            String::from_utf8_lossy(org.as_bytes()).into_owned(),
        ));
    }
    if let Outcome::Authz(a) = &ctx.outcome {
        attributes.push(("partnergate.mode", a.mode.as_str().to_string()));
    }
    let end = std::time::Instant::now();
    tracer.record(Span {
        trace_id: ids.trace_id,
        span_id: ids.span_id,
        parent: ids.parent,
        name: format!("{} {route}", req.method),
        kind: Kind::Server,
        start_ns: unix_nanos(ctx.started, anchor),
        end_ns: unix_nanos(end, anchor),
        attributes,
        error: status >= 500 || status == 0,
    });
    for (stage, start, stop) in ctx.stages.iter().flat_map(|s| s.spans.iter()) {
        tracer.record(Span {
            trace_id: ids.trace_id,
            span_id: span_id(),
            parent: Some(ids.span_id),
            name: format!("admission.{stage}"),
            kind: Kind::Internal,
            start_ns: unix_nanos(*start, anchor),
            end_ns: unix_nanos(*stop, anchor),
            attributes: Vec::new(),
            error: false,
        });
    }
    if let (Some(started), Some(ms), Some(forward)) =
        (ctx.upstream.started, ctx.upstream.ms, ctx.forward())
    {
        let stop = started + std::time::Duration::from_secs_f64(ms / 1000.0);
        tracer.record(Span {
            trace_id: ids.trace_id,
            span_id: span_id(),
            parent: Some(ids.span_id),
            name: format!("upstream {}", forward.pool.label),
            kind: Kind::Client,
            start_ns: unix_nanos(started, anchor),
            end_ns: unix_nanos(stop, anchor),
            attributes: vec![("server.upstream", forward.pool.label.to_string())],
            error: false,
        });
    }
}

/// Host, path and client address for the log line: the cleaned ones once admission got
/// that far, else what the client sent (the path truncated).
fn where_from(
    ctx: &mut RequestCtx,
    req: &pingora::http::RequestHeader,
) -> (String, String, Option<std::net::IpAddr>) {
    let request = match &mut ctx.outcome {
        Outcome::Forward(f) => Some(&mut f.admitted.request),
        Outcome::Reserved { request, .. } => Some(request),
        Outcome::Refused(r) => match &mut r.request {
            Some(request) => Some(request),
            None => {
                let ip = r.peer.client_ip;
                return (String::new(), truncate(req.uri.path(), 512), ip);
            }
        },
        Outcome::Authz(a) => a.request_mut(),
        Outcome::Pending => None,
    };
    match request {
        Some(request) => (
            std::mem::take(&mut request.host),
            std::mem::take(&mut request.path),
            request.peer.client_ip,
        ),
        None => (String::new(), truncate(req.uri.path(), 512), None),
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The access-log form of a path: the token of an invitation or password reset link is a
/// secret (whoever holds it can use the link), so it is logged as `{token}`.
fn redact_path(path: String) -> String {
    for prefix in ["/.partnergate/invite/", "/.partnergate/reset/"] {
        if path.len() > prefix.len() && path.starts_with(prefix) {
            return format!("{prefix}{{token}}");
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Reason;

    #[test]
    fn invitation_tokens_never_reach_the_access_log() {
        let token = "/.partnergate/invite/q05LS-1I0YdWlg3nOJBoLb97y4WygarfGbGAKT7Mgrs";
        assert_eq!(redact_path(token.into()), "/.partnergate/invite/{token}");
        assert_eq!(
            redact_path("/.partnergate/invite/".into()),
            "/.partnergate/invite/"
        );
        assert_eq!(redact_path("/deals".into()), "/deals");
        assert_eq!(
            redact_path("/.partnergate/reset/q05LS-1I0YdWlg3nOJBoLb97y4Wyg".into()),
            "/.partnergate/reset/{token}"
        );
    }

    #[test]
    fn reasons_of_failures_are_names() {
        assert_eq!(Reason::UpstreamTimeout.as_str(), "upstream_timeout");
    }
}
