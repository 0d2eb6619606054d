//! `Authorization: Bearer` JWTs from the configured `[[issuers]]`.
//!
//! [`BearerVerifier::verify`] is synchronous and CPU-only (it runs on the proxy's worker
//! threads); [`BearerVerifier::refresh`] does the network work for `jwks_url` issuers on
//! a background runtime.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::error::BearerError;
use super::issuer::{Accepted, ConfigProblem, Issuer};
use super::remote::{http_client, RemoteKeys};
use super::token::{
    decode_part, CompactParts, UnverifiedHeader, UnverifiedIssuer, MAX_TOKEN_BYTES,
};
use crate::config::{IssuerConfig, KeySource};

/// The token of an `Authorization: Bearer <token>` header (scheme in any case), if any.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Verified tokens kept at once.
const TOKEN_CACHE_CAPACITY: u64 = 50_000;

/// Who a verified bearer token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The `name` of the issuer in the configuration.
    pub issuer: Arc<str>,
    /// The value of the issuer's `user_claim` (by default the email).
    pub user: Arc<str>,
    /// The token's `exp`, unix seconds.
    pub expires_at: i64,
    /// The token's `amr` claim (methods the issuer says the user authenticated with).
    pub amr: crate::directory::Amr,
    /// The token's `auth_time` claim.
    pub auth_time: Option<i64>,
}

/// Verifies bearer tokens against the issuers of one configuration; a reload builds a
/// new one (and with it a new cache).
pub struct BearerVerifier {
    /// By the exact `iss` value.
    issuers: HashMap<String, Issuer>,
    /// By the token itself, each entry until the token's `exp` (plus leeway). The token
    /// is the key (compared whole on a hit), as Envoy's JWT cache does: hashing it with a
    /// cryptographic hash on every request cost more than the rest of its checks.
    cache: Cache<Box<str>, Accepted, foldhash::fast::RandomState>,
    /// Only when some issuer has a `jwks_url`.
    http: Option<reqwest::Client>,
}

impl fmt::Debug for BearerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.issuers.values().map(|i| &*i.name).collect();
        f.debug_struct("BearerVerifier")
            .field("issuers", &names)
            .field("cached_tokens", &self.cache.entry_count())
            .finish()
    }
}

impl BearerVerifier {
    /// Load every issuer's key files now. On failure, every problem as
    /// (config key such as `issuers[0].jwks_file`, reason).
    pub fn from_config(issuers: &[IssuerConfig]) -> Result<BearerVerifier, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut by_iss = HashMap::new();
        for (i, cfg) in issuers.iter().enumerate() {
            let key = format!("issuers[{i}]");
            match Issuer::from_config(&key, cfg) {
                Ok(_) if by_iss.contains_key(&cfg.issuer) => {
                    problems.push((
                        format!("{key}.issuer"),
                        "another issuer has the same iss".into(),
                    ));
                }
                Ok(issuer) => {
                    by_iss.insert(cfg.issuer.clone(), issuer);
                }
                Err(found) => problems.extend(found),
            }
        }
        let http = remote_client(issuers, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(BearerVerifier {
            issuers: by_iss,
            cache: token_cache(),
            http,
        })
    }

    /// Whether some issuer has a `jwks_url`, i.e. whether [`Self::refresh`] needs calling.
    pub fn has_remote_keys(&self) -> bool {
        self.http.is_some()
    }

    /// Verify a bearer token at `now` (unix seconds). CPU only, never blocks.
    pub fn verify(&self, token: &str, now: i64) -> Result<VerifiedToken, BearerError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(BearerError::TokenTooLarge);
        }
        if let Some(cached) = self.cache.get(token) {
            cached.window.check(now)?;
            return Ok(cached.token);
        }
        let accepted = self.verify_uncached(token, now)?;
        let verified = accepted.token.clone();
        self.cache.insert(token.into(), accepted);
        Ok(verified)
    }

    /// The full check, signature included. The issuer is chosen by the unverified `iss`;
    /// jsonwebtoken then checks `iss` again under the signature.
    fn verify_uncached(&self, token: &str, now: i64) -> Result<Accepted, BearerError> {
        let parts = CompactParts::split(token).ok_or(BearerError::MalformedToken)?;
        let header: UnverifiedHeader =
            decode_part(parts.header).ok_or(BearerError::MalformedToken)?;
        if header.crit.is_some() {
            return Err(BearerError::MalformedToken);
        }
        let iss = decode_part::<UnverifiedIssuer>(parts.payload)
            .ok_or(BearerError::MalformedToken)?
            .iss
            .ok_or_else(|| BearerError::MissingClaim("iss".into()))?;
        let issuer = self.issuers.get(&iss).ok_or(BearerError::UnknownIssuer)?;
        let alg = issuer.allowed_algorithm(&header.alg)?;
        let claims = issuer.verify_signature(token, alg, header.kid.as_deref())?;
        issuer.accept(&claims, now)
    }

    /// Fetch the keys of every `jwks_url` issuer. A failed fetch keeps that issuer's last
    /// good keys (and is logged); until a first fetch succeeds its tokens are refused.
    /// A changed key set empties the token cache, so a withdrawn key stops working now.
    pub async fn refresh(&self) {
        let Some(client) = &self.http else {
            return;
        };
        let fetches = self
            .issuers
            .values()
            .filter_map(|issuer| Some(refresh_issuer(client, issuer, issuer.remote.as_ref()?)));
        let changed = futures::future::join_all(fetches).await;
        if changed.into_iter().any(|c| c) {
            self.cache.invalidate_all();
        }
    }
}

/// One issuer's `jwks_url`; `true` when its key set changed.
async fn refresh_issuer(client: &reqwest::Client, issuer: &Issuer, remote: &RemoteKeys) -> bool {
    match remote.refresh(client, &issuer.key_algorithms()).await {
        Ok(changed) => {
            if changed {
                tracing::info!(issuer = %issuer.name, url = %remote.url, "JWKS keys updated");
            }
            changed
        }
        Err(reason) => {
            tracing::warn!(issuer = %issuer.name, url = %remote.url, %reason,
                "JWKS refresh failed; keeping the last good keys");
            false
        }
    }
}

/// The HTTP client for `jwks_url` issuers, if there are any.
fn remote_client(
    issuers: &[IssuerConfig],
    problems: &mut Vec<ConfigProblem>,
) -> Option<reqwest::Client> {
    let first = issuers
        .iter()
        .position(|i| matches!(i.keys, Some(KeySource::JwksUrl(_))))?;
    http_client()
        .map_err(|reason| problems.push((format!("issuers[{first}].jwks_url"), reason)))
        .ok()
}

fn token_cache() -> Cache<Box<str>, Accepted, foldhash::fast::RandomState> {
    Cache::builder()
        .max_capacity(TOKEN_CACHE_CAPACITY)
        .expire_after(UntilExpiry)
        .build_with_hasher(foldhash::fast::RandomState::default())
}

/// Per-entry expiry: each verified token only as long as it is valid.
struct UntilExpiry;

impl Expiry<Box<str>, Accepted> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &Box<str>,
        value: &Accepted,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.cache_for)
    }
}
