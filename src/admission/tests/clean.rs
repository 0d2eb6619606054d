//! Stage clean: the head limit, the target, the host, the TLS name, the upgrade flag, and
//! who the client is ([`Peer::of`], [`client_ip`]).

use std::net::IpAddr;

use http::request::Parts;

use super::{config, head, ip, UPSTREAM};
use crate::admission::{
    clean, client_ip, is_browser_navigation, request_host, CleanRequest, Connection, Decision,
    Peer, Reason, Rejection,
};
use crate::config::ServerConfig;
use crate::normalize::Malformed;

/// 10.0.0.0/8 and one IPv6 range are the trusted proxies.
fn server() -> ServerConfig {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:8080"
trusted_proxies = ["10.0.0.0/8", "2001:db8:ffff::/48"]
{UPSTREAM}
[[routes]]
name = "portal"
path = "/"
upstream = "portal"
"#
    );
    config(&text).server
}

const MAX_HEAD: usize = 16_384;

/// Header field lines of a case.
type Fields = &'static [(&'static str, &'static str)];

/// A plain-HTTP connection from an untrusted client.
fn plain() -> Connection<'static> {
    Connection {
        raw_head: None,
        addr: Some(ip("203.0.113.9")),
        tls: false,
        sni: None,
    }
}

fn run(head: &Parts, conn: &Connection<'_>, max_head: usize) -> Result<CleanRequest, Rejection> {
    let peer = Peer::of(conn, head, &server());
    clean(head, conn, peer, max_head)
}

/// What clean made of a request: `path ?query` or `status reason`.
fn outcome(result: &Result<CleanRequest, Rejection>) -> String {
    match result {
        Ok(r) => match &r.query {
            Some(q) => format!("{} ?{q}", r.path),
            None => r.path.clone(),
        },
        Err(r) => format!("{} {}", r.status, r.reason.as_str()),
    }
}

#[test]
fn targets_are_normalised_or_refused_with_their_reason() {
    let cases = [
        ("/", "/"),
        ("/dashboard", "/dashboard"),
        ("/a/./b/../c", "/a/c"),
        ("/a//b///c/", "/a/b/c/"),
        ("/%7Euser/%41", "/~user/A"),
        // `..` never climbs above the root, however it is spelled.
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/%2e%2e/%2E%2E/../b", "/b"),
        ("/.partnergate/../admin", "/admin"),
        // The query is kept as sent, the path normalised without it.
        ("/a/./b?x=1&y=%2F..", "/a/b ?x=1&y=%2F.."),
        ("/a?", "/a ?"),
        ("/a%2Fb", "400 encoded_slash"),
        ("/a%2fb", "400 encoded_slash"),
        ("/..%2f..%2fetc/passwd", "400 encoded_slash"),
        ("/%2e%2e%2f", "400 encoded_slash"),
        ("/a%5Cb", "400 encoded_backslash"),
        ("/..%5c..%5cwindows", "400 encoded_backslash"),
        ("/a%00", "400 encoded_nul"),
        ("/a%252Fb", "400 double_encoding"),
        ("/a%25%32%46", "400 double_encoding"),
        ("/a%zz", "400 bad_percent_encoding"),
        ("/a%2", "400 bad_percent_encoding"),
        ("/a%", "400 bad_percent_encoding"),
        ("*", "400 not_origin_form"),
    ];
    for (target, want) in cases {
        let h = head("GET", target, &[("host", "partners.example.com")]);
        let got = run(&h, &plain(), MAX_HEAD);
        assert_eq!(outcome(&got), want, "{target:?}");
        if let Err(r) = &got {
            assert!(matches!(r.reason, Reason::Malformed(_)), "{target:?}");
            assert_eq!(r.decision, Decision::Deny, "{target:?}");
        }
    }
}

#[test]
fn malformed_targets_carry_the_normaliser_reason() {
    let cases = [
        ("/a%2Fb", Malformed::EncodedSlash),
        ("/a%5Cb", Malformed::EncodedBackslash),
        ("/a%00", Malformed::EncodedNul),
        ("/a%2541", Malformed::DoubleEncoding),
        ("/a%g1", Malformed::BadPercentEncoding),
    ];
    for (target, want) in cases {
        let h = head("GET", target, &[("host", "partners.example.com")]);
        assert_eq!(
            run(&h, &plain(), MAX_HEAD),
            Err(Rejection::malformed(Reason::Malformed(want))),
            "{target:?}"
        );
    }
}

