//! Forward-auth: the gateway as the authorisation service of a proxy the operator keeps
//! (nginx `auth_request`, Traefik `forwardAuth`, Envoy's HTTP `ext_authz`). The request
//! the other proxy asks about is rebuilt from the check request (method, target, host,
//! scheme, and the client's own headers) and runs through the same [`admission::admit`]
//! as a proxied request, against the same route table: normalise, route, authenticate,
//! policy, limits. The answer is 200 with the identity headers (and the assertion) for
//! the proxy to copy upstream, or the refusal.
//!
//! | path | asked by | the original request is |
//! |---|---|---|
//! | `/.partnergate/authz/nginx` | nginx `auth_request` | `X-Original-Method`, `X-Original-URI` |
//! | `/.partnergate/authz`, `/.partnergate/authz/traefik` | Traefik `forwardAuth`, others | `X-Forwarded-Method`, `X-Forwarded-Uri` |
//! | `/.partnergate/authz/envoy<path>` | Envoy `ext_authz` (`path_prefix`) | the check request's method, `<path>` and query |
//!
//! Host and scheme come from `X-Forwarded-Host`/`X-Forwarded-Proto` (else the check
//! request's Host). Only a peer in `server.trusted_proxies` may ask: anyone else could
//! claim any forwarded request.
//!
//! nginx's `auth_request` takes only 2xx, 401 and 403 from the check: its answers are 200,
//! 401 (with `X-Partnergate-Location` when a browser should be sent to the login page), or
//! 403 with the real status in `X-Partnergate-Status` (403, 429 with `Retry-After`, 400,
//! 503). The other modes answer with the real status and headers.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::request::Parts;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::admission::{Admission, CleanRequest, Decision, Reason, Refused, Rejection};
use crate::metrics::Metrics;

use super::ctx::{Forward, Outcome, RequestCtx};
use super::respond;
use super::state::Snapshot;

pub const PREFIX: &str = "/.partnergate/authz";
const ENVOY_PREFIX: &str = "/.partnergate/authz/envoy";

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nginx,
    Envoy,
    Traefik,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Nginx => "nginx",
            Mode::Envoy => "envoy",
            Mode::Traefik => "traefik",
        }
    }

    /// The mode of a (normalised) reserved path, if it is a forward-auth one.
    pub fn of(path: &str) -> Option<Mode> {
        match path {
            PREFIX | "/.partnergate/authz/traefik" => Some(Mode::Traefik),
            "/.partnergate/authz/nginx" => Some(Mode::Nginx),
            _ if path == ENVOY_PREFIX || path.starts_with("/.partnergate/authz/envoy/") => {
                Some(Mode::Envoy)
            }
            _ => None,
        }
    }
}

/// What a forward-auth check decided, for the log line and the metrics.
pub struct Authz {
    pub mode: Mode,
    pub answer: Answer,
}

pub enum Answer {
    /// The request may pass (to its route's upstream).
    Allowed(Forward),
    /// The request is for the gateway's own pages: the other proxy should send those to
    /// the gateway; they do their own checks.
    Reserved(CleanRequest),
    Refused(Refused),
}

const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The identity headers every allowed answer carries, empty when they do not apply, so
/// that a proxy copying them overwrites whatever the client sent under those names.
pub const IDENTITY_HEADERS: [&str; 10] = [
    "x-partner-user",
    "x-partner-user-id",
    "x-partner-org",
    "x-partner-org-type",
    "x-partner-roles",
    "x-partner-account",
    "x-partner-account-permission",
    "x-partner-auth-methods",
    "x-partner-auth-time",
    "x-partner-assertion",
];

/// The request the other proxy asks about, rebuilt from the check request, and whether
/// it came over TLS. `Err` names what is missing or malformed.
pub fn original_request(
    mode: Mode,
    check: &Parts,
    tls: bool,
) -> Result<(Parts, bool), &'static str> {
    let text = |name: &HeaderName| check.headers.get(name).and_then(|v| v.to_str().ok());
    let (method, target) = match mode {
        Mode::Envoy => {
            let raw = check.uri.path_and_query().map_or("", |pq| pq.as_str());
            let rest = raw
                .strip_prefix(ENVOY_PREFIX)
                .ok_or("the check path does not start with the envoy prefix")?;
            let target = if rest.is_empty() || rest.starts_with('?') {
                format!("/{rest}")
            } else if rest.starts_with('/') {
                rest.to_string()
            } else {
                return Err("the check path does not start with the envoy prefix");
            };
            (check.method.clone(), target)
        }
        Mode::Nginx | Mode::Traefik => {
            // Each mode reads only its own pair: nginx passes the client's headers on to
            // the check, so a client-sent X-Forwarded-Uri must not name another request
            // than the one nginx forwards (the nginx config sets X-Original-*).
            let (method_header, uri_header) = match mode {
                Mode::Nginx => (&X_ORIGINAL_METHOD, &X_ORIGINAL_URI),
                _ => (&X_FORWARDED_METHOD, &X_FORWARDED_URI),
            };
            let method = text(method_header)
                .map(|m| http::Method::from_bytes(m.as_bytes()))
                .transpose()
                .map_err(|_| "the forwarded method is not a method")?
                .unwrap_or(http::Method::GET);
            let target = text(uri_header).ok_or("no X-Original-URI (nginx) or X-Forwarded-Uri")?;
            if !target.starts_with('/') {
                return Err("the forwarded URI is not a path");
            }
            (method, target.to_string())
        }
    };
    let uri: http::Uri = target
        .parse()
        .map_err(|_| "the forwarded URI is malformed")?;
    let mut headers = check.headers.clone();
    for name in [
        X_ORIGINAL_METHOD,
        X_ORIGINAL_URI,
        X_FORWARDED_METHOD,
        X_FORWARDED_URI,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if let Some(host) = check.headers.get(X_FORWARDED_HOST).cloned() {
        headers.insert(header::HOST, host);
    }
    let tls = match text(&X_FORWARDED_PROTO) {
        Some(p) => p.eq_ignore_ascii_case("https"),
        None => tls,
    };
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = check.version;
    parts.headers = headers;
    Ok((parts, tls))
}

