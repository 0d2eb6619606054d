//! The directory store: one trait, two real implementations (SQLite for one machine,
//! PostgreSQL for several instances). The request path never calls it directly: it goes
//! through the cache in [`super::Directory`].

use async_trait::async_trait;

use super::audit::{AuditEntry, AuditFilter, AuditRecord, AuditVerification};
use super::data::{DirectoryData, ImportCounts};
use super::model::{DirectoryStats, Identity, SessionRecord, Timestamp, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or answered with an error.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The input names records that do not exist or breaks a rule; one line per problem,
    /// each naming the record (`user "bob@acme.example": unknown org "acme2"`).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unavailable(format!("migration failed: {e}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the gateway reads and writes in the directory.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// "sqlite" or "postgres", for logs and `check`.
    fn kind(&self) -> &'static str;

    /// Apply pending schema migrations (run at start; safe with several instances).
    async fn migrate(&self) -> StoreResult<()>;

    /// A cheap round trip, for `/readyz` and `check`.
    async fn ping(&self) -> StoreResult<()>;

    /// The user with org, roles, permissions and grants; `None` for an unknown user id.
    async fn identity(&self, user_id: &str) -> StoreResult<Option<Identity>>;

    /// Case-insensitive lookup (emails are stored lower-cased).
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;

    /// Count a failed password for the user; once `failed_logins` reaches `max_failures`
    /// set `locked_until = lock_until` and reset the count. Appends `audit` (at `now`) in
    /// the same transaction, its `after` set to the account's new state
    /// (`{"failed_logins": n}`, or `{"failed_logins": 0, "locked_until": t}` when this
    /// failure locked it; none for an unknown user id). Returns true when this call locked
    /// the account.
    async fn record_login_failure(
        &self,
        user_id: &str,
        max_failures: u32,
        lock_until: Timestamp,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Reset the failure count and lock, set `last_login_at` and `last_seen_at` to `now`;
    /// appends `audit` in the same transaction.
    async fn record_login_success(
        &self,
        user_id: &str,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// Batched `last_seen_at` updates (the gateway throttles them to once a minute per user).
    async fn touch_users(&self, seen: &[(String, Timestamp)]) -> StoreResult<()>;

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()>;

    async fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRecord>>;

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;

    /// Every session of the user (log out everywhere); returns the deleted `id_hash`es.
    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<Vec<String>>;

    /// Batched `last_seen_at` updates of sessions (idle timeout across instances).
    async fn touch_sessions(&self, seen: &[(String, Timestamp)]) -> StoreResult<()>;

    /// Delete sessions idle since before `idle_before` or past `expires_at <= now`.
    async fn delete_expired_sessions(
        &self,
        idle_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64>;

    /// Upsert everything in `data` in one transaction (roles and accounts by name/id, orgs by
    /// id, users by email, grants by (user, account)). References are checked against the
    /// file and the existing directory; any problem rejects the whole import with
    /// [`StoreError::Invalid`]. `dry_run` validates and counts, then rolls back.
    async fn import(
        &self,
        data: &DirectoryData,
        now: Timestamp,
        dry_run: bool,
    ) -> StoreResult<ImportCounts>;

    /// The whole directory in the import format; password hashes only with `with_secrets`.
    async fn export(&self, with_secrets: bool) -> StoreResult<DirectoryData>;

    /// Counts for the directory gauges; `windows` are seconds back from `now`.
    async fn stats(&self, now: Timestamp, windows: &[i64]) -> StoreResult<DirectoryStats>;

    /// Append one record to the audit chain in a transaction of its own (for events that
    /// change nothing else: a refused login, a denied admin action). A change that writes
    /// to the directory appends its record inside its own transaction instead.
    async fn append_audit(&self, entry: &AuditEntry, now: Timestamp) -> StoreResult<AuditRecord>;

    /// Records matching `filter`, in seq order, at most `filter.effective_limit()`.
    async fn audit_list(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;

    /// Walk the whole chain (in pages, in one read snapshot) and report the first broken
    /// record. An error when the database cannot be read or has no audit log.
    async fn audit_verify(&self) -> StoreResult<AuditVerification>;
}
