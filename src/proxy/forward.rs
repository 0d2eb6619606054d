//! What the upstream sees of a forwarded request: the spoofable headers stripped, the
//! normalised target, the forwarding headers, and the identity headers with the signed
//! assertion.

use std::net::IpAddr;
use std::sync::Arc;

use pingora::http::RequestHeader;
use pingora::prelude::*;

use crate::admission::Caller;
use crate::directory::CachedIdentity;
use crate::jwt::{AssertionClaims, Subject};
use crate::normalize;

use super::ctx::Forward;
use super::state::Snapshot;

/// The forwarding headers the gateway sets, from the peer and the trusted-proxy rule.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub for_chain: String,
    pub proto: String,
    pub host: String,
}

/// Compute X-Forwarded-For/-Proto/-Host. Incoming values are kept (and extended) only
/// when the peer is a trusted proxy.
pub fn forwarded(
    req: &RequestHeader,
    peer: IpAddr,
    peer_trusted: bool,
    tls: bool,
    host: &str,
) -> Forwarded {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let own_proto = if tls { "https" } else { "http" };
    if !peer_trusted {
        return Forwarded {
            for_chain: peer.to_string(),
            proto: own_proto.to_string(),
            host: host.to_string(),
        };
    }
    let for_chain = match header("x-forwarded-for")
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        Some(prev) => format!("{prev}, {peer}"),
        None => peer.to_string(),
    };
    let proto = header("x-forwarded-proto")
        .filter(|p| matches!(*p, "http" | "https"))
        .unwrap_or(own_proto);
    let fwd_host = header("x-forwarded-host")
        .filter(|h| normalize::normalize_host(h).is_ok())
        .unwrap_or(host);
    Forwarded {
        for_chain,
        proto: proto.to_string(),
        host: fwd_host.to_string(),
    }
}

/// Remove what a client must never be able to tell the upstream: identity headers in
/// any spelling, forwarding headers (re-set by the gateway), a client's request id, and
/// the gateway's own session cookie. Hop-by-hop and Connection-named headers are removed
/// by pingora's upstream request policy (set on every peer).
pub fn strip(req: &mut RequestHeader, cookie_name: &str) {
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            normalize::is_partner_header(n)
                || is_forwarding_header(n)
                || (normalize::is_hop_by_hop(n)
                    && !matches!(n, "connection" | "upgrade" | "transfer-encoding"))
        })
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
    strip_cookie(req, cookie_name);
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
fn strip_cookie(req: &mut RequestHeader, cookie_name: &str) {
    let base = cookie_name.strip_prefix("__Host-").unwrap_or(cookie_name);
    let values: Vec<&[u8]> = req
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if !values.iter().any(|v| contains(v, base.as_bytes())) {
        return;
    }
    let ours = |name: &str| {
        let name = name.strip_prefix("__Host-").unwrap_or(name);
        name == base || name.strip_suffix("-csrf") == Some(base)
    };
    let kept: Vec<String> = values
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !ours(c.split('=').next().map(str::trim).unwrap_or("")))
        .map(str::to_string)
        .collect();
    req.remove_header("cookie");
    if !kept.is_empty() {
        let _ = req.insert_header("cookie", kept.join("; "));
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
pub fn identity_headers(
    upstream: &mut RequestHeader,
    forward: &Forward,
    caller: &Caller,
    snapshot: &Snapshot,
    now: i64,
) -> Result<()> {
    let entry = &caller.entry;
    let identity = &entry.identity;
    let h = &entry.headers;
    upstream.insert_header("x-partner-user", h.user.clone())?;
    upstream.insert_header("x-partner-user-id", h.user_id.clone())?;
    upstream.insert_header("x-partner-org", h.org.clone())?;
    upstream.insert_header("x-partner-org-type", h.org_type.clone())?;
    upstream.insert_header("x-partner-roles", h.roles.clone())?;
    let account = account_level(forward, entry, now);
    if let Some((account, level)) = account {
        upstream.insert_header("x-partner-account", account)?;
        if let Some(level) = level {
            upstream.insert_header("x-partner-account-permission", level)?;
        }
    }
    if let Some(signer) = &snapshot.assertion {
        let subject = Subject {
            user_id: &identity.user_id,
            generation: entry.generation,
            audience: forward.pool.name(),
            account: account.map(|(a, _)| a),
        };
        let token = signer.sign_with(subject, now, || AssertionClaims {
            sub: identity.user_id.clone(),
            email: identity.email.clone(),
            org: identity.org.id.clone(),
            org_type: identity.org.org_type.clone(),
            roles: identity.roles.clone(),
            account: account.map(|(a, _)| a.to_string()),
            account_permission: account.and_then(|(_, l)| l.map(str::to_string)),
            generation: entry.generation,
        });
        upstream.insert_header("x-partner-assertion", token.as_ref())?;
    }
    if caller.is_bearer() {
        upstream.remove_header("authorization");
    }
    Ok(())
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
    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        for (n, v) in headers {
            req.append_header(n.to_string(), *v).expect("header");
        }
        req
    }

    #[test]
    fn forwarded_ignores_untrusted_values() {
        let req = request(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
        ]);
        let f = forwarded(
            &req,
            ip("203.0.113.9"),
            false,
            false,
            "partners.example.com",
        );
        assert_eq!(f.for_chain, "203.0.113.9");
        assert_eq!(f.proto, "http");
        assert_eq!(f.host, "partners.example.com");
        let f = forwarded(&req, ip("10.0.0.1"), true, false, "partners.example.com");
        assert_eq!(f.for_chain, "6.6.6.6, 10.0.0.1");
        assert_eq!(f.proto, "https");
        assert_eq!(f.host, "evil");
    }

    #[test]
    fn strip_removes_spoofable_headers() {
        let mut req = request(&[
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
        let mut names: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["accept", "cookie"], "{names:?}");
        assert_eq!(
            req.headers.get("cookie").and_then(|v| v.to_str().ok()),
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
        let mut req = request(&[("Cookie", "__Host-partnergate=secret")]);
        strip(&mut req, "__Host-partnergate");
        assert!(req.headers.get("cookie").is_none());
    }
}
