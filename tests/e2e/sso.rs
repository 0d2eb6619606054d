//! Partner SSO end to end against a real OpenID provider (`oidc-provider` from npm, on
//! 127.0.0.1, see `tests/common/oidc.rs`), through the real gateway and directory (SQLite
//! and PostgreSQL): connections and domains through the admin API, home-realm discovery
//! on the login page, the code flow with PKCE, just-in-time provisioning with the
//! connection's roles and the org's seat cap and role bounds, the provider's MFA for
//! `require_mfa`, enforced SSO, tampered ID tokens and states refused, back-channel
//! logout reaching a second instance, RP-initiated logout, and the whole sign-in in
//! headless Chromium.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::chromium::Chromium;
use crate::common::oidc::{Idp, IdpAgent, IdpClient};
use crate::common::*;
use crate::lifecycle::api;
use crate::policy::logged_in;

const SECRET: &str = "acme-client-secret-0123456789+/%";

fn body(portal: std::net::SocketAddr, directory: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[login]
rate_limit_per_ip = {{ per_second = 100, burst = 100 }}

[[routes]]
name = "reports"
path = "/reports"
upstream = "portal"
require_mfa = true

[[routes]]
name = "portal"
path = "/"
methods = ["GET", "HEAD"]
upstream = "portal"
"#,
        portal_upstream(portal)
    )
}

/// The provider's people: `sub` is the key.
fn accounts() -> Value {
    json!({
        "jane": { "email": "jane@acme.example", "email_verified": true, "groups": ["sales"], "amr": ["pwd"] },
        "alice": { "email": "alice@acme.example", "email_verified": true, "groups": [], "amr": ["pwd", "mfa"] },
        "nina": { "email": "nina@acme.example", "email_verified": true, "groups": ["sales"], "amr": ["pwd"] },
        "mallory": { "email": "mallory@globex.example", "email_verified": true, "groups": [], "amr": ["pwd"] },
    })
}

struct Setup {
    _portal: Portal,
    gw: Gateway,
    idp: Idp,
    owner: Browser,
    _secret_dir: tempfile::TempDir,
    secret_file: String,
}

fn client_for(gw: &Gateway) -> IdpClient {
    IdpClient {
        client_id: "gw-acme".into(),
        client_secret: SECRET.into(),
        redirect_uri: gw.url("/.partnergate/sso/callback"),
        post_logout_redirect_uri: gw.url("/.partnergate/login"),
        backchannel_logout_uri: gw.url("/.partnergate/sso/acme/backchannel-logout"),
    }
}

async fn setup(directory: &str) -> Setup {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(body(portal.addr, directory))
        .import(demo_directory())
        .start()
        .await;
    let idp = Idp::start(&[client_for(&gw)], accounts()).await;
    let secret_dir = tempfile::tempdir().unwrap();
    let path = secret_dir.path().join("acme-oidc-secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let owner = logged_in(&gw, "owner@northwind.example").await;
    Setup {
        _portal: portal,
        gw,
        idp,
        owner,
        _secret_dir: secret_dir,
        secret_file: format!("file:{}", path.display()),
    }
}

impl Setup {
    fn connection(&self) -> Value {
        json!({
            "issuer": self.idp.issuer(),
            "client_id": "gw-acme",
            "client_secret": self.secret_file,
            "scopes": ["openid", "email", "profile", "groups"],
            "roles_claim": "groups",
            "role_map": { "sales": "partner-user" },
            "default_roles": [],
            "jit": true,
            "idp_mfa": true,
        })
    }

    async fn connect(&self, connection: Value) {
        let (status, body) = api(&self.owner, "PUT", "/orgs/acme/sso", Some(connection)).await;
        assert_eq!(status, 200, "{body}");
    }
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The login page's email step for `email`: its answer (a 303 to the IdP for an SSO
/// domain, the password step otherwise).
async fn email_step(b: &mut Browser, email: &str, rd: &str) -> reqwest::Response {
    let page = b
        .get(&format!("/.partnergate/login?rd={}", urlencode(rd)))
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"continue\""), "the email step: {html}");
    let csrf = hidden_value(&html, "csrf").unwrap();
    let origin = b.base.clone();
    b.post_form(
        "/.partnergate/login",
        &[("email", email), ("csrf", &csrf), ("rd", rd)],
        &origin,
    )
    .await
}

