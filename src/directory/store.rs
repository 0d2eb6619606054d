//! The directory store: one trait, two real implementations (SQLite for one machine,
//! PostgreSQL for several instances). The request path never calls it directly: it goes
//! through the cache in [`super::Directory`].

use async_trait::async_trait;

use super::audit::{AuditActor, AuditEntry, AuditFilter, AuditRecord, AuditVerification};
use super::changes::{Change, ChangeTarget, StatusChange};
use super::data::{DirectoryData, ImportCounts};
use super::model::{
    DirectoryStats, Identity, OrgStatus, SessionRecord, Timestamp, UserRecord, UserStatus,
};
use super::review::{ReviewParams, ReviewRow};
use super::usage::{UsageFilter, UsageRow, UsageTotal};

pub use super::error::{StoreError, StoreResult};
pub use super::factors::FactorStore;
pub use super::lifecycle::LifecycleStore;
pub use super::mail::MailStore;
pub use super::sso::SsoStore;

/// What the gateway reads and writes in the directory. The partner lifecycle's part (orgs,
/// invitations, grants, review decisions) is [`LifecycleStore`].
#[async_trait]
pub trait Store:
    LifecycleStore + FactorStore + MailStore + SsoStore + Send + Sync + 'static
{
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
    /// the account; then `notice` (the "your account was locked" mail) is queued in the
    /// same transaction.
    async fn record_login_failure(
        &self,
        user_id: &str,
        max_failures: u32,
        lock_until: Timestamp,
        audit: &AuditEntry,
        notice: Option<&super::mail::OutgoingMail>,
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

    /// Every session row of the user (expired ones too, until swept).
    async fn user_sessions(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>>;

    /// Every session of the user (log out everywhere); returns the deleted `id_hash`es.
    /// When there were any, records a directory change for the user in the same
    /// transaction, so every instance drops them from its cache.
    async fn delete_user_sessions(&self, user_id: &str, now: Timestamp)
        -> StoreResult<Vec<String>>;

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

    /// The access review: every user with org, roles, grants, last login and last request,
    /// flags computed against `params`; sorted by org id, then email. A few queries in one
    /// read transaction, not one per user.
    async fn review(&self, params: &ReviewParams) -> StoreResult<Vec<ReviewRow>>;

    /// Ids (sorted) of active users whose last login, or creation when they never logged
    /// in, is before `cutoff`: the users the inactivity sweep disables.
    async fn inactive_users(&self, cutoff: Timestamp) -> StoreResult<Vec<String>>;

    /// Append one record to the audit chain in a transaction of its own (for events that
    /// change nothing else: a refused login, a denied admin action). A change that writes
    /// to the directory appends its record inside its own transaction instead.
    async fn append_audit(&self, entry: &AuditEntry, now: Timestamp) -> StoreResult<AuditRecord>;

    /// Records matching `filter`, in seq order, at most `filter.effective_limit()`.
    async fn audit_list(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;

    /// Walk the whole chain (in pages, in one read snapshot) and report the first broken
    /// record. An error when the database cannot be read or has no audit log.
    async fn audit_verify(&self) -> StoreResult<AuditVerification>;

    /// Set a user's status. In one transaction: the status, the end of the user's sessions
    /// unless the new status is `active`, one audit record (action from
    /// [`super::changes::user_status_action`], before/after status, by `actor`) and a
    /// directory change for the user. [`StoreError::NotFound`] for an unknown user id, and
    /// then nothing is written.
    async fn set_user_status(
        &self,
        user_id: &str,
        status: UserStatus,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<StatusChange>;

    /// Set an org's status. In one transaction: the status, the end of every member's
    /// sessions unless the new status is `active`, one audit record (action from
    /// [`super::changes::org_status_action`]) and directory changes for the org and for
    /// each member whose sessions ended. [`StoreError::NotFound`] for an unknown org id.
    async fn set_org_status(
        &self,
        org_id: &str,
        status: OrgStatus,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<StatusChange>;

    /// Record directory changes in a transaction of their own (for writers that change
    /// nothing else, e.g. a cache flush for every instance); returns the last seq.
    async fn record_changes(&self, targets: &[ChangeTarget], now: Timestamp) -> StoreResult<i64>;

    /// At most `limit` changes with `seq > after`, in seq order.
    async fn changes_since(&self, after: i64, limit: i64) -> StoreResult<Vec<Change>>;

    /// The last change seq handed out (0 when none ever was); cheap, for polling.
    async fn latest_change_seq(&self) -> StoreResult<i64>;

    /// Delete changes recorded before `older_than`; returns how many.
    async fn prune_changes(&self, older_than: Timestamp) -> StoreResult<u64>;

    /// A push channel for new changes (PostgreSQL LISTEN), or `None` when the database
    /// has none (SQLite: watchers poll [`Store::latest_change_seq`]).
    async fn change_listener(&self) -> StoreResult<Option<Box<dyn ChangeListener>>>;

    /// Add each row's `requests` to the stored count of its (day, org, user, route),
    /// creating the row when missing: in one transaction, all or nothing. Several gateway
    /// instances add into the same rows. Rows are written in key order, so concurrent
    /// flushes of several instances never deadlock on PostgreSQL.
    async fn add_usage(&self, rows: &[UsageRow]) -> StoreResult<()>;

    /// Requests summed over the days from `filter.since_day` on, per (org, user, route),
    /// with the user's email; sorted by org id, user id, route.
    async fn usage(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageTotal>>;

    /// Delete usage rows of days before `before_day`; returns how many.
    async fn prune_usage(&self, before_day: i64) -> StoreResult<u64>;
}

/// Wake-ups for new directory changes; they carry nothing but "look now".
#[async_trait]
pub trait ChangeListener: Send {
    /// Wait for the next wake-up. `Ok(true)`: a change was announced. `Ok(false)`: the
    /// connection was lost and announcements may have been missed (the next call
    /// reconnects). `Err`: reconnecting failed; call again later.
    async fn recv(&mut self) -> StoreResult<bool>;
}
