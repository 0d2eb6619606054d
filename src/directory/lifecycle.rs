//! The partner lifecycle's records (docs/reference.md, "Partner lifecycle"): orgs as the
//! admin API shows them, registration, invitations, grant changes and review decisions.
//! The rules about who may do what are the top-level `lifecycle` module, which reads these
//! records (this module does not depend on it); the store only makes each change, with its
//! audit record and directory change, in one transaction.

use serde::Serialize;

use super::audit::AuditActor;
use super::data::{AccountEntry, RoleEntry};
#[cfg(doc)]
use super::error::StoreError;
use super::error::StoreResult;
use super::model::{AccountLevel, Grant, OrgStatus, Timestamp};

/// An org with what its admins manage: seat cap, roles it may hand out, grant cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgDetail {
    pub id: String,
    pub name: String,
    pub org_type: String,
    pub status: OrgStatus,
    pub max_users: Option<u32>,
    /// `Some`: only these roles (sorted) may be handed out in the org; `None`: any role.
    pub allowed_roles: Option<Vec<String>>,
    /// Longest client-account grant in seconds; `None`: only the global cap.
    pub max_grant_ttl: Option<i64>,
    /// Who asked for the org (registration), when it came from the register form.
    pub contact_email: Option<String>,
    pub created_at: Timestamp,
    /// Users that take a seat: every status except `disabled`.
    pub seats_used: u32,
    /// `mfa = "required"`: every member signs in with a second factor.
    pub mfa_required: bool,
}

impl OrgDetail {
    /// Whether `role` may be handed out in this org.
    pub fn allows_role(&self, role: &str) -> bool {
        self.allowed_roles
            .as_ref()
            .is_none_or(|r| r.iter().any(|a| a == role))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "type": self.org_type,
            "status": self.status.as_str(),
            "max_users": self.max_users,
            "allowed_roles": self.allowed_roles,
            "max_grant_ttl_seconds": self.max_grant_ttl,
            "contact_email": self.contact_email,
            "created_at": self.created_at,
            "seats_used": self.seats_used,
            "mfa": if self.mfa_required { "required" } else { "optional" },
        })
    }
}

/// A new org: created by an owner admin (`active`) or by the register form (`pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrg {
    pub id: String,
    pub name: String,
    pub org_type: String,
    pub status: OrgStatus,
    pub max_users: Option<u32>,
    pub allowed_roles: Option<Vec<String>>,
    pub max_grant_ttl: Option<i64>,
    pub contact_email: Option<String>,
}

/// A change to an org's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgPatch {
    pub name: Option<String>,
    /// `Some(None)` removes the cap.
    pub max_users: Option<Option<u32>>,
    /// `Some(None)`: any role; `Some(Some(list))`: only these.
    pub allowed_roles: Option<Option<Vec<String>>>,
    pub max_grant_ttl: Option<Option<i64>>,
    /// `Some(true)`: `mfa = "required"`.
    pub mfa_required: Option<bool>,
}

/// An invitation to write: the invited user is created (or refreshed) in the same
/// transaction, with `roles`, in status `invited`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    pub org_id: String,
    /// Lower-cased.
    pub email: String,
    pub roles: Vec<String>,
    /// SHA-256 (hex) of the token in the link; the token itself is never stored.
    pub token_hash: String,
    pub expires_at: Timestamp,
    /// The invitation mail, queued in the same transaction (with `[mail]`).
    pub mail: Option<super::mail::OutgoingMail>,
}

/// An invitation as listed or opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub org_name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl Invitation {
    /// Open: neither used nor withdrawn, and not past expiry at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.used_at.is_none() && self.revoked_at.is_none() && now < self.expires_at
    }

    pub fn state(&self, now: Timestamp) -> &'static str {
        if self.used_at.is_some() {
            "accepted"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if now >= self.expires_at {
            "expired"
        } else {
            "open"
        }
    }
}

/// A client-account grant to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantChange {
    pub user_id: String,
    pub account_id: String,
    pub level: AccountLevel,
    pub expires_at: Option<Timestamp>,
}

/// A reviewer's decision on one user in the access review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewDecision {
    /// The access stays as it is (recorded, nothing changes).
    Keep,
    /// Disable the user at once (sessions end, every instance refuses the next request).
    Revoke,
}

