//! `[[issuers]]`: the bearer-token issuers partnergate trusts; and `[assertion]`, the
//! token it signs for upstreams.

use std::time::Duration;

use crate::config::file::{AssertionFile, IssuerFile};
use crate::config::{AssertionConfig, IssuerConfig, KeySource};

use super::validator::Validator;

const JWT_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

pub(super) fn issuers(v: &mut Validator, value: Option<&toml::Value>) -> Vec<IssuerConfig> {
    let Some(value) = value else {
        return Vec::new();
    };
    let mut out: Vec<IssuerConfig> = Vec::new();
    for (key, f) in v.array_of::<IssuerFile>("issuers", value) {
        if out.iter().any(|o| o.name == f.name) {
            v.problem(format!("{key}.name"), "duplicate issuer name");
        }
        out.push(issuer(v, &key, f));
    }
    out
}

fn issuer(v: &mut Validator, key: &str, f: IssuerFile) -> IssuerConfig {
    if f.issuer.trim().is_empty() {
        v.problem(
            format!("{key}.issuer"),
            "must not be empty (tokens must carry iss)",
        );
    }
    if f.audiences.is_empty() {
        v.problem(
            format!("{key}.audiences"),
            "list at least one audience (tokens must carry aud)",
        );
    }
    if f.algorithms.is_empty() {
        v.problem(format!("{key}.algorithms"), "list at least one algorithm");
    }
    for alg in &f.algorithms {
        if alg.eq_ignore_ascii_case("none") {
            v.problem(format!("{key}.algorithms"), "\"none\" is never accepted");
        } else {
            v.one_of(format!("{key}.algorithms"), alg, JWT_ALGORITHMS, |a| a);
        }
    }
    let uses_hmac = f.algorithms.iter().any(|a| a.starts_with("HS"));
    let uses_keys = f.algorithms.iter().any(|a| !a.starts_with("HS"));
    if uses_hmac && f.hmac_secret_file.is_none() {
        v.problem(
            format!("{key}.hmac_secret_file"),
            "HS* algorithms need an explicit secret file",
        );
    }
    let keys = match (&f.jwks_file, &f.jwks_url) {
        (Some(file), None) => Some(KeySource::JwksFile(v.path(file))),
        (None, Some(url)) => {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                v.problem(format!("{key}.jwks_url"), "must be an http(s) URL");
            }
            Some(KeySource::JwksUrl(url.clone()))
        }
        (Some(_), Some(_)) => {
            v.problem(
                format!("{key}.jwks_url"),
                "set jwks_file or jwks_url, not both",
            );
            None
        }
        (None, None) => None,
    };
    if uses_keys && keys.is_none() {
        v.problem(
            format!("{key}.jwks_file"),
            "asymmetric algorithms need jwks_file or jwks_url",
        );
    }
    IssuerConfig {
        name: f.name,
        issuer: f.issuer,
        audiences: f.audiences,
        algorithms: f.algorithms,
        keys,
        hmac_secret_file: f.hmac_secret_file.as_deref().map(|p| v.path(p)),
        user_claim: f.user_claim.unwrap_or_else(|| "email".into()),
        leeway: match f.leeway.as_deref() {
            Some("0s") => Duration::ZERO,
            other => v.duration(&format!("{key}.leeway"), other, Duration::from_secs(30)),
        },
    }
}

pub(super) fn assertion(v: &mut Validator, a: AssertionFile) -> AssertionConfig {
    AssertionConfig {
        key_file: v.path(&a.key_file),
        ttl: v.duration("assertion.ttl", a.ttl.as_deref(), Duration::from_secs(60)),
    }
}
