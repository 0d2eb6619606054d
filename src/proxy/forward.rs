//! What the upstream sees of a forwarded request: the spoofable headers stripped, the
//! normalised target, the forwarding headers, and the identity headers with the signed
//! assertion.
//!
//! The request head is edited as plain `http` parts: every header the gateway writes is
//! one map insert under a name known at compile time. (pingora's own header setters parse
//! and copy the name again and keep a second, case-preserving map; with a dozen headers
//! per request that cost more than all of admission.) Header names reach the upstream in
//! canonical form: standard names title-cased, the others lower-case, as HTTP/2 sends
//! them anyway; field names are case-insensitive (RFC 9110 section 5.1).

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::ErrorType;

use crate::admission::Caller;
use crate::directory::{Amr, CachedIdentity};
use crate::jwt::{AssertionClaims, Subject};
use crate::normalize;
use crate::request_id::RequestId;

use super::ctx::Forward;
use super::state::Snapshot;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_PARTNER_USER: HeaderName = HeaderName::from_static("x-partner-user");
const X_PARTNER_USER_ID: HeaderName = HeaderName::from_static("x-partner-user-id");
const X_PARTNER_ORG: HeaderName = HeaderName::from_static("x-partner-org");
const X_PARTNER_ORG_TYPE: HeaderName = HeaderName::from_static("x-partner-org-type");
const X_PARTNER_ROLES: HeaderName = HeaderName::from_static("x-partner-roles");
const X_PARTNER_ACCOUNT: HeaderName = HeaderName::from_static("x-partner-account");
const X_PARTNER_ACCOUNT_PERMISSION: HeaderName =
    HeaderName::from_static("x-partner-account-permission");
const X_PARTNER_ASSERTION: HeaderName = HeaderName::from_static("x-partner-assertion");
const X_PARTNER_AUTH_METHODS: HeaderName = HeaderName::from_static("x-partner-auth-methods");
const X_PARTNER_AUTH_TIME: HeaderName = HeaderName::from_static("x-partner-auth-time");

/// Headers the gateway adds at most; reserved at once so the map grows once.
const ADDED: usize = 12;

/// What a forwarded request's upstream head is made from, besides the request itself.
pub struct Upstream<'a> {
    pub forward: &'a Forward,
    pub snapshot: &'a Snapshot,
    pub request_id: &'a RequestId,
    /// The client's Host (or `:authority`), as sent.
    pub host: HeaderValue,
    pub now: i64,
    /// With `[tracing]`: this request's trace context for the upstream (replacing the
    /// client's `traceparent`).
    pub traceparent: Option<HeaderValue>,
}

/// Rewrite pingora's copy of the client's request head for the upstream.
pub fn rewrite(upstream: &mut RequestHeader, with: &Upstream<'_>) -> Result<()> {
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: Parts = std::mem::replace(upstream, placeholder).into();
    let done = rewrite_parts(&mut parts, with);
    *upstream = RequestHeader::from(parts);
    done
}

fn rewrite_parts(parts: &mut Parts, with: &Upstream<'_>) -> Result<()> {
    let forward = with.forward;
    let peer = forward.admitted.request.peer;
    let forwarded = peer
        .addr
        .map(|addr| forwarded(&parts.headers, addr, peer.trusted, peer.tls, &with.host));
    strip(
        &mut parts.headers,
        &with.snapshot.config.session.cookie_name,
    );
    if !target_unchanged(&parts.uri, forward) {
        parts.uri = http::Uri::try_from(target(forward))
            .or_err(ErrorType::InternalError, "normalised target is not a URI")?;
    }
    let headers = &mut parts.headers;
    headers.reserve(ADDED);
    if let Some(f) = forwarded {
        if !headers.contains_key(header::HOST) {
            headers.insert(header::HOST, f.host.clone());
        }
        headers.insert(X_FORWARDED_FOR, f.for_chain);
        headers.insert(X_FORWARDED_PROTO, f.proto);
        headers.insert(X_FORWARDED_HOST, f.host);
    }
    headers.insert(X_REQUEST_ID, with.request_id.header_value());
    if let Some(tp) = &with.traceparent {
        headers.insert(TRACEPARENT, tp.clone());
    }
    if let Some(caller) = &forward.admitted.caller {
        identity_headers(headers, forward, caller, with.snapshot, with.now);
    }
    Ok(())
}

