//! Stage route: [`Rules::route`] on clean requests.

use std::sync::Arc;

use http::Method;

use super::{ip, rules, UPSTREAM};
use crate::admission::{CleanRequest, Decision, Peer, Reason, Rejection, Rules};
use crate::policy::DenyReason;

fn table() -> Rules {
    rules(&format!(
        r#"
[server]
listen = "127.0.0.1:8080"
{UPSTREAM}
[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"

[[routes]]
name = "reports-read"
host = "partners.example.com"
path = "/reports"
methods = ["GET"]
upstream = "portal"

[[routes]]
name = "reports-write"
host = "partners.example.com"
path = "/reports"
methods = ["POST"]
upstream = "portal"

[[routes]]
name = "wild"
host = "*.example.com"
path = "/reports"
methods = ["GET"]
upstream = "portal"

[[routes]]
name = "api-read"
path = "/api/"
methods = ["GET", "HEAD"]
upstream = "portal"

[[routes]]
name = "api-write"
path = "/api/"
methods = ["PUT"]
upstream = "portal"

[[routes]]
name = "client"
path = "/clients/{{account}}/"
upstream = "portal"

[[routes]]
name = "ws"
path = "/ws"
upstream = "portal"
websocket = true

[[routes]]
name = "portal"
host = "partners.example.com"
path = "/"
upstream = "portal"
"#
    ))
}

fn request(host: &str, path: &str, websocket: bool) -> CleanRequest {
    CleanRequest {
        host: host.into(),
        path: path.into(),
        query: None,
        peer: Peer {
            addr: Some(ip("203.0.113.9")),
            client_ip: Some(ip("203.0.113.9")),
            trusted: false,
            tls: false,
        },
        websocket,
    }
}

/// `route[:account]`, or `status reason @route` for a refusal.
fn outcome(rules: &Rules, host: &str, path: &str, method: Method, websocket: bool) -> String {
    match rules.route(&request(host, path, websocket), &method) {
        Ok(m) => {
            assert!(Arc::ptr_eq(&m.route, &rules.routes()[m.route.position]));
            match &m.account {
                Some(a) => format!("{}:{a}", m.route.name()),
                None => m.route.name().to_string(),
            }
        }
        Err((route, r)) => format!(
            "{} {} @{}",
            r.status,
            r.reason.as_str(),
            route.as_ref().map_or("-", |r| r.name())
        ),
    }
}

#[test]
fn the_first_route_matching_host_path_and_method_wins() {
    let rules = table();
    let p = "partners.example.com";
    let cases = [
        (p, "/healthz", Method::GET, "health"),
        ("anything.test", "/healthz", Method::DELETE, "health"),
        (p, "/reports/q3", Method::GET, "reports-read"),
        (p, "/reports", Method::POST, "reports-write"),
        ("eu.example.com", "/reports", Method::GET, "wild"),
        // Host and path of three routes, none with the method: a later route without
        // `methods` that also matches takes it.
        (p, "/reports", Method::DELETE, "portal"),
        ("other.test", "/api/x", Method::GET, "api-read"),
        ("other.test", "/api/x", Method::HEAD, "api-read"),
        ("other.test", "/api/x", Method::PUT, "api-write"),
        ("other.test", "/clients/c-1/x", Method::GET, "client:c-1"),
        (
            "other.test",
            "/clients/client-42/",
            Method::PATCH,
            "client:client-42",
        ),
        (p, "/clients/", Method::GET, "portal"),
        (p, "/dashboard", Method::GET, "portal"),
        ("other.test", "/ws/chat", Method::GET, "ws"),
    ];
    for (host, path, method, want) in cases {
        assert_eq!(
            outcome(&rules, host, path, method.clone(), false),
            want,
            "{method} {host}{path}"
        );
    }
}

#[test]
fn a_path_matched_only_by_other_methods_is_a_method_denial_on_the_first_such_route() {
    let rules = table();
    let cases = [
        (
            "other.test",
            "/api/x",
            Method::DELETE,
            "403 method @api-read",
        ),
        ("other.test", "/api/", Method::POST, "403 method @api-read"),
        (
            "eu.example.com",
            "/reports",
            Method::POST,
            "403 method @wild",
        ),
        ("other.test", "/nothing", Method::GET, "404 no_route @-"),
        ("other.test", "/clients/", Method::GET, "404 no_route @-"),
        ("other.test", "/", Method::GET, "404 no_route @-"),
        ("example.com", "/reports", Method::GET, "404 no_route @-"),
    ];
    for (host, path, method, want) in cases {
        assert_eq!(
            outcome(&rules, host, path, method.clone(), false),
            want,
            "{method} {host}{path}"
        );
    }
    let Err((_, method)) = rules.route(&request("other.test", "/api/x", false), &Method::DELETE)
    else {
        panic!("DELETE /api/x was routed");
    };
    assert_eq!(method, Rejection::denied(DenyReason::Method));
    assert_eq!(method.decision, Decision::Deny);
    let Err((None, none)) = rules.route(&request("other.test", "/x", false), &Method::GET) else {
        panic!("GET /x was routed");
    };
    assert_eq!(none.reason, Reason::Policy(DenyReason::NoRoute));
}

#[test]
fn a_websocket_upgrade_needs_a_websocket_route() {
    let rules = table();
    let p = "partners.example.com";
    let cases = [
        ("other.test", "/ws", Method::GET, "ws"),
        (
            "other.test",
            "/api/x",
            Method::GET,
            "403 websocket_not_allowed @api-read",
        ),
        (
            p,
            "/dashboard",
            Method::GET,
            "403 websocket_not_allowed @portal",
        ),
        (
            "other.test",
            "/healthz",
            Method::GET,
            "403 websocket_not_allowed @health",
        ),
        // The method is checked first; no route at all stays a 404.
        (
            "other.test",
            "/api/x",
            Method::DELETE,
            "403 method @api-read",
        ),
        ("other.test", "/nothing", Method::GET, "404 no_route @-"),
    ];
    for (host, path, method, want) in cases {
        assert_eq!(
            outcome(&rules, host, path, method.clone(), true),
            want,
            "{method} {host}{path}"
        );
    }
    let Err((_, r)) = rules.route(&request(p, "/", true), &Method::GET) else {
        panic!("a websocket upgrade reached the portal route");
    };
    assert_eq!(r, Rejection::websocket_not_allowed());
}

#[test]
fn routes_keep_their_file_position_and_limits() {
    let rules = rules(&format!(
        r#"
[server]
listen = "127.0.0.1:8080"
{UPSTREAM}
[[routes]]
name = "first"
path = "/a"
upstream = "portal"

[[routes]]
name = "limited"
path = "/b"
upstream = "portal"
rate_limit = {{ key = "org", per_second = 1, burst = 2 }}
"#
    ));
    let names: Vec<_> = rules
        .routes()
        .iter()
        .map(|r| (r.name(), r.position, r.limit.as_ref().map(|(k, _)| *k)))
        .collect();
    assert_eq!(
        names,
        [
            ("first", 0, None),
            ("limited", 1, Some(crate::config::RateKey::Org))
        ]
    );
    let found = rules
        .route(&request("x.test", "/b/c", false), &Method::GET)
        .unwrap();
    assert_eq!(found.route.position, 1);
    assert!(found.account.is_none());
}
