//! Partner SSO: each partner org may sign in through its own OpenID Connect provider
//! (Entra ID, Okta, Google Workspace, Keycloak…). The authorization code flow with PKCE,
//! `state` and `nonce`, written on our own small client over `reqwest` and the JWT
//! verification the bearer tokens already use (`jsonwebtoken`, the keys checked per
//! algorithm family), rather than a general OpenID client crate: we need one flow, one
//! logout, and the hot path never touches any of it.
//!
//! What the directory keeps (connections, domains, subject links, flows in progress) is
//! `directory::sso`; the pages (`/.partnergate/sso/…`) are `portal::sso`.

mod claims;
mod provider;
mod secret;
mod token;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use moka::sync::Cache;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::directory::{SsoConnection, SsoFlow, Timestamp};

pub use claims::{email as claimed_email, mapped_roles, mfa_attested};
pub use provider::{check_url, Provider, Providers};
pub use secret::SecretSource;
pub(crate) use token::{verify_id_token, verify_logout_token};
pub use token::{Expect, LogoutToken, BACKCHANNEL_EVENT};

/// How long a sign-in may spend at the identity provider.
pub const FLOW_TTL: i64 = 600;
/// The callback every connection registers at its provider, under `public_url`.
pub const CALLBACK_PATH: &str = "/.partnergate/sso/callback";
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why an SSO step failed: a stable reason word (audit, metrics, logs) and a detail for
/// the log (never shown to the browser, never holding a token or secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct SsoError {
    pub reason: &'static str,
    pub detail: String,
}

impl SsoError {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        SsoError {
            reason,
            detail: detail.into(),
        }
    }

    pub fn discovery(detail: impl Into<String>) -> Self {
        Self::new("discovery_failed", detail)
    }

    pub fn keys(detail: impl Into<String>) -> Self {
        Self::new("keys_unavailable", detail)
    }

    pub fn token(detail: impl Into<String>) -> Self {
        Self::new("id_token_invalid", detail)
    }

    fn exchange(detail: impl Into<String>) -> Self {
        Self::new("token_exchange_failed", detail)
    }
}

/// The SSO client: one HTTP client, the providers by issuer, the logout tokens seen.
pub struct Sso {
    client: reqwest::Client,
    providers: Providers,
    /// `jti`s of logout tokens already acted on (replays are answered, not repeated).
    seen_logouts: Cache<String, ()>,
}

/// A sign-in about to leave for the provider: the URL to send the browser to, the flow
/// to remember, and the `state` for the browser's cookie.
pub struct Departure {
    pub url: String,
    pub flow: SsoFlow,
    pub state: String,
}

/// What the provider said about the user, verified.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub claims: Map<String, Value>,
    pub subject: String,
}

impl Sso {
    pub fn new() -> Result<Sso, String> {
        Ok(Sso {
            client: crate::jwt::remote::http_client()?,
            providers: Providers::default(),
            seen_logouts: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        })
    }

    /// The provider of a connection (discovered now or cached).
    pub async fn provider(&self, c: &SsoConnection) -> Result<Arc<Provider>, SsoError> {
        self.providers.get(&self.client, &c.issuer).await
    }

    /// A connection was changed: discover its issuer again on next use.
    pub fn forget(&self, issuer: &str) {
        self.providers.forget(issuer);
    }

    /// Start a sign-in at `c`'s provider: new `state`, `nonce` and PKCE verifier.
    pub async fn depart(
        &self,
        c: &SsoConnection,
        redirect_uri: &str,
        rd: &str,
        login_hint: Option<&str>,
        now: Timestamp,
    ) -> Result<Departure, SsoError> {
        let provider = self.provider(c).await?;
        let state = crate::session::new_token();
        let nonce = crate::session::new_token();
        let verifier = format!(
            "{}{}",
            crate::session::new_token(),
            crate::session::new_token()
        );
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let endpoint = &provider.metadata.authorization_endpoint;
        let mut url = String::with_capacity(512);
        url.push_str(endpoint);
        url.push(if endpoint.contains('?') { '&' } else { '?' });
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let scope = c.scopes.join(" ");
        params.push(("scope", scope.as_str()));
        if let Some(hint) = login_hint {
            params.push(("login_hint", hint));
        }
        push_form(&mut url, &params);
        let flow = SsoFlow {
            state_hash: crate::session::hash_token(&state),
            org_id: c.org_id.clone(),
            nonce,
            verifier,
            rd: rd.to_string(),
            created_at: now,
            expires_at: now + FLOW_TTL,
        };
        Ok(Departure { url, flow, state })
    }

