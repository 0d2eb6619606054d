//! Test issuers, keys and token builders.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::config::{IssuerConfig, KeySource};
use crate::jwt::BearerVerifier;

pub const IDP: &str = "https://idp.example.com";
pub const OTHER: &str = "https://other.example.com";
pub const MIXED: &str = "https://mixed.example.com";
pub const AUDIENCE: &str = "partnergate";
pub const USER: &str = "alice@acme.example";
pub const LEEWAY: i64 = 30;

pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/jwt/testdata")
        .join(name)
}

/// Wall-clock now: jsonwebtoken checks exp/nbf against the system clock too.
pub fn now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

pub fn issuer(name: &str, iss: &str, algorithms: &[&str], keys: Option<KeySource>) -> IssuerConfig {
    IssuerConfig {
        name: name.into(),
        issuer: iss.into(),
        audiences: vec![AUDIENCE.into(), "reports".into()],
        algorithms: algorithms.iter().map(|a| a.to_string()).collect(),
        keys,
        hmac_secret_file: None,
        user_claim: "email".into(),
        leeway: Duration::from_secs(LEEWAY as u64),
    }
}

/// `corp-idp`: RS256 and ES256 with `jwks.json` (kids rsa-1, ec-1).
pub fn idp() -> IssuerConfig {
    let keys = KeySource::JwksFile(testdata("jwks.json"));
    issuer("corp-idp", IDP, &["RS256", "ES256"], Some(keys))
}

/// `other-idp`: RS256 with `jwks_other.json` (kid other-1).
pub fn other() -> IssuerConfig {
    let keys = KeySource::JwksFile(testdata("jwks_other.json"));
    issuer("other-idp", OTHER, &["RS256"], Some(keys))
}

/// `mixed`: RS256 and ES256 from `jwks.json`, HS256 with `hmac.secret`.
pub fn mixed() -> IssuerConfig {
    let keys = KeySource::JwksFile(testdata("jwks.json"));
    let mut cfg = issuer("mixed", MIXED, &["RS256", "ES256", "HS256"], Some(keys));
    cfg.hmac_secret_file = Some(testdata("hmac.secret"));
    cfg
}

pub fn verifier() -> BearerVerifier {
    BearerVerifier::from_config(&[idp(), other(), mixed()]).unwrap()
}

pub fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(testdata("rsa.pem")).unwrap()).unwrap()
}

pub fn other_rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(testdata("rsa_other.pem")).unwrap()).unwrap()
}

pub fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&std::fs::read(testdata("ec_p256.pem")).unwrap()).unwrap()
}

pub fn hmac_key() -> EncodingKey {
    let secret = std::fs::read(testdata("hmac.secret")).unwrap();
    EncodingKey::from_secret(secret.strip_suffix(b"\n").unwrap())
}

/// Claims of a valid `corp-idp` token at `now`.
pub fn claims(now: i64) -> Value {
    json!({
        "iss": IDP,
        "aud": AUDIENCE,
        "sub": "u-1",
        "email": USER,
        "iat": now,
        "exp": now + 300,
    })
}

/// `claims(now)` with `changes` merged in; a `null` removes the claim.
pub fn claims_with(now: i64, changes: Value) -> Value {
    let mut claims = claims(now);
    for (name, value) in changes.as_object().unwrap() {
        match value {
            Value::Null => claims.as_object_mut().unwrap().remove(name),
            value => claims
                .as_object_mut()
                .unwrap()
                .insert(name.clone(), value.clone()),
        };
    }
    claims
}

pub fn sign(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let header = Header {
        kid: kid.map(str::to_owned),
        ..Header::new(alg)
    };
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn rs256(claims: &Value) -> String {
    sign(&rsa_key(), Algorithm::RS256, Some("rsa-1"), claims)
}

pub fn es256(claims: &Value) -> String {
    sign(&ec_key(), Algorithm::ES256, Some("ec-1"), claims)
}

/// A hand-built compact token: any header, any payload, any signature.
pub fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", encode(header), encode(claims))
}
