//! Second factors end to end, through the real gateway, the real pages and the real
//! directory (SQLite and PostgreSQL): TOTP enrolment with codes computed here from the
//! secret the page shows, the second step of a sign-in, replayed and used codes refused,
//! recovery codes, lockout on wrong codes, `require_mfa` and `max_auth_age` routes
//! (step-up and back), an org that requires a second factor, an admin's reset, the
//! account page (password change, sessions), and what the upstream is told.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};

use crate::common::*;
pub(crate) use crate::lifecycle::api;
use crate::policy::logged_in;

fn body(portal: std::net::SocketAddr, directory: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[login]
max_failures = 3
rate_limit_per_ip = {{ per_second = 100, burst = 100 }}

[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"

[[routes]]
name = "reports"
path = "/reports"
upstream = "portal"
require_mfa = true

[[routes]]
name = "deals"
path = "/deals"
upstream = "portal"
max_auth_age = "2s"

[[routes]]
name = "echo"
path = "/debug/headers"
upstream = "portal"

[[routes]]
name = "portal"
path = "/"
methods = ["GET", "HEAD"]
upstream = "portal"
"#,
        portal_upstream(portal)
    )
}

async fn start(directory: &str) -> (Portal, Gateway) {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(body(portal.addr, directory))
        .import(demo_directory())
        .start()
        .await;
    (portal, gw)
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The text between `open` and the next `<` of a page.
fn text_after(html: &str, open: &str) -> Option<String> {
    let start = html.find(open)? + open.len();
    let end = html[start..].find('<')? + start;
    Some(html[start..end].to_string())
}

/// Enrol an authenticator app on the signed-in browser: returns the secret and the first
/// page after it (the recovery codes, or a redirect).
pub(crate) async fn enrol(b: &mut Browser, name: &str) -> (String, reqwest::Response) {
    let page = b.get("/.partnergate/account/mfa").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let secret = text_after(&html, "id=\"totp-secret\">").expect("secret on the page");
    let csrf = hidden_value(&html, "csrf").unwrap();
    let code = partnergate::mfa::totp::code_at(&secret, now()).unwrap();
    let origin = b.base.clone();
    let resp = b
        .post_form(
            "/.partnergate/account/mfa",
            &[
                ("name", name),
                ("secret", &secret),
                ("code", &code),
                ("csrf", &csrf),
                ("rd", "/"),
            ],
            &origin,
        )
        .await;
    (secret, resp)
}

/// The code of `secret` one step ahead (still inside the accepted skew), so it was never
/// used at enrolment.
fn next_code(secret: &str) -> String {
    partnergate::mfa::totp::code_at(secret, now() + 30).unwrap()
}

/// Send `code` on the second-factor page.
async fn second_step(b: &mut Browser, code: &str, rd: &str) -> reqwest::Response {
    let page = b
        .get(&format!("/.partnergate/login/second?rd={}", urlencode(rd)))
        .await;
    assert_eq!(page.status(), 200, "the second-factor page");
    let html = page.text().await.unwrap();
    let csrf = hidden_value(&html, "csrf").unwrap();
    let origin = b.base.clone();
    b.post_form(
        "/.partnergate/login/second",
        &[("code", code), ("csrf", &csrf), ("rd", rd)],
        &origin,
    )
    .await
}

async fn json_get(b: &Browser, path: &str) -> reqwest::Response {
    b.client
        .get(format!("{}{path}", b.base))
        .header("cookie", b.cookie_header())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
}

async fn mfa_flow(directory: &str) {
    let (_portal, gw) = start(directory).await;
    let base = format!("http://{}", gw.http);

    // A password-only session on a require_mfa route: a browser is sent to enrol (no
    // factor yet), a client gets the RFC 9470 challenge.
    let mut bob = logged_in(&gw, "bob@acme.example").await;
    let resp = bob.get("/reports").await;
    assert_eq!(resp.status(), 302);
    assert_eq!(location(&resp), "/.partnergate/account/mfa?rd=/reports");
    let resp = json_get(&bob, "/reports").await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("insufficient_user_authentication"),
        "{challenge}"
    );

    // A second browser of Bob's stays signed in with a password only.
    let mut bob_b = logged_in(&gw, "bob@acme.example").await;

    // Enrolment: the first code proves the app; ten recovery codes, shown once.
    let (secret, resp) = enrol(&mut bob, "Work phone").await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{html}");
    // The renewed session counts as signed in with a second factor.
    let resp = bob.get("/reports").await;
    assert_eq!(resp.status(), 200);
    let echo: Value = json_get(&bob, "/debug/headers").await.json().await.unwrap();
    assert_eq!(echo["headers"]["x-partner-auth-methods"], "pwd,otp,mfa");
    assert!(echo["headers"]["x-partner-auth-time"].as_str().is_some());

    // The other browser's password-only session must step up with the factor it now has.
    let resp = bob_b.get("/reports").await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        location(&resp),
        "/.partnergate/login?rd=/reports&step_up=mfa"
    );

    // Sign-in asks for the second factor only after the right password.
    let mut fresh = Browser::new(&base);
    let resp = fresh.login("bob@acme.example", "wrong-password", "/").await;
    assert_eq!(
        resp.status(),
        401,
        "a wrong password never reaches the second step"
    );
    let resp = fresh
        .login("bob@acme.example", DEMO_PASSWORD, "/reports")
        .await;
    assert_eq!(resp.status(), 303);
    assert!(
        location(&resp).starts_with("/.partnergate/login/second?rd="),
        "{}",
        location(&resp)
    );
    let names: Vec<&String> = fresh.cookies.keys().collect();
    assert!(
        names.iter().any(|k| k.ends_with("-mfa")) && names.iter().all(|k| k.contains('-')),
        "a pending sign-in, no session cookie yet: {names:?}"
    );
    let code = next_code(&secret);
    let resp = second_step(&mut fresh, &code, "/reports").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/reports");
    assert_eq!(fresh.get("/reports").await.status(), 200);

    // The same code again: a replay, refused like a wrong password.
    let mut again = Browser::new(&base);
    again.login("bob@acme.example", DEMO_PASSWORD, "/").await;
    let resp = second_step(&mut again, &code, "/").await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("Sign-in failed"));

    // A recovery code works once.
    let resp = second_step(&mut again, &codes[0].to_uppercase(), "/").await;
    assert_eq!(resp.status(), 303, "a recovery code as typed, any case");
    let mut third = Browser::new(&base);
    third.login("bob@acme.example", DEMO_PASSWORD, "/").await;
    let resp = second_step(&mut third, &codes[0], "/").await;
    assert_eq!(resp.status(), 401, "a used recovery code");

    // Wrong codes count like wrong passwords: the third failure locks the account.
    let resp = second_step(&mut third, "000000", "/").await;
    assert_eq!(resp.status(), 401);
    let resp = second_step(&mut third, "111111", "/").await;
    assert_eq!(resp.status(), 401, "the locking failure answers the same");
    let mut locked = Browser::new(&base);
    let resp = locked.login("bob@acme.example", DEMO_PASSWORD, "/").await;
    assert_eq!(resp.status(), 401, "locked: even the right password fails");
    let metrics = gw.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "partnergate_logins_total",
            &[("result", "bad_second_factor")]
        ) >= 3.0
    );
    assert!(
        metric_sum(
            &metrics,
            "partnergate_logins_total",
            &[("result", "second_factor_required")]
        ) >= 3.0
    );

    // The audit log shows the enrolment and how each sign-in was made.
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let (status, audit) = api(&owner, "GET", "/audit?action=factor.enrol&limit=10", None).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["records"].as_array().unwrap().len(), 1, "{audit}");
    let (_, audit) = api(&owner, "GET", "/audit?action=login.success&limit=100", None).await;
    let vias: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["after"]["second_factor"].as_str())
        .collect();
    assert!(
        vias.contains(&"totp") && vias.contains(&"recovery_code"),
        "{vias:?}"
    );

    // Admins see the factors and may reset them; then the password alone signs in.
    let (_, me) = api(&bob, "GET", "/me", None).await;
    let bob_id = me["user_id"].as_str().unwrap().to_string();
    let (status, user) = api(&owner, "GET", &format!("/users/{bob_id}"), None).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["factors"]["factors"][0]["kind"], "totp", "{user}");
    assert_eq!(user["factors"]["factors"][0]["name"], "Work phone");
    assert_eq!(user["factors"]["recovery_codes_left"], 9);
    assert!(
        user["factors"].to_string().find(&secret).is_none(),
        "no secret in the API"
    );
    let (status, reset) = api(
        &owner,
        "POST",
        &format!("/users/{bob_id}/factors/reset"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["factors_removed"], 1);
}

