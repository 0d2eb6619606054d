//! `BearerVerifier::verify`: what is accepted, what is refused and with which reason.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::support::*;
use crate::jwt::{BearerError, BearerVerifier};

struct Case {
    name: &'static str,
    token: String,
    /// `Ok(user)` or `Err(reason)`.
    want: Result<&'static str, &'static str>,
}

fn case(name: &'static str, token: String, want: Result<&'static str, &'static str>) -> Case {
    Case { name, token, want }
}

fn accepted_cases(now: i64) -> Vec<Case> {
    let mixed = claims_with(now, json!({ "iss": MIXED }));
    vec![
        case("valid RS256", rs256(&claims(now)), Ok(USER)),
        case("valid ES256", es256(&claims(now)), Ok(USER)),
        case(
            "RS256 without kid, one RSA key fits",
            sign(&rsa_key(), Algorithm::RS256, None, &claims(now)),
            Ok(USER),
        ),
        case(
            "ES256 without kid, one EC key fits",
            sign(&ec_key(), Algorithm::ES256, None, &claims(now)),
            Ok(USER),
        ),
        case(
            "aud array naming one of ours",
            rs256(&claims_with(now, json!({ "aud": ["someone", "reports"] }))),
            Ok(USER),
        ),
        case(
            "exp passed but within leeway",
            rs256(&claims_with(now, json!({ "exp": now - 10 }))),
            Ok(USER),
        ),
        case(
            "nbf ahead but within leeway",
            rs256(&claims_with(now, json!({ "nbf": now + 10 }))),
            Ok(USER),
        ),
        case(
            "HS256 with the issuer's secret",
            sign(&hmac_key(), Algorithm::HS256, None, &mixed),
            Ok(USER),
        ),
        case(
            "HS256 with a kid still uses the secret",
            sign(&hmac_key(), Algorithm::HS256, Some("v1"), &mixed),
            Ok(USER),
        ),
    ]
}

fn algorithm_cases(now: i64) -> Vec<Case> {
    let rsa_pem_as_secret =
        EncodingKey::from_secret(&std::fs::read(testdata("rsa.pub.pem")).unwrap());
    let none_header = json!({ "alg": "none", "typ": "JWT" });
    vec![
        case(
            "alg none, no signature",
            forge(&none_header, &claims(now), ""),
            Err("malformed_token"),
        ),
        case(
            "alg none with a signature",
            forge(&none_header, &claims(now), "c2ln"),
            Err("algorithm_not_allowed"),
        ),
        case(
            "alg None",
            forge(&json!({ "alg": "None" }), &claims(now), "c2ln"),
            Err("algorithm_not_allowed"),
        ),
        case(
            "HS256 keyed with the RSA public key, issuer without HS256",
            sign(
                &rsa_pem_as_secret,
                Algorithm::HS256,
                Some("rsa-1"),
                &claims(now),
            ),
            Err("algorithm_not_allowed"),
        ),
        case(
            "HS256 keyed with the RSA public key, issuer with HS256",
            sign(
                &rsa_pem_as_secret,
                Algorithm::HS256,
                Some("rsa-1"),
                &claims_with(now, json!({ "iss": MIXED })),
            ),
            Err("bad_signature"),
        ),
        case(
            "PS256 not in the issuer's algorithms",
            sign(&rsa_key(), Algorithm::PS256, Some("rsa-1"), &claims(now)),
            Err("algorithm_not_allowed"),
        ),
        case(
            "RS256 with the kid of the EC key",
            sign(&rsa_key(), Algorithm::RS256, Some("ec-1"), &claims(now)),
            Err("unknown_key"),
        ),
    ]
}

