//! The two JWTs an OpenID provider sends us: the ID token of a sign-in (OpenID Connect
//! Core 1.0 §3.1.3.7) and the logout token of a back-channel logout (OpenID Connect
//! Back-Channel Logout 1.0 §2.6). Both are verified with the provider's published keys,
//! for this connection's issuer and client id, within a minute of clock skew.

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::jwt::jwks::VerifyKey;
use crate::jwt::token::{decode_part, numeric_date, CompactParts, UnverifiedHeader};

use super::provider::{pick, ALGORITHMS};
use super::SsoError;

/// Clock skew allowed between us and the provider.
pub const LEEWAY: u64 = 60;
/// Longest ID or logout token read.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The event a logout token must carry.
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What to check a token against.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub now: i64,
}

/// The header of a token, before its signature is checked: the algorithm (one of
/// [`ALGORITHMS`]) and kid, to find the key.
pub fn header(token: &str) -> Result<(Algorithm, Option<String>, Option<String>), SsoError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(SsoError::token("token too large"));
    }
    let parts = CompactParts::split(token).ok_or_else(|| SsoError::token("not a signed JWT"))?;
    let header: UnverifiedHeader =
        decode_part(parts.header).ok_or_else(|| SsoError::token("unreadable JWT header"))?;
    if header.crit.is_some() {
        return Err(SsoError::token("the token has critical header extensions"));
    }
    let alg = ALGORITHMS
        .iter()
        .copied()
        .find(|a| format!("{a:?}") == header.alg)
        .ok_or_else(|| SsoError::token(format!("algorithm {:?} not accepted", header.alg)))?;
    let typ = jsonwebtoken::decode_header(token).ok().and_then(|h| h.typ);
    Ok((alg, header.kid, typ))
}

/// Verify the signature with `keys`, and `iss`, `aud`, `exp`, `iat` against `expect`.
fn verified(
    token: &str,
    alg: Algorithm,
    kid: Option<&str>,
    keys: &[VerifyKey],
    expect: &Expect<'_>,
    require_exp: bool,
) -> Result<Map<String, Value>, SsoError> {
    let key = pick(keys, alg, kid)
        .ok_or_else(|| SsoError::token("no key of the identity provider matches the token"))?;
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
        .map_err(|e| SsoError::token(format!("signature: {e}")))?;
    let claims = data.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(SsoError::token("iss is not the connection's issuer"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(SsoError::token("aud does not name this client"));
    }
    // §3.1.3.7 (3, 4): with several audiences, azp must be us.
    if audiences.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(expect.client_id) {
        return Err(SsoError::token("azp is not this client"));
    }
    let leeway = LEEWAY as i64;
    match claims.get("exp").and_then(numeric_date) {
        Some(exp) if exp + leeway <= expect.now => return Err(SsoError::token("token expired")),
        None if require_exp => return Err(SsoError::token("exp missing")),
        _ => {}
    }
    match claims.get("iat").and_then(numeric_date) {
        Some(iat) if iat > expect.now + leeway => {
            return Err(SsoError::token("iat is in the future"))
        }
        Some(_) => {}
        None => return Err(SsoError::token("iat missing")),
    }
    Ok(claims)
}

/// A verified ID token's claims: signature, issuer, audience, expiry, and the `nonce` of
/// this sign-in.
pub(crate) fn verify_id_token(
    token: &str,
    keys: &[VerifyKey],
    expect: &Expect<'_>,
    nonce: &str,
) -> Result<Map<String, Value>, SsoError> {
    let (alg, kid, _) = header(token)?;
    let claims = verified(token, alg, kid.as_deref(), keys, expect, true)?;
    let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if got.is_empty() || !bool::from(got.as_bytes().ct_eq(nonce.as_bytes())) {
        return Err(SsoError::new(
            "nonce_mismatch",
            "the ID token's nonce is not this sign-in's",
        ));
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() && sub.len() <= 255 => Ok(claims),
        _ => Err(SsoError::token("sub missing or too long")),
    }
}

/// Who a verified logout token logs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    pub subject: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    /// `exp`, for the replay cache.
    pub expires_at: i64,
}

/// A verified logout token (Back-Channel Logout 1.0 §2.6).
pub(crate) fn verify_logout_token(
    token: &str,
    keys: &[VerifyKey],
    expect: &Expect<'_>,
) -> Result<LogoutToken, SsoError> {
    let (alg, kid, typ) = header(token)?;
    if typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("logout+jwt") && !t.eq_ignore_ascii_case("JWT"))
    {
        return Err(SsoError::token("typ is not logout+jwt"));
    }
    let claims = verified(token, alg, kid.as_deref(), keys, expect, true)?;
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|e| e.get(BACKCHANNEL_EVENT));
    if !event.is_some_and(Value::is_object) {
        return Err(SsoError::token(
            "events lacks the back-channel logout event",
        ));
    }
    // §2.4: a logout token must not carry a nonce (so an ID token is never one).
    if claims.contains_key("nonce") {
        return Err(SsoError::token("a logout token must not carry a nonce"));
    }
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .map(str::to_string)
    };
    let (subject, sid) = (text("sub"), text("sid"));
    if subject.is_none() && sid.is_none() {
        return Err(SsoError::token("neither sub nor sid"));
    }
    let jti = text("jti").ok_or_else(|| SsoError::token("jti missing"))?;
    let expires_at = claims
        .get("exp")
        .and_then(numeric_date)
        .unwrap_or(expect.now);
    Ok(LogoutToken {
        subject,
        sid,
        jti,
        expires_at,
    })
}
