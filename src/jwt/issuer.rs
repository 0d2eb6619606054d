//! One configured token issuer at run time: its algorithms, its keys and the checks a
//! token of that issuer must pass.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::error::BearerError;
use super::jwks::{load_hmac_secret, load_jwks_file, KeyType, VerifyKey};
use super::remote::{KeySet, RemoteKeys};
use super::token::numeric_date;
use super::VerifiedToken;
use crate::config::{IssuerConfig, KeySource};

/// Longest a verified token stays in the cache, whatever its `exp`.
const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

pub(crate) type ConfigProblem = (String, String);

pub(crate) struct Issuer {
    pub name: Arc<str>,
    /// Each allowed algorithm with the jsonwebtoken validation for it (one algorithm
    /// each: jsonwebtoken wants every listed algorithm in the key's family).
    validations: Vec<(Algorithm, Validation)>,
    leeway: i64,
    user_claim: String,
    local_keys: Vec<VerifyKey>,
    pub remote: Option<RemoteKeys>,
}

/// When a verified token may be used: `not_before <= now < until` (leeway included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeWindow {
    not_before: i64,
    until: i64,
}

impl TimeWindow {
    pub fn check(&self, now: i64) -> Result<(), BearerError> {
        if now < self.not_before {
            return Err(BearerError::TokenNotYetValid);
        }
        if now >= self.until {
            return Err(BearerError::TokenExpired);
        }
        Ok(())
    }

    /// How long the cache may keep the token, measured from `now`.
    pub fn remaining(&self, now: i64) -> Duration {
        let secs = u64::try_from(self.until.saturating_sub(now)).unwrap_or(0);
        Duration::from_secs(secs).min(MAX_CACHE_TTL)
    }
}

/// A token that passed every check, as the cache keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub token: VerifiedToken,
    pub window: TimeWindow,
    pub cache_for: Duration,
}

impl Issuer {
    /// Build from configuration, loading key files now; `key` is e.g. `issuers[0]`.
    pub fn from_config(key: &str, cfg: &IssuerConfig) -> Result<Issuer, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let algorithms = parse_algorithms(key, cfg, &mut problems);
        let local_keys = load_local_keys(key, cfg, &algorithms, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Issuer {
            name: Arc::from(cfg.name.as_str()),
            validations: algorithms
                .iter()
                .map(|alg| (*alg, validation(cfg, *alg)))
                .collect(),
            leeway: i64::try_from(cfg.leeway.as_secs()).unwrap_or(i64::MAX),
            user_claim: cfg.user_claim.clone(),
            local_keys,
            remote: match &cfg.keys {
                Some(KeySource::JwksUrl(url)) => Some(RemoteKeys::new(url.clone())),
                _ => None,
            },
        })
    }

    /// The asymmetric algorithms, which the `jwks_url` keys must fit.
    pub fn key_algorithms(&self) -> Vec<Algorithm> {
        self.validations
            .iter()
            .map(|(alg, _)| *alg)
            .filter(|alg| KeyType::for_algorithm(*alg) != KeyType::Hmac)
            .collect()
    }

    /// The header's `alg` if this issuer allows it (`none` is never parsed as one).
    pub fn allowed_algorithm(&self, name: &str) -> Result<Algorithm, BearerError> {
        let alg = Algorithm::from_str(name).map_err(|_| BearerError::AlgorithmNotAllowed)?;
        self.validations
            .iter()
            .any(|(allowed, _)| *allowed == alg)
            .then_some(alg)
            .ok_or(BearerError::AlgorithmNotAllowed)
    }

    /// Check the signature with a key of this issuer and the claims jsonwebtoken knows.
    pub fn verify_signature(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Map<String, Value>, BearerError> {
        let remote = self.remote.as_ref().map(|r| r.current.load_full());
        let key = self.select_key(alg, kid, remote.as_ref().map(Option::as_deref))?;
        let validation = self
            .validations
            .iter()
            .find_map(|(allowed, v)| (*allowed == alg).then_some(v))
            .ok_or(BearerError::AlgorithmNotAllowed)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)?;
        Ok(data.claims)
    }

    /// `remote` is `None` for issuers without a `jwks_url`, `Some(None)` before the
    /// first fetch. The HMAC secret has no kid and is the only HMAC key, so it ignores
    /// the token's kid; any other key must match it (or be the only candidate).
    fn select_key<'k>(
        &'k self,
        alg: Algorithm,
        kid: Option<&str>,
        remote: Option<Option<&'k KeySet>>,
    ) -> Result<&'k VerifyKey, BearerError> {
        let local = self.local_keys.iter().filter(move |k| k.fits(alg));
        if KeyType::for_algorithm(alg) == KeyType::Hmac {
            return self
                .local_keys
                .iter()
                .find(|k| k.fits(alg))
                .ok_or(BearerError::UnknownKey);
        }
        let fetched = match remote {
            Some(None) => return Err(BearerError::KeysUnavailable),
            Some(Some(set)) => set.keys.as_slice(),
            None => &[],
        };
        let mut candidates = local.chain(fetched.iter().filter(|k| k.fits(alg)));
        match kid {
            Some(kid) => candidates.find(|k| k.kid.as_deref() == Some(kid)),
            None => match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
        }
        .ok_or(BearerError::UnknownKey)
    }

    /// The checks on verified claims: time window against `now`, and the user claim.
    pub fn accept(&self, claims: &Map<String, Value>, now: i64) -> Result<Accepted, BearerError> {
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or_else(|| BearerError::InvalidClaim("exp".into()))?;
        let nbf = match claims.get("nbf") {
            None => None,
            Some(v) => {
                Some(numeric_date(v).ok_or_else(|| BearerError::InvalidClaim("nbf".into()))?)
            }
        };
        let window = TimeWindow {
            not_before: nbf.map_or(i64::MIN, |nbf| nbf.saturating_sub(self.leeway)),
            until: exp.saturating_add(self.leeway),
        };
        window.check(now)?;
        let user = claims
            .get(&self.user_claim)
            .and_then(Value::as_str)
            .filter(|user| !user.is_empty())
            .ok_or_else(|| BearerError::MissingClaim(self.user_claim.clone()))?;
        Ok(Accepted {
            token: VerifiedToken {
                issuer: self.name.clone(),
                user: Arc::from(user),
                expires_at: exp,
                amr: amr_claim(claims.get("amr")),
                auth_time: claims.get("auth_time").and_then(super::token::numeric_date),
            },
            window,
            cache_for: window.remaining(now),
        })
    }
}