/// The forwarding headers the gateway sets, from the peer and the trusted-proxy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub for_chain: HeaderValue,
    pub proto: HeaderValue,
    pub host: HeaderValue,
}

/// Compute X-Forwarded-For/-Proto/-Host. Incoming values are kept (and extended) only
/// when the peer is a trusted proxy.
pub fn forwarded(
    headers: &HeaderMap,
    peer: IpAddr,
    peer_trusted: bool,
    tls: bool,
    host: &HeaderValue,
) -> Forwarded {
    let header = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let own_proto = HeaderValue::from_static(if tls { "https" } else { "http" });
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    if !peer_trusted {
        return Forwarded {
            for_chain: ip_value(peer),
            proto: own_proto,
            host: host.clone(),
        };
    }
    let earlier = crate::admission::forwarded_for(headers);
    let for_chain = match earlier.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(prev) => value(&format!("{prev}, {peer}")),
        None => ip_value(peer),
    };
    let proto = header(&X_FORWARDED_PROTO)
        .filter(|p| matches!(*p, "http" | "https"))
        .map_or(own_proto, value);
    let fwd_host = header(&X_FORWARDED_HOST)
        .filter(|h| normalize::normalize_host(h).is_ok())
        .map_or_else(|| host.clone(), value);
    Forwarded {
        for_chain,
        proto,
        host: fwd_host,
    }
}

/// An address as a header value. Most connections of a busy gateway come from a few
/// addresses (a load balancer, other proxies), so the last one is remembered per thread.
fn ip_value(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static(""));
        };
        match &*last {
            Some((seen, value)) if *seen == ip => value.clone(),
            _ => {
                let value =
                    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static(""));
                *last = Some((ip, value.clone()));
                value
            }
        }
    })
}

/// Remove what a client must never be able to tell the upstream: identity headers in
/// any spelling, forwarding headers (re-set by the gateway), a client's request id, and
/// the gateway's own session cookie. Hop-by-hop and Connection-named headers are removed
/// by pingora's upstream request policy (set on every peer).
pub fn strip(headers: &mut HeaderMap, cookie_name: &str) {
    let doomed = |name: &HeaderName| {
        let n = name.as_str();
        normalize::is_partner_header(n)
            || is_forwarding_header(n)
            || (normalize::is_hop_by_hop(n)
                && !matches!(n, "connection" | "upgrade" | "transfer-encoding"))
    };
    // Most requests carry none: look before collecting anything.
    if headers.keys().any(doomed) {
        let names: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
        for name in names {
            headers.remove(&name);
        }
    }
    strip_cookie(headers, cookie_name);
}

fn is_forwarding_header(name: &str) -> bool {
    let n = name.as_bytes();
    name == "forwarded"
        || name == "x-request-id"
        || name == "x-real-ip"
        || (n.len() > 12 && n[..12].eq_ignore_ascii_case(b"x-forwarded-"))
        || (n.len() > 12 && n[..12].eq_ignore_ascii_case(b"x_forwarded_"))
}

