//! `jwks_url` issuers: refused until fetched, then verified; a failed refresh keeps
//! the last good keys.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::support::*;
use crate::config::KeySource;
use crate::jwt::{BearerError, BearerVerifier};

/// Serves `jwks.json` with the status in `status` (200 or an error, with an empty body).
async fn jwks_server(status: Arc<AtomicU16>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = std::fs::read_to_string(testdata("jwks.json")).unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let code = status.load(Ordering::SeqCst);
            let body = if code == 200 { body.as_str() } else { "" };
            let response = format!(
                "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{addr}/jwks.json")
}

fn remote_verifier(url: String) -> BearerVerifier {
    let cfg = issuer(
        "remote",
        IDP,
        &["RS256", "ES256"],
        Some(KeySource::JwksUrl(url)),
    );
    BearerVerifier::from_config(&[cfg]).unwrap()
}

#[tokio::test]
async fn refused_until_fetched_then_kept_on_failure() {
    let status = Arc::new(AtomicU16::new(503));
    let verifier = remote_verifier(jwks_server(status.clone()).await);
    assert!(verifier.has_remote_keys());
    let now = now();
    let token = es256(&claims(now));

    verifier.refresh().await;
    assert_eq!(
        verifier.verify(&token, now),
        Err(BearerError::KeysUnavailable)
    );

    status.store(200, Ordering::SeqCst);
    verifier.refresh().await;
    assert_eq!(verifier.verify(&token, now).unwrap().user.as_ref(), USER);

    status.store(500, Ordering::SeqCst);
    verifier.refresh().await;
    let other = rs256(&claims_with(now, serde_json::json!({ "jti": "fresh" })));
    assert_eq!(verifier.verify(&other, now).unwrap().user.as_ref(), USER);
}

#[tokio::test]
async fn unreachable_url_fails_closed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let verifier = remote_verifier(url);
    verifier.refresh().await;
    let now = now();
    assert_eq!(
        verifier.verify(&es256(&claims(now)), now),
        Err(BearerError::KeysUnavailable)
    );
}
