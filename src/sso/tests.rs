//! ID token and logout token checks, claim mapping and secrets, with the jwt module's
//! test keys (`src/jwt/testdata`, kid `rsa-1`; `rsa_other.pem` is a key nobody trusts).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

use super::*;
use crate::jwt::jwks::parse_jwks;

const ISSUER: &str = "https://idp.acme.example";
const CLIENT: &str = "gw-acme";
const NOW: i64 = 1_800_000_000;

fn keys() -> Vec<crate::jwt::jwks::VerifyKey> {
    let doc = include_bytes!("../jwt/testdata/jwks.json");
    parse_jwks(doc, &provider::ALGORITHMS).expect("jwks").keys
}

fn sign_with(pem: &[u8], kid: &str, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    header.typ = typ.map(str::to_string);
    let key = EncodingKey::from_rsa_pem(pem).expect("key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

fn sign(claims: &Value) -> String {
    sign_with(
        include_bytes!("../jwt/testdata/rsa.pem"),
        "rsa-1",
        Some("JWT"),
        claims,
    )
}

fn id_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "alice-1", "nonce": "n-123",
        "iat": NOW - 5, "exp": NOW + 300, "email": "Alice@Acme.example",
    })
}

fn expect() -> Expect<'static> {
    Expect {
        issuer: ISSUER,
        client_id: CLIENT,
        now: NOW,
    }
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().expect("object").remove(key);
    v
}

#[test]
fn a_good_id_token_verifies() {
    let claims = verify_id_token(&sign(&id_claims()), &keys(), &expect(), "n-123").expect("ok");
    assert_eq!(claims["sub"], "alice-1");
}

#[test]
fn id_tokens_are_refused_for_each_broken_check() {
    let k = keys();
    let other_key = sign_with(
        include_bytes!("../jwt/testdata/rsa_other.pem"),
        "rsa-1",
        None,
        &id_claims(),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong nonce", sign(&id_claims()), "n-other"),
        ("no nonce", sign(&without(id_claims(), "nonce")), "n-123"),
        (
            "wrong aud",
            sign(&with(id_claims(), "aud", json!("gw-other"))),
            "n-123",
        ),
        (
            "several aud, no azp",
            sign(&with(id_claims(), "aud", json!([CLIENT, "other"]))),
            "n-123",
        ),
        (
            "wrong iss",
            sign(&with(id_claims(), "iss", json!("https://evil.example"))),
            "n-123",
        ),
        (
            "expired",
            sign(&with(id_claims(), "exp", json!(NOW - 61))),
            "n-123",
        ),
        ("no exp", sign(&without(id_claims(), "exp")), "n-123"),
        (
            "iat ahead",
            sign(&with(id_claims(), "iat", json!(NOW + 600))),
            "n-123",
        ),
        ("no sub", sign(&without(id_claims(), "sub")), "n-123"),
        ("forged signature", other_key, "n-123"),
        ("not a JWT", "abc.def".to_string(), "n-123"),
    ];
    for (what, token, nonce) in cases {
        let got = verify_id_token(&token, &k, &expect(), nonce);
        assert!(got.is_err(), "{what}: accepted");
    }
    let nonce = verify_id_token(&sign(&id_claims()), &k, &expect(), "n-other");
    assert_eq!(nonce.expect_err("refused").reason, "nonce_mismatch");
    // Within the minute of skew: still fine.
    let skew = sign(&with(id_claims(), "exp", json!(NOW - 30)));
    assert!(verify_id_token(&skew, &k, &expect(), "n-123").is_ok());
    // Several audiences with azp = us: fine.
    let azp = with(
        with(id_claims(), "aud", json!([CLIENT, "other"])),
        "azp",
        json!(CLIENT),
    );
    assert!(verify_id_token(&sign(&azp), &k, &expect(), "n-123").is_ok());
}

#[test]
fn symmetric_and_unsigned_tokens_are_refused() {
    let key = EncodingKey::from_secret(b"the client secret, used as an HMAC key");
    let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &id_claims(), &key).expect("hs");
    assert!(verify_id_token(&hs, &keys(), &expect(), "n-123").is_err());
    let parts: Vec<&str> = hs.split('.').collect();
    let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    assert!(verify_id_token(&unsigned, &keys(), &expect(), "n-123").is_err());
}

fn logout_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "alice-1", "sid": "s-9", "jti": "j-1",
        "iat": NOW - 1, "exp": NOW + 120,
        "events": { BACKCHANNEL_EVENT: {} },
    })
}

#[test]
fn logout_tokens() {
    let k = keys();
    let t = sign_with(
        include_bytes!("../jwt/testdata/rsa.pem"),
        "rsa-1",
        Some("logout+jwt"),
        &logout_claims(),
    );
    let got = verify_logout_token(&t, &k, &expect()).expect("ok");
    assert_eq!(got.subject.as_deref(), Some("alice-1"));
    assert_eq!(got.sid.as_deref(), Some("s-9"));
    let sid_only = sign(&without(logout_claims(), "sub"));
    assert!(verify_logout_token(&sid_only, &k, &expect()).is_ok());
    let bad = [
        ("an ID token", sign(&id_claims())),
        ("no event", sign(&without(logout_claims(), "events"))),
        ("a nonce", sign(&with(logout_claims(), "nonce", json!("n")))),
        (
            "neither sub nor sid",
            sign(&without(without(logout_claims(), "sub"), "sid")),
        ),
        ("no jti", sign(&without(logout_claims(), "jti"))),
        ("wrong aud", sign(&with(logout_claims(), "aud", json!("x")))),
        (
            "wrong typ",
            sign_with(
                include_bytes!("../jwt/testdata/rsa.pem"),
                "rsa-1",
                Some("at+jwt"),
                &logout_claims(),
            ),
        ),
    ];
    for (what, token) in bad {
        assert!(
            verify_logout_token(&token, &k, &expect()).is_err(),
            "{what}: accepted"
        );
    }
}

