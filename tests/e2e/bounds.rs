//! Findings of the security review, one test each: registration requests capped per
//! client IP and in total, and refused cross-origin writes audited.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;

use crate::common::*;
use crate::lifecycle::api;
use crate::policy::{logged_in, start_policy_gateway};

async fn register(b: &mut Browser, name: &str) -> reqwest::Response {
    let page = b.get("/.partnergate/register").await;
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf").unwrap();
    let form = [
        ("org_name", name),
        ("org_type", "agency"),
        ("contact_email", "pat@fabrikam.example"),
        ("csrf", csrf.as_str()),
    ];
    let base = b.base.clone();
    b.post_form("/.partnergate/register", &form, &base).await
}

async fn denied_registrations(owner: &Browser) -> Vec<Value> {
    let (status, body) = api(owner, "GET", "/audit?action=org.register&limit=1000", None).await;
    assert_eq!(status, 200, "{body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_requests_are_capped_per_ip_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let (_portal, gw) = start_policy_gateway(&url, "[lifecycle]\nregistrations_per_ip = 2\n").await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let mut visitor = Browser::new(format!("http://{}", gw.http));
    assert_eq!(register(&mut visitor, "Fabrikam One").await.status(), 200);
    assert_eq!(register(&mut visitor, "Fabrikam Two").await.status(), 200);
    let third = register(&mut visitor, "Fabrikam Three").await;
    assert_eq!(third.status(), 429);
    let denied = denied_registrations(&owner).await;
    assert!(
        denied
            .iter()
            .any(|r| r["reason"] == "registration_limit_ip"),
        "{denied:?}"
    );
    let (_, pending) = api(&owner, "GET", "/orgs?status=pending", None).await;
    assert_eq!(pending["orgs"].as_array().unwrap().len(), 2, "{pending}");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let (_portal, gw) =
        start_policy_gateway(&url, "[lifecycle]\nmax_pending_registrations = 1\n").await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let mut visitor = Browser::new(format!("http://{}", gw.http));
    assert_eq!(register(&mut visitor, "Contoso").await.status(), 200);
    assert_eq!(register(&mut visitor, "Contoso Two").await.status(), 429);
    let denied = denied_registrations(&owner).await;
    assert!(
        denied
            .iter()
            .any(|r| r["reason"] == "registration_limit_total"),
        "{denied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_cross_origin_writes_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let (_portal, gw) = start_policy_gateway(&url, "").await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let resp = client()
        .post(gw.url("/.partnergate/api/v1/orgs/acme/suspend"))
        .header("cookie", owner.cookie_header())
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (status, body) = api(&owner, "GET", "/audit?action=request.origin_refused", None).await;
    assert_eq!(status, 200);
    let records = body["records"].as_array().unwrap();
    let r = records
        .last()
        .unwrap_or_else(|| panic!("no audit record: {body}"));
    assert_eq!(r["reason"], "origin_mismatch");
    assert_eq!(r["target"], "path:/.partnergate/api/v1/orgs/acme/suspend");
    assert_eq!(r["after"]["origin"], "https://evil.example");
    let (_, org) = api(&owner, "GET", "/orgs/acme", None).await;
    assert_eq!(org["status"], "active", "nothing was changed");
}
