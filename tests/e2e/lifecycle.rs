//! The partner lifecycle through the admin API, as a client would use it:
//! registration → approval → invitation → acceptance → dashboard; the bounds
//! of a delegated partner admin (every refusal 403 with a reason, and audited); grants;
//! the review; suspension through the API reaching a second instance; OpenAPI; bearer
//! tokens. Real gateway, demo portal and directory, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use crate::identity::{claims, issuer_section, sign};
use crate::policy::{logged_in, policy_body, start_policy_gateway};

const API: &str = "/.partnergate/api/v1";

/// Call the admin API with the browser's session cookie (and its Origin on writes).
pub(crate) async fn api(
    b: &Browser,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = b
        .client
        .request(method.parse().unwrap(), format!("{}{API}{path}", b.base))
        .header("cookie", b.cookie_header())
        .header("accept", "application/json");
    if method != "GET" {
        req = req.header("origin", &b.base);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn user_id(owner: &Browser, org: &str, email: &str) -> String {
    let (status, users) = api(owner, "GET", &format!("/orgs/{org}/users"), None).await;
    assert_eq!(status, 200, "{users}");
    users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} in {users}"))["user_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The audit records of `actor` with outcome `denied`, as (action, reason).
async fn denials(owner: &Browser, actor: &str) -> Vec<(String, String)> {
    let (status, audit) = api(
        owner,
        "GET",
        &format!("/audit?actor={actor}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The path part of an invitation link.
fn link_path(link: &str) -> String {
    let at = link.find("/.partnergate/invite/").expect("invitation path");
    link[at..].to_string()
}

async fn onboarding(directory: &str) {
    let (_portal, gw) = start_policy_gateway(directory, "").await;
    let base = format!("http://{}", gw.http);

    // 1. A new partner asks to join.
    let mut visitor = Browser::new(base.clone());
    let page = visitor.get("/.partnergate/register").await;
    assert_eq!(page.status(), 200);
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf").unwrap();
    let form = [
        ("org_name", "Fabrikam Agency"),
        ("org_type", "agency"),
        ("contact_email", "Pat@Fabrikam.example"),
        ("csrf", csrf.as_str()),
    ];
    let sent = visitor
        .post_form("/.partnergate/register", &form, &base)
        .await;
    assert_eq!(sent.status(), 200);
    assert!(sent.text().await.unwrap().contains("Request received"));
    // Asking for the owner type is refused outright.
    let owner_type = [
        ("org_name", "Sneaky"),
        ("org_type", "owner"),
        ("contact_email", "x@sneaky.example"),
        ("csrf", csrf.as_str()),
    ];
    let refused = visitor
        .post_form("/.partnergate/register", &owner_type, &base)
        .await;
    assert_eq!(refused.status(), 400);
    let nul = [
        ("org_name", "Evil\0Corp"),
        ("org_type", "agency"),
        ("contact_email", "x@evil.example"),
        ("csrf", csrf.as_str()),
    ];
    let refused = visitor
        .post_form("/.partnergate/register", &nul, &base)
        .await;
    assert_eq!(
        refused.status(),
        400,
        "a control character is a bad request"
    );

    // 2. The owner admin sees the pending request; a delegated admin does not.
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let (status, pending) = api(&owner, "GET", "/orgs?status=pending", None).await;
    assert_eq!(status, 200, "{pending}");
    let pending = pending["orgs"].as_array().unwrap().clone();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["contact_email"], "pat@fabrikam.example");
    assert_eq!(pending[0]["type"], "agency");
    let org_id = pending[0]["id"].as_str().unwrap().to_string();
    assert!(org_id.starts_with("fabrikam-agency-"), "{org_id}");
    let alice = logged_in(&gw, "alice@acme.example").await;
    let (status, theirs) = api(&alice, "GET", "/orgs?status=pending", None).await;
    assert_eq!((status, theirs["orgs"].as_array().unwrap().len()), (200, 0));
    let (status, body) = api(&alice, "POST", &format!("/orgs/{org_id}/approve"), None).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("org_type")),
        "{body}"
    );

    // A bad invitation is refused before the approval commits: still pending.
    let bad = json!({ "invite": { "roles": ["no-such-role"] } });
    let (status, _) = api(
        &owner,
        "POST",
        &format!("/orgs/{org_id}/approve"),
        Some(bad),
    )
    .await;
    assert_eq!(status, 400);
    let (_, still) = api(&owner, "GET", &format!("/orgs/{org_id}"), None).await;
    assert_eq!(still["status"], "pending");

    // 3. Approval with an invitation for the contact: the API returns the link.
    let approve = json!({ "invite": { "roles": ["partner-admin"] } });
    let (status, approved) = api(
        &owner,
        "POST",
        &format!("/orgs/{org_id}/approve"),
        Some(approve),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "active");
    let invitation = &approved["invitation"];
    assert_eq!(invitation["email"], "pat@fabrikam.example");
    assert_eq!(invitation["state"], "open");
    let link = link_path(invitation["link"].as_str().unwrap());
    let (_, again) = api(&owner, "POST", &format!("/orgs/{org_id}/approve"), None).await;
    assert_eq!(again["error"], "conflict", "approving twice: {again}");

    // 4. The invitee sets a password (two screens) and lands on their dashboard.
    let mut pat = Browser::new(base.clone());
    let page = pat.get(&link).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Fabrikam Agency") && html.contains("pat@fabrikam.example"));
    let csrf = hidden_value(&html, "csrf").unwrap();
    let mismatch = [
        ("password", "a-long-enough-secret-1"),
        ("confirm", "other"),
        ("csrf", &csrf),
    ];
    assert_eq!(pat.post_form(&link, &mismatch, &base).await.status(), 400);
    let weak = [("password", "short"), ("confirm", "short"), ("csrf", &csrf)];
    assert_eq!(pat.post_form(&link, &weak, &base).await.status(), 400);
    let good = [
        ("password", "fabrikam-partner-2026"),
        ("confirm", "fabrikam-partner-2026"),
        ("csrf", &csrf),
    ];
    let accepted = pat.post_form(&link, &good, &base).await;
    assert_eq!(accepted.status(), 303);
    assert_eq!(accepted.headers()["location"], "/");
    let dashboard = pat.get("/").await;
    assert_eq!(dashboard.status(), 200);
    assert!(dashboard
        .text()
        .await
        .unwrap()
        .contains("Partner admin dashboard"));
    let whoami: Value = pat.get("/.partnergate/whoami").await.json().await.unwrap();
    assert_eq!(whoami["user"], "pat@fabrikam.example");
    assert_eq!(whoami["org"], org_id.as_str());

    // The token is a secret: the access log shows the invitation path without it.
    let token = link.rsplit('/').next().unwrap().to_string();
    let logged = gw
        .access_line(|l| {
            l["path"] == "/.partnergate/invite/{token}"
                && l["method"] == "POST"
                && l["status"] == 303
        })
        .await;
    assert_eq!(logged["user"], "pat@fabrikam.example", "{logged}");
    let log = std::fs::read_to_string(&gw.access_log).unwrap();
    assert!(
        !log.contains(&token),
        "the invitation token is in the access log"
    );

    // 5. The link is single-use; unknown links get the same page.
    for path in [
        link.clone(),
        "/.partnergate/invite/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    ] {
        let resp = Browser::new(base.clone()).get(&path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.text().await.unwrap().contains("Invitation not valid"));
    }
    // The new partner admin can sign in with the password they chose.
    let mut again = Browser::new(base.clone());
    let login = again
        .login("pat@fabrikam.example", "fabrikam-partner-2026", "/")
        .await;
    assert_eq!(login.status(), 303);

    // 6. Every step is in the audit log, and the chain verifies.
    let (_, audit) = api(&owner, "GET", &format!("/audit?org={org_id}"), None).await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "org.register",
        "org.approve",
        "invitation.create",
        "invitation.accept",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let store = partnergate::directory::open(directory).await.unwrap();
    assert!(store.audit_verify().await.unwrap().first_problem.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_approval_invitation_dashboard_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    onboarding(&format!("sqlite://{}/directory.db", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_approval_invitation_dashboard_on_postgres() {
    let schema = PgSchema::new().await;
    onboarding(&schema.url).await;
}

async fn delegated_bounds(directory: &str) {
    let (_portal, gw) = start_policy_gateway(directory, "").await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let alice = logged_in(&gw, "alice@acme.example").await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let alice_id = user_id(&owner, "acme", "alice@acme.example").await;
    let bob_id = user_id(&owner, "acme", "bob@acme.example").await;
    let carol_id = user_id(&owner, "brightpath", "carol@brightpath.example").await;
    let invite = |email: &str, roles: &[&str]| json!({ "email": email, "roles": roles });

    // Within bounds: a delegable role she holds every permission of, in her own org.
    let (status, created) = api(
        &alice,
        "POST",
        "/orgs/acme/invitations",
        Some(invite("dan@acme.example", &["partner-user"])),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["link"]
        .as_str()
        .unwrap()
        .contains("/.partnergate/invite/"));
    let (status, listed) = api(&alice, "GET", "/orgs/acme/invitations", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["invitations"][0]["email"], "dan@acme.example");
    assert!(
        listed["invitations"][0].get("link").is_none(),
        "the link is shown once"
    );

    // Out of bounds, each 403 with its reason.
    let cases: Vec<(&str, &str, String, Option<Value>, &str)> = vec![
        (
            "other org",
            "POST",
            "/orgs/brightpath/invitations".into(),
            Some(invite("eve@brightpath.example", &["partner-user"])),
            "other_org",
        ),
        (
            "non-delegable role",
            "POST",
            "/orgs/acme/invitations".into(),
            Some(invite("eve@acme.example", &["owner-admin"])),
            "not_delegable",
        ),
        (
            "above own rights",
            "POST",
            "/orgs/acme/invitations".into(),
            Some(invite("eve@acme.example", &["referral-partner"])),
            "above_own_rights",
        ),
        (
            "self-promotion",
            "PATCH",
            format!("/users/{alice_id}"),
            Some(json!({"roles": ["partner-admin", "referral-partner"]})),
            "self_change",
        ),
        (
            "other org's user",
            "POST",
            format!("/users/{carol_id}/suspend"),
            None,
            "other_org",
        ),
        (
            "grant above own",
            "PUT",
            format!("/users/{bob_id}/grants/client-42"),
            Some(json!({"permission": "admin"})),
            "grant_above_own",
        ),
        (
            "owner-only",
            "PATCH",
            "/orgs/acme".into(),
            Some(json!({"max_users": 500})),
            "org_type",
        ),
    ];
    for (what, method, path, body, reason) in &cases {
        let (status, answer) = api(&alice, method, path, body.clone()).await;
        assert_eq!(status, 403, "{what}: {answer}");
        assert_eq!(answer["reason"], *reason, "{what}: {answer}");
    }
    // Re-inviting a pending user would hand alice a link to an account holding more than
    // she may give: the owner invited zed and gave him admin on client-42 (alice: standard).
    let zed_invite = invite("zed@acme.example", &["partner-user"]);
    let (status, zed) = api(
        &owner,
        "POST",
        "/orgs/acme/invitations",
        Some(zed_invite.clone()),
    )
    .await;
    assert_eq!(status, 201, "{zed}");
    let zed_grant = format!(
        "/users/{}/grants/client-42",
        zed["user_id"].as_str().unwrap()
    );
    let (status, _) = api(
        &owner,
        "PUT",
        &zed_grant,
        Some(json!({"permission": "admin"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = api(&alice, "POST", "/orgs/acme/invitations", Some(zed_invite)).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (403, Some("grant_above_own")),
        "{answer}"
    );
    // An email of another org's user: a conflict that names neither the org nor the status.
    let carol = invite("carol@brightpath.example", &["partner-user"]);
    let (status, answer) = api(&alice, "POST", "/orgs/acme/invitations", Some(carol)).await;
    assert_eq!(status, 409, "{answer}");
    assert!(!answer.to_string().contains("of org"), "{answer}");
    assert!(!answer.to_string().contains("active"), "{answer}");

    // Over the seat cap: the owner sets the cap to the seats in use.
    let (_, acme) = api(&owner, "GET", "/orgs/acme", None).await;
    let used = acme["seats_used"].as_u64().unwrap();
    let (status, _) = api(
        &owner,
        "PATCH",
        "/orgs/acme",
        Some(json!({"max_users": used})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = api(
        &alice,
        "POST",
        "/orgs/acme/invitations",
        Some(invite("fay@acme.example", &["partner-user"])),
    )
    .await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (403, Some("seat_cap")),
        "{answer}"
    );

    // Every refusal is in the audit log, with alice as the actor and the reason.
    let refused = denials(&owner, &alice_id).await;
    let mut reasons: Vec<&str> = refused.iter().map(|(_, r)| r.as_str()).collect();
    reasons.sort();
    let mut expected: Vec<&str> = cases
        .iter()
        .map(|c| c.4)
        .chain(["seat_cap", "grant_above_own"])
        .collect();
    expected.sort();
    assert_eq!(reasons, expected, "{refused:?}");
    // A delegated admin's audit view is her own org's.
    let (status, own) = api(&alice, "GET", "/audit?org=brightpath", None).await;
    assert_eq!((status, own["reason"].as_str()), (403, Some("other_org")));
    let (status, own) = api(&alice, "GET", "/audit", None).await;
    assert_eq!(status, 200);
    assert!(own["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["org_id"] == "acme"));

    // Within bounds again: alice suspends bob; his next request is refused.
    assert_eq!(api(&bob, "GET", "/me", None).await.0, 200);
    let (status, answer) = api(&alice, "POST", &format!("/users/{bob_id}/suspend"), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sessions_ended"], 1);
    let deals = bob
        .client
        .get(format!("{}/deals", bob.base))
        .header("cookie", bob.cookie_header())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_ne!(deals.status().as_u16(), 200);
    // Cookie writes need the portal's Origin (CSRF); the API refuses them without.
    let no_origin = alice
        .client
        .post(format!("{}{API}/users/{bob_id}/reactivate", alice.base))
        .header("cookie", alice.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), 403);
    let (status, _) = api(&alice, "POST", &format!("/users/{bob_id}/reactivate"), None).await;
    assert_eq!(status, 200);
    // No credentials: 401.
    let anonymous = client()
        .get(gw.url(&format!("{API}/me")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_admin_bounds_are_403_and_audited_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    delegated_bounds(&format!("sqlite://{}/directory.db", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_admin_bounds_are_403_and_audited_on_postgres() {
    let schema = PgSchema::new().await;
    delegated_bounds(&schema.url).await;
}

async fn status_of(b: &Browser, method: &str, path: &str) -> u16 {
    b.client
        .request(method.parse().unwrap(), format!("{}{path}", b.base))
        .header("cookie", b.cookie_header())
        .header("accept", "application/json")
        .header("origin", &b.base)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_through_the_api_take_effect_on_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let (_portal, gw) = start_policy_gateway(&url, "").await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let alice = logged_in(&gw, "alice@acme.example").await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let bob_id = user_id(&owner, "acme", "bob@acme.example").await;
    let grant = format!("/users/{bob_id}/grants/client-42");

    // bob has view on client-42: reading yes, writing (standard) no.
    assert_eq!(status_of(&bob, "GET", "/clients/client-42/").await, 200);
    assert_eq!(
        status_of(&bob, "POST", "/clients/client-42/notes").await,
        403
    );
    // alice (standard on client-42) raises him to standard, for two seconds.
    let expires = now() + 2;
    let (status, answer) = api(
        &alice,
        "PUT",
        &grant,
        Some(json!({"permission": "standard", "expires": expires})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["before"]["permission"], "view");
    assert_eq!(
        status_of(&bob, "POST", "/clients/client-42/notes").await,
        200
    );
    // Past the expiry second the grant denies at once (policy reads the clock).
    while now() <= expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_of(&bob, "GET", "/clients/client-42/").await, 403);
    let line = gw
        .access_line(|l| l["path"] == "/clients/client-42/" && l["status"] == 403)
        .await;
    assert_eq!(line["reason"], "grant_expired");

    // An org cap on grant lifetimes: grants must expire within it.
    let (status, _) = api(
        &owner,
        "PATCH",
        "/orgs/acme",
        Some(json!({"max_grant_ttl": "1h"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = api(&owner, "PUT", &grant, Some(json!({"permission": "view"}))).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (403, Some("grant_ttl")),
        "{answer}"
    );
    let in_2h = now() + 7200;
    let (status, answer) = api(
        &owner,
        "PUT",
        &grant,
        Some(json!({"permission": "view", "expires": in_2h})),
    )
    .await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (403, Some("grant_ttl")),
        "{answer}"
    );
    let (status, _) = api(
        &owner,
        "PUT",
        &grant,
        Some(json!({"permission": "view", "expires": now() + 600})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&bob, "GET", "/clients/client-42/").await, 200);

    // Revoke: the next request is refused.
    let (status, answer) = api(&owner, "DELETE", &grant, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(status_of(&bob, "GET", "/clients/client-42/").await, 403);
    let (status, _) = api(&owner, "DELETE", &grant, None).await;
    assert_eq!(status, 404, "revoking twice");
    let (_, audit) = api(&owner, "GET", "/audit?action=grant.", None).await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"grant.change") && actions.contains(&"grant.revoke"),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_lists_last_use_and_a_revoke_decision_applies_at_once() {
    let schema = PgSchema::new().await;
    let (_portal, gw) = start_policy_gateway(&schema.url, "").await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let alice = logged_in(&gw, "alice@acme.example").await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    assert_eq!(status_of(&bob, "GET", "/deals").await, 200);
    let (status, review) = api(&owner, "GET", "/review", None).await;
    assert_eq!(status, 200, "{review}");
    let users = review["users"].as_array().unwrap();
    let row = |email: &str| users.iter().find(|u| u["email"] == email).unwrap().clone();
    let bob_row = row("bob@acme.example");
    assert!(bob_row["last_login_at"].as_i64().unwrap() >= now() - 60);
    assert!(row("dave@globex.example")["flags"]["never_logged_in"]
        .as_bool()
        .unwrap());
    assert!(row("alice@acme.example")["flags"]["admin"]
        .as_bool()
        .unwrap());
    assert!(bob_row["flag_names"]
        .as_array()
        .unwrap()
        .contains(&json!("expired_grant")));
    // A delegated admin reviews her own org only.
    let (_, theirs) = api(&alice, "GET", "/review", None).await;
    assert!(theirs["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["org"] == "acme"));
    // keep is recorded; revoke disables bob at once.
    let bob_id = bob_row["user_id"].as_str().unwrap().to_string();
    let (status, _) = api(
        &alice,
        "POST",
        &format!("/review/{bob_id}"),
        Some(json!({"decision": "keep", "note": "still on the Q4 deals"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, review) = api(&owner, "GET", "/review", None).await;
    let kept = review["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_id"] == bob_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(kept["last_decision"]["decision"], "keep");
    let (status, _) = api(
        &owner,
        "POST",
        &format!("/review/{bob_id}"),
        Some(json!({"decision": "revoke"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(status_of(&bob, "GET", "/deals").await, 200);
    let (_, user) = api(&owner, "GET", &format!("/users/{bob_id}"), None).await;
    assert_eq!(user["status"], "disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_and_offboarding_through_the_api_reach_a_second_postgres_instance() {
    let schema = PgSchema::new().await;
    let (portal, a) = start_policy_gateway(&schema.url, "").await;
    let b = GatewayBuilder::new(policy_body(portal.addr, &schema.url, ""))
        .start()
        .await;
    let owner = logged_in(&a, "owner@northwind.example").await;
    let bob_b = logged_in(&b, "bob@acme.example").await;
    let alice_b = logged_in(&b, "alice@acme.example").await;
    let carol_b = logged_in(&b, "carol@brightpath.example").await;
    assert_eq!(status_of(&bob_b, "GET", "/deals").await, 200);
    assert_eq!(status_of(&alice_b, "GET", "/deals").await, 200);

    let (status, answer) = api(&owner, "POST", "/orgs/acme/suspend", None).await;
    assert_eq!(status, 200, "{answer}");
    let started = Instant::now();
    loop {
        if status_of(&bob_b, "GET", "/deals").await != 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "instance b still lets bob in"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "lifecycle: API suspend on instance a → refusal on instance b after {:?}",
        started.elapsed()
    );
    assert_ne!(status_of(&alice_b, "GET", "/deals").await, 200);
    assert_eq!(
        status_of(&carol_b, "GET", "/referrals").await,
        200,
        "other orgs untouched"
    );

    // Offboarding: every member disabled, every grant revoked; the records stay.
    let (status, answer) = api(&owner, "POST", "/orgs/acme/offboard", None).await;
    assert_eq!(status, 200, "{answer}");
    let (_, users) = api(&owner, "GET", "/orgs/acme/users", None).await;
    let users = users["users"].as_array().unwrap();
    assert!(!users.is_empty());
    assert!(
        users
            .iter()
            .all(|u| u["status"] == "disabled" && u["grants"].as_array().unwrap().is_empty()),
        "{users:?}"
    );
    let (_, audit) = api(&owner, "GET", "/audit?action=org.offboard", None).await;
    let record = &audit["records"][0];
    assert!(
        record["after"]["users_disabled"].as_u64().unwrap() >= 3,
        "{record}"
    );
    assert!(
        !record["after"]["grants_revoked"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{record}"
    );
    // The owner cannot suspend the owner org (no self-lockout).
    let (status, answer) = api(&owner, "POST", "/orgs/northwind/suspend", None).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (403, Some("self_change"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_served_api_and_bearer_tokens_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let (_portal, gw) = start_policy_gateway(&url, &issuer_section()).await;
    let doc: Value = client()
        .get(gw.url(&format!("{API}/openapi.json")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["servers"][0]["url"], API);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{}", paths.len());
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(["get", "post", "put", "patch", "delete"].contains(&method.as_str()));
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
            assert!(op["responses"].as_object().unwrap().contains_key("403"));
            let params = op["parameters"].as_array().unwrap();
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            {
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{path} {name}"
                );
            }
        }
    }
    // Each documented GET without a path parameter is served (not the API's 404).
    let owner = logged_in(&gw, "owner@northwind.example").await;
    for path in paths
        .keys()
        .filter(|p| !p.contains('{') && paths[*p].get("get").is_some())
    {
        let (status, answer) = api(&owner, "GET", path, None).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }

    // A bearer token of a configured issuer authenticates the API, without Origin.
    let token = sign(
        jsonwebtoken::Algorithm::RS256,
        "rsa-1",
        claims(
            "owner@northwind.example",
            "https://idp.example.com",
            "partnergate",
            now() + 600,
        ),
    );
    let me: Value = client()
        .get(gw.url(&format!("{API}/me")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "owner@northwind.example");
    assert_eq!(me["owner_admin"], true);
    let created = client()
        .post(gw.url(&format!("{API}/accounts")))
        .bearer_auth(&token)
        .json(&json!({"id": "client-99", "name": "Client 99 BV"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    // Roles: no one redefines a role they hold, or hands out permissions they lack.
    let put_role = |name: &str, perms: &[&str]| {
        client()
            .put(gw.url(&format!("{API}/roles/{name}")))
            .bearer_auth(&token)
            .json(&json!({ "permissions": perms }))
            .send()
    };
    let held = put_role("owner-admin", &["orgs:manage", "users:manage"])
        .await
        .unwrap();
    assert_eq!(held.status(), 403);
    assert_eq!(held.json::<Value>().await.unwrap()["reason"], "self_change");
    let above = put_role("auditor", &["audit:view", "billing:admin"])
        .await
        .unwrap();
    assert_eq!(
        above.json::<Value>().await.unwrap()["reason"],
        "above_own_rights"
    );
    assert_eq!(
        put_role("auditor", &["audit:view"]).await.unwrap().status(),
        200
    );
    // Account ids that could not be addressed in a path, and control characters: 400.
    for body in [
        json!({"id": "..", "name": "x"}),
        json!({"id": "a/b", "name": "x"}),
        json!({"id": "ok", "name": "a\u{0}b"}),
    ] {
        let resp = client()
            .post(gw.url(&format!("{API}/accounts")))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
    }
    let nul = client()
        .get(gw.url(&format!("{API}/audit?action=%00")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(nul.status(), 400);
    let bad = client()
        .get(gw.url(&format!("{API}/me")))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    // JSON lines export of the audit log.
    let lines = client()
        .get(gw.url(&format!("{API}/audit?format=jsonl&action=account.")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(lines.headers()["content-type"], "application/x-ndjson");
    let text = lines.text().await.unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{text}");
    assert_eq!(records[0]["action"], "account.put");
    assert_eq!(records[0]["actor_email"], "owner@northwind.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fan_out_carries_an_api_suspension_to_another_instance_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let prefix = format!("fanout{:08x}:", rand::random::<u32>());
    let redis = format!("[redis]\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\n");
    let (portal, a) = start_policy_gateway(&url, &redis).await;
    let b = GatewayBuilder::new(policy_body(portal.addr, &url, &redis))
        .start()
        .await;
    let owner = logged_in(&a, "owner@northwind.example").await;
    let bob_b = logged_in(&b, "bob@acme.example").await;
    assert_eq!(status_of(&bob_b, "GET", "/deals").await, 200);
    let bob_id = user_id(&owner, "acme", "bob@acme.example").await;

    let (status, _) = api(&owner, "POST", &format!("/users/{bob_id}/suspend"), None).await;
    assert_eq!(status, 200);
    let started = Instant::now();
    while status_of(&bob_b, "GET", "/deals").await == 200 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "instance b still lets bob in"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!(
        "lifecycle: API suspend on instance a → refusal on instance b (SQLite + Redis fan-out) after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_per_org_user_and_route_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/directory.db", dir.path().display());
    let (_portal, gw) = start_policy_gateway(&url, "[lifecycle]\nusage_flush = \"1s\"\n").await;
    let owner = logged_in(&gw, "owner@northwind.example").await;
    let alice = logged_in(&gw, "alice@acme.example").await;
    let bob = logged_in(&gw, "bob@acme.example").await;
    let carol = logged_in(&gw, "carol@brightpath.example").await;
    for _ in 0..3 {
        assert_eq!(status_of(&bob, "GET", "/deals").await, 200);
    }
    assert_eq!(status_of(&bob, "GET", "/reports").await, 200);
    assert_eq!(status_of(&carol, "GET", "/referrals").await, 200);
    // Flushed within a second or two; poll the API until bob's four requests are in.
    let started = Instant::now();
    let report = loop {
        let (status, report) = api(&owner, "GET", "/usage?window=1d", None).await;
        assert_eq!(status, 200, "{report}");
        if report["total"].as_u64() >= Some(5) {
            break report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not flushed: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let users = report["users"].as_array().unwrap();
    let bob_row = users
        .iter()
        .find(|u| u["email"] == "bob@acme.example")
        .unwrap();
    assert_eq!(bob_row["requests"], 4, "{report}");
    let routes = bob_row["routes"].as_array().unwrap();
    assert!(
        routes.contains(&json!({"route": "deals", "requests": 3})),
        "{routes:?}"
    );
    // A delegated admin sees her own org only.
    let (status, answer) = api(&alice, "GET", "/usage?org=brightpath", None).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (403, Some("other_org"))
    );
    let (status, own) = api(&alice, "GET", "/usage?window=7d", None).await;
    assert_eq!(status, 200);
    assert!(
        own["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["org"] == "acme"),
        "{own}"
    );
    let (status, _) = api(&owner, "GET", "/usage?window=2d", None).await;
    assert_eq!(status, 400);
}