#[test]
fn an_oversized_head_is_431_before_anything_else_is_looked_at() {
    let big = "x".repeat(2_000);
    let cases = [
        // (target, extra header value, host, max, want)
        ("/", "small", Some("partners.example.com"), 1_024, "/"),
        (
            "/",
            big.as_str(),
            Some("partners.example.com"),
            1_024,
            "431 header_too_large",
        ),
        (
            "/",
            big.as_str(),
            Some("partners.example.com"),
            MAX_HEAD,
            "/",
        ),
        // The size is checked first: neither the bad target nor the missing host is.
        ("/a%2Fb", big.as_str(), None, 1_024, "431 header_too_large"),
    ];
    for (target, value, host, max, want) in cases {
        let mut headers = vec![("x-filler", value)];
        headers.extend(host.map(|h| ("host", h)));
        let h = head("GET", target, &headers);
        let got = run(&h, &plain(), max);
        assert_eq!(outcome(&got), want, "{target:?} {} bytes", value.len());
    }
    // A long target counts too.
    let long_target = format!("/{}", "a".repeat(2_000));
    let h = head("GET", &long_target, &[("host", "partners.example.com")]);
    assert_eq!(
        run(&h, &plain(), 1_024),
        Err(Rejection::malformed(Reason::HeaderTooLarge))
    );
    assert_eq!(Rejection::malformed(Reason::HeaderTooLarge).status, 431);
}

#[test]
fn the_host_comes_from_the_authority_or_exactly_one_host_header() {
    let cases: [(&str, &[&str], &str); 13] = [
        ("/", &["Partners.Example.COM:8443"], "partners.example.com"),
        ("/", &["partners.example.com."], "partners.example.com"),
        ("/", &["127.0.0.1:8080"], "127.0.0.1"),
        ("/", &["[2001:DB8::1]:443"], "[2001:db8::1]"),
        ("/", &[], "400 bad_host"),
        ("/", &["a.example", "b.example"], "400 bad_host"),
        ("/", &["a.example", "a.example"], "400 bad_host"),
        ("/", &[""], "400 bad_host"),
        ("/", &["user@partners.example.com"], "400 bad_host"),
        ("/", &["partners.example.com:99999"], "400 bad_host"),
        ("/", &["exa mple.com"], "400 bad_host"),
        // Absolute form (and HTTP/2 `:authority`): the authority is the host.
        ("https://API.example.com:8443/x", &[], "api.example.com"),
        (
            "https://api.example.com/x",
            &["a.example", "b.example"],
            "api.example.com",
        ),
    ];
    for (target, hosts, want) in cases {
        let headers: Vec<_> = hosts.iter().map(|h| ("host", *h)).collect();
        let h = head("GET", target, &headers);
        let got = match run(&h, &plain(), MAX_HEAD) {
            Ok(r) => r.host,
            Err(r) => format!("{} {}", r.status, r.reason.as_str()),
        };
        assert_eq!(got, want, "{target:?} {hosts:?}");
    }
    let two = head("GET", "/", &[("host", "a.example"), ("host", "a.example")]);
    assert_eq!(request_host(&two), None);
    let one = head("GET", "/", &[("host", "A.example:80")]);
    assert_eq!(request_host(&one), Some("A.example:80"));
}

#[test]
fn on_tls_the_host_must_be_the_sni_name() {
    let cases = [
        // (sni, host, want)
        (Some("partners.example.com"), "partners.example.com", "ok"),
        (
            Some("partners.example.com"),
            "Partners.Example.com:8443",
            "ok",
        ),
        (Some("partners.example.com"), "partners.example.com.", "ok"),
        (
            Some("partners.example.com"),
            "other.example.com",
            "421 misdirected",
        ),
        (
            Some("other.example.com"),
            "partners.example.com",
            "421 misdirected",
        ),
        // No SNI (an IP address was dialled): nothing to compare.
        (None, "partners.example.com", "ok"),
    ];
    for (sni, host, want) in cases {
        let conn = Connection {
            raw_head: None,
            addr: Some(ip("203.0.113.9")),
            tls: true,
            sni,
        };
        let h = head("GET", "/", &[("host", host)]);
        let got = match run(&h, &conn, MAX_HEAD) {
            Ok(_) => "ok".to_string(),
            Err(r) => format!("{} {}", r.status, r.reason.as_str()),
        };
        assert_eq!(got, want, "{sni:?} {host:?}");
    }
    let misdirected = Rejection::malformed(Reason::Misdirected);
    assert_eq!(
        (misdirected.status, misdirected.decision),
        (421, Decision::Deny)
    );
}

