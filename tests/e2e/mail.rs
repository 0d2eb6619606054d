//! Mail against a real SMTP server on 127.0.0.1 (aiosmtpd): invitations, password reset
//! links and lockout notices arrive with working links; with the server stopped, changes
//! still commit, the outbox holds the mail, and it is delivered once the server is back —
//! none lost, none sent twice. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::smtp::SmtpSink;
use crate::common::*;
use crate::mfa::api;
use crate::policy::logged_in;

const WAIT: Duration = Duration::from_secs(30);

fn body(portal: std::net::SocketAddr, directory: &str, smtp: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[login]
max_failures = 3
rate_limit_per_ip = {{ per_second = 100, burst = 100 }}

[mail]
smtp_url = "{smtp}"
from = "Partner Portal <portal@partners.example>"

[[routes]]
name = "portal"
path = "/"
methods = ["GET", "HEAD"]
upstream = "portal"
"#,
        portal_upstream(portal)
    )
}

async fn start(directory: &str, smtp: &SmtpSink) -> (Portal, Gateway) {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(body(portal.addr, directory, &smtp.url()))
        .import(demo_directory())
        .start()
        .await;
    (portal, gw)
}

/// The path of the first link to the gateway in a mail's text.
fn link_in(mail: &Value, prefix: &str) -> String {
    let text = mail["text"].as_str().unwrap();
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {text}"));
    let end = text[at..]
        .find(char::is_whitespace)
        .map_or(text.len(), |e| at + e);
    text[at..end].to_string()
}

async fn invite(owner: &Browser, email: &str) -> (u16, Value) {
    api(
        owner,
        "POST",
        "/orgs/acme/invitations",
        Some(json!({"email": email, "roles": ["partner-user"]})),
    )
    .await
}

async fn request_reset(base: &str, email: &str) -> reqwest::Response {
    let mut b = Browser::new(base.to_string());
    let page = b.get("/.partnergate/reset").await;
    assert_eq!(page.status(), 200);
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf").unwrap();
    b.post_form(
        "/.partnergate/reset",
        &[("email", email), ("csrf", &csrf)],
        base,
    )
    .await
}

async fn invitation_and_reset(directory: &str) {
    let smtp = SmtpSink::start().await;
    let (_portal, gw) = start(directory, &smtp).await;
    let base = format!("http://{}", gw.http);
    let owner = logged_in(&gw, "owner@northwind.example").await;

    // The invitation goes out as mail; its link works.
    let (status, created) = invite(&owner, "quinn@acme.example").await;
    assert_eq!(status, 201, "{created}");
    let mails = smtp.wait_for(1, WAIT).await;
    let mail = &mails[0];
    assert_eq!(mail["to"], json!(["quinn@acme.example"]));
    assert_eq!(mail["from"], "portal@partners.example");
    assert!(mail["subject"].as_str().unwrap().contains("Acme"), "{mail}");
    assert!(
        mail["html"].as_str().unwrap().contains("<a href="),
        "an HTML part too"
    );
    let link = link_in(mail, &format!("{base}/.partnergate/invite/"));
    let path = link.trim_start_matches(&base).to_string();
    let mut quinn = Browser::new(base.clone());
    let page = quinn.get(&path).await;
    assert_eq!(page.status(), 200);
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf").unwrap();
    let form = [
        ("password", "quinn-partner-2026"),
        ("confirm", "quinn-partner-2026"),
        ("csrf", &csrf),
    ];
    assert_eq!(quinn.post_form(&path, &form, &base).await.status(), 303);
    assert_eq!(quinn.get("/").await.status(), 200);

    // A reset request: the same answer for a known and an unknown email; one mail.
    let mut bob = logged_in(&gw, "bob@acme.example").await;
    let known = request_reset(&base, "Bob@Acme.example").await;
    let known_status = known.status();
    let known_page = known.text().await.unwrap();
    let unknown = request_reset(&base, "nobody@acme.example").await;
    assert_eq!(
        (known_status.as_u16(), unknown.status().as_u16()),
        (200, 200)
    );
    assert_eq!(
        known_page,
        unknown.text().await.unwrap(),
        "nothing tells them apart"
    );
    let mails = smtp.wait_for(2, WAIT).await;
    let reset = &mails[1];
    assert_eq!(reset["to"], json!(["bob@acme.example"]));
    let link = link_in(reset, &format!("{base}/.partnergate/reset/"));
    let path = link.trim_start_matches(&base).to_string();
    let mut visitor = Browser::new(base.clone());
    let page = visitor.get(&path).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf").unwrap();
    let weak = [("password", "short"), ("csrf", csrf.as_str())];
    assert_eq!(visitor.post_form(&path, &weak, &base).await.status(), 400);
    let good = [
        ("password", "bob-new-password-2026"),
        ("csrf", csrf.as_str()),
    ];
    let done = visitor.post_form(&path, &good, &base).await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        done.headers()["location"],
        "/.partnergate/login?rd=/&reset=done"
    );
    // Every other session of Bob's ended; the old password no longer works; the new does.
    assert_eq!(bob.get("/").await.status(), 302);
    let mut fresh = Browser::new(base.clone());
    assert_eq!(
        fresh
            .login("bob@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        401
    );
    assert_eq!(
        fresh
            .login("bob@acme.example", "bob-new-password-2026", "/")
            .await
            .status(),
        303
    );
    // The link works once.
    assert_eq!(visitor.get(&path).await.status(), 404);
    // The access log never holds a token.
    let lines = gw.access_lines(1).await;
    let text = serde_json::to_string(&lines).unwrap();
    let token = path.trim_start_matches("/.partnergate/reset/");
    assert!(!text.contains(token), "no reset token in the access log");
    assert!(text.contains("/.partnergate/reset/{token}"), "{text}");
    let (_, audit) = api(&owner, "GET", "/audit?action=password.reset&limit=10", None).await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"password.reset") && actions.contains(&"password.reset_request"),
        "{actions:?}"
    );

    // Three wrong passwords lock the account: the notice goes out.
    let mut guesser = Browser::new(base.clone());
    for _ in 0..3 {
        guesser
            .login("alice@acme.example", "wrong-password", "/")
            .await;
    }
    let mails = smtp.wait_for(3, WAIT).await;
    assert_eq!(mails[2]["to"], json!(["alice@acme.example"]));
    assert!(
        mails[2]["subject"].as_str().unwrap().contains("locked"),
        "{}",
        mails[2]
    );
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "partnergate_mail_total", &[("result", "sent")]),
        3.0
    );
}

