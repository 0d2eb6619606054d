//! Second factors: the rules of TOTP codes, recovery codes and passkeys, and
//! [`SecondFactors`], which checks a code a user typed against what they enrolled. The
//! directory keeps the factors (`directory::factors`); the sign-in (`session::login`)
//! asks for a second factor only after the password was right.

pub mod passkey;
pub mod recovery;
pub mod totp;

use std::sync::Arc;

use crate::directory::{Amr, Directory, Factor, FactorKind, StoreResult, Timestamp};

/// How long a sign-in may wait between the right password and the second factor.
pub const CHALLENGE_TTL: i64 = 300;

/// The longest factor name a user may give.
pub const MAX_NAME_LEN: usize = 64;

/// A factor name as typed, trimmed and bounded; `None` when empty or too long or not
/// printable.
pub fn factor_name(typed: &str) -> Option<String> {
    let name = typed.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_LEN
        && !name.chars().any(char::is_control);
    ok.then(|| name.to_string())
}

/// A new factor id: `f-` and 16 random lower-hex digits.
pub fn new_factor_id() -> String {
    format!("f-{:016x}", rand::random::<u64>())
}

/// What a typed code turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// A fresh TOTP code of this factor.
    Totp { factor_id: String },
    /// An unused recovery code (now used).
    Recovery,
    /// Wrong, replayed, or used before.
    Refused,
}

impl CodeCheck {
    /// The method it adds to the session.
    pub fn amr(&self) -> Option<Amr> {
        match self {
            CodeCheck::Totp { .. } | CodeCheck::Recovery => Some(Amr::OTP),
            CodeCheck::Refused => None,
        }
    }
}

/// Checks codes against the directory.
pub struct SecondFactors {
    directory: Arc<Directory>,
}

impl SecondFactors {
    pub fn new(directory: Arc<Directory>) -> Self {
        SecondFactors { directory }
    }

    /// Check `code` for `user_id` at `now`: each TOTP factor first (a code accepted once
    /// per time step: a replay is refused), then the recovery codes.
    pub async fn check_code(
        &self,
        user_id: &str,
        code: &str,
        now: Timestamp,
    ) -> StoreResult<CodeCheck> {
        let store = self.directory.store();
        let factors: Vec<Factor> = store.factors(user_id).await?;
        for f in factors.iter().filter(|f| f.kind == FactorKind::Totp) {
            if let Some(step) = totp::matching_step(&f.secret, code, now) {
                if store.use_totp_step(&f.id, step, now).await? {
                    return Ok(CodeCheck::Totp {
                        factor_id: f.id.clone(),
                    });
                }
                return Ok(CodeCheck::Refused);
            }
        }
        if let Some(canonical) = recovery::normalized(code) {
            let hash = recovery::hash(&canonical);
            if store.use_recovery_code(user_id, &hash, now).await? {
                return Ok(CodeCheck::Recovery);
            }
        }
        Ok(CodeCheck::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(factor_name("  Phone ").as_deref(), Some("Phone"));
        assert_eq!(factor_name("   "), None);
        assert_eq!(factor_name(&"x".repeat(65)), None);
        assert_eq!(factor_name("a\u{7}b"), None);
    }
}