fn key_cases(now: i64) -> Vec<Case> {
    let jku = Header {
        jku: Some("https://attacker.example/jwks.json".into()),
        kid: Some("attacker-1".into()),
        ..Header::new(Algorithm::RS256)
    };
    let embedded = Header {
        jwk: Some(Jwk::from_encoding_key(&other_rsa_key(), Algorithm::RS256).unwrap()),
        ..Header::new(Algorithm::RS256)
    };
    vec![
        case(
            "unknown kid",
            sign(&rsa_key(), Algorithm::RS256, Some("nope"), &claims(now)),
            Err("unknown_key"),
        ),
        case(
            "kid of another issuer's key",
            sign(
                &other_rsa_key(),
                Algorithm::RS256,
                Some("other-1"),
                &claims(now),
            ),
            Err("unknown_key"),
        ),
        case(
            "wrong key under our kid",
            sign(
                &other_rsa_key(),
                Algorithm::RS256,
                Some("rsa-1"),
                &claims(now),
            ),
            Err("bad_signature"),
        ),
        case(
            "jku header is never followed",
            jsonwebtoken::encode(&jku, &claims(now), &other_rsa_key()).unwrap(),
            Err("unknown_key"),
        ),
        case(
            "embedded jwk header is never used",
            jsonwebtoken::encode(&embedded, &claims(now), &other_rsa_key()).unwrap(),
            Err("bad_signature"),
        ),
        case("tampered payload", tampered(now), Err("bad_signature")),
    ]
}

/// A valid token whose payload is swapped for another user's.
fn tampered(now: i64) -> String {
    let token = rs256(&claims(now));
    let forged = rs256(&claims_with(
        now,
        json!({ "email": "mallory@evil.example" }),
    ));
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload = forged.split('.').nth(1).unwrap();
    format!("{}.{forged_payload}.{}", parts[0], parts[2])
}

fn claim_cases(now: i64) -> Vec<Case> {
    let with = |changes: Value| rs256(&claims_with(now, changes));
    let crit = Header {
        crit: Some(vec!["exp".into()]),
        kid: Some("rsa-1".into()),
        ..Header::new(Algorithm::RS256)
    };
    vec![
        case(
            "unknown iss",
            with(json!({ "iss": "https://evil.example" })),
            Err("unknown_issuer"),
        ),
        case("no iss", with(json!({ "iss": null })), Err("missing_claim")),
        case(
            "iss as an array",
            with(json!({ "iss": [IDP] })),
            Err("malformed_token"),
        ),
        case(
            "wrong aud",
            with(json!({ "aud": "someone-else" })),
            Err("wrong_audience"),
        ),
        case(
            "aud array without ours",
            with(json!({ "aud": ["a", "b"] })),
            Err("wrong_audience"),
        ),
        case(
            "empty aud array",
            with(json!({ "aud": [] })),
            Err("wrong_audience"),
        ),
        case("no aud", with(json!({ "aud": null })), Err("missing_claim")),
        case(
            "expired",
            with(json!({ "exp": now - 100 })),
            Err("token_expired"),
        ),
        case("no exp", with(json!({ "exp": null })), Err("missing_claim")),
        case(
            "exp not a number",
            with(json!({ "exp": "tomorrow" })),
            Err("missing_claim"),
        ),
        case(
            "nbf in the future",
            with(json!({ "nbf": now + 300 })),
            Err("token_not_yet_valid"),
        ),
        case(
            "no user claim",
            with(json!({ "email": null })),
            Err("missing_claim"),
        ),
        case(
            "empty user claim",
            with(json!({ "email": "" })),
            Err("missing_claim"),
        ),
        case(
            "user claim not a string",
            with(json!({ "email": 42 })),
            Err("missing_claim"),
        ),
        case(
            "crit header",
            jsonwebtoken::encode(&crit, &claims(now), &rsa_key()).unwrap(),
            Err("malformed_token"),
        ),
        case(
            "oversize token",
            with(json!({ "pad": "x".repeat(8 * 1024) })),
            Err("token_too_large"),
        ),
    ]
}

#[test]
fn verify_table() {
    let now = now();
    let cases = [
        accepted_cases(now),
        algorithm_cases(now),
        key_cases(now),
        claim_cases(now),
    ];
    for case in cases.into_iter().flatten() {
        let got = verifier().verify(&case.token, now);
        let got = got.as_ref().map(|t| &*t.user).map_err(BearerError::reason);
        assert_eq!(got, case.want, "{}", case.name);
    }
}