async fn outage(directory: &str) {
    let mut smtp = SmtpSink::start().await;
    let (_portal, gw) = start(directory, &smtp).await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    smtp.stop();

    // With the SMTP server down the change still commits; the outbox holds the mail.
    let (status, created) = invite(&owner, "river@acme.example").await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = invite(&owner, "sky@acme.example").await;
    assert_eq!(status, 201);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let m = gw.metrics().await;
        let retried = metric_sum(&m, "partnergate_mail_total", &[("result", "retry")]);
        let depth = metric_sum(&m, "partnergate_mail_outbox_depth", &[]);
        if retried >= 1.0 && depth == 2.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed attempt seen:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(smtp.messages().is_empty());

    // Back up: both arrive, once each (the retry comes after its backoff).
    smtp.resume().await;
    let mails = smtp.wait_for(2, Duration::from_secs(60)).await;
    let mut to: Vec<String> = mails
        .iter()
        .map(|m| m["to"][0].as_str().unwrap().to_string())
        .collect();
    to.sort();
    assert_eq!(to, ["river@acme.example", "sky@acme.example"]);
    // Another round of the worker sends nothing again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(smtp.messages().len(), 2, "none sent twice");
    let m = gw.metrics().await;
    assert_eq!(metric_sum(&m, "partnergate_mail_outbox_depth", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    invitation_and_reset(&format!("sqlite://{}", dir.path().join("dir.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_on_postgres() {
    let schema = PgSchema::new().await;
    invitation_and_reset(&schema.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    outage(&format!("sqlite://{}", dir.path().join("dir.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_on_postgres() {
    let schema = PgSchema::new().await;
    outage(&schema.url).await;
}

#[test]
fn bad_mail_config_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://partners.example.com"

[upstreams.portal]
addrs = ["127.0.0.1:9"]

[[routes]]
name = "all"
path = "/"
upstream = "portal"

[mail]
smtp_url = "ftp://mail.example.com"
from = "not an address"
password_env = "PARTNERGATE_TEST_NO_SUCH_VARIABLE"
"#,
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["mail.smtp_url", "mail.from", "mail.password_env"] {
        assert!(err.contains(key), "{key} in {err}");
    }
}
