//! The directory's records and the resolved [`Identity`] the request path uses.
//!
//! Timestamps are Unix seconds (`i64`) everywhere: portable between SQLite and
//! PostgreSQL and cheap to compare on the hot path.

use std::fmt;

pub use crate::config::AccountLevel;

/// Unix seconds.
pub type Timestamp = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Invited,
    Active,
    Suspended,
    Disabled,
}

impl UserStatus {
    pub const ALL: [UserStatus; 4] = [
        UserStatus::Invited,
        UserStatus::Active,
        UserStatus::Suspended,
        UserStatus::Disabled,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Invited => "invited",
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
            UserStatus::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgStatus {
    Pending,
    Active,
    Suspended,
    Offboarded,
}

impl OrgStatus {
    pub const ALL: [OrgStatus; 4] = [
        OrgStatus::Pending,
        OrgStatus::Active,
        OrgStatus::Suspended,
        OrgStatus::Offboarded,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrgStatus::Pending => "pending",
            OrgStatus::Active => "active",
            OrgStatus::Suspended => "suspended",
            OrgStatus::Offboarded => "offboarded",
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for OrgStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub permissions: Vec<String>,
    pub delegable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub org_type: String,
    pub status: OrgStatus,
    pub max_users: Option<u32>,
}

/// A user row as the login path needs it (with the password hash and lock state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    /// Lower-cased; unique.
    pub email: String,
    pub org_id: String,
    pub roles: Vec<String>,
    pub status: UserStatus,
    pub password_hash: Option<String>,
    pub failed_logins: u32,
    pub locked_until: Option<Timestamp>,
    pub last_login_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user_id: String,
    pub account_id: String,
    pub level: AccountLevel,
    pub expires_at: Option<Timestamp>,
}

/// A user's grant on one client account, as carried in an [`Identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountGrant {
    pub account: String,
    pub level: AccountLevel,
    pub expires_at: Option<Timestamp>,
}

/// The org of an identity: what policy and the identity headers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRef {
    pub id: String,
    pub name: String,
    pub org_type: String,
    pub status: OrgStatus,
    /// Every member must sign in with a second factor (`mfa = "required"`).
    pub mfa_required: bool,
}

/// Who a request is from, resolved from the directory: user, org, roles, permissions and
/// client-account grants. Cached (behind an `Arc`) and shared by every request of the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub email: String,
    pub status: UserStatus,
    pub org: OrgRef,
    /// Sorted, unique.
    pub roles: Vec<String>,
    /// Union of the roles' permissions; sorted, unique.
    pub permissions: Vec<String>,
    /// Sorted by account id; expired grants are kept (policy reports `grant_expired`).
    pub grants: Vec<AccountGrant>,
    /// How many second factors (TOTP authenticators, passkeys) the user has enrolled.
    pub second_factors: u32,
}

impl Identity {
    /// Whether the user may act at all: an active user of an active org.
    pub fn is_usable(&self) -> bool {
        self.status == UserStatus::Active && self.org.status == OrgStatus::Active
    }

    pub fn grant(&self, account: &str) -> Option<&AccountGrant> {
        self.grants
            .binary_search_by(|g| g.account.as_str().cmp(account))
            .ok()
            .map(|i| &self.grants[i])
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles
            .binary_search_by(|r| r.as_str().cmp(role))
            .is_ok()
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions
            .binary_search_by(|p| p.as_str().cmp(permission))
            .is_ok()
    }
}

/// A server-side login session. The cookie carries a random token; only its SHA-256
/// (`id_hash`, hex) is stored, so a copy of the database does not hold usable sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub user_id: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    /// How the user authenticated when the session began (`created_at` is when).
    pub amr: Amr,
}

/// How a user authenticated: a set of RFC 8176 method names. `pwd` a password, `otp` a
/// one-time code (a TOTP app or a recovery code), `hwk` a passkey, `fed` a sign-in
/// through the org's own identity provider; `mfa` is implied by a password plus one of
/// the others, and stands alone when the identity provider vouched for a second factor
/// of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Amr(u8);

impl Amr {
    pub const PWD: Amr = Amr(1);
    pub const OTP: Amr = Amr(2);
    pub const HWK: Amr = Amr(4);
    pub const FED: Amr = Amr(8);
    /// A second factor the org's identity provider vouched for (its `amr` or `acr`).
    pub const MFA: Amr = Amr(16);
    const NAMES: [(Amr, &'static str); 5] = [
        (Amr::PWD, "pwd"),
        (Amr::OTP, "otp"),
        (Amr::HWK, "hwk"),
        (Amr::FED, "fed"),
        (Amr::MFA, "mfa"),
    ];

    pub fn with(self, other: Amr) -> Amr {
        Amr(self.0 | other.0)
    }

    pub fn contains(self, other: Amr) -> bool {
        self.0 & other.0 == other.0
    }

    /// A second factor was part of the sign-in.
    pub fn is_multi_factor(self) -> bool {
        self.0 & (Amr::OTP.0 | Amr::HWK.0 | Amr::MFA.0) != 0
    }

    /// The method names, `mfa` last when it applies: the `amr` claim.
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Amr::NAMES
            .iter()
            .filter(|(m, _)| *m != Amr::MFA && self.contains(*m))
            .map(|(_, n)| *n)
            .collect();
        if self.is_multi_factor() {
            names.push("mfa");
        }
        names
    }

    /// As stored: the names separated by spaces (`mfa` only when the identity provider
    /// vouched for it; otherwise it is implied).
    pub fn stored(self) -> String {
        let names: Vec<&str> = Amr::NAMES
            .iter()
            .filter(|(m, _)| self.contains(*m))
            .map(|(_, n)| *n)
            .collect();
        names.join(" ")
    }

    /// Parse the stored or claimed form (space- or comma-separated names); unknown names
    /// are ignored.
    pub fn parse(s: &str) -> Amr {
        s.split([' ', ','])
            .filter_map(|name| Amr::NAMES.iter().find(|(_, n)| *n == name))
            .fold(Amr::default(), |acc, (m, _)| acc.with(*m))
    }

    /// The `X-Partner-Auth-Methods` value: the names separated by commas (computed once
    /// per combination, so the request path only indexes a table).
    pub fn header_value(self) -> &'static str {
        static VALUES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            (0u8..32).map(|bits| Amr(bits).names().join(",")).collect()
        });
        VALUES
            .get(usize::from(self.0 & 31))
            .map_or("", String::as_str)
    }
}

/// Counts behind the directory gauges (see docs/reference.md, Metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryStats {
    pub users_by_status: Vec<(UserStatus, i64)>,
    pub orgs_by_status: Vec<(OrgStatus, i64)>,
    /// (window in seconds, users with a login or request since `now - window`)
    pub users_active: Vec<(i64, i64)>,
    pub sessions_active: i64,
}