/// The original request of a forward-auth check (the outer request was admitted as a
/// reserved path) and whether it came over TLS; `None` when the check was answered
/// already (an untrusted peer: 403; an unreadable check: 400).
pub async fn prepare(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mode: Mode,
    check: CleanRequest,
    tls: bool,
    snapshot: &Snapshot,
    metrics: &Metrics,
) -> Result<Option<(Parts, bool)>> {
    let trusted = check
        .peer
        .addr
        .is_some_and(|ip| snapshot.config.server.is_trusted_proxy(ip));
    if !trusted {
        // Only the proxy in front may say what it forwards.
        let refused = Refused {
            rejection: Rejection {
                status: 403,
                reason: Reason::UntrustedPeer,
                decision: Decision::Deny,
                retry_after: None,
                challenge: None,
                location: None,
            },
            peer: check.peer,
            request: Some(check),
            route: None,
            caller: None,
        };
        // The same 403 in every mode: this peer is not the proxy the shapes are for.
        count(metrics, mode, refused.rejection.decision.as_str());
        let rejection = refused.rejection.clone();
        respond::reject(session, ctx, &rejection).await?;
        ctx.outcome = Outcome::Authz(Authz {
            mode,
            answer: Answer::Refused(refused),
        });
        return Ok(None);
    }
    match original_request(mode, session.req_header(), tls) {
        Ok(o) => Ok(Some(o)),
        Err(why) => {
            tracing::debug!(request_id = %ctx.request_id, "forward-auth check refused: {why}");
            let rejection = Rejection::malformed(Reason::Unparsable);
            let refused = Refused {
                rejection: rejection.clone(),
                peer: check.peer,
                request: Some(check),
                route: None,
                caller: None,
            };
            answer_refused(session, ctx, mode, &rejection, metrics).await?;
            ctx.outcome = Outcome::Authz(Authz {
                mode,
                answer: Answer::Refused(refused),
            });
            Ok(None)
        }
    }
}

/// The answer to an admitted (or reserved) original request, and the context's outcome.
pub async fn answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mode: Mode,
    outcome: Result<Admission, Refused>,
    snapshot: &Snapshot,
    now: i64,
    metrics: &Metrics,
) -> Result<()> {
    let answer = match outcome {
        Ok(Admission::Forward(admitted)) => match snapshot.pool(&admitted.route.route).cloned() {
            Some(pool) => Answer::Allowed(Forward { admitted, pool }),
            None => {
                ctx.failure = Some((Decision::Error, Reason::Internal));
                respond::error(session, ctx, 500).await?;
                return Ok(());
            }
        },
        Ok(Admission::Reserved(request)) => Answer::Reserved(request),
        Err(refused) => Answer::Refused(refused),
    };
    match &answer {
        Answer::Allowed(forward) => {
            let mut headers = HeaderMap::new();
            if let Some(caller) = &forward.admitted.caller {
                super::forward::identity_headers(&mut headers, forward, caller, snapshot, now);
            }
            let decision = forward.admitted.decision();
            allowed(session, ctx, &headers, metrics, mode, decision.as_str()).await?;
        }
        Answer::Reserved(_) => {
            allowed(session, ctx, &HeaderMap::new(), metrics, mode, "allow").await?;
        }
        Answer::Refused(refused) => {
            let rejection = refused.rejection.clone();
            answer_refused(session, ctx, mode, &rejection, metrics).await?;
        }
    }
    ctx.outcome = Outcome::Authz(Authz { mode, answer });
    Ok(())
}

async fn allowed(
    session: &mut Session,
    ctx: &mut RequestCtx,
    identity: &HeaderMap,
    metrics: &Metrics,
    mode: Mode,
    decision: &str,
) -> Result<()> {
    count(metrics, mode, decision);
    let values: Vec<(&str, &str)> = IDENTITY_HEADERS
        .iter()
        .map(|name| {
            let value = identity
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            (*name, value)
        })
        .collect();
    respond::send(session, ctx, 200, "text/plain", Bytes::new(), &values).await
}

