//! Rate limits end to end: per-route limits by ip and user, the global per-IP limit, the
//! login limit, limits shared by two instances through the real Redis, and the fallback
//! when Redis is down. Exact rates are unit-tested with a fake clock; here we only check
//! that bursts beyond the limit are refused.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;

use crate::common::*;
use crate::policy::logged_in;

const REDIS: &str = "redis://127.0.0.1:6379";

fn routes(portal: SocketAddr, directory: &str, extra: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"
{extra}

[[routes]]
name = "by-ip"
path = "/debug/echo/by-ip"
upstream = "portal"
auth = "none"
rate_limit = {{ key = "ip", per_second = 0.1, burst = 3 }}

[[routes]]
name = "by-user"
path = "/debug/echo/by-user"
upstream = "portal"
rate_limit = {{ key = "user", per_second = 0.1, burst = 2 }}

[[routes]]
name = "shared"
path = "/debug/echo/shared"
upstream = "portal"
auth = "none"
rate_limit = {{ key = "route", per_second = 0.01, burst = 6 }}

[[routes]]
name = "portal"
path = "/"
upstream = "portal"
auth = "none"
"#,
        portal_upstream(portal)
    )
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("dir.db").display())
}

async fn start(dir: &tempfile::TempDir, extra: &str, server: &str) -> (Portal, Gateway) {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(routes(portal.addr, &sqlite(dir), extra))
        .server(server)
        .import(demo_directory())
        .start()
        .await;
    (portal, gw)
}

/// Statuses of `n` GETs, in order.
async fn burst(url: &str, cookie: Option<&str>, n: usize) -> Vec<u16> {
    let c = client();
    let mut out = Vec::new();
    for _ in 0..n {
        let mut req = c.get(url).header("accept", "application/json");
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        out.push(req.send().await.unwrap().status().as_u16());
    }
    out
}

#[tokio::test]
async fn route_limits_refuse_bursts_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(&dir, "", "").await;
    let url = gw.url("/debug/echo/by-ip");
    assert_eq!(burst(&url, None, 5).await, [200, 200, 200, 429, 429]);
    let refused = client().get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    // 0.1 per second: the next token is 10 s away (rounded up to whole seconds).
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    let line = gw
        .access_line(|l| l["route"] == "by-ip" && l["status"] == 429)
        .await;
    assert_eq!(line["decision"], "ratelimited");

    // Keyed by user: bob's bucket is not alice's.
    let bob = logged_in(&gw, "bob@acme.example").await;
    let alice = logged_in(&gw, "alice@acme.example").await;
    let by_user = gw.url("/debug/echo/by-user");
    assert_eq!(
        burst(&by_user, Some(&bob.cookie_header()), 3).await,
        [200, 200, 429]
    );
    assert_eq!(
        burst(&by_user, Some(&alice.cookie_header()), 1).await,
        [200]
    );

    let m = gw.metrics().await;
    let rejected = |route: &str, key: &str| {
        metric_sum(
            &m,
            "partnergate_ratelimit_rejections_total",
            &[("route", route), ("key", key)],
        )
    };
    assert_eq!(rejected("by-ip", "ip"), 3.0);
    assert_eq!(rejected("by-user", "user"), 1.0);
    assert_eq!(
        metric_sum(
            &m,
            "partnergate_http_requests_total",
            &[("route", "by-ip"), ("decision", "ratelimited")]
        ),
        3.0
    );
}

#[tokio::test]
async fn global_per_ip_limit_applies_before_routes() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(
        &dir,
        "",
        "rate_limit_per_ip = { per_second = 0.1, burst = 4 }",
    )
    .await;
    let statuses = burst(&gw.url("/healthz"), None, 4).await;
    assert_eq!(statuses, [200, 200, 200, 200]);
    // Any path, even one no route matches, is counted against the same client IP.
    assert_eq!(burst(&gw.url("/nowhere"), None, 1).await, [429]);
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "partnergate_ratelimit_rejections_total",
            &[("route", "none"), ("key", "global")]
        ),
        1.0
    );
}

#[tokio::test]
async fn login_attempts_have_their_own_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(
        &dir,
        "[login]\nrate_limit_per_ip = { per_second = 0.1, burst = 2 }\n",
        "",
    )
    .await;
    let mut b = Browser::new(format!("http://{}", gw.http));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            b.login("bob@acme.example", "wrong-password-1", "/")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 429]);
    // Reading the login page is not a login attempt.
    assert_eq!(b.get("/.partnergate/login").await.status(), 200);
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "partnergate_ratelimit_rejections_total",
            &[("route", "partnergate"), ("key", "login")]
        ),
        1.0
    );
}

fn redis_section(url: &str, prefix: &str) -> String {
    format!("[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\ntimeout = \"200ms\"\n")
}

fn unique_prefix() -> String {
    format!("pgtest:{}:", rand_suffix())
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// Two instances sharing Redis enforce one combined limit (burst 6 for the route).
#[tokio::test]
async fn two_instances_share_one_limit_through_redis() {
    let prefix = unique_prefix();
    let extra = redis_section(REDIS, &prefix);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_pa, a) = start(&dir_a, &extra, "").await;
    let (_pb, b) = start(&dir_b, &extra, "").await;
    let mut allowed = 0;
    for i in 0..12 {
        let gw = if i % 2 == 0 { &a } else { &b };
        if burst(&gw.url("/debug/echo/shared"), None, 1).await == [200] {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 6, "one combined burst across both instances");
    for gw in [&a, &b] {
        let m = gw.metrics().await;
        assert_eq!(
            metric_sum(&m, "partnergate_ratelimit_fallbacks_total", &[]),
            0.0,
            "Redis answered every check"
        );
    }
}

/// Redis down: traffic routes fall back to the local limit (and count it); the login limit
/// fails closed by default.
#[tokio::test]
async fn redis_down_falls_back_per_policy() {
    let dir = tempfile::tempdir().unwrap();
    let extra = redis_section("redis://127.0.0.1:1", &unique_prefix());
    let (_portal, gw) = start(&dir, &extra, "").await;
    assert_eq!(
        burst(&gw.url("/debug/echo/by-ip"), None, 4).await,
        [200, 200, 200, 429],
        "the local limiter still limits"
    );
    let mut b = Browser::new(format!("http://{}", gw.http));
    let login = b.login("bob@acme.example", DEMO_PASSWORD, "/").await;
    assert_eq!(login.status(), 503);
    assert!(login.headers().contains_key("retry-after"));
    let m = gw.metrics().await;
    assert!(
        metric_sum(
            &m,
            "partnergate_ratelimit_fallbacks_total",
            &[("route", "by-ip"), ("action", "local")]
        ) >= 4.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(
            &m,
            "partnergate_ratelimit_fallbacks_total",
            &[("route", "partnergate"), ("action", "deny")]
        ),
        1.0
    );
}
