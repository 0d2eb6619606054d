//! Recovery codes: ten single-use codes shown once when the first factor is enrolled (and
//! on request), for a user who lost their authenticator. Only their SHA-256 is stored.

use sha2::{Digest, Sha256};

pub const COUNT: usize = 10;

/// Lower-case letters and digits without the look-alikes (0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Ten new codes (`xxxxx-xxxxx`, 50 bits each) and their hashes, in the same order.
pub fn generate() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..COUNT).map(|_| one()).collect();
    let hashes = codes.iter().map(|c| hash(c)).collect();
    (codes, hashes)
}

fn one() -> String {
    let mut out = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            out.push('-');
        }
        let n = rand::random_range(0..ALPHABET.len());
        out.push(char::from(ALPHABET[n]));
    }
    out
}

/// A code as typed, in the form it was generated in: lower case, no spaces or dashes.
/// `None` when it cannot be a recovery code (so a six-digit TOTP code is never one).
pub fn normalized(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == 10 && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// The stored hash of a code (as typed or generated).
pub fn hash(code: &str) -> String {
    let canonical = normalized(code).unwrap_or_else(|| code.to_string());
    crate::directory::audit::hex(&Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_hash_as_typed() {
        let (codes, hashes) = generate();
        assert_eq!(codes.len(), COUNT);
        let unique: std::collections::BTreeSet<_> = hashes.iter().collect();
        assert_eq!(unique.len(), COUNT);
        let c = &codes[0];
        assert_eq!(c.len(), 11);
        assert_eq!(hash(&c.to_uppercase().replace('-', " ")), hashes[0]);
        assert!(normalized("123456").is_none());
        assert!(
            normalized("abcde-fghj0").is_none(),
            "0 is not in the alphabet"
        );
    }
}