/// Where the email step's answer goes on to (the provider's authorization endpoint).
async fn onward(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200, "the email step goes on to the IdP");
    let html = resp.text().await.unwrap();
    let marker = "id=\"sso-continue\" href=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no way on in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

/// The gateway path of an absolute callback URL.
fn path_of(url: &str, base: &str) -> String {
    url.strip_prefix(base)
        .unwrap_or_else(|| panic!("{url} is not under {base}"))
        .to_string()
}

/// The whole sign-in of `login` (the provider's account) who types `email`: the email
/// step, the provider's pages, the callback. Returns the browser and the callback's answer.
async fn sso_sign_in(
    s: &Setup,
    email: &str,
    login: &str,
    rd: &str,
) -> (Browser, reqwest::Response) {
    let mut b = Browser::new(format!("http://{}", s.gw.http));
    let resp = email_step(&mut b, email, rd).await;
    let authorize = onward(resp).await;
    assert!(authorize.starts_with(&s.idp.issuer()), "{authorize}");
    for part in [
        "code_challenge=",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "login_hint=",
    ] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    let mut agent = IdpAgent::new();
    let callback = agent.authorize(&authorize, login).await;
    let resp = b.get(&path_of(&callback, &b.base.clone())).await;
    (b, resp)
}

async fn whoami(b: &mut Browser) -> Value {
    let resp = b.get("/.partnergate/whoami").await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The newest audit records with `action` (the owner's view).
async fn audit(owner: &Browser, action: &str) -> Vec<Value> {
    let (status, body) = api(
        owner,
        "GET",
        &format!("/audit?action={action}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().cloned().unwrap_or_default()
}

fn has_reason(records: &[Value], reason: &str) -> bool {
    records.iter().any(|r| r["reason"] == reason)
}

async fn connections_domains_provisioning_and_bounds(directory: &str) {
    let s = setup(directory).await;
    let owner = &s.owner;

    // A connection is checked before it is saved.
    let mut bad = s.connection();
    bad["role_map"] = json!({ "admins": "owner-admin" });
    let (status, body) = api(owner, "PUT", "/orgs/acme/sso", Some(bad)).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("not_delegable")),
        "{body}"
    );
    let mut bad = s.connection();
    bad["client_secret"] = json!(SECRET);
    let (status, body) = api(owner, "PUT", "/orgs/acme/sso", Some(bad)).await;
    assert_eq!(status, 400, "a secret value instead of its source: {body}");
    let mut bad = s.connection();
    bad["issuer"] = json!("http://idp.example.com");
    assert_eq!(api(owner, "PUT", "/orgs/acme/sso", Some(bad)).await.0, 400);
    let mut bad = s.connection();
    bad["issuer"] = json!(format!("http://127.0.0.1:{}", free_port()));
    let (status, body) = api(owner, "PUT", "/orgs/acme/sso", Some(bad)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("discovery_failed")),
        "{body}"
    );
    // A delegated admin may read their org's settings but not change them.
    let alice = logged_in(&s.gw, "alice@acme.example").await;
    assert_eq!(
        api(&alice, "PUT", "/orgs/acme/sso", Some(s.connection()))
            .await
            .0,
        403
    );

    s.connect(s.connection()).await;
    let (status, shown) = api(owner, "GET", "/orgs/acme/sso", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["client_secret"], json!(s.secret_file));
    assert!(
        !shown.to_string().contains("0123456789"),
        "the secret is never shown: {shown}"
    );
    assert_eq!(api(&alice, "GET", "/orgs/acme/sso", None).await.0, 200);

    // Without the domain, acme's emails still get the password step.
    let mut b = Browser::new(format!("http://{}", s.gw.http));
    let resp = email_step(&mut b, "jane@acme.example", "/").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("id=\"password\""));
    let (status, body) = api(owner, "PUT", "/orgs/acme/domains/acme.example", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        api(owner, "PUT", "/orgs/acme/domains/acme.example", None)
            .await
            .0,
        200
    );
    let (status, body) = api(owner, "PUT", "/orgs/globex/domains/acme.example", None).await;
    assert_eq!(status, 409, "a domain belongs to one org: {body}");
    assert_eq!(
        api(owner, "PUT", "/orgs/globex/domains/globex.example", None)
            .await
            .0,
        201
    );
    let (_, list) = api(owner, "GET", "/orgs/acme/domains", None).await;
    assert_eq!(list["domains"], json!(["acme.example"]));

    // Jane is unknown to the portal: her first sign-in creates her, with the role her
    // group maps to, and lands where she was going.
    let (mut jane, resp) = sso_sign_in(&s, "jane@acme.example", "jane", "/").await;
    assert_eq!(
        resp.status(),
        303,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(location(&resp), "/");
    let me = whoami(&mut jane).await;
    assert_eq!(me["org"], "acme");
    assert_eq!(me["roles"], json!(["partner-user"]));
    assert_eq!(
        jane.get("/").await.status(),
        200,
        "the role dashboard through the proxy"
    );
    assert!(
        audit(owner, "sso.provision")
            .await
            .iter()
            .any(|r| r["actor_email"] == "jane@acme.example"),
        "provisioning is audited"
    );
    let logins = audit(owner, "login.success").await;
    let login = logins
        .iter()
        .find(|r| r["actor_email"] == "jane@acme.example")
        .unwrap();
    assert_eq!(login["after"]["method"], "sso");

    // The provider's MFA counts for require_mfa when the connection says so.
    assert_eq!(
        jane.get("/reports").await.status(),
        302,
        "jane signed in with a password only"
    );
    let (mut alice_sso, resp) = sso_sign_in(&s, "alice@acme.example", "alice", "/reports").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        alice_sso.get("/reports").await.status(),
        200,
        "alice's IdP vouched for MFA"
    );
    // Alice existed already: linked, her roles refreshed from the mapping (no group: none).
    assert_eq!(whoami(&mut alice_sso).await["roles"], json!([]));

    // A provider that vouches for an email of another org's domain is refused.
    let (_, resp) = sso_sign_in(&s, "jane@acme.example", "mallory", "/").await;
    assert_eq!(resp.status(), 403);
    assert!(has_reason(
        &audit(owner, "sso.refused").await,
        "domain_not_in_org"
    ));

    // The seat cap holds for just-in-time users.
    let (_, org) = api(owner, "GET", "/orgs/acme", None).await;
    let used = org["seats_used"].as_u64().unwrap();
    let (status, _) = api(
        owner,
        "PATCH",
        "/orgs/acme",
        Some(json!({ "max_users": used })),
    )
    .await;
    assert_eq!(status, 200);
    let (_, resp) = sso_sign_in(&s, "nina@acme.example", "nina", "/").await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("no free seat"));
    assert!(has_reason(&audit(owner, "sso.refused").await, "seat_cap"));
    api(
        owner,
        "PATCH",
        "/orgs/acme",
        Some(json!({ "max_users": null })),
    )
    .await;

    // The org's bounds are checked again at each sign-in: a mapped role the org no longer
    // allows is not granted.
    let (status, body) = api(
        owner,
        "PATCH",
        "/orgs/acme",
        Some(json!({ "allowed_roles": ["partner-admin"] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (mut jane2, resp) = sso_sign_in(&s, "jane@acme.example", "jane", "/").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(whoami(&mut jane2).await["roles"], json!([]));
    let logins = audit(owner, "login.success").await;
    assert!(
        logins
            .iter()
            .any(|r| r["after"]["refused_roles"] == json!(["partner-user"])),
        "the refused role is in the audit record"
    );
    api(
        owner,
        "PATCH",
        "/orgs/acme",
        Some(json!({ "allowed_roles": null })),
    )
    .await;

    // A suspended org is refused whatever the provider says.
    assert_eq!(api(owner, "POST", "/orgs/acme/suspend", None).await.0, 200);
    let (_, resp) = sso_sign_in(&s, "jane@acme.example", "jane", "/").await;
    assert_eq!(resp.status(), 403);
    assert!(has_reason(
        &audit(owner, "sso.refused").await,
        "org_inactive"
    ));
    assert_eq!(
        api(owner, "POST", "/orgs/acme/reactivate", None).await.0,
        200
    );

    // Enforced SSO: the password form and password reset refuse the org's domains.
    let mut enforced = s.connection();
    enforced["enforce"] = json!(true);
    s.connect(enforced).await;
    let mut bob = Browser::new(format!("http://{}", s.gw.http));
    let resp = bob.login("bob@acme.example", DEMO_PASSWORD, "/").await;
    assert_eq!(resp.status(), 403);
    let html = resp.text().await.unwrap();
    assert!(html.contains("/.partnergate/sso/acme/start"), "{html}");
    assert!(has_reason(
        &audit(owner, "login.failure").await,
        "sso_required"
    ));
    let mut carol = Browser::new(format!("http://{}", s.gw.http));
    assert_eq!(
        carol
            .login("carol@brightpath.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303,
        "other orgs keep passwords"
    );
    let page = bob.get("/.partnergate/reset").await;
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf").unwrap();
    let origin = bob.base.clone();
    let resp = bob
        .post_form(
            "/.partnergate/reset",
            &[("email", "bob@acme.example"), ("csrf", &csrf)],
            &origin,
        )
        .await;
    assert_eq!(resp.status(), 200, "the same answer for every email");
    s.gw.access_line(|l| l["reason"] == "reset_sso_required")
        .await;

    // Logins are counted by method.
    let metrics = s.gw.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "partnergate_logins_total",
            &[("method", "sso"), ("result", "success")]
        ) >= 3.0
    );
    assert!(
        metric_sum(
            &metrics,
            "partnergate_logins_total",
            &[("method", "sso"), ("result", "seat_cap")]
        ) >= 1.0
    );
    assert!(
        metric_sum(
            &metrics,
            "partnergate_logins_total",
            &[("method", "password"), ("result", "sso_required")]
        ) >= 1.0
    );

    // explain --user works for a provisioned user.
    let out = std::process::Command::new(BIN)
        .args(["explain", "--config"])
        .arg(&s.gw.config_path)
        .args([
            "--user",
            "jane@acme.example",
            "--method",
            "GET",
            "--url",
            "/",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Removing the connection sends acme's emails to the password step again.
    assert_eq!(api(owner, "DELETE", "/orgs/acme/sso", None).await.0, 200);
    let mut b = Browser::new(format!("http://{}", s.gw.http));
    assert_eq!(
        email_step(&mut b, "jane@acme.example", "/").await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_provisions_within_the_orgs_bounds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    connections_domains_provisioning_and_bounds(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_provisions_within_the_orgs_bounds_on_postgres() {
    let schema = PgSchema::new().await;
    connections_domains_provisioning_and_bounds(&schema.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoiled_id_tokens_and_foreign_states_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let s = setup(&url).await;
    s.connect(s.connection()).await;
    api(&s.owner, "PUT", "/orgs/acme/domains/acme.example", None).await;

    for mode in [
        "wrong_nonce",
        "wrong_aud",
        "expired",
        "bad_signature",
        "wrong_iss",
    ] {
        s.idp.set_mode(mode).await;
        let (mut b, resp) = sso_sign_in(&s, "jane@acme.example", "jane", "/").await;
        assert_eq!(resp.status(), 401, "{mode}");
        assert!(!b.cookies.contains_key("partnergate"), "{mode}: no session");
        assert_eq!(b.get("/.partnergate/whoami").await.status(), 401, "{mode}");
    }
    let refusals = audit(&s.owner, "sso.refused").await;
    assert!(has_reason(&refusals, "nonce_mismatch"));
    assert!(has_reason(&refusals, "id_token_invalid"));
    s.idp.set_mode("normal").await;

    // The callback belongs to the browser that started the sign-in, once.
    let mut b = Browser::new(format!("http://{}", s.gw.http));
    let resp = email_step(&mut b, "jane@acme.example", "/").await;
    let mut agent = IdpAgent::new();
    let callback = agent.authorize(&onward(resp).await, "jane").await;
    let path = path_of(&callback, &b.base.clone());
    let mut other = Browser::new(format!("http://{}", s.gw.http));
    assert_eq!(
        other.get(&path).await.status(),
        400,
        "another browser's callback"
    );
    let first = b.get(&path).await;
    assert_eq!(first.status(), 303, "the browser's own callback");
    let state = path
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    b.cookies.insert("partnergate-sso".into(), state);
    assert_eq!(
        b.get(&path).await.status(),
        400,
        "a callback is answered once"
    );
    let tampered = path.replace("state=", "state=x");
    assert_eq!(b.get(&tampered).await.status(), 400);
    assert!(has_reason(
        &audit(&s.owner, "sso.refused").await,
        "state_mismatch"
    ));

    // A back-channel logout with a bad token is a 400.
    let resp = client()
        .post(s.gw.url("/.partnergate/sso/acme/backchannel-logout"))
        .form(&[("logout_token", "e30.e30.sig")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_ends_the_session_on_a_second_instance() {
    let schema = PgSchema::new().await;
    let s = setup(&schema.url).await;
    let b_portal = Portal::start().await;
    let second = GatewayBuilder::new(body(b_portal.addr, &schema.url))
        .start()
        .await;
    s.connect(s.connection()).await;
    api(&s.owner, "PUT", "/orgs/acme/domains/acme.example", None).await;

    // Jane signs in on instance a (the provider's agent keeps its own session).
    let mut jane = Browser::new(format!("http://{}", s.gw.http));
    let resp = email_step(&mut jane, "jane@acme.example", "/").await;
    let mut agent = IdpAgent::new();
    let callback = agent.authorize(&onward(resp).await, "jane").await;
    assert_eq!(
        jane.get(&path_of(&callback, &jane.base.clone()))
            .await
            .status(),
        303
    );
    // Her cookie works on instance b too.
    let mut on_b = Browser::new(format!("http://{}", second.http));
    on_b.cookies = jane.cookies.clone();
    assert_eq!(on_b.get("/").await.status(), 200);

    // She signs out at her provider: it tells instance a, and instance b refuses her.
    agent.end_session(&s.idp.issuer()).await;
    let started = Instant::now();
    loop {
        if on_b.get("/").await.status() != 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "instance b still lets jane in"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "sso: back-channel logout on a → refusal on b after {:?}",
        started.elapsed()
    );
    let records = audit(&s.owner, "sso.backchannel_logout").await;
    assert!(records.iter().any(|r| r["outcome"] == "ok"), "{records:?}");

    // RP-initiated logout: signing out of an SSO session offers the provider's logout.
    let (mut b2, resp) = sso_sign_in(&s, "jane@acme.example", "jane", "/").await;
    assert_eq!(resp.status(), 303);
    let page = b2.get("/.partnergate/account").await;
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf").unwrap_or_default();
    let origin = b2.base.clone();
    let resp = b2
        .post_form("/.partnergate/logout", &[("csrf", &csrf)], &origin)
        .await;
    assert_eq!(location(&resp), "/.partnergate/login?signed_out=acme");
    let page = b2.get("/.partnergate/login?signed_out=acme").await;
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("/.partnergate/sso/acme/logout"));
    let resp = b2.get("/.partnergate/sso/acme/logout").await;
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    assert!(
        to.starts_with(&format!("{}/session/end", s.idp.issuer())),
        "{to}"
    );
    assert!(to.contains("post_logout_redirect_uri="), "{to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_sso_sign_in_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let s = setup(&url).await;
    s.connect(s.connection()).await;
    api(&s.owner, "PUT", "/orgs/acme/domains/acme.example", None).await;
    let base = format!("http://{}", s.gw.http);

    let mut chromium = Chromium::launch().await;
    let tab = chromium.new_tab().await;
    chromium.navigate(&tab, &format!("{base}/")).await;
    chromium.email_step(&tab, "jane@acme.example").await;
    chromium
        .wait_for(
            &tab,
            "the provider's sign-in page",
            &format!(
                "location.origin === {} && !!document.querySelector('#login')",
                json!(s.idp.issuer())
            ),
        )
        .await;
    chromium
        .run(
            &tab,
            "document.querySelector('#login').value = 'jane'; document.querySelector('#password').value = 'x'; true",
        )
        .await;
    let _ = chromium
        .eval(
            &tab,
            "document.querySelector('#login-form').requestSubmit(); true",
        )
        .await;
    let dashboard = chromium
        .wait_for(
            &tab,
            "the role dashboard after SSO",
            &format!(
                "location.origin === {} && location.pathname === '/' && document.readyState === 'complete' && document.body.innerText",
                json!(base)
            ),
        )
        .await;
    let text = dashboard.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("jane@acme.example"),
        "the dashboard greets jane: {text}"
    );
    assert!(chromium.problems().is_empty(), "{:?}", chromium.problems());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_attaches_a_domain_and_connects_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("directory.db").display());
    let s = setup(&url).await;
    let base = format!("http://{}", s.gw.http);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.new_tab().await;
    chromium
        .navigate(&tab, &format!("{base}/.partnergate/admin/#/orgs/acme"))
        .await;
    chromium
        .password_sign_in(&tab, "owner@northwind.example", DEMO_PASSWORD)
        .await;
    chromium
        .wait_for(
            &tab,
            "the console",
            "location.pathname === '/.partnergate/admin/' && !!document.querySelector('#who')",
        )
        .await;
    chromium
        .navigate(&tab, &format!("{base}/.partnergate/admin/#/orgs/acme"))
        .await;
    chromium
        .wait_for(
            &tab,
            "the org's SSO block",
            "!!document.querySelector('#sso-none') && !!document.querySelector('#domain-form')",
        )
        .await;
    chromium
        .run(&tab, "document.querySelector('#domain-name').value = 'acme.example'; document.querySelector('#domain-form').requestSubmit(); true")
        .await;
    chromium
        .wait_for(
            &tab,
            "the domain row",
            "!!document.querySelector('#domains-table tr[data-domain=\"acme.example\"]')",
        )
        .await;
    let fill = format!(
        "(() => {{ const v = (id, x) => document.querySelector(id).value = x; \
         v('#sso-issuer', {}); v('#sso-client-id', 'gw-acme'); v('#sso-secret', {}); \
         v('#sso-roles-claim', 'groups'); v('#sso-role-map', 'sales=partner-user'); \
         document.querySelector('#sso-form').requestSubmit(); return true; }})()",
        json!(s.idp.issuer()),
        json!(s.secret_file)
    );
    chromium.run(&tab, &fill).await;
    let shown = chromium
        .wait_for(
            &tab,
            "the saved connection",
            "(document.querySelector('#sso-connection') || {}).textContent",
        )
        .await;
    let shown = shown.as_str().unwrap().to_string();
    assert!(shown.contains(&s.idp.issuer()), "{shown}");
    assert!(shown.contains("sales → partner-user"), "{shown}");
    assert!(
        !shown.contains("0123456789"),
        "no secret in the console: {shown}"
    );
    let (status, c) = api(&s.owner, "GET", "/orgs/acme/sso", None).await;
    assert_eq!((status, c["client_id"].as_str()), (200, Some("gw-acme")));
    // And it works: jane signs in through it.
    let (_, resp) = sso_sign_in(&s, "jane@acme.example", "jane", "/").await;
    assert_eq!(resp.status(), 303);
    assert!(chromium.problems().is_empty(), "{:?}", chromium.problems());
}
