//! Forward-auth end to end: partnergate as the authorisation service of a proxy the
//! operator keeps. The checks themselves (Traefik's and nginx's header conventions,
//! Envoy's path prefix), then real nginx (`auth_request`) and real Envoy (`ext_authz`) in
//! front of the demo portal: for the same route table, every request gets the same
//! outcome as through partnergate's own proxy, and the upstream receives the identity
//! headers (never a client's spoofed ones).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;

use crate::common::front::FrontProxy;
use crate::common::*;
use crate::policy::logged_in;

fn body(portal: std::net::SocketAddr, directory: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[login]
rate_limit_per_ip = {{ per_second = 100, burst = 100 }}

[[routes]]
name = "deals"
path = "/deals"
upstream = "portal"
allow_org_types = ["reseller"]

[[routes]]
name = "reports"
path = "/reports"
methods = ["GET"]
upstream = "portal"
allow_permissions = ["reports:view"]
rate_limit = {{ key = "user", per_second = 0.01, burst = 2 }}

[[routes]]
name = "echo"
path = "/debug/headers"
upstream = "portal"

[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"

[[routes]]
name = "portal"
path = "/"
methods = ["GET", "HEAD"]
upstream = "portal"
"#,
        portal_upstream(portal)
    )
}

async fn start(trusted: bool) -> (tempfile::TempDir, Portal, Gateway) {
    start_behind(trusted, None).await
}

/// A gateway; with `front`, its `public_url` is the front proxy's (on that port), as an
/// operator sets it behind another proxy.
async fn start_behind(trusted: bool, front: Option<u16>) -> (tempfile::TempDir, Portal, Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let portal = Portal::start().await;
    let mut builder = GatewayBuilder::new(body(portal.addr, &url)).import(demo_directory());
    if trusted {
        builder = builder.server("trusted_proxies = [\"127.0.0.0/8\"]");
    }
    if let Some(port) = front {
        builder = builder.server(&format!("public_url = \"http://127.0.0.1:{port}\""));
    }
    (dir, portal, builder.start().await)
}

