//! Session tokens: 256 random bits, base64url in the cookie, SHA-256 hex in the store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of a token in the cookie: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Cheap shape check so that garbage cookies never reach the directory.
pub fn token_shape_ok(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored form of a token (hex SHA-256).
pub fn hash_token(token: &str) -> String {
    crate::directory::audit::hex(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_well_formed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(token_shape_ok(&a));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn garbage_is_not_token_shaped() {
        for bad in [
            "",
            "x",
            &"a".repeat(42),
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert!(!token_shape_ok(bad), "{bad}");
        }
    }
}