async fn org_requires_mfa(directory: &str) {
    let (_portal, gw) = start(directory).await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let (status, org) = api(
        &owner,
        "PATCH",
        "/orgs/acme",
        Some(json!({"mfa": "required"})),
    )
    .await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["mfa"], "required");
    // Acme's own admin, signed in without a factor, cannot reach the API to undo it.
    let alice = logged_in_to(&gw, "alice@acme.example", "/.partnergate/account/mfa?rd=/").await;
    let (status, _) = api(
        &alice,
        "PATCH",
        "/orgs/acme",
        Some(json!({"mfa": "optional"})),
    )
    .await;
    assert_eq!(status, 401);

    // Bob has no factor: signed in, he is sent to enrolment and nowhere else.
    let mut bob = Browser::new(format!("http://{}", gw.http));
    let resp = bob
        .login("bob@acme.example", DEMO_PASSWORD, "/dashboard")
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/.partnergate/account/mfa?rd=/dashboard");
    let resp = bob.get("/dashboard").await;
    assert_eq!(resp.status(), 302);
    assert!(
        location(&resp).starts_with("/.partnergate/account/mfa"),
        "{}",
        location(&resp)
    );
    assert_eq!(json_get(&bob, "/dashboard").await.status(), 401);
    let (status, _) = api(&bob, "GET", "/me", None).await;
    assert_eq!(status, 401, "the admin API too");
    let resp = bob.get("/.partnergate/account").await;
    assert_eq!(resp.status(), 303, "the account page sends him to enrol");

    let (_secret, resp) = enrol(&mut bob, "Phone").await;
    assert_eq!(resp.status(), 200);
    let resp = bob.get("/dashboard").await;
    assert_eq!(resp.status(), 200);

    // The last factor of a user whose org requires one cannot be removed.
    let page = bob.get("/.partnergate/account").await.text().await.unwrap();
    let factor = text_after(&page, "data-factor=\"").unwrap();
    let factor = factor[..factor.find('"').unwrap()].to_string();
    let csrf = hidden_value(&page, "csrf").unwrap();
    let origin = bob.base.clone();
    let resp = bob
        .post_form(
            "/.partnergate/account/factors/remove",
            &[("id", &factor), ("csrf", &csrf)],
            &origin,
        )
        .await;
    assert_eq!(resp.status(), 409);
}

