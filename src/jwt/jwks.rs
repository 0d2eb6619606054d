//! JSON Web Key Sets: an issuer's verification keys, each checked against the
//! algorithms that issuer is configured for, so that no key can be used with an
//! algorithm of another family (the classic "HS256 with the RSA public key" attack).

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// Largest JWKS document read from a file or fetched from a URL.
pub(crate) const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys one JWKS may hold.
pub(crate) const MAX_JWKS_KEYS: usize = 100;
const MAX_SECRET_BYTES: usize = 4096;
/// RFC 7518 §3.2: an HMAC key at least as long as the hash output (HS256).
const MIN_SECRET_BYTES: usize = 32;
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// What a key is, as far as choosing an algorithm goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

impl KeyType {
    /// The only key type each algorithm may be verified with.
    pub fn for_algorithm(alg: Algorithm) -> KeyType {
        match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyType::Rsa,
            Algorithm::ES256 => KeyType::EcP256,
            Algorithm::ES384 => KeyType::EcP384,
            Algorithm::EdDSA => KeyType::Ed25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyType::Hmac,
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "OKP Ed25519",
            KeyType::Hmac => "HMAC secret",
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            KeyType::EcP384 => 48,
            _ => 32,
        }
    }
}

/// One configured verification key.
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    pub key_type: KeyType,
    /// The JWK's own `alg`: when present, the only algorithm this key verifies.
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

impl VerifyKey {
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.key_type == KeyType::for_algorithm(alg) && self.alg.is_none_or(|pinned| pinned == alg)
    }
}

/// The usable keys of a JWKS document, and why the others are not usable.
#[derive(Default)]
pub(crate) struct ParsedJwks {
    pub keys: Vec<VerifyKey>,
    pub problems: Vec<String>,
}

#[derive(Deserialize)]
struct JwksDocument {
    // Values, so that one malformed key is reported by index instead of failing the set.
    keys: Vec<serde_json::Value>,
}

/// Parse a JWKS document, keeping the keys usable with at least one of `algorithms`.
/// `Err` when the document itself is unusable (too large, not JSON, too many keys).
pub(crate) fn parse_jwks(bytes: &[u8], algorithms: &[Algorithm]) -> Result<ParsedJwks, String> {
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
    }
    let doc: JwksDocument =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    if doc.keys.len() > MAX_JWKS_KEYS {
        return Err(format!("JWKS holds more than {MAX_JWKS_KEYS} keys"));
    }
    let mut parsed = ParsedJwks::default();
    for (i, value) in doc.keys.into_iter().enumerate() {
        let label = key_label(i, &value);
        match parse_key(value, algorithms) {
            Ok(key) if is_duplicate(&parsed.keys, &key) => {
                parsed.problems.push(format!("{label}: duplicate kid"));
            }
            Ok(key) => parsed.keys.push(key),
            Err(reason) => parsed.problems.push(format!("{label}: {reason}")),
        }
    }
    Ok(parsed)
}

fn key_label(index: usize, value: &serde_json::Value) -> String {
    match value.get("kid").and_then(serde_json::Value::as_str) {
        Some(kid) => format!("keys[{index}] (kid {kid:?})"),
        None => format!("keys[{index}]"),
    }
}

fn is_duplicate(keys: &[VerifyKey], key: &VerifyKey) -> bool {
    key.kid.is_some() && keys.iter().any(|k| k.kid == key.kid)
}

/// The JWK members partnergate reads; everything else (x5c, x5t, …) is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    d: Option<serde::de::IgnoredAny>,
}

fn parse_key(value: serde_json::Value, algorithms: &[Algorithm]) -> Result<VerifyKey, String> {
    let jwk: RawJwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
    jwk.check_usage()?;
    let key_type = jwk.key_type()?;
    let alg = jwk.pinned_algorithm(key_type, algorithms)?;
    if !algorithms
        .iter()
        .any(|a| KeyType::for_algorithm(*a) == key_type)
    {
        return Err(format!(
            "key type {} fits none of the issuer's algorithms ({})",
            key_type.name(),
            algorithm_names(algorithms)
        ));
    }
    let key = jwk.decoding_key(key_type)?;
    Ok(VerifyKey {
        kid: jwk.kid,
        key_type,
        alg,
        key,
    })
}

fn algorithm_names(algorithms: &[Algorithm]) -> String {
    let names: Vec<String> = algorithms.iter().map(|a| format!("{a:?}")).collect();
    names.join(", ")
}

impl RawJwk {
    fn check_usage(&self) -> Result<(), String> {
        if self.d.is_some() {
            return Err("holds private key material (d); publish only public keys".into());
        }
        if let Some(key_use) = self.key_use.as_deref().filter(|u| *u != "sig") {
            return Err(format!("use is {key_use:?}, not \"sig\""));
        }
        match &self.key_ops {
            Some(ops) if !ops.iter().any(|op| op == "verify") => {
                Err("key_ops does not include \"verify\"".into())
            }
            _ => Ok(()),
        }
    }

