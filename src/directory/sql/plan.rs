//! Import validation without I/O: a [`DirectoryData`] file becomes an [`ImportPlan`] of
//! parsed records plus the [`Check`]s that decide whether it may be written. References
//! that the file itself does not satisfy become [`Check::Exists`], settled against the
//! database inside the import transaction.

use std::collections::{BTreeSet, HashSet};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::super::data::{
    AccountEntry, DirectoryData, GrantEntry, ImportCounts, OrgEntry, RoleEntry, UserEntry,
};
use super::super::model::{AccountLevel, OrgStatus, Timestamp, UserStatus};

/// A table a reference may resolve against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Org,
    Role,
    Account,
    User,
}

/// One rule an import must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Already broken, whatever the database holds.
    Problem(String),
    /// Broken unless `table` has a row keyed `key`.
    Exists {
        table: Table,
        key: String,
        problem: String,
    },
}

pub struct PlannedRole<'a> {
    pub name: &'a str,
    pub permissions: BTreeSet<&'a str>,
    pub delegable: bool,
}

pub struct PlannedOrg<'a> {
    pub entry: &'a OrgEntry,
    pub status: OrgStatus,
}

pub struct PlannedUser<'a> {
    /// Lower-cased.
    pub email: String,
    pub entry: &'a UserEntry,
    pub status: UserStatus,
    pub roles: BTreeSet<&'a str>,
}

pub struct PlannedGrant<'a> {
    /// Lower-cased.
    pub user: String,
    pub account: &'a str,
    pub level: AccountLevel,
    pub expires_at: Option<Timestamp>,
}

/// The valid records of a file. Only written when every [`Check`] passes, so a record that
/// failed to parse is simply left out.
pub struct ImportPlan<'a> {
    pub roles: Vec<PlannedRole<'a>>,
    pub orgs: Vec<PlannedOrg<'a>>,
    pub users: Vec<PlannedUser<'a>>,
    pub accounts: Vec<&'a AccountEntry>,
    pub grants: Vec<PlannedGrant<'a>>,
}

impl ImportPlan<'_> {
    pub fn counts(&self) -> ImportCounts {
        ImportCounts {
            roles: self.roles.len(),
            orgs: self.orgs.len(),
            users: self.users.len(),
            accounts: self.accounts.len(),
            grants: self.grants.len(),
        }
    }
}

/// Validate `data` as far as possible without the database.
pub fn plan(data: &DirectoryData) -> (ImportPlan<'_>, Vec<Check>) {
    let mut planner = Planner::new(data);
    let plan = ImportPlan {
        roles: data.roles.iter().map(|r| planner.role(r)).collect(),
        orgs: data.orgs.iter().filter_map(|o| planner.org(o)).collect(),
        users: data.users.iter().filter_map(|u| planner.user(u)).collect(),
        accounts: data
            .accounts
            .iter()
            .filter(|a| planner.account(a))
            .collect(),
        grants: data
            .grants
            .iter()
            .filter_map(|g| planner.grant(g))
            .collect(),
    };
    (plan, planner.checks)
}

pub fn lower_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn valid_email(email: &str) -> bool {
    email.contains('@') && !email.starts_with('@') && !email.ends_with('@')
}

fn parse_expires(s: &str) -> Option<Timestamp> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

fn expected<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    let names: Vec<_> = all.iter().map(|v| name(*v)).collect();
    names.join(", ")
}

const LEVELS: [AccountLevel; 3] = [
    AccountLevel::View,
    AccountLevel::Standard,
    AccountLevel::Admin,
];

/// What the file itself defines, and the checks found so far.
struct Planner {
    orgs: HashSet<String>,
    roles: HashSet<String>,
    accounts: HashSet<String>,
    users: HashSet<String>,
    seen: HashSet<(&'static str, String)>,
    checks: Vec<Check>,
}

impl Planner {
    fn new(data: &DirectoryData) -> Self {
        Planner {
            orgs: data.orgs.iter().map(|o| o.id.clone()).collect(),
            roles: data.roles.iter().map(|r| r.name.clone()).collect(),
            accounts: data.accounts.iter().map(|a| a.id.clone()).collect(),
            users: data.users.iter().map(|u| lower_email(&u.email)).collect(),
            seen: HashSet::new(),
            checks: Vec::new(),
        }
    }

    fn problem(&mut self, problem: String) {
        self.checks.push(Check::Problem(problem));
    }

    /// Records a problem when `key` is empty or was already seen in this section.
    fn unique(&mut self, section: &'static str, key: &str, record: &str) -> bool {
        if key.is_empty() {
            self.problem(format!("{record}: empty {section}"));
            return false;
        }
        if !self.seen.insert((section, key.to_string())) {
            self.problem(format!("{record}: duplicate {section} \"{key}\""));
            return false;
        }
        true
    }

