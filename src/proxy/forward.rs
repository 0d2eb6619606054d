//! Stage 2 (strip) and the forwarding headers of stage 7: what the upstream may see.

use std::net::IpAddr;

use pingora::http::RequestHeader;

use crate::normalize;

use super::ctx::Forwarded;

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most untrusted address of `X-Forwarded-For` (proxies append on the right).
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    let mut leftmost = None;
    for item in xff.rsplit(',') {
        let Some(ip) = parse_forwarded_ip(item) else {
            // An unparsable hop: stop trusting anything further left.
            return leftmost.unwrap_or(peer);
        };
        if !trusted(ip) {
            return ip;
        }
        leftmost = Some(ip);
    }
    leftmost.unwrap_or(peer)
}

fn parse_forwarded_ip(item: &str) -> Option<IpAddr> {
    let item = item.trim();
    item.parse::<IpAddr>()
        .ok()
        .or_else(|| item.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn client_ip_trusts_only_configured_proxies() {
        let trusted = |i: IpAddr| i.to_string().starts_with("10.");
        let cases = [
            ("203.0.113.9", Some("1.2.3.4"), "203.0.113.9"),
            ("10.0.0.1", None, "10.0.0.1"),
            ("10.0.0.1", Some("1.2.3.4"), "1.2.3.4"),
            ("10.0.0.1", Some("6.6.6.6, 1.2.3.4, 10.0.0.2"), "1.2.3.4"),
            ("10.0.0.1", Some("10.0.0.3, 10.0.0.2"), "10.0.0.3"),
            ("10.0.0.1", Some("garbage, 1.2.3.4"), "1.2.3.4"),
            ("10.0.0.1", Some("1.2.3.4, garbage"), "10.0.0.1"),
            ("10.0.0.1", Some("[2001:db8::1]:443"), "2001:db8::1"),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(
                client_ip(ip(peer), xff, trusted),
                ip(want),
                "{peer} {xff:?}"
            );
        }
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
    fn strip_drops_cookie_header_holding_only_the_session() {
        let mut req = request(&[("Cookie", "__Host-partnergate=secret")]);
        strip(&mut req, "__Host-partnergate");
        assert!(req.headers.get("cookie").is_none());
    }
}
