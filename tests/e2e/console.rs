//! The web console at `/.partnergate/admin/`: who gets the page, with
//! which headers, and — in a real Chromium — an owner admin and a delegated partner admin
//! using it against a real gateway, directory and admin API.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};

use crate::common::chromium::{Chromium, Tab};
use crate::common::*;
use crate::policy::{logged_in, start_policy_gateway};

const CONSOLE: &str = "/.partnergate/admin/";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A registration request whose name is markup: the console must show it as text.
const MARKUP_NAME: &str = "<img src=x onerror=\"window.pwned=1\">Evil & Co";

async fn sqlite_gateway() -> (tempfile::TempDir, Portal, Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let (portal, gw) = start_policy_gateway(&url, "").await;
    (dir, portal, gw)
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_page_is_for_signed_in_admins_with_a_strict_csp() {
    let (_dir, _portal, gw) = sqlite_gateway().await;
    let base = format!("http://{}", gw.http);

    // Nobody signed in: to the login page, which brings them back.
    let mut visitor = Browser::new(base.clone());
    let resp = visitor.get(CONSOLE).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        header(&resp, "location"),
        "/.partnergate/login?rd=/.partnergate/admin/"
    );
    let resp = visitor.get("/.partnergate/admin").await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "location")),
        (303, CONSOLE)
    );
    let back = visitor
        .login("owner@northwind.example", DEMO_PASSWORD, CONSOLE)
        .await;
    assert_eq!(back.status(), 303);
    assert_eq!(header(&back, "location"), CONSOLE);

    // A partner user: signed in, but not an admin.
    let mut bob = logged_in(&gw, "bob@acme.example").await;
    let resp = bob.get(CONSOLE).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(header(&resp, "cache-control"), "no-store");
    assert!(header(&resp, "content-type").starts_with("text/html"));
    let page = resp.text().await.unwrap();
    assert!(page.contains("Not an administrator"), "{page}");
    assert!(page.contains("bob@acme.example"), "{page}");
    assert!(!page.contains("console.js"), "{page}");
    let line = gw
        .access_line(|l| l["path"] == CONSOLE && l["status"] == 403)
        .await;
    assert_eq!(
        (&line["decision"], &line["reason"], &line["user"]),
        (
            &json!("deny"),
            &json!("permission"),
            &json!("bob@acme.example")
        )
    );

    // The owner admin and a delegated partner admin get the page, with the strict CSP.
    for email in ["owner@northwind.example", "alice@acme.example"] {
        let mut admin = logged_in(&gw, email).await;
        let resp = admin.get(CONSOLE).await;
        assert_eq!(resp.status(), 200, "{email}");
        assert_eq!(header(&resp, "content-security-policy"), CSP);
        assert_eq!(header(&resp, "cache-control"), "no-store");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
        assert_eq!(header(&resp, "x-frame-options"), "DENY");
        assert!(header(&resp, "content-type").starts_with("text/html"));
        let page = resp.text().await.unwrap();
        assert!(page.contains("<script src=\"/.partnergate/admin/console.js\" defer></script>"));
    }

    // The script and stylesheet hold no data: anyone may load them, with the same headers.
    for (path, kind) in [
        ("/.partnergate/admin/console.js", "text/javascript"),
        ("/.partnergate/admin/console.css", "text/css"),
    ] {
        let resp = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(header(&resp, "content-type").starts_with(kind), "{path}");
        assert_eq!(header(&resp, "content-security-policy"), CSP);
        assert_eq!(header(&resp, "cache-control"), "no-store");
    }
    let resp = client()
        .get(gw.url("/.partnergate/admin/other.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// Ask to join through the public register form (as a stranger would).
async fn register(base: &str, name: &str, contact: &str) {
    let mut visitor = Browser::new(base.to_string());
    let page = visitor.get("/.partnergate/register").await;
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf").unwrap();
    let form = [
        ("org_name", name),
        ("org_type", "agency"),
        ("contact_email", contact),
        ("csrf", csrf.as_str()),
    ];
    let sent = visitor
        .post_form("/.partnergate/register", &form, base)
        .await;
    assert_eq!(sent.status(), 200);
}

/// Open the console signed out, land on the login form, sign in there, come back.
async fn sign_in(chromium: &mut Chromium, tab: &Tab, base: &str, email: &str) {
    chromium.navigate(tab, &format!("{base}{CONSOLE}")).await;
    chromium
        .wait_for(
            tab,
            "the login form",
            "location.pathname === '/.partnergate/login' && document.readyState === 'complete'",
        )
        .await;
    let rd = chromium
        .run(tab, "document.querySelector('input[name=rd]').value")
        .await;
    assert_eq!(rd, CONSOLE);
    chromium.password_sign_in(tab, email, DEMO_PASSWORD).await;
    chromium
        .wait_for(
            tab,
            "the console after sign-in",
            &format!(
                "location.pathname === '{CONSOLE}' && document.body.dataset.view === 'orgs' \
                 && !!document.querySelector('#orgs-table')"
            ),
        )
        .await;
}

/// The rows of the console's orgs table as [id, name], once it is shown.
const ORG_ROWS: &str = "(() => { const rows = document.querySelectorAll('#orgs-table tbody tr'); \
return rows.length ? [...rows].map(r => [r.dataset.org, r.querySelector('.org-name').textContent]) : null; })()";

fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// With `PARTNERGATE_TEST_SCREENSHOTS=DIR`, save what the tab shows as `DIR/NAME.png`.
async fn snap(chromium: &mut Chromium, tab: &Tab, name: &str) {
    if let Some(dir) = std::env::var_os("PARTNERGATE_TEST_SCREENSHOTS") {
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        chromium.screenshot(tab, &path).await;
    }
}

fn click(selector: &str) -> String {
    format!("document.querySelector({}).click(); true", json!(selector))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium_owner_onboards_and_invites_delegated_admin_sees_own_org() {
    let (_dir, _portal, gw) = sqlite_gateway().await;
    let base = format!("http://{}", gw.http);
    register(&base, MARKUP_NAME, "pat@evil.example").await;
    let mut chromium = Chromium::launch().await;

    // The owner admin signs in through the login form in the browser.
    let owner = chromium.new_tab().await;
    sign_in(&mut chromium, &owner, &base, "owner@northwind.example").await;
    let orgs = pairs(&chromium.wait_for(&owner, "the orgs table", ORG_ROWS).await);
    for (id, name) in [
        ("acme", "Acme Resellers"),
        ("northwind", "Northwind Partner Programme"),
        ("brightpath", "Brightpath Referrals"),
        ("globex", "Globex Distribution"),
    ] {
        assert!(
            orgs.contains(&(id.to_string(), name.to_string())),
            "{id} in {orgs:?}"
        );
    }
    let who = chromium
        .run(&owner, "document.querySelector('#who').textContent")
        .await;
    assert!(
        who.as_str().unwrap().contains("owner@northwind.example"),
        "{who}"
    );

    // The registration request shows its name as text: no element, no script ran.
    let pending = chromium
        .wait_for(
            &owner,
            "the registration request",
            "(() => { const r = document.querySelector('#pending-table tbody tr'); \
             return r && [r.dataset.org, r.querySelector('.org-name').textContent]; })()",
        )
        .await;
    assert_eq!(pending[1], MARKUP_NAME);
    let pending_id = pending[0].as_str().unwrap().to_string();
    let injected = chromium
        .run(
            &owner,
            "document.querySelectorAll('main img').length + (window.pwned ? 100 : 0)",
        )
        .await;
    assert_eq!(injected, 0);
    snap(&mut chromium, &owner, "owner-orgs").await;

    // Approve it, inviting the contact as partner admin: the link is shown once.
    let row = format!("#pending-table tr[data-org=\"{pending_id}\"]");
    chromium
        .run(&owner, &click(&format!("{row} button.primary")))
        .await;
    let role = chromium
        .wait_for(
            &owner,
            "the approve form",
            &format!(
                "(() => {{ const f = document.querySelector('{row} .approve-form'); \
                 return f && f.querySelector('.approve-invite').checked && f.querySelector('.approve-role').value; }})()"
            ),
        )
        .await;
    assert_eq!(role, "partner-admin");
    chromium
        .run(
            &owner,
            &click(&format!("{row} .approve-form button[type=submit]")),
        )
        .await;
    let link = chromium
        .wait_for(
            &owner,
            "the approval's invitation link",
            "document.querySelector('.notice .invite-link')?.textContent",
        )
        .await;
    let link = link.as_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("{base}/.partnergate/invite/")),
        "{link}"
    );
    let approved = chromium
        .wait_for(
            &owner,
            "the approved org among the orgs",
            &format!(
                "document.querySelector('#orgs-table tr[data-org=\"{pending_id}\"] .badge')?.textContent"
            ),
        )
        .await;
    assert_eq!(approved, "active");
    let still_pending = chromium
        .run(&owner, "!!document.querySelector('#pending-table')")
        .await;
    assert_eq!(still_pending, false, "the request is no longer pending");

    // Suspending an org takes a second, confirming click.
    let bright = "#orgs-table tr[data-org=\"brightpath\"]";
    chromium
        .run(&owner, &click(&format!("{bright} button.danger")))
        .await;
    let question = chromium
        .wait_for(
            &owner,
            "the confirmation question",
            &format!("document.querySelector('{bright} .question')?.textContent"),
        )
        .await;
    assert!(
        question
            .as_str()
            .unwrap()
            .starts_with("Suspend Brightpath Referrals?"),
        "{question}"
    );
    chromium
        .run(&owner, &click(&format!("{bright} button.confirm")))
        .await;
    chromium
        .wait_for(
            &owner,
            "brightpath suspended",
            &format!("document.querySelector('{bright} .badge')?.textContent === 'suspended'"),
        )
        .await;

    // Invite a user into acme through the form; the link is shown and works.
    chromium
        .run(
            &owner,
            &click("#orgs-table tr[data-org=\"acme\"] .org-name a"),
        )
        .await;
    chromium
        .wait_for(
            &owner,
            "acme's users",
            "!!document.querySelector('#invite-form') && !!document.querySelector('#users-table')",
        )
        .await;
    chromium
        .run(
            &owner,
            "document.querySelector('#invite-email').value = 'frank@acme.example'; \
             document.querySelector('input[name=\"invite-role\"][value=\"partner-user\"]').checked = true; \
             document.querySelector('#invite-submit').click(); true",
        )
        .await;
    let link = chromium
        .wait_for(
            &owner,
            "the invitation link",
            "document.querySelector('#invite-result .invite-link')?.textContent",
        )
        .await;
    let link = link.as_str().unwrap().to_string();
    let path = link.strip_prefix(&base).unwrap_or_else(|| panic!("{link}"));
    assert!(path.starts_with("/.partnergate/invite/"), "{link}");
    let invite_page = Browser::new(base.clone()).get(path).await;
    assert_eq!(invite_page.status(), 200);
    assert!(invite_page
        .text()
        .await
        .unwrap()
        .contains("frank@acme.example"));
    let frank = chromium
        .wait_for(
            &owner,
            "frank among acme's users",
            "document.querySelector('#users-table tr[data-user=\"frank@acme.example\"] .badge')?.textContent",
        )
        .await;
    assert_eq!(frank, "invited");
    snap(&mut chromium, &owner, "owner-acme-users").await;

    // The audit log view, filtered, and its JSON-lines download.
    chromium
        .run(&owner, "location.hash = '#/audit?action=invitation.'; true")
        .await;
    let rows = chromium
        .wait_for(
            &owner,
            "the audit table",
            "(() => { const rows = document.querySelectorAll('#audit-table tbody tr'); \
             return rows.length ? [...rows].map(r => [r.children[3].textContent, r.children[2].textContent]) : null; })()",
        )
        .await;
    let rows = pairs(&rows);
    assert!(rows
        .iter()
        .all(|(action, _)| action.starts_with("invitation.")));
    assert!(
        rows.contains(&(
            "invitation.create".to_string(),
            "owner@northwind.example".to_string()
        )),
        "{rows:?}"
    );
    let export = chromium
        .run(
            &owner,
            "fetch(document.querySelector('#audit-export').href, { credentials: 'same-origin' }).then(r => r.text())",
        )
        .await;
    let lines: Vec<Value> = export
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    snap(&mut chromium, &owner, "owner-audit").await;
    assert_eq!(lines.len(), rows.len(), "{export}");
    assert!(lines.iter().any(|r| r["action"] == "invitation.create"));

    // alice, a delegated partner admin, in her own browser context: only acme.
    let alice = chromium.new_tab().await;
    sign_in(&mut chromium, &alice, &base, "alice@acme.example").await;
    let orgs = pairs(&chromium.wait_for(&alice, "alice's orgs", ORG_ROWS).await);
    assert_eq!(
        orgs,
        vec![("acme".to_string(), "Acme Resellers".to_string())]
    );
    let pending = chromium
        .run(&alice, "!!document.querySelector('#pending-table')")
        .await;
    assert_eq!(pending, false, "registration requests are for owners");

    // On bob's page: a grant above her own level is refused, and the refusal is shown
    // next to the form; one within it is made.
    chromium
        .run(
            &alice,
            &click("#orgs-table tr[data-org=\"acme\"] .org-name a"),
        )
        .await;
    chromium
        .wait_for(
            &alice,
            "acme's users for alice",
            "!!document.querySelector('#users-table tr[data-user=\"bob@acme.example\"]')",
        )
        .await;
    chromium
        .run(
            &alice,
            &click("#users-table tr[data-user=\"bob@acme.example\"] td a"),
        )
        .await;
    chromium
        .wait_for(
            &alice,
            "bob's grants",
            "!!document.querySelector('#grant-form') && !!document.querySelector('#grants-table')",
        )
        .await;
    let assign = |level: &str| {
        format!(
            "document.querySelector('#grant-account').value = 'client-42'; \
             document.querySelector('#grant-level').value = '{level}'; \
             document.querySelector('#grant-submit').click(); true"
        )
    };
    chromium.run(&alice, &assign("admin")).await;
    let refusal = chromium
        .wait_for(
            &alice,
            "the refusal",
            "document.querySelector('#grant-result .error')?.textContent",
        )
        .await;
    assert!(
        refusal
            .as_str()
            .unwrap()
            .starts_with("Refused (grant_above_own)"),
        "{refusal}"
    );
    snap(&mut chromium, &alice, "alice-bob-grants-refused").await;
    chromium.run(&alice, &assign("standard")).await;
    chromium
        .wait_for(
            &alice,
            "bob's new level on client-42",
            "document.querySelector('#grants-table tr[data-account=\"client-42\"] td:nth-child(2)')?.textContent === 'standard'",
        )
        .await;

    // Revoking a grant takes a second, confirming click.
    let row = "#grants-table tr[data-account=\"client-42\"]";
    chromium
        .run(&alice, &click(&format!("{row} button.danger")))
        .await;
    chromium
        .wait_for(
            &alice,
            "the revoke question",
            &format!("!!document.querySelector('{row} .question')"),
        )
        .await;
    chromium
        .run(&alice, &click(&format!("{row} button.confirm")))
        .await;
    chromium
        .wait_for(
            &alice,
            "client-42 revoked",
            &format!(
                "!document.querySelector('{row}') && \
                 document.querySelector('.notice')?.textContent === 'client-42 was revoked.'"
            ),
        )
        .await;

    // Another org's page: the API refuses and the console says why.
    chromium
        .run(&alice, "location.hash = '#/orgs/brightpath'; true")
        .await;
    let refusal = chromium
        .wait_for(
            &alice,
            "the other-org refusal",
            "document.querySelector('main .error')?.textContent",
        )
        .await;
    assert!(
        refusal.as_str().unwrap().contains("Refused (other_org)"),
        "{refusal}"
    );

    // Her access review lists acme's users only.
    chromium
        .run(&alice, "location.hash = '#/review'; true")
        .await;
    let reviewed = chromium
        .wait_for(
            &alice,
            "alice's access review",
            "(() => { const rows = document.querySelectorAll('#review-table tbody tr'); \
             return rows.length ? [...rows].map(r => [r.dataset.user, r.children[1].textContent]) : null; })()",
        )
        .await;
    let reviewed = pairs(&reviewed);
    assert!(
        reviewed.iter().all(|(_, org)| org == "acme"),
        "{reviewed:?}"
    );
    assert!(
        reviewed.iter().any(|(user, _)| user == "bob@acme.example"),
        "{reviewed:?}"
    );
    // She keeps bob's access, with a note; the decision shows in his row.
    let bob = "#review-table tr[data-user=\"bob@acme.example\"]";
    chromium
        .run(
            &alice,
            &format!(
                "document.querySelector('{bob} .review-note').value = 'still works our deals'; \
                 document.querySelector('{bob} td.actions button:not(.danger)').click(); true"
            ),
        )
        .await;
    let decision = chromium
        .wait_for(
            &alice,
            "bob's review decision",
            &format!(
                "(() => {{ const t = document.querySelector('{bob}')?.children[8].textContent; \
                 return t && t.startsWith('keep') && t; }})()"
            ),
        )
        .await;
    assert!(
        decision
            .as_str()
            .unwrap()
            .ends_with("still works our deals"),
        "{decision}"
    );
    snap(&mut chromium, &alice, "alice-review").await;

    assert!(
        chromium.problems().is_empty(),
        "script or CSP errors in the console: {:?}",
        chromium.problems()
    );
}

/// Second factors in the console: an owner admin sees a user's factors (never a secret),
/// resets them, and sets an org's second-factor requirement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium_factors_and_org_mfa() {
    let (_dir, _portal, gw) = sqlite_gateway().await;
    let base = format!("http://{}", gw.http);
    let mut bob = logged_in(&gw, "bob@acme.example").await;
    let (secret, resp) = crate::mfa::enrol(&mut bob, "Bob's phone").await;
    assert_eq!(resp.status(), 200);
    let (_, me) = crate::mfa::api(&bob, "GET", "/me", None).await;
    let bob_id = me["user_id"].as_str().unwrap().to_string();

    let mut chromium = Chromium::launch().await;
    let owner = chromium.new_tab().await;
    sign_in(&mut chromium, &owner, &base, "owner@northwind.example").await;
    chromium
        .navigate(&owner, &format!("{base}{CONSOLE}#/users/{bob_id}"))
        .await;
    let row = chromium
        .wait_for(
            &owner,
            "bob's factors",
            "(() => { const r = document.querySelector('#factors-table tbody tr'); \
             return r && [...r.querySelectorAll('td')].map(td => td.textContent); })()",
        )
        .await;
    assert_eq!(row[0], "Bob's phone");
    assert_eq!(row[1], "totp");
    let page = chromium.run(&owner, "document.body.innerHTML").await;
    assert!(
        !page.as_str().unwrap().contains(&secret),
        "no secret in the console"
    );
    chromium
        .run(&owner, &click("#factors .action button.danger"))
        .await;
    chromium
        .wait_for(
            &owner,
            "the confirmation",
            "!!document.querySelector('#factors button.confirm')",
        )
        .await;
    chromium
        .run(&owner, &click("#factors button.confirm"))
        .await;
    chromium
        .wait_for(
            &owner,
            "no factor left",
            "!!document.querySelector('#factors-table-empty') && document.body.textContent.includes('Second factors reset.')",
        )
        .await;

    // The org view: the owner requires a second factor for Acme.
    chromium
        .navigate(&owner, &format!("{base}{CONSOLE}#/orgs/acme"))
        .await;
    chromium
        .wait_for(
            &owner,
            "the org's setting",
            "(document.querySelector('#org-mfa') || {}).textContent === 'Second factor: optional'",
        )
        .await;
    chromium
        .run(
            &owner,
            "[...document.querySelectorAll('button')].find(b => b.textContent === 'Require a second factor').click(); true",
        )
        .await;
    chromium
        .wait_for(
            &owner,
            "the setting changed",
            "(document.querySelector('#org-mfa') || {}).textContent === 'Second factor: required for every member'",
        )
        .await;
    // Bob (no factor any more, his org now requires one) is sent to enrol first.
    let (status, _) = crate::mfa::api(&bob, "GET", "/me", None).await;
    assert_eq!(status, 401);
    assert_eq!(bob.get("/dashboard").await.status(), 302);
    assert!(chromium.problems().is_empty(), "{:?}", chromium.problems());
}