/// Sign in and follow nothing: for a user whose first stop is `expect`.
async fn logged_in_to(gw: &Gateway, email: &str, expect: &str) -> Browser {
    let mut b = Browser::new(format!("http://{}", gw.http));
    let resp = b.login(email, DEMO_PASSWORD, "/").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), expect);
    b
}

async fn step_up_and_account(directory: &str) {
    let (_portal, gw) = start(directory).await;
    let mut alice = logged_in(&gw, "alice@acme.example").await;
    assert_eq!(alice.get("/deals").await.status(), 200);
    // max_auth_age = 2s: an older sign-in is sent to sign in again, then back.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let resp = alice.get("/deals?x=1").await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        location(&resp),
        "/.partnergate/login?rd=/deals%3Fx%3D1&step_up=reauth"
    );
    let page = alice.get(&location(&resp)).await.text().await.unwrap();
    assert!(page.contains("needs a recent sign-in"), "{page}");
    let resp = alice
        .login("alice@acme.example", DEMO_PASSWORD, "/deals?x=1")
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/deals?x=1");
    assert_eq!(alice.get("/deals?x=1").await.status(), 200);

    // The account page: sessions listed, another one ended, the password changed (which
    // ends every other session).
    let mut other = logged_in(&gw, "alice@acme.example").await;
    let page = alice.get("/.partnergate/account").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert_eq!(
        html.matches("Sign out</button>").count(),
        2,
        "two sessions: {html}"
    );
    let csrf = hidden_value(&html, "csrf").unwrap();
    let origin = alice.base.clone();
    let resp = alice
        .post_form(
            "/.partnergate/account/password",
            &[
                ("current", "nope"),
                ("password", "a-new-long-password-1"),
                ("csrf", &csrf),
            ],
            &origin,
        )
        .await;
    assert_eq!(resp.status(), 403, "the current password is checked");
    let resp = alice
        .post_form(
            "/.partnergate/account/password",
            &[
                ("current", DEMO_PASSWORD),
                ("password", "a-new-long-password-1"),
                ("csrf", &csrf),
            ],
            &origin,
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        alice.get("/dashboard").await.status(),
        200,
        "this session stays"
    );
    assert_eq!(
        other.get("/dashboard").await.status(),
        302,
        "the other one ended"
    );
    let mut fresh = Browser::new(&alice.base);
    assert_eq!(
        fresh
            .login("alice@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        401
    );
    assert_eq!(
        fresh
            .login("alice@acme.example", "a-new-long-password-1", "/")
            .await
            .status(),
        303
    );
    // Sign out everywhere else.
    let html = alice
        .get("/.partnergate/account")
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&html, "csrf").unwrap();
    let resp = alice
        .post_form(
            "/.partnergate/account/sessions/end-others",
            &[("csrf", &csrf)],
            &origin,
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(fresh.get("/dashboard").await.status(), 302);
    assert_eq!(alice.get("/dashboard").await.status(), 200);
}

#[tokio::test]
async fn mfa_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    mfa_flow(&format!("sqlite://{}", dir.path().join("dir.db").display())).await;
}

#[tokio::test]
async fn mfa_on_postgres() {
    let schema = PgSchema::new().await;
    mfa_flow(&schema.url).await;
}

#[tokio::test]
async fn org_mfa_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    org_requires_mfa(&format!("sqlite://{}", dir.path().join("dir.db").display())).await;
}

#[tokio::test]
async fn org_mfa_on_postgres() {
    let schema = PgSchema::new().await;
    org_requires_mfa(&schema.url).await;
}

#[tokio::test]
async fn step_up_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    step_up_and_account(&format!("sqlite://{}", dir.path().join("dir.db").display())).await;
}

#[tokio::test]
async fn step_up_on_postgres() {
    let schema = PgSchema::new().await;
    step_up_and_account(&schema.url).await;
}
