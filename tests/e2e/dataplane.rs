//! The request path without identity: what reaches the upstream, what the
//! client gets back, and what is logged and counted.

use std::time::Duration;

use serde_json::Value;

use crate::common::{
    client, free_addr, metric_sum, open_ws, portal_upstream, raw, tls_client, GatewayBuilder,
    Portal,
};

fn catch_all(portal: std::net::SocketAddr) -> String {
    format!(
        "{}\n[[routes]]\nauth = \"none\"\nname = \"ws\"\npath = \"/ws\"\nupstream = \"portal\"\nwebsocket = true\n\n[[routes]]\nauth = \"none\"\nname = \"portal\"\npath = \"/\"\nupstream = \"portal\"\n",
        portal_upstream(portal)
    )
}

fn echo(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sees_normalised_path_and_only_gateway_headers() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(catch_all(portal.addr)).start().await;
    let resp = raw::request(
        gw.http,
        "GET /x/./y/../../debug//headers?b=2&a=%2F HTTP/1.1\nHost: localhost\nX-Partner-User: mallory@evil\nx_partner_roles: owner\nX-PARTNER-ORG: acme\nX-Forwarded-For: 6.6.6.6\nX-Forwarded-Proto: https\nX-Request-Id: spoofed\nForwarded: for=6.6.6.6\nConnection: close, X-Secret\nX-Secret: 1\nKeep-Alive: timeout=5\nCookie: a=1; __Host-partnergate=stolen",
    )
    .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let seen = echo(&resp.body);
    assert_eq!(seen["path"], "/debug/headers");
    assert_eq!(seen["query"], "b=2&a=%2F");
    let headers = seen["headers"].as_object().expect("headers");
    for (name, _) in headers {
        assert!(
            !name.starts_with("x-partner") && !name.starts_with("x_partner"),
            "{name} reached the upstream"
        );
    }
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], "localhost");
    assert!(headers.get("forwarded").is_none());
    assert!(
        headers.get("x-secret").is_none(),
        "Connection-named header forwarded"
    );
    assert!(headers.get("keep-alive").is_none());
    assert_eq!(headers["cookie"], "a=1");
    let id = resp
        .header("x-request-id")
        .expect("x-request-id on the response");
    assert_ne!(id, "spoofed");
    assert_eq!(headers["x-request-id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_get_400_with_request_id() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(catch_all(portal.addr)).start().await;
    for target in [
        "/..%2f..%2fetc/passwd",
        "/a/%2e%2e%2fdebug/headers",
        "/a%5cb",
        "/a%00b",
        "/%252e%252e/x",
        "/bad%zz",
        "/a\\b",
        "*",
    ] {
        let resp = raw::get(gw.http, target).await;
        assert_eq!(resp.status, 400, "{target}: {resp:?}");
        assert_eq!(resp.header("cache-control"), Some("no-store"), "{target}");
        assert_eq!(
            resp.header("x-content-type-options"),
            Some("nosniff"),
            "{target}"
        );
        let body = echo(&resp.body);
        assert_eq!(
            body["request_id"],
            resp.header("x-request-id").expect("id"),
            "{target}"
        );
    }
    let lines = gw.access_lines(8).await;
    assert!(
        lines
            .iter()
            .any(|l| l["reason"] == "encoded_slash" && l["status"] == 400),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hosts_are_refused() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(catch_all(portal.addr)).start().await;
    let resp = raw::request(gw.http, "GET / HTTP/1.1\nHost: a@b").await;
    assert_eq!(resp.status, 400);
    let resp = raw::request(gw.http, "GET / HTTP/1.1\nHost: a.example\nHost: b.example").await;
    assert_eq!(resp.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_and_path_get_404_and_methods_are_enforced() {
    let portal = Portal::start().await;
    let body = format!(
        "{}\n[[routes]]\nauth = \"none\"\nname = \"partners\"\nhost = \"partners.example.com\"\npath = \"/debug\"\nmethods = [\"GET\"]\nupstream = \"portal\"\n\n[[routes]]\nauth = \"none\"\nname = \"wild\"\nhost = \"*.example.net\"\npath = \"/\"\nupstream = \"portal\"\n",
        portal_upstream(portal.addr)
    );
    let gw = GatewayBuilder::new(body).start().await;
    let ok = raw::request(
        gw.http,
        "GET /debug/headers HTTP/1.1\nHost: Partners.Example.com:8080",
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let wild = raw::request(
        gw.http,
        "GET /debug/headers HTTP/1.1\nHost: a.b.example.net",
    )
    .await;
    assert_eq!(wild.status, 200);
    let other_host = raw::request(
        gw.http,
        "GET /debug/headers HTTP/1.1\nHost: evil.example.org",
    )
    .await;
    assert_eq!(other_host.status, 404);
    let bare = raw::request(gw.http, "GET /debug/headers HTTP/1.1\nHost: example.net").await;
    assert_eq!(bare.status, 404);
    let other_path = raw::request(gw.http, "GET /admin HTTP/1.1\nHost: partners.example.com").await;
    assert_eq!(other_path.status, 404);
    let post = raw::request(
        gw.http,
        "POST /debug/headers HTTP/1.1\nHost: partners.example.com\nContent-Length: 0",
    )
    .await;
    assert_eq!(post.status, 403);
    let lines = gw.access_lines(6).await;
    assert!(lines
        .iter()
        .any(|l| l["reason"] == "no_route" && l["status"] == 404));
    assert!(lines
        .iter()
        .any(|l| l["reason"] == "method" && l["route"] == "partners"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_prefix_rewrites_the_forwarded_path() {
    let portal = Portal::start().await;
    let body = format!(
        "{}\n[[routes]]\nauth = \"none\"\nname = \"legacy\"\npath = \"/portal\"\nstrip_prefix = \"/portal\"\nupstream = \"portal\"\n",
        portal_upstream(portal.addr)
    );
    let gw = GatewayBuilder::new(body).start().await;
    let resp = client()
        .get(gw.url("/portal/debug/headers?q=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["path"], "/debug/headers");
    assert_eq!(seen["query"], "q=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_is_502_without_detail() {
    let dead = free_addr();
    let gw = GatewayBuilder::new(catch_all(dead)).start().await;
    let resp = client()
        .get(gw.url("/dashboard"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 502);
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let body = resp.text().await.expect("body");
    assert!(body.contains(&id), "{body}");
    assert!(
        !body.contains("127.0.0.1") && !body.contains(&dead.port().to_string()),
        "{body}"
    );
    let lines = gw.access_lines(1).await;
    assert_eq!(lines[0]["decision"], "error");
    assert_eq!(lines[0]["status"], 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_504() {
    let portal = Portal::start().await;
    let body = format!(
        "[upstreams.portal]\naddrs = [\"{}\"]\nread_timeout = \"300ms\"\n\n[[routes]]\nauth = \"none\"\nname = \"portal\"\npath = \"/\"\nupstream = \"portal\"\n",
        portal.addr
    );
    let gw = GatewayBuilder::new(body).start().await;
    let resp = client()
        .get(gw.url("/debug/slow?ms=3000"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 504);
    let fast = client()
        .get(gw.url("/debug/slow?ms=10"))
        .send()
        .await
        .expect("send");
    assert_eq!(fast.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_route_around_a_dead_address() {
    let portal = Portal::start().await;
    let dead = free_addr();
    let body = format!(
        "[upstreams.portal]\naddrs = [\"{dead}\", \"{}\"]\nhealth_check = {{ path = \"/healthz\", interval = \"200ms\" }}\n\n[[routes]]\nauth = \"none\"\nname = \"portal\"\npath = \"/\"\nupstream = \"portal\"\n",
        portal.addr
    );
    let gw = GatewayBuilder::new(body).start().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..10 {
        let resp = client().get(gw.url("/healthz")).send().await.expect("send");
        assert_eq!(resp.status(), 200);
    }
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &metrics,
            "partnergate_upstream_healthy",
            &[("addr", &dead.to_string())]
        ),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "partnergate_upstream_healthy",
            &[("addr", &portal.addr.to_string())]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_an_upstream_without_healthy_address() {
    let dead = free_addr();
    let body = format!(
        "[upstreams.portal]\naddrs = [\"{dead}\"]\nhealth_check = {{ path = \"/healthz\", interval = \"200ms\" }}\n\n[[routes]]\nauth = \"none\"\nname = \"portal\"\npath = \"/\"\nupstream = \"portal\"\n"
    );
    let gw = GatewayBuilder::new(body).start().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let resp = client()
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.expect("json");
    assert!(body["not_ready"].to_string().contains("portal"), "{body}");
    let healthz = client()
        .get(gw.admin_url("/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(healthz.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_only_where_the_route_allows_it() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let portal = Portal::start().await;
    let body = format!(
        "{}\n[[routes]]\nauth = \"none\"\nname = \"ws\"\npath = \"/ws\"\nupstream = \"portal\"\nwebsocket = true\n\n[[routes]]\nauth = \"none\"\nname = \"blocked\"\npath = \"/blocked\"\nstrip_prefix = \"/blocked\"\nupstream = \"portal\"\n",
        portal_upstream(portal.addr)
    );
    let gw = GatewayBuilder::new(body).start().await;
    let mut ws = open_ws(&format!("ws://{}/ws", gw.http), None, "hello partner").await;
    ws.send(Message::Text("and again".into()))
        .await
        .expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("reply in time");
    assert_eq!(
        reply
            .expect("message")
            .expect("ok")
            .into_text()
            .expect("text")
            .as_str(),
        "and again"
    );
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/blocked/ws", gw.http)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_via_alpn() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(catch_all(portal.addr))
        .tls()
        .start()
        .await;
    let c = tls_client();
    let resp = c
        .get(gw.tls_url("/debug/headers"))
        .send()
        .await
        .expect("https request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    assert_eq!(seen["path"], "/debug/headers");
    let refused = c
        .get(gw.tls_url("/.partnergate/nothing"))
        .send()
        .await
        .expect("https request");
    assert_eq!(refused.status(), 404);
    assert!(refused.headers().contains_key("strict-transport-security"));
    let h1 = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(crate::common::dev_certs().join("ca.crt")).expect("ca"),
            )
            .expect("pem"),
        )
        .resolve("localhost", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .http1_only()
        .build()
        .expect("client");
    let resp = h1
        .get(gw.tls_url("/healthz"))
        .send()
        .await
        .expect("https h1");
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    // A Host other than the SNI of the connection is misdirected.
    let misdirected = h1
        .get(gw.tls_url("/healthz"))
        .header("host", "other.example")
        .send()
        .await
        .expect("https h1");
    assert_eq!(misdirected.status(), 421);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(catch_all(portal.addr))
        .server("max_request_header_bytes = 2048")
        .start()
        .await;
    let big = "a".repeat(3000);
    let resp = raw::request(
        gw.http,
        &format!("GET / HTTP/1.1\nHost: localhost\nX-Big: {big}"),
    )
    .await;
    assert_eq!(resp.status, 431);
    let ok = raw::request(
        gw.http,
        "GET /healthz HTTP/1.1\nHost: localhost\nX-Small: 1",
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_may_set_forwarding_headers() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(catch_all(portal.addr))
        .server("trusted_proxies = [\"127.0.0.0/8\"]")
        .start()
        .await;
    let resp = raw::request(
        gw.http,
        "GET /debug/headers HTTP/1.1\nHost: localhost\nX-Forwarded-For: 203.0.113.7\nX-Forwarded-Proto: https\nX-Request-Id: lb-1234",
    )
    .await;
    let seen = echo(&resp.body);
    assert_eq!(seen["headers"]["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    assert_eq!(seen["headers"]["x-request-id"], "lb-1234");
    let lines = gw.access_lines(1).await;
    assert_eq!(lines[0]["client_ip"], "203.0.113.7");
    assert_eq!(lines[0]["request_id"], "lb-1234");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_every_field_and_no_query() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(catch_all(portal.addr)).start().await;
    let resp = client()
        .get(gw.url("/dashboard?token=secret-value"))
        .header("user-agent", "e2e-test")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let _ = client().get(gw.url("/nothing/%2f")).send().await;
    // Lines are written when each request's logging phase ends, which for a quick 400
    // can be before the proxied request's: find the line by path, not by position.
    let line = gw.access_line(|l| l["path"] == "/dashboard").await;
    let first = line.as_object().expect("object");
    for field in [
        "ts",
        "request_id",
        "client_ip",
        "method",
        "host",
        "path",
        "status",
        "bytes_sent",
        "duration_ms",
        "upstream_ms",
        "route",
        "upstream",
        "user",
        "org",
        "decision",
        "reason",
        "user_agent",
    ] {
        assert!(first.contains_key(field), "missing {field}: {first:?}");
    }
    assert_eq!(first["path"], "/dashboard");
    assert_eq!(first["route"], "portal");
    assert_eq!(first["upstream"], "portal");
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["user_agent"], "e2e-test");
    assert!(first["bytes_sent"].as_u64().expect("bytes") > 0);
    assert!(first["upstream_ms"].is_number());
    let ts = first["ts"].as_str().expect("ts");
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    let text = std::fs::read_to_string(&gw.access_log).expect("log");
    assert!(
        !text.contains("secret-value"),
        "query string leaked into the access log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_on_the_admin_listener_only() {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(catch_all(portal.addr)).start().await;
    for _ in 0..5 {
        let resp = client()
            .get(gw.url("/dashboard"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
    }
    let _ = raw::get(gw.http, "/%2f").await;
    let metrics = gw.metrics().await;
    let allowed = metric_sum(
        &metrics,
        "partnergate_http_requests_total",
        &[
            ("route", "portal"),
            ("method", "GET"),
            ("status", "200"),
            ("decision", "allow"),
        ],
    );
    assert_eq!(allowed, 5.0, "{metrics}");
    assert_eq!(
        metric_sum(
            &metrics,
            "partnergate_http_requests_total",
            &[("status", "400"), ("decision", "deny")]
        ),
        1.0
    );
    assert!(metrics.contains("partnergate_build_info{"));
    assert!(metrics.contains("# TYPE partnergate_http_request_duration_seconds histogram"));
    assert!(
        metric_sum(
            &metrics,
            "partnergate_upstream_request_duration_seconds_count",
            &[("upstream", "portal")]
        ) >= 5.0
    );
    // /metrics on the public listener is just another path for the upstream.
    let public = client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(!public.contains("partnergate_http_requests_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_is_verified_with_sni() {
    // The TLS upstream is a second gateway's HTTPS listener in front of the portal.
    let portal = Portal::start().await;
    let inner = GatewayBuilder::new(catch_all(portal.addr))
        .tls()
        .start()
        .await;
    let inner_tls = inner.https.expect("inner tls");
    let ca = crate::common::dev_certs().join("ca.crt");
    let upstream = |sni: &str| {
        format!(
            "[upstreams.portal]\naddrs = [\"{inner_tls}\"]\ntls = true\nsni = \"{sni}\"\nca_file = \"{}\"\n\n[[routes]]\nauth = \"none\"\nname = \"portal\"\npath = \"/\"\nupstream = \"portal\"\n",
            ca.display()
        )
    };
    let outer = GatewayBuilder::new(upstream("localhost")).start().await;
    // SNI "localhost" must agree with the Host the inner gateway sees (else 421).
    let get = |url: String| client().get(url).header("host", "localhost").send();
    let resp = get(outer.url("/debug/headers")).await.expect("send");
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    // The inner gateway saw a TLS connection (and, not trusting the outer one, its own view).
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");

    let wrong = GatewayBuilder::new(upstream("not-the-cert.example"))
        .start()
        .await;
    let resp = get(wrong.url("/debug/headers")).await.expect("send");
    assert_eq!(
        resp.status(),
        502,
        "a certificate for another name must not be accepted"
    );
}