#[test]
fn verified_token_names_the_issuer_and_expiry() {
    let now = now();
    let token = verifier().verify(&es256(&claims(now)), now).unwrap();
    assert_eq!(&*token.issuer, "corp-idp");
    assert_eq!(token.user.as_ref(), USER);
    assert_eq!(token.expires_at, now + 300);
}

#[test]
fn user_claim_is_configurable() {
    let now = now();
    let mut cfg = idp();
    cfg.user_claim = "sub".into();
    let verifier = BearerVerifier::from_config(&[cfg]).unwrap();
    assert_eq!(
        verifier.verify(&rs256(&claims(now)), now).unwrap().user,
        "u-1".into()
    );
}

#[test]
fn cached_verification_rechecks_expiry() {
    let now = now();
    let verifier = verifier();
    let token = rs256(&claims(now));
    assert_eq!(verifier.verify(&token, now).unwrap().user.as_ref(), USER);
    assert_eq!(
        verifier.verify(&token, now + 299).unwrap().user.as_ref(),
        USER
    );
    assert_eq!(
        verifier
            .verify(&token, now + 300 + LEEWAY - 1)
            .unwrap()
            .user,
        std::sync::Arc::<str>::from(USER)
    );
    let late = verifier.verify(&token, now + 300 + LEEWAY).unwrap_err();
    assert_eq!(late, BearerError::TokenExpired);
}

#[test]
fn cached_verification_rechecks_nbf() {
    let now = now();
    let verifier = verifier();
    let token = rs256(&claims_with(now, json!({ "nbf": now })));
    verifier.verify(&token, now).unwrap();
    let early = verifier.verify(&token, now - LEEWAY - 1).unwrap_err();
    assert_eq!(early, BearerError::TokenNotYetValid);
}

#[test]
fn garbage_is_refused_without_panic() {
    let huge_header = format!("{}.e30.c2ln", "A".repeat(8000));
    let b64 =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let inputs = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        "!!!.@@@.###".into(),
        "é.é.é".into(),
        "Bearer a.b.c".into(),
        huge_header,
        format!("{}.{}.c2ln", b64("not json"), b64("{}")),
        format!("{}.{}.c2ln", b64("[]"), b64("{}")),
        format!("{}.{}.c2ln", b64("{}"), b64("{}")),
        format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("[]")),
        format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256"}"#),
            b64(&format!(r#"{{"iss":"{IDP}"}}"#))
        ),
        format!(
            "{}.{}.%%%",
            b64(r#"{"alg":"RS256"}"#),
            b64(&format!(r#"{{"iss":"{IDP}"}}"#))
        ),
        format!("{}.{}.c2ln", b64(r#"{"alg":7}"#), b64("{}")),
    ];
    let verifier = verifier();
    for input in inputs {
        assert!(verifier.verify(&input, now()).is_err(), "{input:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_input_never_panics(input in ".{0,300}") {
        prop_assert!(verifier().verify(&input, 0).is_err());
    }

    #[test]
    fn arbitrary_base64_parts_never_panic(
        header in "[A-Za-z0-9_-]{0,80}",
        payload in "[A-Za-z0-9_-]{0,80}",
        signature in "[A-Za-z0-9_-]{0,80}",
    ) {
        let token = format!("{header}.{payload}.{signature}");
        prop_assert!(verifier().verify(&token, 0).is_err());
    }
}

#[test]
fn reasons_are_snake_case() {
    let errors = [
        BearerError::TokenTooLarge,
        BearerError::MalformedToken,
        BearerError::UnknownIssuer,
        BearerError::AlgorithmNotAllowed,
        BearerError::KeysUnavailable,
        BearerError::UnknownKey,
        BearerError::BadSignature,
        BearerError::TokenExpired,
        BearerError::TokenNotYetValid,
        BearerError::WrongIssuer,
        BearerError::WrongAudience,
        BearerError::MissingClaim("email".into()),
        BearerError::InvalidClaim("nbf".into()),
    ];
    for error in errors {
        let reason = error.reason();
        assert!(
            reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{reason}"
        );
        assert_eq!(error.status(), http::StatusCode::UNAUTHORIZED);
    }
}
