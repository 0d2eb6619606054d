//! Prints a bearer token for `scripts/bench`: RS256, signed with the jwt test key
//! (`src/jwt/testdata/rsa.pem`, kid `rsa-1`), for issuer https://idp.example.com,
//! audience partnergate, valid for an hour, naming the user by `email`.
//!
//! usage: bench_token EMAIL [ROLE,ROLE,...]
//!
//! The token also carries a `roles` claim (a JSON array), for the peers in the bench
//! (HAProxy, Envoy) that check a role from the token itself; partnergate ignores it and
//! takes the user's roles from its directory. Without ROLES the claim holds the user's
//! roles in `config/demo-directory.toml` (empty for a user not there); an explicit
//! ROLES, even `""`, replaces them (the bench's "role missing → 403" check).

use std::time::{SystemTime, UNIX_EPOCH};

fn directory_roles(email: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/demo-directory.toml"
    ))?;
    let directory: toml::Value = toml::from_str(&text)?;
    let users = directory.get("user").and_then(toml::Value::as_array);
    let user = users
        .into_iter()
        .flatten()
        .find(|u| u.get("email").and_then(toml::Value::as_str) == Some(email));
    Ok(user
        .and_then(|u| u.get("roles"))
        .and_then(toml::Value::as_array)
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let email = args
        .next()
        .ok_or("usage: bench_token EMAIL [ROLE,ROLE,...]")?;
    let roles: Vec<String> = match args.next() {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        None => directory_roles(&email)?,
    };
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
        "roles": roles,
    });
    println!("{}", jsonwebtoken::encode(&header, &claims, &key)?);
    Ok(())
}
