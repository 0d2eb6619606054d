//! Route policy end to end: roles, permissions, org types, methods, client-account grants
//! and shadow mode, with the real gateway, the real directory (SQLite and PostgreSQL) and
//! the demo portal as upstream.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;

use crate::common::*;

/// The seed cases as routes: reseller and referral sections, reports by permission, a
/// beta section in shadow mode, client accounts by grant level.
pub fn policy_routes() -> &'static str {
    r#"
[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"

[[routes]]
name = "deals"
path = "/deals"
upstream = "portal"
allow_org_types = ["reseller"]

[[routes]]
name = "referrals"
path = "/referrals"
upstream = "portal"
allow_org_types = ["referral"]
allow_roles = ["referral-partner"]

[[routes]]
name = "reports-beta"
path = "/reports/beta"
upstream = "portal"
allow_roles = ["partner-admin"]
mode = "shadow"

[[routes]]
name = "reports"
path = "/reports"
methods = ["GET"]
upstream = "portal"
allow_permissions = ["reports:view"]

[[routes]]
name = "client-settings"
path = "/clients/{account}/settings"
upstream = "portal"
account_permission = "admin"

[[routes]]
name = "client-edit"
path = "/clients/{account}/"
methods = ["POST", "PUT", "PATCH", "DELETE"]
upstream = "portal"
account_permission = "standard"

[[routes]]
name = "clients"
path = "/clients/{account}/"
upstream = "portal"
account_permission = "view"

[[routes]]
name = "portal"
path = "/"
methods = ["GET", "HEAD"]
upstream = "portal"
"#
}

/// The configuration body of a gateway with [`policy_routes`] on `directory`, before the
/// routes `extra` (e.g. `[redis]`, `[[issuers]]`).
pub fn policy_body(portal: std::net::SocketAddr, directory: &str, extra: &str) -> String {
    format!(
        "{}\n[directory]\nurl = \"{directory}\"\n{extra}\n{}",
        portal_upstream(portal),
        policy_routes()
    )
}

pub async fn start_policy_gateway(directory: &str, extra: &str) -> (Portal, Gateway) {
    let portal = Portal::start().await;
    let body = policy_body(portal.addr, directory, extra);
    let gw = GatewayBuilder::new(body)
        .import(demo_directory())
        .start()
        .await;
    (portal, gw)
}

pub async fn logged_in(gw: &Gateway, email: &str) -> Browser {
    let mut b = Browser::new(format!("http://{}", gw.http));
    assert_eq!(
        b.login(email, DEMO_PASSWORD, "/").await.status(),
        303,
        "{email}"
    );
    b
}

async fn send(b: &Browser, method: &str, path: &str) -> reqwest::Response {
    b.client
        .request(method.parse().unwrap(), format!("{}{path}", b.base))
        .header("cookie", b.cookie_header())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
}

async fn status(b: &Browser, method: &str, path: &str) -> u16 {
    send(b, method, path).await.status().as_u16()
}

async fn policy_cases(directory: &str) {
    let (_portal, gw) = start_policy_gateway(directory, "").await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let carol = logged_in(&gw, "carol@brightpath.example").await;
    let alice = logged_in(&gw, "alice@acme.example").await;
    let owner = logged_in(&gw, "owner@northwind.example").await;

    // (who, method, path, status, access-log reason)
    let cases: [(&Browser, &str, &str, u16, Option<&str>); 20] = [
        // Reseller vs referral partners see different portal sections.
        (&bob, "GET", "/deals", 200, None),
        (&carol, "GET", "/deals", 403, Some("org_type")),
        (&carol, "GET", "/referrals", 200, None),
        (&bob, "GET", "/referrals", 403, Some("org_type")),
        // Permissions come from roles; methods narrow a route.
        (&bob, "GET", "/reports", 200, None),
        (&carol, "GET", "/reports", 403, Some("permission")),
        (&bob, "POST", "/reports", 403, Some("method")),
        // bob: view on client-42, admin on client-77, expired grant on client-90.
        (&bob, "GET", "/clients/client-42/", 200, None),
        (
            &bob,
            "GET",
            "/clients/client-42/settings",
            403,
            Some("account_grant"),
        ),
        (
            &bob,
            "POST",
            "/clients/client-42/notes",
            403,
            Some("account_grant"),
        ),
        (&bob, "GET", "/clients/client-77/settings", 200, None),
        (&bob, "POST", "/clients/client-77/notes", 200, None),
        (
            &bob,
            "GET",
            "/clients/client-90/",
            403,
            Some("grant_expired"),
        ),
        (
            &bob,
            "GET",
            "/clients/client-1/",
            403,
            Some("account_grant"),
        ),
        // alice: standard on client-42, temporary admin on client-90.
        (&alice, "POST", "/clients/client-42/notes", 200, None),
        (
            &alice,
            "GET",
            "/clients/client-42/settings",
            403,
            Some("account_grant"),
        ),
        (&alice, "GET", "/clients/client-90/settings", 200, None),
        // Owner admins get no implicit bypass.
        (
            &owner,
            "GET",
            "/clients/client-42/",
            403,
            Some("account_grant"),
        ),
        (&owner, "GET", "/deals", 403, Some("org_type")),
        (&owner, "GET", "/", 200, None),
    ];
    for (who, method, path, want, reason) in cases {
        let response = send(who, method, path).await;
        let got = response.status().as_u16();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let text = response.text().await.unwrap();
        assert_eq!(got, want, "{method} {path}: {text}");
        let line = gw
            .access_line(|l| l["request_id"] == request_id.as_str())
            .await;
        match reason {
            Some(reason) => {
                assert_eq!(line["decision"], "deny", "{line}");
                assert_eq!(line["reason"], reason, "{method} {path}: {line}");
                // The client sees a generic 403 with the request id, never the reason.
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["request_id"], request_id.as_str());
                assert!(!text.contains(reason), "{text}");
            }
            None => assert_eq!(line["decision"], "allow", "{line}"),
        }
    }

    // The upstream learns the level on the account.
    let echoed = send(&bob, "GET", "/clients/client-77/settings")
        .await
        .text()
        .await
        .unwrap();
    assert!(echoed.contains("admin"), "{echoed}");

    // Shadow mode: evaluated, logged and counted, but let through.
    let shadow = send(&bob, "GET", "/reports/beta").await;
    assert_eq!(shadow.status(), 200);
    let id = shadow.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let line = gw.access_line(|l| l["request_id"] == id.as_str()).await;
    assert_eq!(line["decision"], "shadow_deny", "{line}");
    assert_eq!(line["reason"], "role");
    assert_eq!(status(&alice, "GET", "/reports/beta").await, 200);
    let line = gw
        .access_line(|l| l["route"] == "reports-beta" && l["user"] == "alice@acme.example")
        .await;
    assert_eq!(line["decision"], "allow");

    let m = gw.metrics().await;
    let denials = |route: &str, reason: &str| {
        metric_sum(
            &m,
            "partnergate_policy_denials_total",
            &[("route", route), ("reason", reason)],
        )
    };
    assert_eq!(denials("deals", "org_type"), 2.0);
    assert_eq!(denials("clients", "grant_expired"), 1.0);
    assert_eq!(denials("reports", "method"), 1.0);
    assert_eq!(denials("reports-beta", "role"), 1.0);
    assert_eq!(
        metric_sum(
            &m,
            "partnergate_http_requests_total",
            &[("route", "reports-beta"), ("decision", "shadow_deny")]
        ),
        1.0
    );
}