    fn key_type(&self) -> Result<KeyType, String> {
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => Ok(KeyType::Rsa),
            ("EC", Some("P-256")) => Ok(KeyType::EcP256),
            ("EC", Some("P-384")) => Ok(KeyType::EcP384),
            ("OKP", Some("Ed25519")) => Ok(KeyType::Ed25519),
            ("oct", _) => Err(
                "shared secrets (kty oct) are never taken from a JWKS; use hmac_secret_file".into(),
            ),
            (kty, crv) => Err(format!(
                "unsupported key type {kty:?} (crv {})",
                crv.unwrap_or("none")
            )),
        }
    }

    fn pinned_algorithm(
        &self,
        key_type: KeyType,
        algorithms: &[Algorithm],
    ) -> Result<Option<Algorithm>, String> {
        let Some(name) = self.alg.as_deref() else {
            return Ok(None);
        };
        let alg = Algorithm::from_str(name).map_err(|_| format!("unsupported alg {name:?}"))?;
        if KeyType::for_algorithm(alg) != key_type {
            return Err(format!(
                "alg {name} does not fit key type {}",
                key_type.name()
            ));
        }
        if !algorithms.contains(&alg) {
            return Err(format!("alg {name} is not in the issuer's algorithms"));
        }
        Ok(Some(alg))
    }

    fn decoding_key(&self, key_type: KeyType) -> Result<DecodingKey, String> {
        match key_type {
            KeyType::Rsa => self.rsa_key(),
            KeyType::EcP256 | KeyType::EcP384 => self.ec_key(key_type.coordinate_len()),
            KeyType::Ed25519 => {
                let x = member("x", &self.x, Some(32))?;
                Ok(DecodingKey::from_ed_der(&x))
            }
            KeyType::Hmac => Err("shared secrets are never taken from a JWKS".into()),
        }
    }

    fn rsa_key(&self) -> Result<DecodingKey, String> {
        let n = member("n", &self.n, None)?;
        let e = member("e", &self.e, None)?;
        let n = strip_leading_zeros(&n);
        let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        if !RSA_BITS.contains(&bits) {
            return Err(format!("RSA modulus of {bits} bits (need 2048 to 8192)"));
        }
        let e = strip_leading_zeros(&e);
        if e.is_empty() || e.len() > 4 {
            return Err("RSA exponent out of range".into());
        }
        Ok(DecodingKey::from_rsa_raw_components(n, e))
    }

    fn ec_key(&self, coordinate_len: usize) -> Result<DecodingKey, String> {
        let x = member("x", &self.x, Some(coordinate_len))?;
        let y = member("y", &self.y, Some(coordinate_len))?;
        // Uncompressed SEC1 point, the form the verifier expects.
        let mut point = Vec::with_capacity(1 + 2 * coordinate_len);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        Ok(DecodingKey::from_ec_der(&point))
    }
}

/// A base64url member of a JWK, decoded, optionally of an exact length.
fn member(name: &str, value: &Option<String>, len: Option<usize>) -> Result<Vec<u8>, String> {
    let text = value.as_deref().ok_or_else(|| format!("missing {name}"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("{name} is not base64url"))?;
    match len {
        Some(len) if bytes.len() != len => Err(format!("{name} is not {len} bytes")),
        _ => Ok(bytes),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Read at most `limit` bytes of `path`; larger files are refused, not truncated.
pub(crate) fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// Keys of a `jwks_file`: every unusable key is a problem, and so is an empty set.
pub(crate) fn load_jwks_file(
    path: &Path,
    algorithms: &[Algorithm],
) -> Result<Vec<VerifyKey>, Vec<String>> {
    let bytes = read_limited(path, MAX_JWKS_BYTES).map_err(|e| vec![e])?;
    let parsed = parse_jwks(&bytes, algorithms).map_err(|e| vec![e])?;
    if !parsed.problems.is_empty() {
        return Err(parsed.problems);
    }
    if parsed.keys.is_empty() {
        return Err(vec!["the JWKS holds no keys".into()]);
    }
    Ok(parsed.keys)
}

/// The HMAC secret of `hmac_secret_file`; one trailing newline is not part of it.
pub(crate) fn load_hmac_secret(path: &Path) -> Result<VerifyKey, String> {
    let bytes = read_limited(path, MAX_SECRET_BYTES)?;
    let secret = bytes
        .strip_suffix(b"\n")
        .map(|s| s.strip_suffix(b"\r").unwrap_or(s))
        .unwrap_or(&bytes);
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!("secret shorter than {MIN_SECRET_BYTES} bytes"));
    }
    Ok(VerifyKey {
        kid: None,
        key_type: KeyType::Hmac,
        alg: None,
        key: DecodingKey::from_secret(secret),
    })
}