fn connection() -> SsoConnection {
    SsoConnection {
        org_id: "acme".into(),
        issuer: ISSUER.into(),
        client_id: CLIENT.into(),
        client_secret: "env:ACME_SECRET".into(),
        scopes: vec!["openid".into(), "email".into()],
        email_claim: "email".into(),
        roles_claim: Some("groups".into()),
        role_map: vec![
            ("sales".into(), "partner-sales".into()),
            ("admins".into(), "partner-admin".into()),
        ],
        default_roles: vec!["partner-viewer".into()],
        jit: true,
        enforce: false,
        idp_mfa: true,
        mfa_acr_values: vec!["urn:acme:mfa".into()],
        userinfo: false,
        created_at: 0,
        updated_at: 0,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

#[test]
fn roles_from_the_mapping() {
    let c = connection();
    let claims = obj(json!({ "groups": ["sales", "other"] }));
    assert_eq!(
        mapped_roles(&c, &claims),
        Some(vec![
            "partner-sales".to_string(),
            "partner-viewer".to_string()
        ])
    );
    let none = obj(json!({}));
    assert_eq!(
        mapped_roles(&c, &none),
        Some(vec!["partner-viewer".to_string()])
    );
    let spaced = obj(json!({ "groups": "admins sales" }));
    assert_eq!(mapped_roles(&c, &spaced).map(|r| r.len()), Some(3));
    let unmapped = SsoConnection {
        roles_claim: None,
        ..connection()
    };
    assert_eq!(mapped_roles(&unmapped, &claims), None);
}

#[test]
fn second_factor_from_the_provider() {
    let c = connection();
    let yes = [
        json!({ "amr": ["pwd", "mfa"] }),
        json!({ "amr": ["pwd", "otp"] }),
        json!({ "amr": ["hwk", "fpt"] }),
        json!({ "amr": ["pwd"], "acr": "urn:acme:mfa" }),
    ];
    for claims in yes {
        assert!(mfa_attested(&c, &obj(claims.clone())), "{claims}");
    }
    let no = [
        json!({ "amr": ["pwd"] }),
        json!({ "amr": ["otp"] }),
        json!({ "acr": "urn:acme:pwd" }),
        json!({}),
    ];
    for claims in no {
        assert!(!mfa_attested(&c, &obj(claims.clone())), "{claims}");
    }
    let untrusted = SsoConnection {
        idp_mfa: false,
        ..connection()
    };
    assert!(!mfa_attested(&untrusted, &obj(json!({ "amr": ["mfa"] }))));
}

#[test]
fn email_claim() {
    let c = connection();
    let ok = obj(json!({ "email": " Alice@ACME.example " }));
    assert_eq!(claimed_email(&c, &ok).expect("email"), "alice@acme.example");
    let unverified = obj(json!({ "email": "a@acme.example", "email_verified": false }));
    assert_eq!(
        claimed_email(&c, &unverified).expect_err("no").reason,
        "email_unverified"
    );
    assert!(claimed_email(&c, &obj(json!({ "mail": "a@acme.example" }))).is_err());
}

#[test]
fn domains_and_secrets() {
    assert_eq!(
        email_domain("Bob@Acme.Example").as_deref(),
        Some("acme.example")
    );
    for bad in [
        "bob",
        "@acme.example",
        "bob@localhost",
        "bob@-x.example",
        "bob@a..b",
    ] {
        assert_eq!(email_domain(bad), None, "{bad}");
    }
    assert!(SecretSource::parse("env:ACME_OIDC_SECRET").is_ok());
    assert!(SecretSource::parse("file:/run/secrets/acme").is_ok());
    for bad in ["hunter2", "env:lower", "env:", "file:relative/path"] {
        assert!(SecretSource::parse(bad).is_err(), "{bad}");
    }
    let missing = SecretSource::Env("PARTNERGATE_TEST_SURELY_UNSET".into()).read();
    assert!(missing
        .expect_err("unset")
        .contains("PARTNERGATE_TEST_SURELY_UNSET"));
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("secret");
    std::fs::write(&file, "s3cret-value\n").expect("write");
    assert_eq!(
        SecretSource::File(file).read().expect("read"),
        "s3cret-value"
    );
}

#[test]
fn form_encoding() {
    let mut out = String::new();
    push_form(
        &mut out,
        &[
            ("redirect_uri", "http://h/p?x=1"),
            ("scope", "openid email"),
        ],
    );
    assert_eq!(
        out,
        "redirect_uri=http%3A%2F%2Fh%2Fp%3Fx%3D1&scope=openid%20email"
    );
}
