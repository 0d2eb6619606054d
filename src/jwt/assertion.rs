//! `X-Partner-Assertion`: the identity headers as a compact ES256
//! JWS an upstream can verify against `/.partnergate/jwks.json`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use moka::sync::Cache;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jwks::{parse_jwks, read_limited};
use super::token::{decode_part, numeric_date, CompactParts, UnverifiedHeader, MAX_TOKEN_BYTES};
use crate::config::AssertionConfig;
use crate::directory::Amr;

/// The `iss` of every assertion.
pub const ASSERTION_ISSUER: &str = "partnergate";
const MAX_KEY_FILE_BYTES: usize = 16 * 1024;
const REUSE_CACHE_CAPACITY: u64 = 10_000;
const KID_BYTES: usize = 16;

/// The identity an assertion carries. `generation` (the directory generation the
/// identity was resolved from) only decides reuse; it is not put in the token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AssertionClaims {
    /// Stable user id (`X-Partner-User-Id`).
    pub sub: String,
    pub email: String,
    pub org: String,
    pub org_type: String,
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_permission: Option<String>,
    /// How the user authenticated (RFC 8176 names); empty when unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<&'static str>,
    /// When the user authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip)]
    pub generation: u64,
}

/// What the token's payload is: the identity plus the registered claims.
#[derive(Serialize)]
struct Payload<'a> {
    iss: &'static str,
    #[serde(flatten)]
    identity: &'a AssertionClaims,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// An assertion may be reused for the same user, directory generation, upstream and
/// account until half its ttl (`[assertion] ttl`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReuseKey {
    user_id: String,
    generation: u64,
    audience: String,
    account: Option<String>,
    amr: Amr,
    auth_time: Option<i64>,
}

/// Who an assertion is for: the reuse key (user, directory generation,
/// upstream) plus the account of `{account}` routes.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub generation: u64,
    pub audience: &'a str,
    pub account: Option<&'a str>,
    /// How and when the user authenticated (each sign-in gets its own assertion).
    pub amr: Amr,
    pub auth_time: Option<i64>,
}

impl Subject<'_> {
    fn hash(&self, state: &foldhash::fast::RandomState) -> u64 {
        use std::hash::BuildHasher;
        state.hash_one((
            self.user_id,
            self.generation,
            self.audience,
            self.account,
            self.amr,
            self.auth_time,
        ))
    }
}

impl ReuseKey {
    /// The cache is keyed by a hash; the full key is compared on every hit.
    fn matches(&self, s: &Subject<'_>) -> bool {
        self.user_id == s.user_id
            && self.generation == s.generation
            && self.audience == s.audience
            && self.account.as_deref() == s.account
            && self.amr == s.amr
            && self.auth_time == s.auth_time
    }
}

impl From<&Subject<'_>> for ReuseKey {
    fn from(s: &Subject<'_>) -> Self {
        ReuseKey {
            user_id: s.user_id.to_owned(),
            generation: s.generation,
            audience: s.audience.to_owned(),
            account: s.account.map(str::to_owned),
            amr: s.amr,
            auth_time: s.auth_time,
        }
    }
}

#[derive(Clone)]
struct Signed {
    token: Arc<str>,
    /// The same token as a header value, shared by every request that reuses it.
    header: http::HeaderValue,
    iat: i64,
    key: Arc<ReuseKey>,
}

/// Signs assertions with the `[assertion]` key and publishes its public half.
pub struct AssertionSigner {
    key: EncodingKey,
    header: Header,
    jwks: String,
    ttl: i64,
    reuse: Cache<u64, Signed, foldhash::fast::RandomState>,
    /// Hashes reuse keys (fast; the key is compared whole on a hit).
    hasher: foldhash::fast::RandomState,
}

