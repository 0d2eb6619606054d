//! Directory changes that every running gateway must apply at once (a
//! suspension or revocation takes effect on the next request on every instance).
//!
//! Each writer appends what it changed to `directory_changes` in the transaction of the
//! change itself, numbered by a gapless `seq`. Every gateway's watcher reads the rows after
//! the last seq it applied, drops what it has cached about them, and moves on. A wake-up
//! (PostgreSQL NOTIFY, or a poll) only says "look now"; the table is the truth, so a missed
//! wake-up delays a change by at most one poll and never loses it.

use super::model::{OrgStatus, Timestamp, UserStatus};

/// The PostgreSQL NOTIFY channel writers announce new changes on (payload: the last seq).
pub const NOTIFY_CHANNEL: &str = "partnergate_changes";

/// What a change invalidates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeTarget {
    /// One user: status, roles, grants or sessions changed.
    User(String),
    /// An org: its status or type changed (every member's identity is affected).
    Org(String),
    /// Anything (roles redefined, a bulk change): drop everything cached.
    All,
}

impl ChangeTarget {
    /// The stored `kind` and `id`.
    pub fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            ChangeTarget::User(id) => ("user", Some(id)),
            ChangeTarget::Org(id) => ("org", Some(id)),
            ChangeTarget::All => ("all", None),
        }
    }

    /// From the stored `kind` and `id`. A kind this build does not know (written by a
    /// newer one) or a missing id means `All`: dropping too much is always safe.
    pub fn from_parts(kind: &str, id: Option<String>) -> Self {
        match (kind, id) {
            ("user", Some(id)) => ChangeTarget::User(id),
            ("org", Some(id)) => ChangeTarget::Org(id),
            _ => ChangeTarget::All,
        }
    }
}

/// One row of `directory_changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    /// Unix seconds; used for pruning only.
    pub ts: Timestamp,
    pub target: ChangeTarget,
}

/// What `set_user_status` / `set_org_status` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The status before, as stored (`active`, `suspended`…).
    pub before: String,
    pub after: String,
    /// Sessions deleted (the user's, or every member's of the org).
    pub sessions_ended: u64,
    /// The seq of the audit record appended in the same transaction.
    pub audit_seq: i64,
    /// The last directory change seq recorded in the same transaction.
    pub change_seq: i64,
}

/// The audit action of setting a user to `status`.
pub fn user_status_action(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => "user.reactivate",
        UserStatus::Suspended => "user.suspend",
        UserStatus::Disabled => "user.disable",
        UserStatus::Invited => "user.set_invited",
    }
}

/// The audit action of moving an org from `before` to `status`.
pub fn org_status_action(before: Option<OrgStatus>, status: OrgStatus) -> &'static str {
    match (before, status) {
        (Some(OrgStatus::Pending), OrgStatus::Active) => "org.approve",
        (Some(OrgStatus::Pending), OrgStatus::Offboarded) => "org.reject",
        (_, OrgStatus::Active) => "org.reactivate",
        (_, OrgStatus::Suspended) => "org.suspend",
        (_, OrgStatus::Offboarded) => "org.offboard",
        (_, OrgStatus::Pending) => "org.set_pending",
    }
}

/// Sorted, deduplicated; `All` alone when present (it covers everything else).
pub fn normalized(mut targets: Vec<ChangeTarget>) -> Vec<ChangeTarget> {
    if targets.contains(&ChangeTarget::All) {
        return vec![ChangeTarget::All];
    }
    targets.sort_unstable();
    targets.dedup();
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_and_unknown_kinds_mean_all() {
        for t in [
            ChangeTarget::User("u-1".into()),
            ChangeTarget::Org("acme".into()),
            ChangeTarget::All,
        ] {
            let (kind, id) = t.parts();
            assert_eq!(ChangeTarget::from_parts(kind, id.map(String::from)), t);
        }
        assert_eq!(
            ChangeTarget::from_parts("grant", Some("x".into())),
            ChangeTarget::All
        );
        assert_eq!(ChangeTarget::from_parts("user", None), ChangeTarget::All);
    }

    #[test]
    fn normalized_dedups_and_all_covers_everything() {
        let u = |s: &str| ChangeTarget::User(s.into());
        assert_eq!(
            normalized(vec![u("b"), u("a"), u("b")]),
            vec![u("a"), u("b")]
        );
        assert_eq!(
            normalized(vec![u("a"), ChangeTarget::All]),
            vec![ChangeTarget::All]
        );
        assert!(normalized(vec![]).is_empty());
    }
}
