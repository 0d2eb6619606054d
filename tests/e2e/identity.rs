//! Identity end to end: login through the gateway, sessions, lockouts, bearer tokens,
//! identity headers and the signed assertion — real gateway, real directory, real portal.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::*;

/// Routes: `/healthz` is open; `/debug/echo/clients/{account}/` (session) echoes the
/// account headers; `/debug/echo/` takes a session or a bearer token; the rest needs a
/// session.
fn body(portal: std::net::SocketAddr, directory: &str, extra: &str) -> String {
    format!(
        r#"{}
[directory]
url = "{directory}"

[login]
max_failures = 3
max_failures_per_ip = 6
lockout = "15m"

{issuers}
{extra}

[[routes]]
name = "health"
path = "/healthz"
upstream = "portal"
auth = "none"

[[routes]]
name = "clients"
path = "/clients/{{account}}/"
upstream = "portal"
auth = "session"

[[routes]]
name = "accounts"
path = "/debug/echo/clients/{{account}}/"
upstream = "portal"
auth = "session"

[[routes]]
name = "api"
path = "/debug/echo/"
upstream = "portal"
auth = "any"

[[routes]]
name = "portal"
path = "/"
upstream = "portal"
auth = "session"
"#,
        portal_upstream(portal),
        issuers = issuer_section(),
    )
}

pub(crate) fn issuer_section() -> String {
    let jwks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/jwt/testdata/jwks.json");
    format!(
        r#"[[issuers]]
name = "corp-idp"
issuer = "https://idp.example.com"
audiences = ["partnergate"]
algorithms = ["RS256", "ES256"]
jwks_file = "{}"
user_claim = "email"
leeway = "5s"
"#,
        jwks.display()
    )
}

fn assertion_section() -> String {
    format!(
        "[assertion]\nkey_file = \"{}\"\nttl = \"60s\"\n",
        dev_certs().join("assertion.key").display()
    )
}

async fn start(directory: &str, extra: &str) -> (Portal, Gateway) {
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(body(portal.addr, directory, extra))
        .import(demo_directory())
        .start()
        .await;
    (portal, gw)
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("dir.db").display())
}

fn base(gw: &Gateway) -> String {
    format!("http://{}", gw.http)
}

/// GET protected page → 302 → login form → POST → 303 → role dashboard with headers.
async fn browser_flow(directory: &str) {
    let (_portal, gw) = start(directory, "").await;
    let mut b = Browser::new(base(&gw));
    let first = b.get("/dashboard?tab=deals").await;
    assert_eq!(first.status(), 302);
    assert_eq!(
        first.headers()["location"],
        "/.partnergate/login?rd=/dashboard%3Ftab%3Ddeals"
    );
    let login = b
        .login("Alice@Acme.example", DEMO_PASSWORD, "/dashboard?tab=deals")
        .await;
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/dashboard?tab=deals");
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    // Plain-HTTP public URL: the demo form of the cookie (no __Host-, no Secure).
    assert!(set_cookie.starts_with("partnergate="), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/")
    );
    assert!(!set_cookie.contains("Secure"));
    let page = b.get("/dashboard").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-dashboard=\"partner-admin\""), "{html}");

    let echoed: Value = b
        .client
        .get(format!("{}/debug/headers", b.base))
        .header("cookie", b.cookie_header())
        .header("X-Partner-User", "mallory@evil.example")
        .header("x_partner_org", "globex")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let h = &echoed["headers"];
    assert_eq!(h["x-partner-user"], "alice@acme.example", "{echoed}");
    assert_eq!(h["x-partner-org"], "acme");
    assert_eq!(h["x-partner-org-type"], "reseller");
    assert_eq!(h["x-partner-roles"], "partner-admin");
    assert!(h["x-partner-user-id"].as_str().unwrap().starts_with("u-"));
    assert!(h.get("x_partner_org").is_none());
    assert!(
        h.get("cookie").is_none(),
        "session cookie must not reach the upstream: {echoed}"
    );

    let who: Value = b
        .client
        .get(format!("{}/.partnergate/whoami", b.base))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["user"], "alice@acme.example");
    assert_eq!(who["org_type"], "reseller");
    assert_eq!(who["roles"][0], "partner-admin");

    let login_line = gw
        .access_line(|l| l["path"] == "/.partnergate/login" && l["method"] == "POST")
        .await;
    assert_eq!(login_line["decision"], "allow");
    assert_eq!(login_line["reason"], "success");
    assert_eq!(login_line["user"], "alice@acme.example");
    let page_line = gw
        .access_line(|l| l["path"] == "/dashboard" && l["status"] == 200)
        .await;
    assert_eq!(page_line["org"], "acme");
}

