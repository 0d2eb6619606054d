//! Checking `X-Partner-Assertion` the way a real upstream would: against the gateway's
//! published JWKS, fetched at start, refreshed every few minutes, and re-fetched (at most
//! every few seconds) when an assertion does not verify — a rotated key then needs no
//! restart.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

/// How often the JWKS is re-read even when every assertion verifies.
const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Fewest seconds between two fetches triggered by failing assertions.
const REFETCH_AFTER: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS is a few keys; anything much larger is not one.
const MAX_JWKS_BYTES: usize = 256 * 1024;

pub(super) const ASSERTION_HEADER: &str = "x-partner-assertion";

/// The outcome for one request, as `/debug/headers` reports it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct AssertionReport {
    pub verified: bool,
    pub claims: Option<Value>,
    pub error: Option<String>,
}

impl AssertionReport {
    pub fn not_checked() -> Self {
        AssertionReport::failed("not checked: the portal runs without --jwks-url")
    }

    fn failed(error: impl Into<String>) -> Self {
        AssertionReport {
            verified: false,
            claims: None,
            error: Some(error.into()),
        }
    }

    fn verified(claims: Value) -> Self {
        AssertionReport {
            verified: true,
            claims: Some(claims),
            error: None,
        }
    }
}

pub(super) struct AssertionVerifier {
    jwks_url: reqwest::Url,
    audience: Option<String>,
    client: reqwest::Client,
    jwks: ArcSwapOption<String>,
    /// When the last fetch started; the lock also keeps fetches one at a time.
    last_fetch: Mutex<Option<Instant>>,
}

impl AssertionVerifier {
    pub fn new(jwks_url: reqwest::Url, audience: Option<String>) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        AssertionVerifier {
            jwks_url,
            audience,
            client,
            jwks: ArcSwapOption::empty(),
            last_fetch: Mutex::new(None),
        }
    }

    /// Verify the request's assertion, fetching the JWKS again if it does not verify
    /// against the keys held (a new key, or none fetched yet).
    pub async fn check(&self, headers: &HeaderMap) -> AssertionReport {
        let token = match assertion_token(headers) {
            Ok(token) => token,
            Err(reason) => return AssertionReport::failed(reason),
        };
        let first = self.verify(token);
        if first.verified {
            return first;
        }
        if self.refresh(REFETCH_AFTER).await {
            return self.verify(token);
        }
        first
    }

    fn verify(&self, token: &str) -> AssertionReport {
        let Some(jwks) = self.jwks.load_full() else {
            return AssertionReport::failed(format!("no JWKS loaded from {}", self.jwks_url));
        };
        match crate::jwt::verify_assertion(&jwks, token, self.audience.as_deref(), unix_now()) {
            Ok(claims) => AssertionReport::verified(claims),
            Err(reason) => AssertionReport::failed(reason),
        }
    }

    /// Fetch the JWKS unless a fetch started less than `min_age` ago; whether a new
    /// JWKS was stored.
    pub async fn refresh(&self, min_age: Duration) -> bool {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < min_age) {
            return false;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(jwks) => {
                self.jwks.store(Some(Arc::new(jwks)));
                true
            }
            Err(error) => {
                tracing::warn!(url = %self.jwks_url, %error, "cannot fetch the JWKS");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<String, String> {
        let response = self
            .client
            .get(self.jwks_url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        let text = String::from_utf8(body.to_vec()).map_err(|_| "not UTF-8".to_owned())?;
        check_jwks_shape(&text)?;
        Ok(text)
    }
}

/// Keep a working JWKS rather than replace it with something that is not one.
fn check_jwks_shape(text: &str) -> Result<(), String> {
    let document: Value = serde_json::from_str(text).map_err(|_| "not JSON".to_owned())?;
    match document.get("keys") {
        Some(Value::Array(_)) => Ok(()),
        _ => Err("no \"keys\" array".to_owned()),
    }
}

fn assertion_token(headers: &HeaderMap) -> Result<&str, &'static str> {
    let mut values = headers.get_all(ASSERTION_HEADER).iter();
    let value = values.next().ok_or("no X-Partner-Assertion header")?;
    if values.next().is_some() {
        return Err("more than one X-Partner-Assertion header");
    }
    value
        .to_str()
        .map_err(|_| "X-Partner-Assertion is not visible ASCII")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Re-read the JWKS every [`REFRESH_EVERY`] until the portal (the last strong
/// reference) is gone.
pub(super) async fn refresh_periodically(verifier: Weak<AssertionVerifier>) {
    let mut ticks = tokio::time::interval(REFRESH_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(verifier) = verifier.upgrade() else {
            return;
        };
        verifier.refresh(Duration::ZERO).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn token_comes_from_exactly_one_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            assertion_token(&headers),
            Err("no X-Partner-Assertion header")
        );
        headers.insert(ASSERTION_HEADER, HeaderValue::from_static("a.b.c"));
        assert_eq!(assertion_token(&headers), Ok("a.b.c"));
        headers.append(ASSERTION_HEADER, HeaderValue::from_static("d.e.f"));
        assert!(assertion_token(&headers).is_err());
        let mut odd = HeaderMap::new();
        odd.insert(
            ASSERTION_HEADER,
            HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        assert!(assertion_token(&odd).is_err());
    }

    #[test]
    fn only_a_keys_document_replaces_the_jwks() {
        assert!(check_jwks_shape(r#"{"keys":[]}"#).is_ok());
        for bad in ["", "<html>", "[]", r#"{"keys":{}}"#, r#"{"key":[]}"#] {
            assert!(check_jwks_shape(bad).is_err(), "{bad:?}");
        }
    }
}