    /// Adds a database check unless the file itself defines `key`.
    fn reference(&mut self, table: Table, key: &str, problem: String) {
        let defined = match table {
            Table::Org => &self.orgs,
            Table::Role => &self.roles,
            Table::Account => &self.accounts,
            Table::User => &self.users,
        };
        if !defined.contains(key) {
            let key = key.to_string();
            self.checks.push(Check::Exists {
                table,
                key,
                problem,
            });
        }
    }

    fn role<'a>(&mut self, entry: &'a RoleEntry) -> PlannedRole<'a> {
        let record = format!("role \"{}\"", entry.name);
        self.unique("role name", &entry.name, &record);
        PlannedRole {
            name: &entry.name,
            permissions: entry.permissions.iter().map(String::as_str).collect(),
            delegable: entry.delegable,
        }
    }

    fn org<'a>(&mut self, entry: &'a OrgEntry) -> Option<PlannedOrg<'a>> {
        let record = format!("org \"{}\"", entry.id);
        let unique = self.unique("org id", &entry.id, &record);
        let status = self.status(
            &record,
            entry.status.as_deref(),
            &OrgStatus::ALL,
            OrgStatus::as_str,
        )?;
        unique.then_some(PlannedOrg { entry, status })
    }

    fn account(&mut self, entry: &AccountEntry) -> bool {
        let record = format!("account \"{}\"", entry.id);
        self.unique("account id", &entry.id, &record)
    }

    fn user<'a>(&mut self, entry: &'a UserEntry) -> Option<PlannedUser<'a>> {
        let record = format!("user \"{}\"", entry.email);
        let email = lower_email(&entry.email);
        let valid = self.email(&record, &email);
        let status = self.status(
            &record,
            entry.status.as_deref(),
            &UserStatus::ALL,
            UserStatus::as_str,
        );
        let org = &entry.org;
        self.reference(Table::Org, org, format!("{record}: unknown org \"{org}\""));
        for role in &entry.roles {
            self.reference(
                Table::Role,
                role,
                format!("{record}: unknown role \"{role}\""),
            );
        }
        let roles = entry.roles.iter().map(String::as_str).collect();
        let status = status.filter(|_| valid)?;
        Some(PlannedUser {
            email,
            entry,
            status,
            roles,
        })
    }

    /// A well-formed, unique (lower-cased) email.
    fn email(&mut self, record: &str, email: &str) -> bool {
        let valid = valid_email(email);
        if !valid {
            self.problem(format!("{record}: invalid email (needs an '@')"));
        }
        self.unique("email", email, record) && valid
    }

    /// Parses an org or user status; absent = active.
    fn status<S: Copy>(
        &mut self,
        record: &str,
        raw: Option<&str>,
        all: &[S],
        name: fn(S) -> &'static str,
    ) -> Option<S> {
        let raw = raw.unwrap_or("active");
        let status = all.iter().copied().find(|s| name(*s) == raw);
        if status.is_none() {
            let all = expected(all, name);
            self.problem(format!(
                "{record}: invalid status \"{raw}\" (expected {all})"
            ));
        }
        status
    }

    fn grant<'a>(&mut self, entry: &'a GrantEntry) -> Option<PlannedGrant<'a>> {
        let record = format!("grant {} → {}", entry.user, entry.account);
        let user = lower_email(&entry.user);
        let unique = self.unique("grant", &format!("{user} → {}", entry.account), &record);
        self.reference(
            Table::User,
            &user,
            format!("{record}: unknown user \"{}\"", entry.user),
        );
        let account = &entry.account;
        self.reference(
            Table::Account,
            account,
            format!("{record}: unknown account \"{account}\""),
        );
        let level = self.grant_level(&record, &entry.permission);
        let expires_at = self.grant_expiry(&record, entry.expires.as_deref());
        let (level, expires_at) = (level?, expires_at?);
        unique.then_some(PlannedGrant {
            user,
            account,
            level,
            expires_at,
        })
    }

    fn grant_level(&mut self, record: &str, raw: &str) -> Option<AccountLevel> {
        let level = AccountLevel::parse(raw);
        if level.is_none() {
            let all = expected(&LEVELS, AccountLevel::as_str);
            self.problem(format!(
                "{record}: invalid permission \"{raw}\" (expected {all})"
            ));
        }
        level
    }

    /// `Some(None)` = permanent; `None` = unparsable (a problem was recorded).
    fn grant_expiry(&mut self, record: &str, raw: Option<&str>) -> Option<Option<Timestamp>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let parsed = parse_expires(raw);
        if parsed.is_none() {
            self.problem(format!(
                "{record}: invalid expires \"{raw}\" (expected RFC 3339, e.g. 2026-12-31T00:00:00Z)"
            ));
        }
        parsed.map(Some)
    }
}

#[cfg(test)]
mod tests;
