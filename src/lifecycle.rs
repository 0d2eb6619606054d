//! Who may do what in the partner lifecycle: the bounds of owner admins and
//! delegated partner admins. Pure: identities, orgs and role definitions go in, a
//! [`Refusal`] with a stable reason word comes out. The admin API checks these after the
//! policy engine let the request through (right permission, active user and org), and
//! the store re-checks what can race (the seat cap) inside the write's transaction.

use std::collections::BTreeSet;

use crate::directory::data::RoleEntry;
use crate::directory::{AccountLevel, Identity, Invitation, OrgDetail, Timestamp};

/// Why an admin action is out of bounds: the reason in the 403 and in the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A delegated admin acting on another org (or a user of one).
    OtherOrg,
    /// Changing one's own roles or status (no self-promotion, no self-lockout).
    SelfChange,
    /// A delegated admin handing out a role that is not `delegable`.
    NotDelegable,
    /// A role the org may not hand out (its allowed roles).
    RoleNotAllowed,
    /// A role, or a managed user, with a permission the admin does not hold.
    AboveOwnRights,
    /// The org has `max_users` users already.
    SeatCap,
    /// A grant at a level above the admin's own grant on that account.
    GrantAboveOwn,
    /// A grant longer than the org's or the global cap, or without expiry where the org
    /// requires one.
    GrantTtl,
    /// The org is suspended or offboarded.
    OrgInactive,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::OtherOrg => "other_org",
            Refusal::SelfChange => "self_change",
            Refusal::NotDelegable => "not_delegable",
            Refusal::RoleNotAllowed => "role_not_allowed",
            Refusal::AboveOwnRights => "above_own_rights",
            Refusal::SeatCap => "seat_cap",
            Refusal::GrantAboveOwn => "grant_above_own",
            Refusal::GrantTtl => "grant_ttl",
            Refusal::OrgInactive => "org_inactive",
        }
    }

    /// From a store refusal word (`seat_cap`, `org_inactive`).
    pub fn parse(s: &str) -> Option<Self> {
        [Refusal::SeatCap, Refusal::OrgInactive, Refusal::OtherOrg]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// The admin making a request: owner admin (a member of an org of
/// `server.owner_org_type`) or delegated partner admin (anyone else).
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    pub identity: &'a Identity,
    pub owner: bool,
}

impl<'a> Admin<'a> {
    pub fn new(identity: &'a Identity, owner_org_type: &str) -> Self {
        Admin {
            identity,
            owner: identity.org.org_type == owner_org_type,
        }
    }

    /// The org an admin is limited to: `None` for owner admins (every org).
    pub fn scope(&self) -> Option<&'a str> {
        (!self.owner).then_some(self.identity.org.id.as_str())
    }

    /// May act on `org_id` at all.
    pub fn check_org(&self, org_id: &str) -> Result<(), Refusal> {
        match self.scope() {
            Some(own) if own != org_id => Err(Refusal::OtherOrg),
            _ => Ok(()),
        }
    }

    /// May manage `target` (suspend, reactivate, remove, change roles, grants): in scope,
    /// not themselves, and not someone holding a permission they lack.
    pub fn check_user(&self, target: &Identity) -> Result<(), Refusal> {
        self.check_org(&target.org.id)?;
        if target.user_id == self.identity.user_id {
            return Err(Refusal::SelfChange);
        }
        if !is_subset(&target.permissions, &self.identity.permissions) {
            return Err(Refusal::AboveOwnRights);
        }
        Ok(())
    }

    /// May hand out `roles` in `org`. `Err(Ok(name))` for a role that is not defined
    /// (a bad request, not a refusal).
    pub fn check_roles(
        &self,
        org: &OrgDetail,
        roles: &[String],
        defined: &[RoleEntry],
    ) -> Result<(), RoleProblem> {
        self.check_org(&org.id).map_err(RoleProblem::Refused)?;
        for name in roles {
            let Some(role) = defined.iter().find(|r| &r.name == name) else {
                return Err(RoleProblem::Unknown(name.clone()));
            };
            if !self.owner && !role.delegable {
                return Err(RoleProblem::Refused(Refusal::NotDelegable));
            }
            if !org.allows_role(name) {
                return Err(RoleProblem::Refused(Refusal::RoleNotAllowed));
            }
            if !is_subset(&role.permissions, &self.identity.permissions) {
                return Err(RoleProblem::Refused(Refusal::AboveOwnRights));
            }
        }
        Ok(())
    }

    /// May give `level` on `account` until `expires` to a user of `org`. Owner admins
    /// give any level; a delegated admin at most their own unexpired level on the account.
    /// Lifetimes are capped by the org (`max_grant_ttl`, which also makes an expiry
    /// required) and the global `lifecycle.max_grant_ttl` (for temporary grants).
    pub fn check_grant(
        &self,
        org: &OrgDetail,
        account: &str,
        level: AccountLevel,
        expires: Option<Timestamp>,
        now: Timestamp,
        global_max_ttl: i64,
    ) -> Result<(), Refusal> {
        self.check_org(&org.id)?;
        if !self.owner {
            let own = self
                .identity
                .grant(account)
                .filter(|g| g.expires_at.is_none_or(|t| t > now));
            if own.is_none_or(|g| g.level < level) {
                return Err(Refusal::GrantAboveOwn);
            }
        }
        let ttl = expires.map(|t| t.saturating_sub(now));
        match (ttl, org.max_grant_ttl) {
            (None, Some(_)) => return Err(Refusal::GrantTtl),
            (Some(ttl), Some(cap)) if ttl > cap => return Err(Refusal::GrantTtl),
            (Some(ttl), _) if ttl > global_max_ttl => return Err(Refusal::GrantTtl),
            _ => {}
        }
        Ok(())
    }
}

/// A role list that cannot be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleProblem {
    Unknown(String),
    Refused(Refusal),
}

fn is_subset(wanted: &[String], held: &[String]) -> bool {
    let held: BTreeSet<&str> = held.iter().map(String::as_str).collect();
    wanted.iter().all(|p| held.contains(p.as_str()))
}

#[cfg(test)]
mod tests;

/// Told about lifecycle events that someone outside the gateway must hear of, when no
/// `[mail]` is configured (with it, the invitation mail is queued in the invitation's own
/// transaction instead): the seam for a webhook. The admin API returns the link to the
/// inviting admin either way.
pub trait Notifier: Send + Sync {
    /// A new invitation; `link` holds the single-use token (a secret: never log it).
    fn invitation(&self, invitation: &Invitation, link: &str);
}

/// The default notifier: one log line per invitation, without the link.
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn invitation(&self, invitation: &Invitation, _link: &str) {
        tracing::info!(
            email = %invitation.email,
            org = %invitation.org_id,
            expires_at = invitation.expires_at,
            "invitation created; the link went to the inviting admin (no mail notifier configured)"
        );
    }
}
