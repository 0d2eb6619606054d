//! The directory: orgs, roles, users, client accounts, grants, sessions and
//! the audit log, behind a [`Store`] with SQLite and PostgreSQL implementations.

pub mod audit;
mod cache;
pub mod changes;
pub mod data;
mod error;
pub mod factors;
pub mod lifecycle;
pub mod mail;
pub mod model;
pub mod review;
mod sql;
pub mod sso;
pub mod store;
pub mod sweep;
#[cfg(test)]
mod tests;
pub mod usage;

pub use audit::{
    AuditActor, AuditEntry, AuditFilter, AuditOutcome, AuditProblem, AuditRecord, AuditVerification,
};
pub use cache::{CacheCounters, CachedIdentity, Directory, IdentityHeaderValues, TOUCH_EVERY};
pub use changes::{Change, ChangeTarget, StatusChange};
pub use data::{DirectoryData, ImportCounts};
pub use error::{StoreError, StoreResult};
pub use factors::{Factor, FactorKind, FactorOverview, FactorStore, FactorSummary, LoginChallenge};
pub use lifecycle::{
    GrantChange, Invitation, LifecycleStore, NewInvitation, NewOrg, OrgDetail, OrgPatch,
    ReviewDecision, ReviewDecisionRecord,
};
pub use mail::{MailKind, MailStore, OutboxMail, OutgoingMail, PasswordReset, ResetRequested};
pub use model::*;
pub use review::{ReviewFlags, ReviewGrant, ReviewParams, ReviewRow, ADMIN_PERMISSION};
pub use sql::{connect, open};
pub use sso::{SsoConnection, SsoFlow, SsoSignIn, SsoSignedIn, SsoStore};
pub use store::{ChangeListener, Store};
pub use sweep::{sweep_inactive, REASON_INACTIVE};
pub use usage::{day_of, UsageFilter, UsageRow, UsageTotal};