impl fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("kid", &self.header.kid)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// Read the PKCS#8 PEM EC P-256 private key of `cfg.key_file`.
    pub fn load(cfg: &AssertionConfig) -> Result<AssertionSigner, String> {
        let path = cfg.key_file.display();
        let pem =
            read_limited(&cfg.key_file, MAX_KEY_FILE_BYTES).map_err(|e| format!("{path}: {e}"))?;
        let key = EncodingKey::from_ec_pem(&pem)
            .map_err(|_| format!("{path}: not a PKCS#8 PEM EC private key"))?;
        let (x, y) =
            public_coordinates(&key).ok_or_else(|| format!("{path}: not an EC P-256 key"))?;
        // Signing once now means signing later can only fail for reasons outside the key.
        jsonwebtoken::crypto::sign(b"probe", &key, Algorithm::ES256)
            .map_err(|e| format!("{path}: cannot sign with this key: {e}"))?;
        let kid = key_id(&x, &y)?;
        let ttl = cfg.ttl.as_secs();
        Ok(AssertionSigner {
            header: Header {
                kid: Some(kid.clone()),
                ..Header::new(Algorithm::ES256)
            },
            jwks: jwks_document(&kid, &x, &y),
            key,
            ttl: i64::try_from(ttl).unwrap_or(i64::MAX),
            reuse: Cache::builder()
                .max_capacity(REUSE_CACHE_CAPACITY)
                .time_to_live(Duration::from_secs(ttl.max(1)))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            hasher: foldhash::fast::RandomState::default(),
        })
    }

    /// The key id in every assertion's header.
    pub fn kid(&self) -> &str {
        self.header.kid.as_deref().unwrap_or_default()
    }

    /// The public key as a JWKS document, served at `/.partnergate/jwks.json`.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// The assertion for `claims` towards upstream `audience` at `now` (unix seconds),
    /// reusing one signed earlier while `now < iat + ttl/2`. Empty only if the signing
    /// primitive itself fails (the key was proven at load); that is logged, not cached.
    pub fn sign(&self, claims: &AssertionClaims, audience: &str, now: i64) -> Arc<str> {
        let subject = Subject {
            user_id: &claims.sub,
            generation: claims.generation,
            audience,
            account: claims.account.as_deref(),
            amr: Amr::parse(&claims.amr.join(" ")),
            auth_time: claims.auth_time,
        };
        self.sign_with(subject, now, || claims.clone())
    }

    /// [`AssertionSigner::sign`] for the request path: the claims are only built when
    /// no reusable assertion exists for `subject`, and a reuse allocates nothing.
    pub fn sign_with(
        &self,
        subject: Subject<'_>,
        now: i64,
        claims: impl FnOnce() -> AssertionClaims,
    ) -> Arc<str> {
        self.signed(subject, now, claims)
            .map_or_else(|| Arc::from(""), |s| s.token)
    }

    /// [`AssertionSigner::sign_with`] as a header value (`None` only if signing failed).
    pub fn header_with(
        &self,
        subject: Subject<'_>,
        now: i64,
        claims: impl FnOnce() -> AssertionClaims,
    ) -> Option<http::HeaderValue> {
        self.signed(subject, now, claims).map(|s| s.header)
    }

    fn signed(
        &self,
        subject: Subject<'_>,
        now: i64,
        claims: impl FnOnce() -> AssertionClaims,
    ) -> Option<Signed> {
        let hash = subject.hash(&self.hasher);
        if let Some(signed) = self.reuse.get(&hash) {
            let fresh = now >= signed.iat && (now - signed.iat).saturating_mul(2) < self.ttl;
            if fresh && signed.key.matches(&subject) {
                return Some(signed);
            }
        }
        let claims = claims();
        let signed = self
            .sign_fresh(&claims, subject.audience, now)
            .map_err(|e| e.to_string())
            .and_then(|token| {
                let header = http::HeaderValue::from_str(&token).map_err(|e| e.to_string())?;
                Ok(Signed {
                    token: Arc::from(token),
                    header,
                    iat: now,
                    key: Arc::new(ReuseKey::from(&subject)),
                })
            });
        match signed {
            Ok(signed) => {
                self.reuse.insert(hash, signed.clone());
                Some(signed)
            }
            Err(error) => {
                tracing::error!(%error, "signing X-Partner-Assertion failed");
                None
            }
        }
    }

    fn sign_fresh(
        &self,
        claims: &AssertionClaims,
        audience: &str,
        now: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let payload = Payload {
            iss: ASSERTION_ISSUER,
            identity: claims,
            aud: audience,
            iat: now,
            exp: now.saturating_add(self.ttl),
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        };
        jsonwebtoken::encode(&self.header, &payload, &self.key)
    }
}

/// The P-256 public point (x, y) of a PKCS#8 private key; `None` for any other key.
fn public_coordinates(key: &EncodingKey) -> Option<(String, String)> {
    let jwk = Jwk::from_encoding_key(key, Algorithm::ES256).ok()?;
    match jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some((ec.x, ec.y))
        }
        _ => None,
    }
}

/// base64url of the first 16 bytes of SHA-256 over the uncompressed public point.
fn key_id(x: &str, y: &str) -> Result<String, String> {
    let decode = |c: &str| {
        URL_SAFE_NO_PAD
            .decode(c)
            .map_err(|_| "bad public key encoding".to_owned())
    };
    let mut point = vec![0x04];
    point.extend(decode(x)?);
    point.extend(decode(y)?);
    let digest = Sha256::digest(&point);
    Ok(URL_SAFE_NO_PAD.encode(&digest[..KID_BYTES]))
}

fn jwks_document(kid: &str, x: &str, y: &str) -> String {
    serde_json::json!({
        "keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }]
    })
    .to_string()
}

/// Verify an `X-Partner-Assertion` against a published JWKS (what an upstream, here the
/// demo portal, does): ES256 only, key by `kid`, `iss` partnergate, `exp` against `now`,
/// and `aud` when `audience` is given. Returns the claims.
pub fn verify_assertion(
    jwks_json: &str,
    token: &str,
    audience: Option<&str>,
    now: i64,
) -> Result<Value, String> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("assertion too large".into());
    }
    let parts = CompactParts::split(token).ok_or("assertion is not a compact JWS")?;
    let header: UnverifiedHeader = decode_part(parts.header).ok_or("malformed assertion header")?;
    if header.alg != "ES256" || header.crit.is_some() {
        return Err(format!("algorithm {:?} is not accepted", header.alg));
    }
    let kid = header.kid.ok_or("assertion header has no kid")?;
    let jwks = parse_jwks(jwks_json.as_bytes(), &[Algorithm::ES256])?;
    let key = jwks
        .keys
        .iter()
        .find(|k| k.kid.as_deref() == Some(kid.as_str()))
        .ok_or_else(|| format!("no key with kid {kid:?} in the JWKS"))?;
    let data = jsonwebtoken::decode::<Value>(token, &key.key, &assertion_validation(audience))
        .map_err(|e| format!("assertion rejected: {e}"))?;
    let exp = data
        .claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or("assertion has no exp")?;
    if now >= exp {
        return Err("assertion expired".into());
    }
    Ok(data.claims)
}

fn assertion_validation(audience: Option<&str>) -> Validation {
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[ASSERTION_ISSUER]);
    validation.leeway = 0;
    match audience {
        Some(audience) => {
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            validation.set_audience(&[audience]);
        }
        None => {
            validation.set_required_spec_claims(&["exp", "iss"]);
            validation.validate_aud = false;
        }
    }
    validation
}
