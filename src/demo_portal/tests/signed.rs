//! The portal with `--jwks-url`: it trusts only a verified `X-Partner-Assertion`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::AssertionConfig;
use crate::demo_portal::assertion::AssertionVerifier;
use crate::demo_portal::PortalOptions;
use crate::jwt::{AssertionClaims, AssertionSigner};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn new_signer(dir: &tempfile::TempDir, name: &str) -> AssertionSigner {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key_file = dir.path().join(name);
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    AssertionSigner::load(&AssertionConfig {
        key_file,
        ttl: Duration::from_secs(60),
    })
    .unwrap()
}

fn carol() -> AssertionClaims {
    AssertionClaims {
        sub: "u-carol".into(),
        email: "carol@brightpath.example".into(),
        org: "brightpath".into(),
        org_type: "referral".into(),
        roles: vec!["referral-partner".into()],
        ..AssertionClaims::default()
    }
}

/// Serves `jwks` at `/jwks.json` until dropped.
async fn jwks_server(jwks: String) -> (reqwest::Url, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || async move { jwks }),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    let url = format!("http://{addr}/jwks.json").parse().unwrap();
    (url, stop)
}

struct SignedPortal {
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    signer: AssertionSigner,
    other: AssertionSigner,
    _dir: tempfile::TempDir,
    _stops: [oneshot::Sender<()>; 2],
}

impl SignedPortal {
    async fn start(audience: Option<&str>) -> SignedPortal {
        let dir = tempfile::tempdir().unwrap();
        let signer = new_signer(&dir, "assertion.key");
        let other = new_signer(&dir, "other.key");
        let (jwks_url, jwks_stop) = jwks_server(signer.jwks_json().to_owned()).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let options = PortalOptions {
            jwks_url: Some(jwks_url),
            audience: audience.map(str::to_owned),
        };
        // Bound now, so the JWKS fetched before serving is in place for the first request.
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = crate::demo_portal::serve_with(listener, options, async move {
            let _ = stopped.await;
        });
        tokio::spawn(serving);
        SignedPortal {
            addr,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            signer,
            other,
            _dir: dir,
            _stops: [jwks_stop, stop],
        }
    }

    async fn get(&self, path: &str, assertion: Option<&str>) -> (StatusCode, String) {
        let mut request = self
            .client
            .get(format!("http://{}{path}", self.addr))
            .header("X-Partner-User", "mallory@acme.example")
            .header("X-Partner-Roles", "owner-admin");
        if let Some(token) = assertion {
            request = request.header("X-Partner-Assertion", token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

#[tokio::test]
async fn verified_assertion_chooses_the_dashboard() {
    let portal = SignedPortal::start(Some("portal")).await;
    let token = portal.signer.sign(&carol(), "portal", now());
    for path in ["/", "/dashboard"] {
        let (status, html) = portal.get(path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert!(html.contains("assertion verified"), "{html}");
        // The signed identity wins over the (forgeable) plain headers.
        assert!(html.contains("<h1>Referral dashboard</h1>"), "{html}");
        assert!(html.contains("carol@brightpath.example"), "{html}");
        assert!(!html.contains("Partner programme console"), "{html}");
    }
    let (status, html) = portal.get("/clients/client-42", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("assertion verified"), "{html}");
}

#[tokio::test]
async fn pages_refuse_without_a_valid_assertion() {
    let portal = SignedPortal::start(Some("portal")).await;
    let claims = carol();
    let forged = portal.other.sign(&claims, "portal", now());
    let expired = portal.signer.sign(&claims, "portal", now() - 3600);
    let elsewhere = portal.signer.sign(&claims, "billing", now());
    let cases = [
        (None, "no X-Partner-Assertion header"),
        (Some("not-a-token"), "compact JWS"),
        (Some(forged.as_ref()), "kid"),
        (Some(expired.as_ref()), "xpired"),
        (Some(elsewhere.as_ref()), "assertion rejected"),
    ];
    for (token, reason) in cases {
        for path in ["/dashboard", "/clients/client-42/"] {
            let (status, html) = portal.get(path, token).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path} {token:?}");
            assert!(html.contains("<h1>Signed identity required</h1>"), "{html}");
            assert!(html.contains(reason), "{reason}: {html}");
            assert!(!html.contains("mallory"), "{html}");
        }
    }
    let (status, _) = portal.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn any_audience_without_the_option() {
    let portal = SignedPortal::start(None).await;
    let token = portal.signer.sign(&carol(), "billing", now());
    let (status, html) = portal.get("/dashboard", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
}

#[tokio::test]
async fn debug_headers_reports_the_verification() {
    let portal = SignedPortal::start(Some("portal")).await;
    let token = portal.signer.sign(&carol(), "portal", now());
    let (status, body) = portal.get("/debug/headers", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["assertion"]["verified"], true, "{report}");
    assert_eq!(
        report["assertion"]["claims"]["email"],
        "carol@brightpath.example"
    );
    assert_eq!(report["assertion"]["claims"]["aud"], "portal");
    assert_eq!(report["assertion"]["error"], Value::Null);
    assert_eq!(report["headers"]["x-partner-user"], "mallory@acme.example");

    let (status, body) = portal.get("/debug/echo/x", None).await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["assertion"]["verified"], false);
    assert_eq!(report["assertion"]["claims"], Value::Null);
    assert_eq!(
        report["assertion"]["error"],
        "no X-Partner-Assertion header"
    );
}

#[tokio::test]
async fn jwks_is_fetched_on_demand_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let signer = new_signer(&dir, "assertion.key");
    let (url, _stop) = jwks_server(signer.jwks_json().to_owned()).await;
    // No fetch at start (as when the gateway came up after the portal).
    let verifier = Arc::new(AssertionVerifier::new(url, None));
    let mut headers = http::HeaderMap::new();
    let token = signer.sign(&carol(), "portal", now());
    headers.insert("x-partner-assertion", token.parse().unwrap());
    let report = verifier.check(&headers).await;
    assert!(report.verified, "{report:?}");
}

#[tokio::test]
async fn unreachable_jwks_refuses_but_keeps_serving() {
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: reqwest::Url = format!("http://{}/jwks.json", unused.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(unused);
    let verifier = AssertionVerifier::new(url, None);
    let mut headers = http::HeaderMap::new();
    headers.insert("x-partner-assertion", "a.b.c".parse().unwrap());
    let report = verifier.check(&headers).await;
    assert!(!report.verified);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("no JWKS loaded"), "{error}");
}