/// A Traefik-style check (`X-Forwarded-Method`/`-Uri`/`-Host`/`-Proto`) as `b`.
async fn traefik(
    gw: &Gateway,
    b: Option<&Browser>,
    method: &str,
    uri: &str,
    html: bool,
) -> reqwest::Response {
    let mut req = client()
        .get(gw.url("/.partnergate/authz"))
        .header("x-forwarded-method", method)
        .header("x-forwarded-uri", uri)
        .header("x-forwarded-host", "portal.example")
        .header("x-forwarded-proto", "http")
        .header(
            "accept",
            if html {
                "text/html"
            } else {
                "application/json"
            },
        );
    if let Some(b) = b {
        req = req.header("cookie", b.cookie_header());
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_answer_like_the_proxy_would() {
    let (_dir, _portal, gw) = start(true).await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let carol = logged_in(&gw, "carol@brightpath.example").await;

    let ok = traefik(&gw, Some(&bob), "GET", "/deals", false).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "x-partner-user"), "bob@acme.example");
    assert_eq!(header(&ok, "x-partner-org"), "acme");
    assert_eq!(header(&ok, "x-partner-roles"), "partner-user");
    assert!(
        ok.headers().contains_key("x-partner-account"),
        "every identity header, empty when n/a"
    );
    let denied = traefik(&gw, Some(&carol), "GET", "/deals", false).await;
    assert_eq!(denied.status(), 403);
    let method = traefik(&gw, Some(&bob), "POST", "/reports", false).await;
    assert_eq!(method.status(), 403);
    let browser = traefik(&gw, None, "GET", "/deals?x=1", true).await;
    assert_eq!(browser.status(), 302);
    assert_eq!(
        header(&browser, "location"),
        "/.partnergate/login?rd=/deals%3Fx%3D1"
    );
    let api = traefik(&gw, None, "GET", "/deals", false).await;
    assert_eq!(api.status(), 401);
    assert!(header(&api, "www-authenticate").starts_with("Bearer"));
    assert_eq!(
        traefik(&gw, None, "GET", "/healthz", false).await.status(),
        200
    );
    // The route's limit counts checks like requests.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = traefik(&gw, Some(&bob), "GET", "/reports", false).await;
        statuses.push((r.status().as_u16(), header(&r, "retry-after")));
    }
    assert_eq!(statuses[0].0, 200);
    assert_eq!(statuses[2].0, 429);
    assert!(!statuses[2].1.is_empty(), "Retry-After on 429");

    // nginx's shapes: 401 with where to send a browser, 403 carrying the real status.
    let nginx = |uri: &str, b: Option<&Browser>| {
        let mut req = client()
            .get(gw.url("/.partnergate/authz/nginx"))
            .header("x-original-uri", uri)
            .header("x-original-method", "GET")
            .header("accept", "text/html");
        if let Some(b) = b {
            req = req.header("cookie", b.cookie_header());
        }
        req.send()
    };
    let r = nginx("/deals", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "x-partnergate-location"),
        "/.partnergate/login?rd=/deals"
    );
    let r = nginx("/reports", Some(&bob)).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "x-partnergate-status")),
        (403, "429".into())
    );
    assert!(!header(&r, "retry-after").is_empty());
    let r = nginx("/deals", Some(&carol)).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "x-partnergate-status")),
        (403, "403".into())
    );

    // Envoy's: the method and path of the check are the original request's.
    let r = client()
        .post(gw.url("/.partnergate/authz/envoy/deals?y=2"))
        .header("cookie", bob.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "POST /deals is allowed for bob");
    let r = client()
        .post(gw.url("/.partnergate/authz/envoy/reports"))
        .header("cookie", bob.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "reports is GET only");

    // A check without the original request is a 400; the access log says who asked.
    let r = client()
        .get(gw.url("/.partnergate/authz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let line = gw
        .access_line(|l| l["mode"] == "traefik" && l["path"] == "/deals" && l["status"] == 403)
        .await;
    assert_eq!(line["route"], "deals");
    gw.access_line(|l| l["mode"] == "nginx" && l["status"] == 403)
        .await;
    gw.access_line(|l| l["mode"] == "proxy").await;
    let metrics = gw.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "partnergate_forward_auth_requests_total",
            &[("mode", "traefik"), ("decision", "allow")]
        ) >= 2.0
    );
    assert!(
        metric_sum(
            &metrics,
            "partnergate_forward_auth_requests_total",
            &[("mode", "nginx"), ("decision", "ratelimited")]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_trusted_proxy_may_ask() {
    let (_dir, _portal, gw) = start(false).await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let r = traefik(&gw, Some(&bob), "GET", "/deals", false).await;
    assert_eq!(r.status(), 403);
    assert!(!r.headers().contains_key("x-partner-user"));
    gw.access_line(|l| l["reason"] == "untrusted_peer").await;
}

/// (who, method, path) → the status partnergate's own proxy gives.
async fn same_outcomes(front: &FrontProxy, gw: &Gateway) {
    // Signed in through the front proxy (the gateway's public_url), as a browser would.
    let login = |email: &'static str| async move {
        let mut b = Browser::new(front.url(""));
        let resp = b.login(email, DEMO_PASSWORD, "/").await;
        assert_eq!(
            resp.status(),
            303,
            "{email} signs in behind {}",
            front.log()
        );
        b
    };
    let bob = login("bob@acme.example").await;
    let carol = login("carol@brightpath.example").await;
    let cases: [(Option<&Browser>, &str, &str, bool); 7] = [
        (Some(&bob), "GET", "/deals", false),
        (Some(&carol), "GET", "/deals", false),
        (Some(&bob), "POST", "/reports", false),
        (None, "GET", "/deals", true),
        (None, "GET", "/deals", false),
        (Some(&carol), "GET", "/", false),
        (None, "GET", "/healthz", false),
    ];
    for (who, method, path, html) in cases {
        let send = |base: String| {
            let mut req = client()
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .header(
                    "accept",
                    if html {
                        "text/html"
                    } else {
                        "application/json"
                    },
                );
            if let Some(b) = who {
                req = req.header("cookie", b.cookie_header());
            }
            req.send()
        };
        let direct = send(format!("http://{}", gw.http)).await.unwrap();
        let through = send(front.url("")).await.unwrap();
        assert_eq!(
            through.status(),
            direct.status(),
            "{method} {path}: {}",
            front.log()
        );
        if direct.status() == 302 {
            assert_eq!(header(&through, "location"), header(&direct, "location"));
        }
    }
    // The upstream hears who it is, never the client's own claim.
    let echo: Value = client()
        .get(front.url("/debug/headers"))
        .header("cookie", bob.cookie_header())
        .header("x-partner-org", "evil")
        .header("x-partner-account-permission", "admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = echo.to_string().to_ascii_lowercase();
    assert!(text.contains("bob@acme.example"), "{echo}");
    assert!(
        !text.contains("evil"),
        "a spoofed header reached the upstream: {echo}"
    );
    assert!(
        !text.contains("\"admin\""),
        "a spoofed header reached the upstream: {echo}"
    );
    // Rate limits answer 429 with Retry-After through the other proxy too.
    let mut last = None;
    for _ in 0..3 {
        let r = client()
            .get(front.url("/reports"))
            .header("cookie", bob.cookie_header())
            .send()
            .await
            .unwrap();
        last = Some((r.status().as_u16(), header(&r, "retry-after")));
    }
    let (status, retry) = last.unwrap();
    assert_eq!(status, 429, "{}", front.log());
    assert!(!retry.is_empty());
    // The gateway's own pages work behind it.
    let login = client()
        .get(front.url("/.partnergate/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let mut b = Browser::new(front.url(""));
    assert_eq!(
        b.login("bob@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303
    );
    assert_eq!(b.get("/deals").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_in_front() {
    let port = free_port();
    let (_dir, portal, gw) = start_behind(true, Some(port)).await;
    let front = FrontProxy::nginx_on(port, gw.http, portal.addr).await;
    same_outcomes(&front, &gw).await;
    gw.access_line(|l| l["mode"] == "nginx" && l["decision"] == "allow")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_ext_authz_in_front() {
    let port = free_port();
    let (_dir, portal, gw) = start_behind(true, Some(port)).await;
    let front = FrontProxy::envoy_on(port, gw.http, portal.addr).await;
    same_outcomes(&front, &gw).await;
    gw.access_line(|l| l["mode"] == "envoy" && l["decision"] == "allow")
        .await;
}
