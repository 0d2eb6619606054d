//! An OpenID provider as partnergate knows it: its discovery document (fetched, checked,
//! cached for an hour) and its signing keys (fetched with it, fetched again when a token
//! names a key we do not have, at most every 30 seconds, so a key rotation at the IdP is
//! picked up without a restart).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::jwt::jwks::{parse_jwks, VerifyKey};
use crate::jwt::remote::fetch;

use super::SsoError;

const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
const KEYS_REFETCH_AFTER: Duration = Duration::from_secs(30);

/// The signature algorithms an ID token or logout token may use: asymmetric only (an
/// HMAC with the client secret is legal in OpenID Connect but would make the secret a
/// verification key; we do not accept it), never `none`.
pub const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The fields of a discovery document partnergate uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub backchannel_logout_supported: Option<bool>,
}

impl Metadata {
    /// `client_secret_basic` unless the provider lists only `client_secret_post`.
    pub fn secret_in_body(&self) -> bool {
        self.token_endpoint_auth_methods_supported
            .as_ref()
            .is_some_and(|m| {
                m.iter().any(|x| x == "client_secret_post")
                    && !m.iter().any(|x| x == "client_secret_basic")
            })
    }
}

/// One provider: metadata and keys.
pub struct Provider {
    pub metadata: Metadata,
    keys: ArcSwap<Vec<VerifyKey>>,
    keys_fetched: Mutex<Instant>,
    fetched: Instant,
}

impl Provider {
    /// The key for a token's `alg` and `kid`, fetching the key set again (rate-limited)
    /// when it has none by that kid.
    pub(crate) async fn key(
        &self,
        client: &reqwest::Client,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Arc<Vec<VerifyKey>>, SsoError> {
        let keys = self.keys.load_full();
        if pick(&keys, alg, kid).is_some() {
            return Ok(keys);
        }
        let due = {
            let mut last = self
                .keys_fetched
                .lock()
                .map_err(|_| SsoError::keys("lock"))?;
            let due = last.elapsed() >= KEYS_REFETCH_AFTER;
            if due {
                *last = Instant::now();
            }
            due
        };
        if !due {
            return Err(SsoError::token(
                "no key of the identity provider matches the token",
            ));
        }
        let fresh = Arc::new(fetch_keys(client, &self.metadata.jwks_uri).await?);
        self.keys.store(fresh.clone());
        Ok(fresh)
    }
}

/// The key of `keys` for `alg` and `kid` (the only fitting key when the token has no kid).
pub(crate) fn pick<'k>(
    keys: &'k [VerifyKey],
    alg: Algorithm,
    kid: Option<&str>,
) -> Option<&'k VerifyKey> {
    let mut fitting = keys.iter().filter(|k| k.fits(alg));
    match kid {
        Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)),
        None => match (fitting.next(), fitting.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        },
    }
}

/// Providers by issuer, shared by every connection that names the same issuer.
#[derive(Default)]
pub struct Providers {
    cached: Mutex<HashMap<String, Arc<Provider>>>,
}

impl Providers {
    /// The provider of `issuer`: cached, or discovered now.
    pub async fn get(
        &self,
        client: &reqwest::Client,
        issuer: &str,
    ) -> Result<Arc<Provider>, SsoError> {
        let cached = self
            .cached
            .lock()
            .ok()
            .and_then(|c| c.get(issuer).cloned())
            .filter(|p| p.fetched.elapsed() < DISCOVERY_TTL);
        if let Some(p) = cached {
            return Ok(p);
        }
        let provider = Arc::new(discover(client, issuer).await?);
        if let Ok(mut c) = self.cached.lock() {
            c.insert(issuer.to_string(), provider.clone());
        }
        Ok(provider)
    }

    /// Forget a provider (its connection changed), so the next sign-in discovers it again.
    pub fn forget(&self, issuer: &str) {
        if let Ok(mut c) = self.cached.lock() {
            c.remove(issuer);
        }
    }
}

/// Fetch and check `issuer`'s discovery document (OpenID Connect Discovery 1.0 §4) and
/// its keys.
pub async fn discover(client: &reqwest::Client, issuer: &str) -> Result<Provider, SsoError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let body = fetch(client, &url)
        .await
        .map_err(|e| SsoError::discovery(format!("{url}: {e}")))?;
    let metadata: Metadata = serde_json::from_slice(&body)
        .map_err(|e| SsoError::discovery(format!("{url}: not a discovery document: {e}")))?;
    // §4.3: the issuer in the document must be the one we asked, exactly.
    if metadata.issuer != issuer {
        return Err(SsoError::discovery(format!(
            "{url} names the issuer {:?}, not {issuer:?}",
            metadata.issuer
        )));
    }
    for (name, endpoint) in [
        (
            "authorization_endpoint",
            Some(&metadata.authorization_endpoint),
        ),
        ("token_endpoint", Some(&metadata.token_endpoint)),
        ("jwks_uri", Some(&metadata.jwks_uri)),
        ("userinfo_endpoint", metadata.userinfo_endpoint.as_ref()),
        (
            "end_session_endpoint",
            metadata.end_session_endpoint.as_ref(),
        ),
    ] {
        if let Some(e) = endpoint {
            check_url(e).map_err(|why| SsoError::discovery(format!("{name}: {why}")))?;
        }
    }
    let keys = fetch_keys(client, &metadata.jwks_uri).await?;
    Ok(Provider {
        metadata,
        keys: ArcSwap::from_pointee(keys),
        keys_fetched: Mutex::new(Instant::now()),
        fetched: Instant::now(),
    })
}

async fn fetch_keys(client: &reqwest::Client, url: &str) -> Result<Vec<VerifyKey>, SsoError> {
    let body = fetch(client, url)
        .await
        .map_err(|e| SsoError::keys(format!("{url}: {e}")))?;
    let parsed =
        parse_jwks(&body, &ALGORITHMS).map_err(|e| SsoError::keys(format!("{url}: {e}")))?;
    if parsed.keys.is_empty() {
        return Err(SsoError::keys(format!("{url}: no usable signing key")));
    }
    Ok(parsed.keys)
}

/// An issuer or endpoint URL: `https://`, or `http://` to the loopback only (a provider
/// on the same machine, as in development and tests).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > 2048 || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err("not a URL".into());
    }
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        let loopback = name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "{url:?} must use https:// (http:// only to 127.0.0.1 or localhost)"
            ));
        }
        rest
    } else {
        return Err(format!("{url:?} must start with https://"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(format!("{url:?} has no host, or carries credentials"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls() {
        for ok in [
            "https://login.microsoftonline.com/tenant/v2.0",
            "https://acme.okta.com",
            "http://127.0.0.1:4000",
            "http://localhost:8080/realms/acme",
            "http://[::1]:9000",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://idp.example.com",
            "ftp://x",
            "https://",
            "https://user:pw@idp.example.com",
            "http://127.0.0.1.evil.example",
            "https://a b",
            "idp.example.com",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_authentication_follows_the_provider() {
        let mut m = Metadata {
            issuer: "https://i".into(),
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            jwks_uri: String::new(),
            userinfo_endpoint: None,
            end_session_endpoint: None,
            token_endpoint_auth_methods_supported: None,
            backchannel_logout_supported: None,
        };
        assert!(!m.secret_in_body());
        m.token_endpoint_auth_methods_supported = Some(vec!["client_secret_post".into()]);
        assert!(m.secret_in_body());
        m.token_endpoint_auth_methods_supported = Some(vec![
            "client_secret_post".into(),
            "client_secret_basic".into(),
        ]);
        assert!(!m.secret_in_body());
    }
}
