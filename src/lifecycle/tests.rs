use super::*;
use crate::directory::{AccountGrant, OrgRef, OrgStatus, UserStatus};

fn identity(user: &str, org: &str, org_type: &str, permissions: &[&str]) -> Identity {
    let mut permissions: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
    permissions.sort();
    Identity {
        user_id: user.into(),
        email: format!("{user}@{org}.example"),
        status: UserStatus::Active,
        org: OrgRef {
            id: org.into(),
            name: org.into(),
            org_type: org_type.into(),
            status: OrgStatus::Active,
            mfa_required: false,
        },
        roles: vec![],
        permissions,
        grants: vec![],
        second_factors: 0,
    }
}

fn org(id: &str, allowed: Option<&[&str]>, max_grant_ttl: Option<i64>) -> OrgDetail {
    OrgDetail {
        id: id.into(),
        name: id.into(),
        org_type: "reseller".into(),
        status: OrgStatus::Active,
        max_users: Some(10),
        allowed_roles: allowed.map(|a| a.iter().map(|r| r.to_string()).collect()),
        max_grant_ttl,
        contact_email: None,
        created_at: 0,
        seats_used: 1,
        mfa_required: false,
    }
}

fn roles() -> Vec<RoleEntry> {
    let role = |name: &str, permissions: &[&str], delegable| RoleEntry {
        name: name.into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        delegable,
    };
    vec![
        role("owner-admin", &["orgs:manage", "users:manage"], false),
        role("partner-admin", &["dashboard:view", "users:manage"], true),
        role("partner-user", &["dashboard:view"], true),
        role("referral-partner", &["referrals:manage"], true),
    ]
}

const ADMIN: &[&str] = &["dashboard:view", "users:manage"];

#[test]
fn delegated_admins_stay_in_their_org() {
    let alice = identity("alice", "acme", "reseller", ADMIN);
    let admin = Admin::new(&alice, "owner");
    assert!(!admin.owner);
    assert_eq!(admin.scope(), Some("acme"));
    assert_eq!(admin.check_org("acme"), Ok(()));
    assert_eq!(admin.check_org("globex"), Err(Refusal::OtherOrg));
    let carol = identity("carol", "globex", "reseller", &["dashboard:view"]);
    assert_eq!(admin.check_user(&carol), Err(Refusal::OtherOrg));
}

#[test]
fn owner_admins_reach_every_org_but_not_themselves() {
    let owner = identity("o", "northwind", "owner", &["orgs:manage", "users:manage"]);
    let admin = Admin::new(&owner, "owner");
    assert_eq!(admin.scope(), None);
    assert_eq!(admin.check_org("globex"), Ok(()));
    assert_eq!(admin.check_user(&owner), Err(Refusal::SelfChange));
}

#[test]
fn no_one_manages_a_user_with_more_rights_or_themselves() {
    let alice = identity("alice", "acme", "reseller", ADMIN);
    let admin = Admin::new(&alice, "owner");
    let bob = identity("bob", "acme", "reseller", &["dashboard:view"]);
    assert_eq!(admin.check_user(&bob), Ok(()));
    let mallory = identity(
        "m",
        "acme",
        "reseller",
        &["referrals:manage", "users:manage"],
    );
    assert_eq!(admin.check_user(&mallory), Err(Refusal::AboveOwnRights));
    assert_eq!(admin.check_user(&alice), Err(Refusal::SelfChange));
}

#[test]
fn roles_must_be_delegable_allowed_and_within_own_rights() {
    let alice = identity("alice", "acme", "reseller", ADMIN);
    let admin = Admin::new(&alice, "owner");
    let defined = roles();
    let acme = org("acme", None, None);
    let names = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        admin.check_roles(&acme, &names(&["partner-user"]), &defined),
        Ok(())
    );
    assert_eq!(
        admin.check_roles(&acme, &names(&["owner-admin"]), &defined),
        Err(RoleProblem::Refused(Refusal::NotDelegable))
    );
    assert_eq!(
        admin.check_roles(&acme, &names(&["referral-partner"]), &defined),
        Err(RoleProblem::Refused(Refusal::AboveOwnRights))
    );
    assert_eq!(
        admin.check_roles(&acme, &names(&["nope"]), &defined),
        Err(RoleProblem::Unknown("nope".into()))
    );
    let restricted = org("acme", Some(&["partner-admin"]), None);
    assert_eq!(
        admin.check_roles(&restricted, &names(&["partner-user"]), &defined),
        Err(RoleProblem::Refused(Refusal::RoleNotAllowed))
    );
    let other = org("globex", None, None);
    assert_eq!(
        admin.check_roles(&other, &names(&["partner-user"]), &defined),
        Err(RoleProblem::Refused(Refusal::OtherOrg))
    );
    // An owner admin may hand out a non-delegable role, still within their own rights.
    let owner = identity("o", "northwind", "owner", &["orgs:manage", "users:manage"]);
    let owner = Admin::new(&owner, "owner");
    assert_eq!(
        owner.check_roles(&acme, &names(&["owner-admin"]), &defined),
        Ok(())
    );
    assert_eq!(
        owner.check_roles(&acme, &names(&["partner-admin"]), &defined),
        Err(RoleProblem::Refused(Refusal::AboveOwnRights))
    );
}

#[test]
fn grants_are_capped_by_own_level_and_lifetimes() {
    let mut alice = identity("alice", "acme", "reseller", ADMIN);
    alice.grants = vec![
        AccountGrant {
            account: "client-42".into(),
            level: AccountLevel::Standard,
            expires_at: None,
        },
        AccountGrant {
            account: "client-90".into(),
            level: AccountLevel::Admin,
            expires_at: Some(100),
        },
    ];
    let admin = Admin::new(&alice, "owner");
    let acme = org("acme", None, None);
    let day = 86_400;
    let now = 1_000;
    let check = |o: &OrgDetail, account, level, expires| {
        admin.check_grant(o, account, level, expires, now, 90 * day)
    };
    assert_eq!(check(&acme, "client-42", AccountLevel::View, None), Ok(()));
    assert_eq!(
        check(&acme, "client-42", AccountLevel::Standard, None),
        Ok(())
    );
    assert_eq!(
        check(&acme, "client-42", AccountLevel::Admin, None),
        Err(Refusal::GrantAboveOwn)
    );
    // Their own grant on client-90 expired: nothing to delegate.
    assert_eq!(
        check(&acme, "client-90", AccountLevel::View, None),
        Err(Refusal::GrantAboveOwn)
    );
    assert_eq!(
        check(&acme, "client-7", AccountLevel::View, None),
        Err(Refusal::GrantAboveOwn)
    );
    assert_eq!(
        check(&acme, "client-42", AccountLevel::View, Some(now + 91 * day)),
        Err(Refusal::GrantTtl)
    );
    let capped = org("acme", None, Some(7 * day));
    assert_eq!(
        check(&capped, "client-42", AccountLevel::View, None),
        Err(Refusal::GrantTtl)
    );
    assert_eq!(
        check(
            &capped,
            "client-42",
            AccountLevel::View,
            Some(now + 7 * day)
        ),
        Ok(())
    );
    assert_eq!(
        check(
            &capped,
            "client-42",
            AccountLevel::View,
            Some(now + 7 * day + 1)
        ),
        Err(Refusal::GrantTtl)
    );
}

#[test]
fn refusal_words_are_stable() {
    for r in [Refusal::SeatCap, Refusal::OrgInactive, Refusal::OtherOrg] {
        assert_eq!(Refusal::parse(r.as_str()), Some(r));
    }
    assert_eq!(Refusal::SelfChange.as_str(), "self_change");
}
