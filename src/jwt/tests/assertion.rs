//! `AssertionSigner` and `verify_assertion`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::support::{now, testdata};
use crate::config::AssertionConfig;
use crate::jwt::{verify_assertion, AssertionClaims, AssertionSigner};

const TTL: i64 = 60;

fn signer_from(path: &Path) -> Result<AssertionSigner, String> {
    AssertionSigner::load(&AssertionConfig {
        key_file: path.into(),
        ttl: Duration::from_secs(TTL as u64),
    })
}

fn signer() -> AssertionSigner {
    signer_from(&testdata("ec_p256.pem")).unwrap()
}

fn alice() -> AssertionClaims {
    AssertionClaims {
        sub: "u-1".into(),
        email: "alice@acme.example".into(),
        org: "acme".into(),
        org_type: "reseller".into(),
        roles: vec!["partner-admin".into(), "partner-user".into()],
        account: None,
        account_permission: None,
        amr: vec![],
        auth_time: None,
        generation: 7,
    }
}

#[test]
fn signed_assertion_verifies_against_the_jwks() {
    let (signer, now) = (signer(), now());
    let token = signer.sign(&alice(), "portal", now);
    let claims = verify_assertion(signer.jwks_json(), &token, Some("portal"), now).unwrap();
    assert_eq!(
        claims,
        json!({
            "iss": "partnergate", "sub": "u-1", "email": "alice@acme.example",
            "org": "acme", "org_type": "reseller",
            "roles": ["partner-admin", "partner-user"],
            "aud": "portal", "iat": now, "exp": now + TTL, "jti": claims["jti"],
        })
    );
    assert_eq!(claims["jti"].as_str().map(str::len), Some(22));
    verify_assertion(signer.jwks_json(), &token, None, now).unwrap();
}

#[test]
fn account_claims_are_included_when_set() {
    let (signer, now) = (signer(), now());
    let mut claims = alice();
    claims.account = Some("client-42".into());
    claims.account_permission = Some("view".into());
    let token = signer.sign(&claims, "portal", now);
    let verified = verify_assertion(signer.jwks_json(), &token, Some("portal"), now).unwrap();
    assert_eq!(verified["account"], "client-42");
    assert_eq!(verified["account_permission"], "view");
}

#[test]
fn header_names_alg_typ_and_kid() {
    let signer = signer();
    let token = signer.sign(&alice(), "portal", now());
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(
        header,
        json!({ "alg": "ES256", "typ": "JWT", "kid": signer.kid() })
    );
}

#[test]
fn jwks_document_publishes_the_public_key() {
    let signer = signer();
    let jwks: Value = serde_json::from_str(signer.jwks_json()).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        (key["alg"].as_str(), key["use"].as_str()),
        (Some("ES256"), Some("sig"))
    );
    assert_eq!(key["kid"].as_str(), Some(signer.kid()));
    assert_eq!(signer.kid().len(), 22, "16 bytes, base64url");
    assert!(key.get("d").is_none());
    assert_eq!(signer.kid(), self::signer().kid(), "the kid is stable");
}

#[test]
fn verification_failures() {
    let (signer, now) = (signer(), now());
    let token = signer.sign(&alice(), "portal", now);
    let tampered = tamper(&token);
    let other_jwks = signer_from(&dev_key_dir().path().join("assertion.key"))
        .unwrap()
        .jwks_json()
        .to_owned();
    let cases: [(&str, &str, &str, Option<&str>, i64); 6] = [
        (
            "wrong aud",
            signer.jwks_json(),
            &token,
            Some("billing"),
            now,
        ),
        (
            "at expiry",
            signer.jwks_json(),
            &token,
            Some("portal"),
            now + TTL,
        ),
        (
            "after expiry",
            signer.jwks_json(),
            &token,
            Some("portal"),
            now + TTL + 100,
        ),
        (
            "tampered payload",
            signer.jwks_json(),
            &tampered,
            Some("portal"),
            now,
        ),
        (
            "another key's JWKS",
            &other_jwks,
            &token,
            Some("portal"),
            now,
        ),
        ("garbage", signer.jwks_json(), "a.b.c", None, now),
    ];
    for (name, jwks, token, audience, at) in cases {
        assert!(
            verify_assertion(jwks, token, audience, at).is_err(),
            "{name}"
        );
    }
}

fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["roles"] = json!(["owner-admin"]);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

fn dev_key_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::tls::write_dev_certs(dir.path()).unwrap();
    dir
}

#[test]
fn key_from_certs_dev_loads() {
    let dir = dev_key_dir();
    let signer = signer_from(&dir.path().join("assertion.key")).unwrap();
    let now = now();
    let token = signer.sign(&alice(), "portal", now);
    verify_assertion(signer.jwks_json(), &token, Some("portal"), now).unwrap();
}

#[test]
fn reuse_until_half_the_ttl() {
    let (signer, now) = (signer(), now());
    let first = signer.sign(&alice(), "portal", now);
    let same = |token: &Arc<str>| Arc::ptr_eq(&first, token);
    assert!(same(&signer.sign(&alice(), "portal", now)));
    assert!(same(&signer.sign(&alice(), "portal", now + TTL / 2 - 1)));
    assert!(!same(&signer.sign(&alice(), "portal", now + TTL / 2)));
    assert!(!same(&signer.sign(&alice(), "billing", now)));
    let mut next_generation = alice();
    next_generation.generation += 1;
    assert!(!same(&signer.sign(&next_generation, "portal", now)));
    let mut with_account = alice();
    with_account.account = Some("client-42".into());
    assert!(!same(&signer.sign(&with_account, "portal", now)));
}

#[test]
fn load_refuses_other_keys() {
    let cases = [
        (
            "RSA key",
            testdata("rsa.pem"),
            "not a PKCS#8 PEM EC private key",
        ),
        (
            "public key",
            testdata("rsa.pub.pem"),
            "not a PKCS#8 PEM EC private key",
        ),
        (
            "not a key",
            testdata("jwks.json"),
            "not a PKCS#8 PEM EC private key",
        ),
        ("missing file", testdata("missing.key"), "cannot read"),
    ];
    for (name, path, reason) in cases {
        let error = signer_from(&path).unwrap_err();
        assert!(error.contains(reason), "{name}: {error}");
    }
}