    /// The provider sent the browser back with `code`: exchange it (with the PKCE
    /// verifier and the client secret), verify the ID token, and read userinfo when the
    /// connection asks for it.
    pub async fn arrive(
        &self,
        c: &SsoConnection,
        flow: &SsoFlow,
        code: &str,
        redirect_uri: &str,
        now: Timestamp,
    ) -> Result<Arrival, SsoError> {
        let provider = self.provider(c).await?;
        let secret = SecretSource::parse(&c.client_secret)
            .and_then(|s| s.read())
            .map_err(|e| SsoError::new("client_secret_unavailable", e))?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", flow.verifier.as_str()),
        ];
        let mut request = self
            .client
            .post(&provider.metadata.token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json");
        if provider.metadata.secret_in_body() {
            form.push(("client_id", c.client_id.as_str()));
            form.push(("client_secret", secret.as_str()));
        } else {
            // RFC 6749 §2.3.1: both parts form-encoded before base64.
            let mut pair = String::new();
            push_encoded(&mut pair, &c.client_id);
            pair.push(':');
            push_encoded(&mut pair, &secret);
            let basic = format!("Basic {}", STANDARD.encode(pair));
            request = request.header(reqwest::header::AUTHORIZATION, basic);
        }
        let mut body = String::new();
        push_form(&mut body, &form);
        let response = request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| SsoError::exchange(format!("request failed: {e}")))?;
        let status = response.status();
        let bytes = limited(response).await.map_err(SsoError::exchange)?;
        if !status.is_success() {
            let error = serde_json::from_slice::<TokenError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_default();
            return Err(SsoError::exchange(format!("HTTP {status} {error}")));
        }
        let tokens: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| SsoError::exchange(format!("not a token response: {e}")))?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| SsoError::exchange("no id_token in the token response"))?;
        let expect = Expect {
            issuer: &c.issuer,
            client_id: &c.client_id,
            now,
        };
        let (alg, kid, _) = token::header(&id_token)?;
        let keys = provider.key(&self.client, alg, kid.as_deref()).await?;
        let mut claims = verify_id_token(&id_token, &keys, &expect, &flow.nonce)?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if c.userinfo {
            if let (Some(endpoint), Some(access)) =
                (&provider.metadata.userinfo_endpoint, &tokens.access_token)
            {
                let extra = self.userinfo(endpoint, access).await?;
                // §5.3.2: userinfo for another subject must not be used.
                if extra.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                    return Err(SsoError::new(
                        "userinfo_invalid",
                        "userinfo names another subject",
                    ));
                }
                for (k, v) in extra {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        Ok(Arrival { claims, subject })
    }

    async fn userinfo(&self, endpoint: &str, access: &str) -> Result<Map<String, Value>, SsoError> {
        let response = self
            .client
            .get(endpoint)
            .bearer_auth(access)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| SsoError::new("userinfo_invalid", format!("request failed: {e}")))?;
        let status = response.status();
        let bytes = limited(response)
            .await
            .map_err(|e| SsoError::new("userinfo_invalid", e))?;
        if !status.is_success() {
            return Err(SsoError::new("userinfo_invalid", format!("HTTP {status}")));
        }
        serde_json::from_slice(&bytes).map_err(|_| {
            SsoError::new(
                "userinfo_invalid",
                "not a JSON object (signed userinfo is not supported)",
            )
        })
    }

    /// Verify a back-channel logout token for connection `c`. A token seen before (same
    /// `jti`) is `Ok(None)`: answered, not acted on twice.
    pub async fn logout_token(
        &self,
        c: &SsoConnection,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<LogoutToken>, SsoError> {
        let provider = self.provider(c).await?;
        let (alg, kid, _) = token::header(token)?;
        let keys = provider.key(&self.client, alg, kid.as_deref()).await?;
        let expect = Expect {
            issuer: &c.issuer,
            client_id: &c.client_id,
            now,
        };
        let verified = verify_logout_token(token, &keys, &expect)?;
        let key = format!("{}\n{}", c.issuer, verified.jti);
        if self.seen_logouts.contains_key(&key) {
            return Ok(None);
        }
        self.seen_logouts.insert(key, ());
        Ok(Some(verified))
    }

    /// Where to send the browser to end its session at the provider too (RP-initiated
    /// logout), if the provider publishes an `end_session_endpoint`.
    pub async fn end_session_url(
        &self,
        c: &SsoConnection,
        post_logout_redirect_uri: &str,
    ) -> Result<Option<String>, SsoError> {
        let provider = self.provider(c).await?;
        Ok(provider.metadata.end_session_endpoint.as_ref().map(|e| {
            let mut url = e.clone();
            url.push(if e.contains('?') { '&' } else { '?' });
            push_form(
                &mut url,
                &[
                    ("client_id", c.client_id.as_str()),
                    ("post_logout_redirect_uri", post_logout_redirect_uri),
                ],
            );
            url
        }))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
}

async fn limited(response: reqwest::Response) -> Result<Vec<u8>, String> {
    crate::jwt::remote::read_body(response, MAX_RESPONSE_BYTES).await
}

/// `application/x-www-form-urlencoded` pairs appended to `out`.
pub fn push_form(out: &mut String, pairs: &[(&str, &str)]) {
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_encoded(out, k);
        out.push('=');
        push_encoded(out, v);
    }
}

/// One value form-encoded (for a query string).
pub fn form_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_encoded(&mut out, s);
    out
}

fn push_encoded(out: &mut String, s: &str) {
    use std::fmt::Write;
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The email domain of an address (lower-cased), if it has one.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    let domain = domain.to_ascii_lowercase();
    (!local.is_empty() && valid_domain(&domain)).then_some(domain)
}

/// A DNS name as an org's email domain: labels of letters, digits and hyphens, at
/// least two of them.
pub fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.split('.').count() >= 2
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests;
