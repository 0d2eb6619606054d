//! The compact JWS form, read before any signature is checked: only to pick the issuer,
//! the algorithm and the key. Nothing read here is trusted until the signature verifies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

/// Longest token accepted, checked before anything is decoded.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The three dot-separated parts of a compact JWS.
pub(crate) struct CompactParts<'a> {
    pub header: &'a str,
    pub payload: &'a str,
}

impl<'a> CompactParts<'a> {
    /// Exactly three non-empty base64url parts (an unsigned `alg: none` token, which has
    /// an empty signature, is refused here already).
    pub fn split(token: &'a str) -> Option<Self> {
        let mut parts = token.split('.');
        let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let well_formed = [header, payload, signature]
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(is_base64url));
        well_formed.then_some(CompactParts { header, payload })
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The header fields partnergate looks at. `jku`, `x5u`, `jwk` and `x5c` are never used:
/// keys come only from configuration.
#[derive(Debug, Deserialize)]
pub(crate) struct UnverifiedHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
    #[serde(default)]
    pub crit: Option<IgnoredAny>,
}

/// Just enough of the payload to find the issuer.
#[derive(Debug, Deserialize)]
pub(crate) struct UnverifiedIssuer {
    #[serde(default)]
    pub iss: Option<String>,
}

/// Decode one base64url JSON part into `T`; `None` when it is not that.
pub(crate) fn decode_part<T: DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A JSON NumericDate (RFC 7519 §2) as whole seconds; fractions are dropped.
pub(crate) fn numeric_date(value: &serde_json::Value) -> Option<i64> {
    let number = value.as_number()?;
    if let Some(secs) = number.as_i64() {
        return Some(secs);
    }
    let secs = number.as_f64()?;
    // `as` saturates; the range check keeps absurd values from becoming i64::MAX quietly.
    (secs.is_finite() && secs.abs() < 1e15).then_some(secs.floor() as i64)
}
