//! Mail as the directory keeps it: an outbox row per message, written in the transaction
//! of the change that causes it (an invitation, a password reset request, an account
//! lockout), and password reset tokens. Sending is the top-level `mail` module's worker.

use async_trait::async_trait;

use super::audit::AuditActor;
use super::error::StoreResult;
use super::model::Timestamp;

/// What a mail is about: the `kind` label of `partnergate_mail_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    Invitation,
    PasswordReset,
    AccountLocked,
}

impl MailKind {
    pub const ALL: [MailKind; 3] = [
        MailKind::Invitation,
        MailKind::PasswordReset,
        MailKind::AccountLocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Invitation => "invitation",
            MailKind::PasswordReset => "password_reset",
            MailKind::AccountLocked => "account_locked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A mail to queue.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub kind: MailKind,
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for OutgoingMail {
    // The bodies may hold a single-use link: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("kind", &self.kind)
            .field("recipient", &self.recipient)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A queued mail a worker claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: String,
    pub mail: OutgoingMail,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// A reset request to store (the token's SHA-256, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    pub token_hash: String,
    pub user_id: String,
    pub expires_at: Timestamp,
}

/// What became of a reset request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetRequested {
    Queued,
    /// The account already has `max_open` requests within the window: nothing stored.
    TooMany,
}

/// The directory's part of mail and password resets.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Claim up to `limit` mails due at `now`: each is pushed to `now + lease` first, so
    /// another worker leaves it alone while this one sends it.
    async fn claim_mail(
        &self,
        now: Timestamp,
        lease: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutboxMail>>;

    /// The SMTP server accepted the mail: mark it sent and empty its bodies.
    async fn mail_sent(&self, id: &str, now: Timestamp) -> StoreResult<()>;

    /// A failed attempt: try again at `next_attempt_at`, or, with `give_up`, never again
    /// (the row stays, with the error, for the operator).
    async fn mail_failed(
        &self,
        id: &str,
        next_attempt_at: Timestamp,
        error: &str,
        give_up: bool,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Mails not sent yet (and not given up on).
    async fn outbox_depth(&self) -> StoreResult<i64>;

    /// Delete mails sent or given up on before `before`, and reset tokens that expired
    /// (or were used) before it; how many rows went.
    async fn prune_mail(&self, before: Timestamp) -> StoreResult<u64>;

    /// Store a reset request and queue its mail, in one transaction, unless the user has
    /// `max_open` requests since `window_start` already. Audited
    /// `password.reset_request`.
    async fn request_password_reset(
        &self,
        reset: &PasswordReset,
        mail: &OutgoingMail,
        max_open: u32,
        window_start: Timestamp,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<ResetRequested>;

    /// The user of an unused, unexpired reset token.
    async fn reset_user(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<String>>;

    /// Use the token: set the password hash, clear the lockout, end every session of the
    /// user, with a directory change and the audit record `password.reset`, in one
    /// transaction. `None` when the token is unknown, used or expired.
    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<Option<String>>;
}