#[test]
fn a_websocket_upgrade_is_noticed() {
    let cases: [(Fields, bool); 7] = [
        (&[], false),
        (&[("upgrade", "websocket")], true),
        (&[("upgrade", "WebSocket")], true),
        (&[("upgrade", "h2c, websocket")], true),
        (&[("upgrade", "h2c"), ("upgrade", "websocket")], true),
        (&[("upgrade", "h2c")], false),
        (&[("connection", "websocket")], false),
    ];
    for (headers, want) in cases {
        let mut all = vec![("host", "partners.example.com")];
        all.extend_from_slice(headers);
        let h = head("GET", "/ws", &all);
        assert_eq!(
            run(&h, &plain(), MAX_HEAD).unwrap().websocket,
            want,
            "{headers:?}"
        );
    }
}

#[test]
fn the_clean_request_keeps_the_peer() {
    let conn = Connection {
        raw_head: None,
        addr: Some(ip("10.1.2.3")),
        tls: true,
        sni: Some("partners.example.com"),
    };
    let h = head(
        "GET",
        "/a/../b?q=1",
        &[
            ("host", "partners.example.com"),
            ("x-forwarded-for", "198.51.100.4"),
        ],
    );
    let got = run(&h, &conn, MAX_HEAD).unwrap();
    assert_eq!(
        got,
        CleanRequest {
            host: "partners.example.com".into(),
            path: "/b".into(),
            query: Some("q=1".into()),
            peer: Peer {
                addr: Some(ip("10.1.2.3")),
                client_ip: Some(ip("198.51.100.4")),
                trusted: true,
                tls: true,
            },
            websocket: false,
        }
    );
}

/// The old `proxy/forward.rs` table, now that the client address is worked out here.
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
        ("10.0.0.1", Some("10.0.0.2, garbage"), "10.0.0.1"),
        ("10.0.0.1", Some("garbage, 10.0.0.2"), "10.0.0.2"),
        ("10.0.0.1", Some("[2001:db8::1]:443"), "2001:db8::1"),
        ("10.0.0.1", Some("203.0.113.5:61000"), "203.0.113.5"),
        ("10.0.0.1", Some(" 1.2.3.4 ,10.0.0.2 "), "1.2.3.4"),
        ("10.0.0.1", Some(""), "10.0.0.1"),
    ];
    for (peer, xff, want) in cases {
        assert_eq!(
            client_ip(ip(peer), xff, trusted),
            ip(want),
            "{peer} {xff:?}"
        );
    }
}

#[test]
fn peer_of_uses_the_configured_trusted_proxies() {
    let cases = [
        // (socket peer, X-Forwarded-For, client ip, trusted)
        ("203.0.113.9", None, "203.0.113.9", false),
        ("203.0.113.9", Some("1.2.3.4"), "203.0.113.9", false),
        ("10.0.0.1", None, "10.0.0.1", true),
        ("10.0.0.1", Some("1.2.3.4"), "1.2.3.4", true),
        (
            "10.0.0.1",
            Some("6.6.6.6, 1.2.3.4, 10.9.9.9"),
            "1.2.3.4",
            true,
        ),
        ("10.0.0.1", Some("10.0.0.7"), "10.0.0.7", true),
        ("11.0.0.1", Some("1.2.3.4"), "11.0.0.1", false),
        (
            "2001:db8:ffff::1",
            Some("2001:db8:1::5"),
            "2001:db8:1::5",
            true,
        ),
        (
            "2001:db8:fffe::1",
            Some("2001:db8:1::5"),
            "2001:db8:fffe::1",
            false,
        ),
    ];
    let server = server();
    for (addr, xff, client, trusted) in cases {
        let conn = Connection {
            raw_head: None,
            addr: Some(ip(addr)),
            tls: false,
            sni: None,
        };
        let headers: Vec<_> = xff.map(|v| ("x-forwarded-for", v)).into_iter().collect();
        let h = head("GET", "/", &headers);
        let peer = Peer::of(&conn, &h, &server);
        assert_eq!(
            peer,
            Peer {
                addr: Some(ip(addr)),
                client_ip: Some(ip(client)),
                trusted,
                tls: false,
            },
            "{addr} {xff:?}"
        );
    }
    // A connection without an IP peer (a Unix socket) has no client address at all.
    let h = head("GET", "/", &[("x-forwarded-for", "1.2.3.4")]);
    let peer = Peer::of(&Connection::default(), &h, &server);
    assert_eq!(
        peer,
        Peer {
            addr: None,
            client_ip: None,
            trusted: false,
            tls: false,
        }
    );
}

