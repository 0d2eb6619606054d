//! Second factors as the directory keeps them: TOTP authenticators and passkeys (several
//! per user, each with a name), single-use recovery codes (hashed), and the sign-in
//! challenges between a right password and the second factor. The rules (what a code is,
//! when a factor is needed) are the top-level `mfa` module; the store makes each change,
//! with its directory change and audit record, in one transaction.

use async_trait::async_trait;
use serde::Serialize;

use super::audit::AuditEntry;
use super::error::StoreResult;
use super::model::Timestamp;

/// The kinds of second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FactorKind {
    /// A time-based one-time password app (RFC 6238).
    Totp,
    /// A WebAuthn credential.
    Passkey,
}

impl FactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Totp => "totp",
            FactorKind::Passkey => "passkey",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [FactorKind::Totp, FactorKind::Passkey]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One enrolled factor. `secret` is the TOTP secret (base32) or the passkey credential
/// (JSON): never shown, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    pub kind: FactorKind,
    pub name: String,
    pub secret: String,
    /// TOTP: the last accepted time step.
    pub last_step: Option<i64>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// What admins and the user see of a factor (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactorSummary {
    pub id: String,
    pub kind: FactorKind,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

impl From<&Factor> for FactorSummary {
    fn from(f: &Factor) -> Self {
        FactorSummary {
            id: f.id.clone(),
            kind: f.kind,
            name: f.name.clone(),
            created_at: f.created_at,
            last_used_at: f.last_used_at,
        }
    }
}

/// A user's second factors as admins see them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FactorOverview {
    pub factors: Vec<FactorSummary>,
    pub recovery_codes_left: u32,
}

/// A sign-in waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginChallenge {
    pub token_hash: String,
    pub user_id: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// A passkey ceremony's server state while it runs (JSON).
    pub state: Option<String>,
}

/// The directory's part of second factors.
#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Every factor of the user, oldest first.
    async fn factors(&self, user_id: &str) -> StoreResult<Vec<Factor>>;

    /// Add a factor; when `recovery_hashes` is given, replace the user's recovery codes
    /// with them. One transaction with a directory change for the user and `audit`.
    async fn add_factor(
        &self,
        factor: &Factor,
        recovery_hashes: Option<&[String]>,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Remove one factor of the user (false: no such factor). Removing the last one also
    /// removes the recovery codes. Audited, with a directory change for the user.
    async fn remove_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Remove every factor and recovery code of the user (an admin's reset) and end every
    /// session of the user; returns how many factors there were. Audited, with a
    /// directory change for the user.
    async fn reset_factors(
        &self,
        user_id: &str,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> StoreResult<u32>;

    /// Accept TOTP time step `step` for the factor, once: true only if `step` is later
    /// than every step accepted before (a replayed code is refused).
    async fn use_totp_step(&self, factor_id: &str, step: i64, now: Timestamp) -> StoreResult<bool>;

    /// Mark a passkey used and store its updated credential (the signature counter).
    async fn use_passkey(
        &self,
        factor_id: &str,
        credential: &str,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Use a recovery code (by hash), once: true if it existed and was unused.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Replace the user's recovery codes. Audited.
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
        audit: &AuditEntry,
        now: Timestamp,
    ) -> StoreResult<()>;

    async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u32>;

    /// Set the user's password hash (a signed-in user changing it) and end every other
    /// session of the user (all but `keep`, the id hash of the session that changed it).
    /// One transaction with a directory change for the user and `audit`; returns the
    /// ended sessions' id hashes.
    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: &str,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> StoreResult<Vec<String>>;

    async fn insert_challenge(&self, challenge: &LoginChallenge) -> StoreResult<()>;

    /// The challenge, if it exists and has not expired at `now`.
    async fn challenge(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<LoginChallenge>>;

    /// Replace a challenge's ceremony state.
    async fn set_challenge_state(&self, token_hash: &str, state: Option<&str>) -> StoreResult<()>;

    /// Delete the challenge (used, or abandoned); also drops every expired one.
    async fn delete_challenge(&self, token_hash: &str, now: Timestamp) -> StoreResult<()>;
}