/// Remove the gateway's cookies (the session cookie and its `-csrf` companion, with or
/// without the `__Host-` prefix) from every `Cookie` header (HTTP/2 clients send one
/// header per cookie).
fn strip_cookie(headers: &mut HeaderMap, cookie_name: &str) {
    let base = cookie_name.strip_prefix("__Host-").unwrap_or(cookie_name);
    let cookies = headers.get_all(header::COOKIE);
    if !cookies
        .iter()
        .any(|v| contains(v.as_bytes(), base.as_bytes()))
    {
        return;
    }
    let ours = |name: &str| {
        let name = name.strip_prefix("__Host-").unwrap_or(name);
        name == base || name.strip_suffix("-csrf") == Some(base)
    };
    let kept: Vec<&str> = cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !ours(c.split('=').next().map(str::trim).unwrap_or("")))
        .collect();
    let kept = kept.join("; ");
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::try_from(kept) {
        if !value.is_empty() {
            headers.insert(header::COOKIE, value);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The request line's target for the upstream: the normalised path (less the route's
/// `strip_prefix`) and the query.
pub fn target(forward: &Forward) -> String {
    let request = &forward.admitted.request;
    let route = &forward.admitted.route.route.config;
    let path = match route.strip_prefix.as_deref() {
        Some(prefix) => strip_path_prefix(&request.path, prefix),
        None => request.path.as_str(),
    };
    match &request.query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// Whether the client's target is already what the upstream gets (origin form, already
/// normalised, no prefix to strip): the common case keeps its parsed URI.
fn target_unchanged(uri: &http::Uri, forward: &Forward) -> bool {
    let request = &forward.admitted.request;
    forward.admitted.route.route.config.strip_prefix.is_none()
        && uri.authority().is_none()
        && uri.path() == request.path
        && uri.query() == request.query.as_deref()
}

pub fn strip_path_prefix<'a>(path: &'a str, prefix: &str) -> &'a str {
    match path.strip_prefix(prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        // "/portalx" with strip_prefix "/portal": not a segment boundary, leave as is.
        _ => path,
    }
}

/// Write the identity headers and the signed assertion (incoming `X-Partner-*` are
/// already gone); a bearer token is for the gateway, so it is not forwarded.
pub(super) fn identity_headers(
    headers: &mut HeaderMap,
    forward: &Forward,
    caller: &Caller,
    snapshot: &Snapshot,
    now: i64,
) {
    let entry = &caller.entry;
    let identity = &entry.identity;
    let h = &entry.headers;
    headers.insert(X_PARTNER_USER, h.user.clone());
    headers.insert(X_PARTNER_USER_ID, h.user_id.clone());
    headers.insert(X_PARTNER_ORG, h.org.clone());
    headers.insert(X_PARTNER_ORG_TYPE, h.org_type.clone());
    headers.insert(X_PARTNER_ROLES, h.roles.clone());
    let strength = caller.strength;
    if strength.amr != Amr::default() {
        let methods = HeaderValue::from_static(strength.amr.header_value());
        headers.insert(X_PARTNER_AUTH_METHODS, methods);
    }
    if let Some(t) = strength.auth_time {
        let mut buf = itoa::Buffer::new();
        if let Ok(value) = HeaderValue::from_str(buf.format(t)) {
            headers.insert(X_PARTNER_AUTH_TIME, value);
        }
    }
    let account = account_level(forward, entry, now);
    if let Some((account, level)) = account {
        if let Ok(value) = HeaderValue::from_str(account) {
            headers.insert(X_PARTNER_ACCOUNT, value);
        }
        if let Some(level) = level {
            headers.insert(
                X_PARTNER_ACCOUNT_PERMISSION,
                HeaderValue::from_static(level),
            );
        }
    }
    if let Some(signer) = &snapshot.assertion {
        let subject = Subject {
            user_id: &identity.user_id,
            generation: entry.generation,
            audience: forward.pool.name(),
            account: account.map(|(a, _)| a),
            amr: caller.strength.amr,
            auth_time: caller.strength.auth_time,
        };
        let token = signer.header_with(subject, now, || AssertionClaims {
            sub: identity.user_id.clone(),
            email: identity.email.clone(),
            org: identity.org.id.clone(),
            org_type: identity.org.org_type.clone(),
            roles: identity.roles.clone(),
            account: account.map(|(a, _)| a.to_string()),
            account_permission: account.and_then(|(_, l)| l.map(str::to_string)),
            amr: caller.strength.amr.names(),
            auth_time: caller.strength.auth_time,
            generation: entry.generation,
        });
        if let Some(value) = token {
            headers.insert(X_PARTNER_ASSERTION, value);
        }
    }
    if caller.is_bearer() {
        headers.remove(header::AUTHORIZATION);
    }
}

/// On `{account}` routes: the account id and the user's unexpired level on it, if any.
fn account_level<'a>(
    forward: &'a Forward,
    entry: &'a Arc<CachedIdentity>,
    now: i64,
) -> Option<(&'a str, Option<&'static str>)> {
    let account = forward.admitted.route.account.as_deref()?;
    let level = crate::policy::decide::account_level(Some(&entry.identity), Some(account), now)
        .ok()
        .map(|l| l.as_str());
    Some((account, level))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    #[test]
    fn forwarded_ignores_untrusted_values() {
        let req = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
        ]);
        let f = forwarded(
            &req,
            ip("203.0.113.9"),
            false,
            false,
            &HeaderValue::from_static("partners.example.com"),
        );
        assert_eq!(f.for_chain, "203.0.113.9");
        assert_eq!(f.proto, "http");
        assert_eq!(f.host, "partners.example.com");
        let f = forwarded(
            &req,
            ip("10.0.0.1"),
            true,
            false,
            &HeaderValue::from_static("partners.example.com"),
        );
        assert_eq!(f.for_chain, "6.6.6.6, 10.0.0.1");
        assert_eq!(f.proto, "https");
        assert_eq!(f.host, "evil");
        // The remembered address is per address.
        let f = forwarded(
            &req,
            ip("203.0.113.10"),
            false,
            true,
            &HeaderValue::from_static("h"),
        );
        assert_eq!(
            (f.for_chain, f.proto),
            (
                "203.0.113.10".parse().expect("v"),
                "https".parse().expect("v")
            )
        );
    }

    #[test]
    fn forwarded_for_keeps_every_earlier_line() {
        let mut req = headers(&[("x-forwarded-for", "6.6.6.6")]);
        req.append("x-forwarded-for", HeaderValue::from_static("198.51.100.4"));
        let f = forwarded(
            &req,
            ip("10.0.0.1"),
            true,
            false,
            &HeaderValue::from_static("h"),
        );
        assert_eq!(f.for_chain, "6.6.6.6, 198.51.100.4, 10.0.0.1");
    }

    #[test]
    fn strip_removes_spoofable_headers() {
        let mut req = headers(&[
            ("X-Partner-User", "mallory"),
            ("x_partner_roles", "admin"),
            ("X-PARTNER-ORG", "acme"),
            ("X-Forwarded-For", "1.1.1.1"),
            ("Forwarded", "for=1.1.1.1"),
            ("X-Request-Id", "abc"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic x"),
            ("Cookie", "a=1; __Host-partnergate=secret; b=2"),
            ("Accept", "text/html"),
        ]);
        strip(&mut req, "__Host-partnergate");
        let mut names: Vec<&str> = req.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["accept", "cookie"], "{names:?}");
        assert_eq!(
            req.get("cookie").and_then(|v| v.to_str().ok()),
            Some("a=1; b=2")
        );
    }

    #[test]
    fn prefix_stripping_keeps_a_leading_slash() {
        assert_eq!(strip_path_prefix("/portal/x", "/portal"), "/x");
        assert_eq!(strip_path_prefix("/portal", "/portal"), "/");
        assert_eq!(strip_path_prefix("/portalx", "/portal"), "/portalx");
    }

    #[test]
    fn strip_drops_cookie_header_holding_only_the_session() {
        let mut req = headers(&[("Cookie", "__Host-partnergate=secret")]);
        strip(&mut req, "__Host-partnergate");
        assert!(req.get("cookie").is_none());
    }
}
