//! The access review (`partnergate review`, see docs/reference.md): every user with org,
//! roles, grants, last login and last request, and the flags a reviewer looks at. The
//! inactivity sweep, which disables the users the review flags inactive, is in
//! `directory::sweep`.

use std::time::Duration;

use serde_json::{json, Value};

use super::model::{AccountLevel, OrgStatus, Timestamp, UserStatus};

/// The permission that makes a user an admin (delegated partner admin) in the review.
pub const ADMIN_PERMISSION: &str = "users:manage";

/// What the review is computed against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewParams {
    pub now: Timestamp,
    /// Seconds without a login after which a user counts as inactive.
    pub inactive_after: i64,
    /// Members of orgs of this type are owner admins (`server.owner_org_type`).
    pub owner_org_type: String,
}

impl ReviewParams {
    pub fn new(now: Timestamp, inactive_after: Duration, owner_org_type: &str) -> Self {
        ReviewParams {
            now,
            inactive_after: secs(inactive_after),
            owner_org_type: owner_org_type.to_string(),
        }
    }

    /// Users whose last login (or creation, when they never logged in) is before this are
    /// inactive.
    pub fn cutoff(&self) -> Timestamp {
        self.now.saturating_sub(self.inactive_after)
    }
}

/// [`ReviewParams::cutoff`] without the rest of the parameters: `now - inactive_after`.
pub(super) fn inactive_cutoff(now: Timestamp, inactive_after: Duration) -> Timestamp {
    now.saturating_sub(secs(inactive_after))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// One client-account grant of a reviewed user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewGrant {
    pub account: String,
    pub level: AccountLevel,
    pub expires_at: Option<Timestamp>,
    /// Past expiry at the review's `now` (as policy sees it: `expires_at <= now`).
    pub expired: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewFlags {
    /// No login since the cutoff (creation time counts for users who never logged in).
    pub inactive: bool,
    pub never_logged_in: bool,
    /// Holds at least one grant past expiry.
    pub expired_grant: bool,
    /// Holds a role with [`ADMIN_PERMISSION`] or is in an org of the owner type.
    pub admin: bool,
    /// The user or the user's org is suspended.
    pub suspended: bool,
}

/// One user in the access review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    pub user_id: String,
    pub email: String,
    pub org_id: String,
    pub org_type: String,
    pub org_status: OrgStatus,
    pub status: UserStatus,
    /// Sorted.
    pub roles: Vec<String>,
    /// Sorted by account.
    pub grants: Vec<ReviewGrant>,
    pub last_login_at: Option<Timestamp>,
    /// The last request seen (`last_seen_at`).
    pub last_seen_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub flags: ReviewFlags,
}

impl ReviewRow {
    /// Fill in `grants[].expired` and `flags`; `admin_roles` are the roles holding
    /// [`ADMIN_PERMISSION`].
    pub fn finish(&mut self, params: &ReviewParams, admin_roles: &[String]) {
        for g in &mut self.grants {
            g.expired = g.expires_at.is_some_and(|t| t <= params.now);
        }
        let last_login = self.last_login_at.unwrap_or(self.created_at);
        self.flags = ReviewFlags {
            inactive: last_login < params.cutoff(),
            never_logged_in: self.last_login_at.is_none(),
            expired_grant: self.grants.iter().any(|g| g.expired),
            admin: self.org_type == params.owner_org_type
                || self.roles.iter().any(|r| admin_roles.contains(r)),
            suspended: self.status == UserStatus::Suspended
                || self.org_status == OrgStatus::Suspended,
        };
    }

    /// The flags that are set, by name, in a fixed order.
    pub fn flag_names(&self) -> Vec<&'static str> {
        let f = self.flags;
        [
            (f.inactive, "inactive"),
            (f.never_logged_in, "never_logged_in"),
            (f.expired_grant, "expired_grant"),
            (f.admin, "admin"),
            (f.suspended, "suspended"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// The JSON form of `partnergate review --json` (timestamps as Unix seconds).
    pub fn to_json(&self) -> Value {
        let grants: Vec<Value> = self
            .grants
            .iter()
            .map(|g| {
                json!({
                    "account": g.account,
                    "level": g.level.as_str(),
                    "expires_at": g.expires_at,
                    "expired": g.expired,
                })
            })
            .collect();
        let f = self.flags;
        json!({
            "user_id": self.user_id,
            "email": self.email,
            "org": self.org_id,
            "org_type": self.org_type,
            "org_status": self.org_status.as_str(),
            "status": self.status.as_str(),
            "roles": self.roles,
            "grants": grants,
            "last_login_at": self.last_login_at,
            "last_seen_at": self.last_seen_at,
            "created_at": self.created_at,
            "flags": {
                "inactive": f.inactive,
                "never_logged_in": f.never_logged_in,
                "expired_grant": f.expired_grant,
                "admin": f.admin,
                "suspended": f.suspended,
            },
        })
    }
}