#[tokio::test]
async fn browser_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    browser_flow(&sqlite(&dir)).await;
}

#[tokio::test]
async fn browser_flow_on_postgres() {
    let schema = PgSchema::new().await;
    browser_flow(&schema.url).await;
}

#[tokio::test]
async fn new_cookie_per_login_and_logout_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(&sqlite(&dir), "").await;
    let mut b = Browser::new(base(&gw));
    assert_eq!(
        b.login("bob@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303
    );
    let first = b.cookies["partnergate"].clone();
    assert_eq!(
        b.login("bob@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303
    );
    let second = b.cookies["partnergate"].clone();
    assert_ne!(first, second);
    // The first session was replaced at the second login.
    let old = client()
        .get(gw.url("/debug/headers"))
        .header("cookie", format!("partnergate={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);

    let origin = base(&gw);
    let out = b.post_form("/.partnergate/logout", &[], &origin).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/.partnergate/login");
    assert!(!b.cookies.contains_key("partnergate"));
    let replay = client()
        .get(gw.url("/dashboard"))
        .header("accept", "text/html")
        .header("cookie", format!("partnergate={second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 302);
    let api = client()
        .get(gw.url("/debug/headers"))
        .header("cookie", format!("partnergate={second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert!(api.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
}

#[tokio::test]
async fn tls_cookie_is_host_prefixed_and_secure() {
    let dir = tempfile::tempdir().unwrap();
    let portal = Portal::start().await;
    let gw = GatewayBuilder::new(body(portal.addr, &sqlite(&dir), ""))
        .import(demo_directory())
        .tls()
        .start()
        .await;
    let mut b = Browser::new(gw.tls_url(""));
    b.client = tls_client();
    let login = b.login("bob@acme.example", DEMO_PASSWORD, "/").await;
    assert_eq!(login.status(), 303);
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.starts_with("__Host-partnergate="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("; Secure") && set_cookie.contains("HttpOnly"));
    let page = b.get("/dashboard").await;
    assert_eq!(page.status(), 200);
}

/// Everything that varies between two failed logins, removed: status, body and headers
/// must match byte for byte otherwise.
async fn failed_login(gw: &Gateway, email: &str) -> (u16, String, Vec<String>) {
    let mut b = Browser::new(base(gw));
    let resp = b.login(email, "wrong-password-123", "/").await;
    let status = resp.status().as_u16();
    let mut headers: Vec<String> = resp
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "x-request-id" | "date" | "set-cookie"))
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
        .collect();
    headers.sort();
    let csrf = b
        .cookies
        .get("partnergate-csrf")
        .cloned()
        .unwrap_or_default();
    let body = resp.text().await.unwrap().replace(&csrf, "CSRF");
    (status, body, headers)
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(&sqlite(&dir), "").await;
    let wrong = failed_login(&gw, "bob@acme.example").await;
    let unknown = failed_login(&gw, "nobody@acme.example").await;
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown);
    // Suspended user, user of a suspended org, correct password: the same page again.
    for email in ["erin@acme.example", "dave@globex.example"] {
        let mut b = Browser::new(base(&gw));
        let resp = b.login(email, DEMO_PASSWORD, "/").await;
        assert_eq!(resp.status(), 401, "{email}");
        let csrf = b.cookies["partnergate-csrf"].clone();
        assert_eq!(resp.text().await.unwrap().replace(&csrf, "CSRF"), wrong.1);
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "partnergate_logins_total",
            &[("result", "bad_credentials"), ("org", "acme")]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &m,
            "partnergate_logins_total",
            &[("result", "unknown_user"), ("org", "none")]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "partnergate_logins_total", &[("result", "suspended")]),
        2.0
    );
}

#[tokio::test]
async fn account_lockout_and_spoofed_forwarded_for_does_not_reset_ip_lockout() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(&sqlite(&dir), "").await;
    for _ in 0..3 {
        let mut b = Browser::new(base(&gw));
        assert_eq!(
            b.login("bob@acme.example", "not-his-password", "/")
                .await
                .status(),
            401
        );
    }
    let mut b = Browser::new(base(&gw));
    assert_eq!(
        b.login("bob@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        401,
        "account locked"
    );
    // Three more failures from this IP (6 in all), each claiming another client address.
    for i in 0..3 {
        let mut b = Browser::new(base(&gw));
        b.client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers({
                let mut h = reqwest::header::HeaderMap::new();
                h.insert("x-forwarded-for", format!("203.0.113.{i}").parse().unwrap());
                h
            })
            .build()
            .unwrap();
        assert_eq!(
            b.login(&format!("ghost{i}@acme.example"), "nope-nope-nope", "/")
                .await
                .status(),
            401
        );
    }
    // The IP is locked now: even another user's correct password is refused.
    let mut b = Browser::new(base(&gw));
    assert_eq!(
        b.login("alice@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        401
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "partnergate_login_lockouts_total",
            &[("kind", "account")]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "partnergate_login_lockouts_total", &[("kind", "ip")]),
        1.0
    );
    assert!(metric_sum(&m, "partnergate_logins_total", &[("result", "locked")]) >= 2.0);
}

#[tokio::test]
async fn garbage_cookies_and_csrf_and_origin_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(&sqlite(&dir), "").await;
    let long = "A".repeat(43);
    let huge = "x".repeat(4000);
    for cookie in [
        "partnergate=".to_string(),
        "partnergate=garbage".to_string(),
        format!("partnergate={long}"),
        format!("partnergate={huge}"),
        "partnergate=%00%ff".to_string(),
        "partnergate".to_string(),
        ";;;=;partnergate==;".to_string(),
    ] {
        let resp = client()
            .get(gw.url("/debug/headers"))
            .header("cookie", cookie.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{cookie:?}");
    }
    // Login POST without the CSRF cookie, and from another origin.
    let mut b = Browser::new(base(&gw));
    let origin = base(&gw);
    let no_csrf = b
        .post_form(
            "/.partnergate/login",
            &[
                ("email", "bob@acme.example"),
                ("password", DEMO_PASSWORD),
                ("csrf", "x"),
            ],
            &origin,
        )
        .await;
    assert_eq!(no_csrf.status(), 403);
    let cross = b
        .post_form(
            "/.partnergate/login",
            &[("email", "bob@acme.example")],
            "https://evil.example",
        )
        .await;
    assert_eq!(cross.status(), 403);
    // Off-site rd is replaced by "/".
    let resp = b
        .login("bob@acme.example", DEMO_PASSWORD, "//evil.example/x")
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/");
}

#[tokio::test]
async fn account_headers_follow_unexpired_grants() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(&sqlite(&dir), "").await;
    let mut b = Browser::new(base(&gw));
    assert_eq!(
        b.login("bob@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303
    );
    // bob: view on client-42, admin on client-77, an expired grant on client-90.
    for (account, level) in [
        ("client-42", Some("view")),
        ("client-77", Some("admin")),
        ("client-90", None),
    ] {
        let h: Value = b
            .client
            .get(format!("{}/debug/echo/clients/{account}/reports", b.base))
            .header("cookie", b.cookie_header())
            .header("x-partner-account-permission", "admin")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(h["headers"]["x-partner-account"], account);
        assert_eq!(
            h["headers"]["x-partner-account-permission"].as_str(),
            level,
            "{account}: {h}"
        );
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn sign(alg: jsonwebtoken::Algorithm, kid: &str, claims: Value) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/jwt/testdata");
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => {
            jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(dir.join("ec_p256.pem")).unwrap())
                .unwrap()
        }
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(dir.join("rsa.pem")).unwrap())
            .unwrap(),
    };
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

pub(crate) fn claims(email: &str, iss: &str, aud: &str, exp: i64) -> Value {
    serde_json::json!({ "iss": iss, "aud": aud, "exp": exp, "iat": now(), "email": email, "sub": "x" })
}

fn b64(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

async fn bearer_status(gw: &Gateway, token: &str) -> (u16, Value) {
    let resp = client()
        .get(gw.url("/debug/echo/api"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-partner-roles", "owner-admin")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn bearer_tokens(directory: &str) {
    let (_portal, gw) = start(directory, "").await;
    let iss = "https://idp.example.com";
    let exp = now() + 600;
    for (alg, kid) in [
        (jsonwebtoken::Algorithm::RS256, "rsa-1"),
        (jsonwebtoken::Algorithm::ES256, "ec-1"),
    ] {
        let token = sign(
            alg,
            kid,
            claims("carol@brightpath.example", iss, "partnergate", exp),
        );
        let (status, echoed) = bearer_status(&gw, &token).await;
        assert_eq!(status, 200, "{alg:?}");
        assert_eq!(
            echoed["headers"]["x-partner-user"],
            "carol@brightpath.example"
        );
        assert_eq!(echoed["headers"]["x-partner-roles"], "referral-partner");
        assert!(
            echoed["headers"].get("authorization").is_none(),
            "the token is not forwarded"
        );
    }
    let rsa = jsonwebtoken::Algorithm::RS256;
    let none_token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#),
        b64(claims("carol@brightpath.example", iss, "partnergate", exp)
            .to_string()
            .as_bytes())
    );
    let public = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/jwt/testdata/rsa.pub.pem"),
    )
    .unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some("rsa-1".into());
    let hs_with_public = jsonwebtoken::encode(
        &hs_header,
        &claims("carol@brightpath.example", iss, "partnergate", exp),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    let mut huge = claims("carol@brightpath.example", iss, "partnergate", exp);
    huge["pad"] = Value::String("x".repeat(9_000));
    let refused = [
        ("alg none", none_token),
        ("HS256 with the RSA public key", hs_with_public),
        (
            "wrong iss",
            sign(
                rsa,
                "rsa-1",
                claims(
                    "carol@brightpath.example",
                    "https://evil.example",
                    "partnergate",
                    exp,
                ),
            ),
        ),
        (
            "wrong aud",
            sign(
                rsa,
                "rsa-1",
                claims("carol@brightpath.example", iss, "other", exp),
            ),
        ),
        (
            "expired",
            sign(
                rsa,
                "rsa-1",
                claims("carol@brightpath.example", iss, "partnergate", now() - 120),
            ),
        ),
        (
            "unknown kid",
            sign(
                rsa,
                "rsa-9",
                claims("carol@brightpath.example", iss, "partnergate", exp),
            ),
        ),
        ("oversize", sign(rsa, "rsa-1", huge)),
        (
            "unknown user",
            sign(
                rsa,
                "rsa-1",
                claims("nobody@brightpath.example", iss, "partnergate", exp),
            ),
        ),
        ("garbage", "a.b.c".to_string()),
    ];
    for (what, token) in refused {
        let resp = client()
            .get(gw.url("/debug/echo/api"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "{what}"
        );
    }
    // A valid token of a suspended user: known, but refused.
    let erin = sign(
        rsa,
        "rsa-1",
        claims("erin@acme.example", iss, "partnergate", exp),
    );
    assert_eq!(bearer_status(&gw, &erin).await.0, 403);
    // Bearer is not accepted on a session-only route.
    let carol = sign(
        rsa,
        "rsa-1",
        claims("carol@brightpath.example", iss, "partnergate", exp),
    );
    let resp = client()
        .get(gw.url("/dashboard"))
        .header("authorization", format!("Bearer {carol}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    gw.access_line(|l| l["reason"] == "token_expired").await;
    gw.access_line(|l| l["decision"] == "deny" && l["reason"] == "user_inactive")
        .await;
}

#[tokio::test]
async fn bearer_tokens_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    bearer_tokens(&sqlite(&dir)).await;
}

#[tokio::test]
async fn bearer_tokens_on_postgres() {
    let schema = PgSchema::new().await;
    bearer_tokens(&schema.url).await;
}

#[tokio::test]
async fn assertion_verifies_with_the_published_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let (_portal, gw) = start(&sqlite(&dir), &assertion_section()).await;
    let jwks = client()
        .get(gw.url("/.partnergate/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parsed: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(parsed["keys"][0]["crv"], "P-256");
    let mut b = Browser::new(base(&gw));
    assert_eq!(
        b.login("alice@acme.example", DEMO_PASSWORD, "/")
            .await
            .status(),
        303
    );
    let h: Value = b
        .client
        .get(format!("{}/debug/headers", b.base))
        .header("cookie", b.cookie_header())
        .header("x-partner-assertion", "forged")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = h["headers"]["x-partner-assertion"]
        .as_str()
        .expect("assertion header");
    assert_ne!(token, "forged");
    let claims =
        partnergate::jwt::verify_assertion(&jwks, token, Some("portal"), now()).expect("verifies");
    assert_eq!(claims["email"], "alice@acme.example");
    assert_eq!(claims["org"], "acme");
    assert_eq!(claims["aud"], "portal");
    assert!(partnergate::jwt::verify_assertion(&jwks, token, Some("other"), now()).is_err());
}