#[tokio::test]
async fn policy_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    policy_cases(&format!("sqlite://{}", dir.path().join("dir.db").display())).await;
}

#[tokio::test]
async fn policy_on_postgres() {
    let schema = PgSchema::new().await;
    policy_cases(&schema.url).await;
}

/// Shadow mode relaxes route rules only: anonymous requests still need a login.
#[tokio::test]
async fn shadow_mode_still_needs_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("dir.db").display());
    let (_portal, gw) = start_policy_gateway(&url, "").await;
    let r = client()
        .get(gw.url("/reports/beta"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let line = gw.access_line(|l| l["path"] == "/reports/beta").await;
    assert_eq!(line["decision"], "unauthenticated");
}

/// SIGHUP 20 times with alternating policies while requests run: no request is lost (each
/// gets the old or the new rule's answer), the last rules apply, and a broken file is
/// rejected whole while the old rules keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_swaps_rules_without_losing_a_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("dir.db").display());
    let (_portal, gw) = start_policy_gateway(&url, "").await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let resellers = std::fs::read_to_string(&gw.config_path).unwrap();
    let marker = "allow_org_types = [\"reseller\"]";
    assert!(resellers.contains(marker));
    let referrals = resellers.replacen(marker, "allow_org_types = [\"referral\"]", 1);

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, client, base, cookie) = (
            stop.clone(),
            bob.client.clone(),
            bob.base.clone(),
            bob.cookie_header(),
        );
        workers.push(tokio::spawn(async move {
            let (mut allowed, mut denied, mut other) = (0u32, 0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let sent = client
                    .get(format!("{base}/deals"))
                    .header("cookie", &cookie)
                    .header("accept", "application/json")
                    .send()
                    .await;
                match sent.map(|r| r.status().as_u16()) {
                    Ok(200) => allowed += 1,
                    Ok(403) => denied += 1,
                    got => other.push(format!("{got:?}")),
                }
            }
            (allowed, denied, other)
        }));
    }

    let reloads = |m: &str| {
        metric_sum(
            m,
            "partnergate_config_reloads_total",
            &[("result", "success")],
        )
    };
    for i in 0..20 {
        let text = if i % 2 == 0 { &referrals } else { &resellers };
        std::fs::write(&gw.config_path, text).unwrap();
        gw.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while reloads(&gw.metrics().await) < f64::from(i + 1) {
            assert!(Instant::now() < deadline, "reload {i} did not apply");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut allowed, mut denied) = (0, 0);
    for w in workers {
        let (a, d, other) = w.await.unwrap();
        assert!(
            other.is_empty(),
            "requests lost or failed during reloads: {other:?}"
        );
        allowed += a;
        denied += d;
    }
    assert!(
        allowed > 0 && denied > 0,
        "both rule sets served: {allowed} / {denied}"
    );

    // The last file (resellers only) is what applies now.
    assert_eq!(status(&bob, "GET", "/deals").await, 200);

    // A broken file is rejected whole: the old rules keep serving.
    std::fs::write(
        &gw.config_path,
        referrals.replacen(
            "account_permission = \"admin\"",
            "account_permission = \"owner\"",
            1,
        ),
    )
    .unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = gw.metrics().await;
        let errors = metric_sum(
            &m,
            "partnergate_config_reloads_total",
            &[("result", "error")],
        );
        if errors >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken reload was not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&bob, "GET", "/deals").await, 200);
    assert!(
        gw.stderr().contains("account_permission"),
        "{}",
        gw.stderr()
    );
}
