//! The directory file that `directory import` reads and `directory export` writes
//! (see docs/reference.md, Directory file format).

use serde::{Deserialize, Serialize};

/// A whole directory file. Sections are TOML arrays of tables: `[[role]]`, `[[org]]`,
/// `[[user]]`, `[[account]]`, `[[grant]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryData {
    #[serde(default, rename = "role", skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleEntry>,
    #[serde(default, rename = "org", skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<OrgEntry>,
    #[serde(default, rename = "user", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserEntry>,
    #[serde(default, rename = "account", skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountEntry>,
    #[serde(default, rename = "grant", skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    pub name: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub delegable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgEntry {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub org_type: String,
    /// pending | active | suspended | offboarded; default active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_users: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub email: String,
    pub org: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// invited | active | suspended | disabled; default active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// argon2id PHC string; absent = keep the stored hash (or none for a new user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantEntry {
    /// The user's email.
    pub user: String,
    pub account: String,
    /// view | standard | admin
    pub permission: String,
    /// RFC 3339; absent = permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// What an import wrote (or, with `--dry-run`, would write).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub roles: usize,
    pub orgs: usize,
    pub users: usize,
    pub accounts: usize,
    pub grants: usize,
}
