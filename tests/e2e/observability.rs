//! The shipped Grafana dashboard and Prometheus alert rules name only metrics the gateway
//! exports: a live gateway (with mail, forward-auth, a rate limit, a reload) is driven
//! until every kind of series exists, then every `partnergate_*` name in
//! `deploy/grafana/partnergate.json` and `deploy/prometheus/partnergate-alerts.yml` must
//! be in its `/metrics` scrape.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::smtp::SmtpSink;
use crate::common::*;
use crate::lifecycle::api;
use crate::policy::logged_in;

fn body(portal: std::net::SocketAddr, directory: &str, smtp: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[mail]
smtp_url = "{smtp}"
from = "Partner Portal <portal@partners.example>"

[login]
max_failures = 2
rate_limit_per_ip = {{ per_second = 100, burst = 100 }}

[[routes]]
name = "deals"
path = "/deals"
upstream = "portal"
allow_org_types = ["reseller"]
rate_limit = {{ key = "user", per_second = 0.01, burst = 1 }}

[[routes]]
name = "portal"
path = "/"
methods = ["GET", "HEAD"]
upstream = "portal"
"#,
        portal_upstream(portal)
    )
}

/// Every `partnergate_*` metric name in a file.
fn names_in(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("partnergate_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        if name.len() > "partnergate_".len() {
            names.insert(name.to_string());
        }
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_dashboard_and_the_alerts_is_exported() {
    let smtp = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(body(portal.addr, &url, &smtp.url()))
        .import(demo_directory())
        .server("trusted_proxies = [\"127.0.0.0/8\"]")
        .start()
        .await;
    // Logins (a success, failures up to a lockout), a request, a denial, a rate limit.
    let bob = logged_in(&gw, "bob@acme.example").await;
    let mut eve = Browser::new(format!("http://{}", gw.http));
    for _ in 0..2 {
        eve.login("erin@acme.example", "wrong-password", "/").await;
    }
    let carol = logged_in(&gw, "carol@brightpath.example").await;
    let cookie = |b: &Browser| b.cookie_header();
    for _ in 0..2 {
        client()
            .get(gw.url("/deals"))
            .header("cookie", cookie(&bob))
            .send()
            .await
            .unwrap();
    }
    client()
        .get(gw.url("/deals"))
        .header("cookie", cookie(&carol))
        .send()
        .await
        .unwrap();
    // A forward-auth check, an invitation mail, a reload.
    client()
        .get(gw.url("/.partnergate/authz"))
        .header("x-forwarded-uri", "/")
        .header("cookie", cookie(&bob))
        .send()
        .await
        .unwrap();
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let (status, _) = api(
        &owner,
        "POST",
        "/orgs/acme/invitations",
        Some(serde_json::json!({ "email": "new@acme.example", "roles": ["partner-user"] })),
    )
    .await;
    assert_eq!(status, 201);
    smtp.wait_for(1, Duration::from_secs(20)).await;
    let reload = client().post(gw.admin_url("/reload")).send().await.unwrap();
    assert!(reload.status().is_success());

    let mut wanted = names_in("deploy/grafana/partnergate.json");
    wanted.extend(names_in("deploy/prometheus/partnergate-alerts.yml"));
    assert!(wanted.len() >= 10, "the files name metrics: {wanted:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = gw.metrics().await;
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|name| {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                let has = |n: &str| {
                    scrape.lines().any(|l| {
                        l.starts_with(&format!("{n}{{")) || l.starts_with(&format!("{n} "))
                    })
                };
                !(has(name) || has(base) && scrape.contains(&format!("# TYPE {base} histogram")))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "named in the dashboard or alerts but not exported: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
