//! `BearerVerifier::from_config`: key files are loaded and checked up front, and
//! every problem is reported with its config key.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::support::*;
use crate::config::{IssuerConfig, KeySource};
use crate::jwt::BearerVerifier;

fn problems(issuers: &[IssuerConfig]) -> Vec<(String, String)> {
    BearerVerifier::from_config(issuers).unwrap_err()
}

fn temp_file(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents).unwrap();
    file
}

fn with_jwks(algorithms: &[&str], path: PathBuf) -> IssuerConfig {
    issuer("test", IDP, algorithms, Some(KeySource::JwksFile(path)))
}

/// Each case: issuer algorithms, JWKS document, the config key and a part of the reason.
#[test]
fn jwks_key_problems() {
    let ec = json!({ "kty": "EC", "crv": "P-256", "kid": "ec",
        "x": "r6QY3y5J9fHbOg-7BShcyDFpN5_iLl-YycI6jRF76ig",
        "y": "-_906gJL0t7otWagSkVdQGt2MbFM43X7Q_4qJDRlH9Y" });
    let cases = [
        (
            "EC key, RS256-only issuer",
            vec!["RS256"],
            json!({ "keys": [ec] }),
            "fits none",
        ),
        (
            "EC key, ES384 issuer",
            vec!["ES384"],
            json!({ "keys": [ec] }),
            "fits none",
        ),
        (
            "oct key",
            vec!["RS256"],
            json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] }),
            "hmac_secret_file",
        ),
        (
            "encryption key",
            vec!["ES256"],
            json!({ "keys": [{ "use": "enc", "kty": "EC", "crv": "P-256", "x": ec["x"], "y": ec["y"] }] }),
            "not \"sig\"",
        ),
        (
            "private key material",
            vec!["ES256"],
            json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": ec["x"], "y": ec["y"], "d": "AA" }] }),
            "private",
        ),
        (
            "short EC coordinate",
            vec!["ES256"],
            json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": "AAAA", "y": ec["y"] }] }),
            "x is not 32 bytes",
        ),
        (
            "small RSA modulus",
            vec!["RS256"],
            json!({ "keys": [{ "kty": "RSA", "n": "AQAB", "e": "AQAB" }] }),
            "bits",
        ),
        (
            "JWK alg outside the issuer's list",
            vec!["ES256"],
            json!({ "keys": [{ "kty": "EC", "crv": "P-256", "alg": "ES384", "x": ec["x"], "y": ec["y"] }] }),
            "does not fit",
        ),
        (
            "duplicate kid",
            vec!["ES256"],
            json!({ "keys": [ec, ec] }),
            "duplicate kid",
        ),
        ("no keys", vec!["ES256"], json!({ "keys": [] }), "no keys"),
        (
            "not a JWKS",
            vec!["ES256"],
            json!({ "kty": "EC" }),
            "not a JWKS",
        ),
    ];
    for (name, algorithms, jwks, reason) in cases {
        let file = temp_file(jwks.to_string().as_bytes());
        let found = problems(&[with_jwks(&algorithms, file.path().into())]);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!(found[0].0, "issuers[0].jwks_file", "{name}");
        assert!(found[0].1.contains(reason), "{name}: {}", found[0].1);
    }
}

#[test]
fn shipped_test_jwks_with_ec_key_for_rs256_only_issuer() {
    let found = problems(&[with_jwks(&["RS256"], testdata("jwks.json"))]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].1.contains("ec-1") && found[0].1.contains("EC P-256"),
        "{found:?}"
    );
}

#[test]
fn unreadable_jwks_file() {
    let found = problems(&[with_jwks(&["RS256"], testdata("missing.json"))]);
    assert_eq!(found[0].0, "issuers[0].jwks_file");
    assert!(found[0].1.contains("missing.json") && found[0].1.contains("cannot read"));
}

#[test]
fn oversize_jwks_file() {
    let file = temp_file(&vec![b' '; 64 * 1024 + 1]);
    let found = problems(&[with_jwks(&["RS256"], file.path().into())]);
    assert!(found[0].1.contains("larger than"), "{found:?}");
}

#[test]
fn too_many_keys() {
    let key = json!({ "kty": "RSA", "n": "AQAB", "e": "AQAB" });
    let jwks = json!({ "keys": vec![key; 101] });
    let file = temp_file(jwks.to_string().as_bytes());
    let found = problems(&[with_jwks(&["RS256"], file.path().into())]);
    assert!(found[0].1.contains("more than 100 keys"), "{found:?}");
}

#[test]
fn hmac_secret_problems() {
    let without = issuer("hs", IDP, &["HS256"], None);
    let mut short = without.clone();
    let short_file = temp_file(b"too short\n");
    short.hmac_secret_file = Some(short_file.path().into());
    let mut missing = without.clone();
    missing.hmac_secret_file = Some(testdata("missing.secret"));
    for (name, cfg, reason) in [
        ("HS256 without a secret", without, "explicit secret file"),
        ("short secret", short, "shorter than 32 bytes"),
        ("unreadable secret", missing, "cannot read"),
    ] {
        let found = problems(&[cfg]);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!(found[0].0, "issuers[0].hmac_secret_file", "{name}");
        assert!(found[0].1.contains(reason), "{name}: {}", found[0].1);
    }
}

#[test]
fn algorithm_problems() {
    let found = problems(&[issuer("a", IDP, &["none", "XS256"], None)]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|(key, _)| key == "issuers[0].algorithms"));
    let found = problems(&[issuer("a", IDP, &["RS256"], None)]);
    assert_eq!(found[0].0, "issuers[0].jwks_file");
}

#[test]
fn every_problem_is_reported() {
    let duplicate_iss = issuer(
        "again",
        IDP,
        &["RS256"],
        Some(KeySource::JwksFile(testdata("jwks_other.json"))),
    );
    let found = problems(&[
        idp(),
        with_jwks(&["RS256"], testdata("missing.json")),
        issuer("hs", OTHER, &["HS256"], None),
        duplicate_iss,
    ]);
    let keys: Vec<&str> = found.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "issuers[1].jwks_file",
            "issuers[2].hmac_secret_file",
            "issuers[3].issuer"
        ]
    );
}

#[test]
fn valid_configurations_load() {
    BearerVerifier::from_config(&[]).unwrap();
    let verifier = BearerVerifier::from_config(&[idp(), other(), mixed()]).unwrap();
    assert!(!verifier.has_remote_keys());
}
