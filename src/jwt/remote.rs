//! Keys published at an issuer's `jwks_url`: fetched in the background, swapped in
//! atomically, the last good set kept when a fetch fails.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;
use sha2::{Digest, Sha256};

use super::jwks::{parse_jwks, VerifyKey, MAX_JWKS_BYTES};

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REDIRECTS: usize = 3;

/// One fetched JWKS, identified by the digest of the document it came from.
pub(crate) struct KeySet {
    pub keys: Vec<VerifyKey>,
    digest: [u8; 32],
}

/// The keys of one `jwks_url` issuer; `None` until the first successful fetch.
pub(crate) struct RemoteKeys {
    pub url: String,
    pub current: ArcSwapOption<KeySet>,
}

impl RemoteKeys {
    pub fn new(url: String) -> Self {
        RemoteKeys {
            url,
            current: ArcSwapOption::empty(),
        }
    }

    /// Fetch and install the keys. `Ok(true)` when the set changed.
    pub async fn refresh(
        &self,
        client: &reqwest::Client,
        algorithms: &[Algorithm],
    ) -> Result<bool, String> {
        let document = fetch(client, &self.url).await?;
        let set = key_set(&document, algorithms)?;
        let unchanged = self
            .current
            .load()
            .as_ref()
            .is_some_and(|old| old.digest == set.digest);
        if !unchanged {
            self.current.store(Some(Arc::new(set)));
        }
        Ok(!unchanged)
    }
}

/// Keys an IdP publishes for other uses (encryption, other algorithms) are skipped,
/// but a set with no usable key at all is a failure.
fn key_set(document: &[u8], algorithms: &[Algorithm]) -> Result<KeySet, String> {
    let parsed = parse_jwks(document, algorithms)?;
    for problem in &parsed.problems {
        tracing::debug!(%problem, "JWKS key skipped");
    }
    if parsed.keys.is_empty() {
        return Err("the JWKS holds no key usable with the issuer's algorithms".into());
    }
    Ok(KeySet {
        keys: parsed.keys,
        digest: Sha256::digest(document).into(),
    })
}

pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(concat!("partnergate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client for jwks_url: {e}"))
}

/// GET `url`, refusing bodies over the JWKS size limit before and while reading.
pub(crate) async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("HTTP status {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
    {
        return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
    }
    read_body(response, MAX_JWKS_BYTES).await
}

/// The body of `response`, refused once it grows over `limit` bytes.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("body larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
