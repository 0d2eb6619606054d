//! Prints a bearer token for `scripts/bench`: RS256, signed with the jwt test key
//! (`src/jwt/testdata/rsa.pem`, kid `rsa-1`), for issuer https://idp.example.com,
//! audience partnergate, valid for an hour, naming the user given as the only argument.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let email = std::env::args().nth(1).ok_or("usage: bench_token EMAIL")?;
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/jwt/testdata/rsa.pem"
    ))?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem)?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "iss": "https://idp.example.com",
        "aud": "partnergate",
        "iat": now,
        "exp": now + 3600,
        "email": email,
    });
    println!("{}", jsonwebtoken::encode(&header, &claims, &key)?);
    Ok(())
}