/// A proxy may add its own `X-Forwarded-For` field line instead of extending the
/// client's (HAProxy's `option forwardfor` does); the lines are one list (RFC 9110
/// §5.3), so the right-most untrusted address is on the last line, not the first.
#[test]
fn peer_of_reads_every_forwarded_for_line() {
    let conn = Connection {
        raw_head: None,
        addr: Some(ip("10.0.0.1")),
        tls: false,
        sni: None,
    };
    let h = head(
        "GET",
        "/",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.4"),
        ],
    );
    let peer = Peer::of(&conn, &h, &server());
    assert_eq!(peer.client_ip, Some(ip("198.51.100.4")));
}

#[test]
fn a_request_id_is_kept_only_from_a_trusted_proxy_and_only_when_well_formed() {
    let long = "a".repeat(129);
    let cases = [
        // (socket peer, X-Request-Id, kept)
        ("10.0.0.1", Some("abc-123_x.y:z"), Some("abc-123_x.y:z")),
        ("10.0.0.1", None, None),
        ("10.0.0.1", Some("has space"), None),
        ("10.0.0.1", Some(""), None),
        ("10.0.0.1", Some(long.as_str()), None),
        ("203.0.113.9", Some("abc-123"), None),
        ("2001:db8:ffff::9", Some("abc-123"), Some("abc-123")),
    ];
    let server = server();
    for (addr, id, want) in cases {
        let conn = Connection {
            raw_head: None,
            addr: Some(ip(addr)),
            tls: false,
            sni: None,
        };
        let headers: Vec<_> = id.map(|v| ("x-request-id", v)).into_iter().collect();
        let h = head("GET", "/", &headers);
        let peer = Peer::of(&conn, &h, &server);
        assert_eq!(peer.request_id(&h), want, "{addr} {id:?}");
    }
}

#[test]
fn a_browser_navigation_is_a_get_accepting_html() {
    let cases: [(&str, Fields, bool); 7] = [
        ("GET", &[], false),
        (
            "GET",
            &[("accept", "text/HTML,application/xhtml+xml")],
            true,
        ),
        ("GET", &[("accept", "text/html")], true),
        (
            "GET",
            &[("accept", "application/json"), ("accept", "text/html")],
            true,
        ),
        ("GET", &[("accept", "application/json")], false),
        ("POST", &[("accept", "text/html")], false),
        ("HEAD", &[("accept", "text/html")], false),
    ];
    for (method, headers, want) in cases {
        let h = head(method, "/", headers);
        assert_eq!(is_browser_navigation(&h), want, "{method} {headers:?}");
    }
}

#[test]
fn a_head_that_broke_the_wire_syntax_is_refused_first() {
    use crate::normalize::strict::Strictness;
    for fault in [
        Strictness::BadRequestLine,
        Strictness::BareLf,
        Strictness::TransferEncodingNotChunked,
    ] {
        let conn = Connection {
            raw_head: Some(fault),
            ..Connection::default()
        };
        let head = head("GET", "/dashboard", &[("host", "partners.example.com")]);
        let refused = run(&head, &conn, 16_384).unwrap_err();
        assert_eq!(refused.status, 400, "{fault:?}");
        assert_eq!(refused.reason, Reason::Strict(fault));
        assert_eq!(refused.reason.as_str(), fault.reason());
    }
}