/// `partnergate_forward_auth_requests_total` for one answer.
fn count(metrics: &Metrics, mode: Mode, decision: &str) {
    metrics
        .forward_auth
        .with_label_values(&[mode.as_str(), decision])
        .inc();
}

/// A refusal as `mode`'s proxy needs it.
async fn answer_refused(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mode: Mode,
    rejection: &Rejection,
    metrics: &Metrics,
) -> Result<()> {
    count(metrics, mode, rejection.decision.as_str());
    if mode != Mode::Nginx {
        return respond::reject(session, ctx, rejection).await;
    }
    let status = rejection.status.to_string();
    let mut extra: Vec<(&str, String)> = Vec::new();
    let code = match rejection.status {
        302 | 401 => {
            if let Some(location) = &rejection.location {
                extra.push(("x-partnergate-location", location.clone()));
            }
            if let Some(challenge) = rejection.challenge {
                extra.push(("www-authenticate", challenge.to_string()));
            }
            401
        }
        _ => {
            extra.push(("x-partnergate-status", status));
            if let Some(retry) = rejection.retry_after {
                extra.push(("retry-after", retry.to_string()));
            }
            403
        }
    };
    let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let body = respond::error_body(code, ctx.request_id.as_str());
    respond::send(session, ctx, code, "application/json", body, &extra).await
}

impl Authz {
    /// The request the check was about (for the log line).
    pub fn request_mut(&mut self) -> Option<&mut CleanRequest> {
        match &mut self.answer {
            Answer::Allowed(f) => Some(&mut f.admitted.request),
            Answer::Reserved(r) => Some(r),
            Answer::Refused(r) => r.request.as_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: &str, target: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn modes_by_path() {
        assert_eq!(Mode::of("/.partnergate/authz"), Some(Mode::Traefik));
        assert_eq!(Mode::of("/.partnergate/authz/nginx"), Some(Mode::Nginx));
        assert_eq!(
            Mode::of("/.partnergate/authz/envoy/deals"),
            Some(Mode::Envoy)
        );
        assert_eq!(Mode::of("/.partnergate/authz/envoy"), Some(Mode::Envoy));
        assert_eq!(Mode::of("/.partnergate/authzx"), None);
        assert_eq!(Mode::of("/.partnergate/login"), None);
    }

    #[test]
    fn the_original_request_from_each_proxy() {
        let nginx = check(
            "GET",
            "/.partnergate/authz/nginx",
            &[
                ("host", "gateway:8080"),
                ("x-original-uri", "/deals/42?x=1"),
                ("x-original-method", "POST"),
                ("x-forwarded-host", "portal.example"),
                ("x-forwarded-proto", "https"),
                ("cookie", "partnergate=abc"),
                ("content-length", "0"),
            ],
        );
        let (head, tls) = original_request(Mode::Nginx, &nginx, false).expect("nginx");
        assert_eq!(head.method, http::Method::POST);
        assert_eq!(head.uri, "/deals/42?x=1");
        assert_eq!(head.headers["host"], "portal.example");
        assert_eq!(head.headers["cookie"], "partnergate=abc");
        assert!(tls);
        assert!(!head.headers.contains_key("x-original-uri"));
        assert!(!head.headers.contains_key("content-length"));

        let traefik = check(
            "GET",
            "/.partnergate/authz",
            &[
                ("host", "portal.example"),
                ("x-forwarded-uri", "/reports"),
                ("x-forwarded-method", "DELETE"),
            ],
        );
        let (head, tls) = original_request(Mode::Traefik, &traefik, false).expect("traefik");
        assert_eq!(
            (head.method.as_str(), head.uri.path(), tls),
            ("DELETE", "/reports", false)
        );

        let envoy = check(
            "PUT",
            "/.partnergate/authz/envoy/deals?y=2",
            &[("host", "portal.example")],
        );
        let (head, _) = original_request(Mode::Envoy, &envoy, true).expect("envoy");
        assert_eq!(
            (head.method.as_str(), head.uri.to_string().as_str()),
            ("PUT", "/deals?y=2")
        );
        let root = check("GET", "/.partnergate/authz/envoy", &[]);
        assert_eq!(
            original_request(Mode::Envoy, &root, false)
                .expect("root")
                .0
                .uri,
            "/"
        );

        let missing = check("GET", "/.partnergate/authz/nginx", &[]);
        assert!(original_request(Mode::Nginx, &missing, false).is_err());
        let absolute = check(
            "GET",
            "/.partnergate/authz",
            &[("x-forwarded-uri", "http://evil/")],
        );
        assert!(original_request(Mode::Traefik, &absolute, false).is_err());
        let bad_method = check(
            "GET",
            "/.partnergate/authz",
            &[("x-forwarded-uri", "/"), ("x-forwarded-method", "G E T")],
        );
        assert!(original_request(Mode::Traefik, &bad_method, false).is_err());
    }
}