fn parse_algorithms(
    key: &str,
    cfg: &IssuerConfig,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Algorithm> {
    let mut algorithms = Vec::new();
    for name in &cfg.algorithms {
        match Algorithm::from_str(name) {
            Ok(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
            Ok(_) => {}
            Err(_) => problems.push((
                format!("{key}.algorithms"),
                format!("\"{name}\" is not an accepted algorithm"),
            )),
        }
    }
    if algorithms.is_empty() && problems.is_empty() {
        problems.push((
            format!("{key}.algorithms"),
            "list at least one algorithm".into(),
        ));
    }
    algorithms
}

fn load_local_keys(
    key: &str,
    cfg: &IssuerConfig,
    algorithms: &[Algorithm],
    problems: &mut Vec<ConfigProblem>,
) -> Vec<VerifyKey> {
    let asymmetric: Vec<Algorithm> = algorithms
        .iter()
        .copied()
        .filter(|alg| KeyType::for_algorithm(*alg) != KeyType::Hmac)
        .collect();
    let mut keys = Vec::new();
    match &cfg.keys {
        Some(KeySource::JwksFile(path)) => match load_jwks_file(path, &asymmetric) {
            Ok(loaded) => keys.extend(loaded),
            Err(reasons) => problems.extend(reasons.into_iter().map(|reason| {
                (
                    format!("{key}.jwks_file"),
                    format!("{}: {reason}", path.display()),
                )
            })),
        },
        Some(KeySource::JwksUrl(_)) => {}
        None if !asymmetric.is_empty() => problems.push((
            format!("{key}.jwks_file"),
            "asymmetric algorithms need jwks_file or jwks_url".into(),
        )),
        None => {}
    }
    if asymmetric.len() < algorithms.len() {
        keys.extend(load_secret(key, cfg, problems));
    }
    keys
}

fn load_secret(
    key: &str,
    cfg: &IssuerConfig,
    problems: &mut Vec<ConfigProblem>,
) -> Option<VerifyKey> {
    let problem_key = format!("{key}.hmac_secret_file");
    let Some(path) = &cfg.hmac_secret_file else {
        problems.push((
            problem_key,
            "HS* algorithms need an explicit secret file".into(),
        ));
        return None;
    };
    load_hmac_secret(path)
        .map_err(|reason| problems.push((problem_key, format!("{}: {reason}", path.display()))))
        .ok()
}

/// jsonwebtoken's own checks, set so it never accepts what partnergate would not:
/// one algorithm, exp/iss/aud required, iss and aud pinned, exp and nbf with the
/// issuer's leeway. It reads the system clock; [`Issuer::accept`] repeats the time
/// checks against the caller's `now`, so a token must pass both.
fn validation(cfg: &IssuerConfig, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[cfg.issuer.as_str()]);
    validation.set_audience(&cfg.audiences);
    validation.leeway = cfg.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation
}

/// The `amr` claim (an array of method names, RFC 8176) as far as we know the names; an
/// `mfa` entry alone counts as a one-time code on top of a password.
fn amr_claim(value: Option<&Value>) -> crate::directory::Amr {
    use crate::directory::Amr;
    let Some(items) = value.and_then(Value::as_array) else {
        return Amr::default();
    };
    items
        .iter()
        .filter_map(Value::as_str)
        .fold(Amr::default(), |acc, name| match name {
            "mfa" => acc.with(Amr::PWD).with(Amr::OTP),
            other => acc.with(Amr::parse(other)),
        })
}
