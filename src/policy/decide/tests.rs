#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::{Mode, PathTemplate};
use crate::directory::{AccountGrant, OrgRef};
use proptest::prelude::*;

const NOW: Timestamp = 1_800_000_000;

fn route(auth: AuthMode) -> RouteConfig {
    RouteConfig {
        name: "r".into(),
        host: None,
        path: PathTemplate::parse("/clients/{account}/").unwrap(),
        methods: None,
        upstream: "portal".into(),
        auth,
        allow_roles: Vec::new(),
        allow_permissions: Vec::new(),
        allow_org_types: Vec::new(),
        account_permission: None,
        mode: Mode::Enforce,
        rate_limit: None,
        strip_prefix: None,
        websocket: false,
        require_mfa: false,
        max_auth_age: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// bob: a partner user at reseller acme with view on client-42, admin on client-77,
/// an expired standard grant on client-90 and a temporary one on client-55.
fn bob() -> Identity {
    Identity {
        user_id: "u-bob".into(),
        email: "bob@acme.example".into(),
        status: UserStatus::Active,
        org: OrgRef {
            id: "acme".into(),
            name: "Acme".into(),
            org_type: "reseller".into(),
            status: OrgStatus::Active,
            mfa_required: false,
        },
        roles: strings(&["partner-user"]),
        permissions: strings(&["deals:view", "reports:view"]),
        grants: vec![
            AccountGrant {
                account: "client-42".into(),
                level: AccountLevel::View,
                expires_at: None,
            },
            AccountGrant {
                account: "client-55".into(),
                level: AccountLevel::Standard,
                expires_at: Some(NOW + 60),
            },
            AccountGrant {
                account: "client-77".into(),
                level: AccountLevel::Admin,
                expires_at: None,
            },
            AccountGrant {
                account: "client-90".into(),
                level: AccountLevel::Standard,
                expires_at: Some(NOW - 1),
            },
        ],
        second_factors: 0,
    }
}

fn owner_admin() -> Identity {
    let mut id = bob();
    id.user_id = "u-owner".into();
    id.org.id = "northwind".into();
    id.org.org_type = "owner".into();
    id.roles = strings(&["owner-admin"]);
    id.permissions = strings(&["users:manage", "orgs:manage"]);
    id.grants.clear();
    id
}

fn req<'a>(method: &'a Method, account: Option<&'a str>) -> Request<'a> {
    Request {
        method,
        account,
        now: NOW,
        strength: Default::default(),
    }
}

#[test]
fn every_rule_and_reason() {
    use DenyReason::{
        AccountGrant, GrantExpired, OrgInactive, OrgType, Permission, Role, UserInactive,
    };
    let get = Method::GET;
    let delete = Method::DELETE;
    let suspended_user = Identity {
        status: UserStatus::Suspended,
        second_factors: 0,
        ..bob()
    };
    let mut suspended_org = bob();
    suspended_org.org.status = OrgStatus::Suspended;
    let mut invited = bob();
    invited.status = UserStatus::Invited;

    type Case = (
        &'static str,
        fn(&mut RouteConfig),
        Method,
        Option<&'static str>,
        Identity,
        Decision,
    );
    let cases: Vec<Case> = vec![
        (
            "no rules",
            |_| {},
            get.clone(),
            None,
            bob(),
            Decision::Allow,
        ),
        (
            "role any-of passes",
            |r| r.allow_roles = strings(&["partner-admin", "partner-user"]),
            get.clone(),
            None,
            bob(),
            Decision::Allow,
        ),
        (
            "role missing",
            |r| r.allow_roles = strings(&["partner-admin"]),
            get.clone(),
            None,
            bob(),
            Decision::Deny(Role),
        ),
        (
            "permission any-of passes",
            |r| r.allow_permissions = strings(&["x:y", "reports:view"]),
            get.clone(),
            None,
            bob(),
            Decision::Allow,
        ),
        (
            "permission missing",
            |r| r.allow_permissions = strings(&["users:manage"]),
            get.clone(),
            None,
            bob(),
            Decision::Deny(Permission),
        ),
        (
            "org type passes",
            |r| r.allow_org_types = strings(&["reseller"]),
            get.clone(),
            None,
            bob(),
            Decision::Allow,
        ),
        (
            "org type wrong",
            |r| r.allow_org_types = strings(&["referral"]),
            get.clone(),
            None,
            bob(),
            Decision::Deny(OrgType),
        ),
        (
            "method allowed",
            |r| r.methods = Some(vec![Method::GET]),
            get.clone(),
            None,
            bob(),
            Decision::Allow,
        ),
        (
            "method not allowed",
            |r| r.methods = Some(vec![Method::GET]),
            delete.clone(),
            None,
            bob(),
            Decision::Deny(DenyReason::Method),
        ),
        (
            "view on a view grant",
            |r| r.account_permission = Some(AccountLevel::View),
            get.clone(),
            Some("client-42"),
            bob(),
            Decision::Allow,
        ),
        (
            "standard on a view grant",
            |r| r.account_permission = Some(AccountLevel::Standard),
            get.clone(),
            Some("client-42"),
            bob(),
            Decision::Deny(AccountGrant),
        ),
        (
            "admin on an admin grant",
            |r| r.account_permission = Some(AccountLevel::Admin),
            get.clone(),
            Some("client-77"),
            bob(),
            Decision::Allow,
        ),
        (
            "view on an admin grant",
            |r| r.account_permission = Some(AccountLevel::View),
            get.clone(),
            Some("client-77"),
            bob(),
            Decision::Allow,
        ),
        (
            "no grant at all",
            |r| r.account_permission = Some(AccountLevel::View),
            get.clone(),
            Some("client-1"),
            bob(),
            Decision::Deny(AccountGrant),
        ),
        (
            "expired grant",
            |r| r.account_permission = Some(AccountLevel::View),
            get.clone(),
            Some("client-90"),
            bob(),
            Decision::Deny(GrantExpired),
        ),
        (
            "temporary grant still valid",
            |r| r.account_permission = Some(AccountLevel::Standard),
            get.clone(),
            Some("client-55"),
            bob(),
            Decision::Allow,
        ),
        (
            "account rule without a capture",
            |r| r.account_permission = Some(AccountLevel::View),
            get.clone(),
            None,
            bob(),
            Decision::Deny(AccountGrant),
        ),
        (
            "suspended user",
            |_| {},
            get.clone(),
            None,
            suspended_user,
            Decision::Deny(UserInactive),
        ),
        (
            "invited user",
            |_| {},
            get.clone(),
            None,
            invited,
            Decision::Deny(UserInactive),
        ),
        (
            "suspended org",
            |_| {},
            get.clone(),
            None,
            suspended_org,
            Decision::Deny(OrgInactive),
        ),
        (
            "owner admin gets no bypass",
            |r| r.allow_roles = strings(&["partner-admin"]),
            get.clone(),
            None,
            owner_admin(),
            Decision::Deny(Role),
        ),
        (
            "owner admin needs a grant too",
            |r| r.account_permission = Some(AccountLevel::View),
            get.clone(),
            Some("client-42"),
            owner_admin(),
            Decision::Deny(AccountGrant),
        ),
        (
            "owner admin passes its own rules",
            |r| r.allow_org_types = strings(&["owner"]),
            get.clone(),
            None,
            owner_admin(),
            Decision::Allow,
        ),
        (
            "first failing rule decides: org type before role",
            |r| {
                r.allow_roles = strings(&["partner-admin"]);
                r.allow_org_types = strings(&["referral"]);
            },
            get.clone(),
            None,
            bob(),
            Decision::Deny(OrgType),
        ),
        (
            "first failing rule decides: status before everything",
            |r| {
                r.allow_roles = strings(&["partner-admin"]);
            },
            get.clone(),
            None,
            Identity {
                status: UserStatus::Disabled,
                second_factors: 0,
                ..bob()
            },
            Decision::Deny(UserInactive),
        ),
    ];
    for (name, edit, method, account, identity, want) in cases {
        let mut r = route(AuthMode::Session);
        edit(&mut r);
        let got = decide(&r, &req(&method, account), Some(&identity));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn every_reason_has_a_distinct_label() {
    let mut labels: Vec<&str> = DenyReason::ALL.iter().map(|r| r.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), DenyReason::ALL.len());
    assert!(!DenyReason::UserInactive.shadowable());
    assert!(!DenyReason::OrgInactive.shadowable());
    assert!(DenyReason::Role.shadowable());
}

#[test]
fn anonymous_requests() {
    let get = Method::GET;
    let open = route(AuthMode::None);
    assert_eq!(decide(&open, &req(&get, None), None), Decision::Allow);
    for auth in [AuthMode::Session, AuthMode::Bearer, AuthMode::Any] {
        assert_eq!(
            decide(&route(auth), &req(&get, None), None),
            Decision::Unauthenticated
        );
    }
    // Rules on an open route (rejected by validation) still fail closed.
    let mut odd = route(AuthMode::None);
    odd.allow_roles = strings(&["x"]);
    assert_eq!(
        decide(&odd, &req(&get, None), None),
        Decision::Deny(DenyReason::Role)
    );
}

#[test]
fn expiry_is_exclusive_of_the_expiry_second() {
    let id = bob();
    assert_eq!(
        account_level(Some(&id), Some("client-55"), NOW + 59),
        Ok(AccountLevel::Standard)
    );
    assert_eq!(
        account_level(Some(&id), Some("client-55"), NOW + 60),
        Err(DenyReason::GrantExpired)
    );
}

fn arb_route() -> impl Strategy<Value = RouteConfig> {
    let names = prop::collection::vec(
        prop::sample::select(vec!["a", "b", "partner-user", "reseller", "reports:view"]),
        0..3,
    );
    (
        prop::sample::select(vec![
            AuthMode::None,
            AuthMode::Session,
            AuthMode::Bearer,
            AuthMode::Any,
        ]),
        names.clone(),
        names.clone(),
        names,
        prop::option::of(prop::sample::select(vec![
            AccountLevel::View,
            AccountLevel::Standard,
            AccountLevel::Admin,
        ])),
    )
        .prop_map(|(auth, roles, perms, types, level)| {
            let mut r = route(auth);
            r.allow_roles = roles.into_iter().map(String::from).collect();
            r.allow_permissions = perms.into_iter().map(String::from).collect();
            r.allow_org_types = types.into_iter().map(String::from).collect();
            r.account_permission = level;
            r
        })
}

proptest! {
    /// The only way an anonymous request is allowed: auth = none and no rules.
    #[test]
    fn anonymous_allowed_only_on_open_routes_without_rules(r in arb_route(), account in prop::option::of("client-[0-9]{1,2}")) {
        let get = Method::GET;
        let allowed = decide(&r, &req(&get, account.as_deref()), None) == Decision::Allow;
        let open = r.auth == AuthMode::None
            && r.allow_roles.is_empty()
            && r.allow_permissions.is_empty()
            && r.allow_org_types.is_empty()
            && r.account_permission.is_none();
        prop_assert_eq!(allowed, open);
    }

    /// An org-type rule naming another type denies whatever else the route says.
    #[test]
    fn a_new_rule_only_narrows(r in arb_route(), other in "[a-z]{1,8}") {
        prop_assume!(r.allow_org_types.is_empty() && other != "reseller");
        let get = Method::GET;
        let id = bob();
        let before = decide(&r, &req(&get, Some("client-42")), Some(&id));
        let mut narrower = r.clone();
        narrower.allow_org_types = vec![other];
        let after = decide(&narrower, &req(&get, Some("client-42")), Some(&id));
        prop_assert_ne!(after, Decision::Allow);
        if before != Decision::Allow {
            prop_assert!(matches!(after, Decision::Deny(_) | Decision::Unauthenticated));
        }
    }
}
