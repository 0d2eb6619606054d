//! Passkeys in a real browser: headless Chromium with the DevTools protocol's virtual
//! authenticator registers a passkey on the account page and signs in with it as the
//! second factor, through the gateway's real pages, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;

use crate::common::chromium::{Chromium, Tab};
use crate::common::*;

fn body(portal: std::net::SocketAddr, directory: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[login]
rate_limit_per_ip = {{ per_second = 100, burst = 100 }}

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

/// Sign in as bob with the password, through both steps of the login page.
async fn password_form(chromium: &mut Chromium, tab: &Tab) {
    chromium
        .password_sign_in(tab, "bob@acme.example", DEMO_PASSWORD)
        .await;
}

async fn passkey_flow(directory: &str) {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(body(portal.addr, directory))
        .import(demo_directory())
        .localhost()
        .start()
        .await;
    let base = format!("http://localhost:{}", gw.http.port());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.new_tab().await;
    chromium.virtual_authenticator(&tab).await;

    // Sign in with the password, then register a passkey on the account page.
    chromium
        .navigate(
            &tab,
            &format!("{base}/.partnergate/login?rd=/.partnergate/account/passkey"),
        )
        .await;
    password_form(&mut chromium, &tab).await;
    chromium
        .wait_for(
            &tab,
            "the passkey page",
            "location.pathname === '/.partnergate/account/passkey' && !!document.querySelector('#passkey-register button:enabled')",
        )
        .await;
    chromium
        .run(&tab, "document.querySelector('#name').value = 'Laptop'; document.querySelector('#passkey-register button').click(); true")
        .await;
    let codes = chromium
        .wait_for(
            &tab,
            "the recovery codes after registration",
            "(() => { const c = document.querySelectorAll('#recovery-codes li'); return c.length ? c.length : (document.querySelector('#passkey-status.error') || {}).textContent; })()",
        )
        .await;
    assert_eq!(codes, 10, "{codes}");

    // The account page lists it.
    chromium
        .navigate(&tab, &format!("{base}/.partnergate/account"))
        .await;
    let listed = chromium
        .wait_for(
            &tab,
            "the factor list",
            "(() => { const li = document.querySelector('#factors li[data-factor]'); return li && li.textContent; })()",
        )
        .await;
    assert!(
        listed.as_str().unwrap().contains("Laptop (passkey)"),
        "{listed}"
    );

    // Sign out, sign in again: the password, then the passkey as the second factor.
    chromium
        .run(
            &tab,
            "(() => { const f = document.createElement('form'); f.method = 'post'; \
             f.action = '/.partnergate/logout'; document.body.appendChild(f); f.submit(); return true; })()",
        )
        .await;
    chromium
        .wait_for(
            &tab,
            "signed out",
            "location.pathname === '/.partnergate/login'",
        )
        .await;
    chromium
        .navigate(
            &tab,
            &format!("{base}/.partnergate/login?rd=/debug/headers"),
        )
        .await;
    password_form(&mut chromium, &tab).await;
    chromium
        .wait_for(
            &tab,
            "the second-factor page",
            "location.pathname === '/.partnergate/login/second' && !!document.querySelector('a[href^=\"/.partnergate/login/passkey\"]')",
        )
        .await;
    chromium
        .navigate(
            &tab,
            &format!("{base}/.partnergate/login/passkey?rd=/debug/headers"),
        )
        .await;
    chromium
        .wait_for(
            &tab,
            "the passkey sign-in page",
            "!!document.querySelector('#passkey-signin button:enabled')",
        )
        .await;
    chromium
        .run(
            &tab,
            "document.querySelector('#passkey-signin button').click(); true",
        )
        .await;
    let echo = chromium
        .wait_for(
            &tab,
            "the portal behind the gateway",
            "location.pathname === '/debug/headers' && document.body && document.body.innerText.includes('x-partner-auth-methods') && document.body.innerText",
        )
        .await;
    let echo: Value = serde_json::from_str(echo.as_str().unwrap()).unwrap();
    let methods = echo["headers"]["x-partner-auth-methods"].as_str().unwrap();
    assert_eq!(methods, "pwd,hwk,mfa");
    assert_eq!(echo["headers"]["x-partner-user"], "bob@acme.example");
    assert!(chromium.problems().is_empty(), "{:?}", chromium.problems());

    // The audit log says how.
    let lines = gw.access_lines(1).await;
    assert!(
        lines
            .iter()
            .any(|l| l["path"] == "/.partnergate/login/passkey" && l["decision"] == "allow"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_in_chromium_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    passkey_flow(&format!("sqlite://{}", dir.path().join("dir.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_in_chromium_on_postgres() {
    let schema = PgSchema::new().await;
    passkey_flow(&schema.url).await;
}