impl ReviewDecision {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(ReviewDecision::Keep),
            "revoke" => Some(ReviewDecision::Revoke),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Keep => "keep",
            ReviewDecision::Revoke => "revoke",
        }
    }
}

/// The last recorded decision on a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewDecisionRecord {
    pub user_id: String,
    pub decision: ReviewDecision,
    /// The reviewer's user id.
    pub reviewer: String,
    pub note: Option<String>,
    pub ts: Timestamp,
}

/// The partner lifecycle's reads and writes. Every write makes its change, appends its
/// audit record (by `actor`) and records the directory change for the watchers in one
/// transaction: never one without the others.
#[async_trait::async_trait]
pub trait LifecycleStore {
    /// Every org, sorted by id.
    async fn orgs(&self) -> StoreResult<Vec<OrgDetail>>;

    async fn org(&self, id: &str) -> StoreResult<Option<OrgDetail>>;

    /// Create an org. Action `org.register` when `org.status` is pending (the register
    /// form), else `org.create`. [`StoreError::Conflict`] when the id is taken,
    /// [`StoreError::Invalid`] for an unknown role in `allowed_roles`.
    async fn create_org(
        &self,
        org: &NewOrg,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<OrgDetail>;

    /// Change an org's settings (`org.update`, before/after).
    async fn update_org(
        &self,
        id: &str,
        patch: &OrgPatch,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<OrgDetail>;

    /// Every role with its permissions, sorted by name.
    async fn roles(&self) -> StoreResult<Vec<RoleEntry>>;

    /// Create or redefine a role (`role.put`); every instance drops its cached identities.
    async fn put_role(
        &self,
        role: &RoleEntry,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Every client account, sorted by id.
    async fn accounts(&self) -> StoreResult<Vec<AccountEntry>>;

    async fn put_account(
        &self,
        account: &AccountEntry,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Invite `email` into an org: creates the user (status `invited`, with the roles) and
    /// the invitation; re-inviting a still-invited user of the same org replaces the roles
    /// and withdraws the open invitation. [`StoreError::Refused`] `seat_cap` (the org is
    /// full) or `org_inactive`; [`StoreError::Conflict`] when the email belongs to a user
    /// who is not an invited user of this org.
    async fn invite(
        &self,
        invitation: &NewInvitation,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<Invitation>;

    async fn invitation_by_token(&self, token_hash: &str) -> StoreResult<Option<Invitation>>;

    async fn invitations_of_org(&self, org_id: &str) -> StoreResult<Vec<Invitation>>;

    /// Use an open invitation: set the password hash and activate the user
    /// (`invitation.accept`). [`StoreError::NotFound`] when the token is unknown, used,
    /// withdrawn or expired; [`StoreError::Refused`] `org_inactive` when the org is not
    /// active (the invitation stays open). Returns the user id.
    async fn accept_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<String>;

    /// Replace a user's roles (`user.roles`); returns the roles before.
    async fn set_user_roles(
        &self,
        user_id: &str,
        roles: &[String],
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<Vec<String>>;

    /// Remove a user from their org (`user.remove`): disabled, sessions ended, grants and
    /// open invitations revoked. The user record stays, for the audit trail.
    async fn remove_user(
        &self,
        user_id: &str,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Assign or change a grant (`grant.assign` / `grant.change`); returns the one before.
    async fn put_grant(
        &self,
        grant: &GrantChange,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<Option<Grant>>;

    /// Revoke a grant (`grant.revoke`); returns it. [`StoreError::NotFound`] when absent.
    async fn revoke_grant(
        &self,
        user_id: &str,
        account_id: &str,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<Grant>;

    /// Delete every grant past expiry at `now` (`grant.expire`, by the system).
    async fn sweep_expired_grants(&self, now: Timestamp) -> StoreResult<Vec<Grant>>;

    /// Record a reviewer's decision (`review.keep` / `review.revoke`); revoke disables the
    /// user and ends their sessions in the same transaction.
    async fn record_review_decision(
        &self,
        user_id: &str,
        decision: ReviewDecision,
        note: Option<&str>,
        actor: &AuditActor,
        now: Timestamp,
    ) -> StoreResult<()>;

    async fn review_decisions(&self) -> StoreResult<Vec<ReviewDecisionRecord>>;
}
