//! The lifecycle store on both databases: invitations (seat cap inside the transaction,
//! single use, expiry), offboarding, grants with expiry (an injected clock decides), the
//! expired-grant sweep and review decisions. Each write leaves its audit record and its
//! directory change, and the chain still verifies.

use http::Method;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::config::{AuthMode, Mode, PathTemplate, RouteConfig};
use crate::policy::{decide, Decision, DenyReason, Request};

const T0: Timestamp = 1_900_000_000;

fn owner() -> AuditActor {
    AuditActor {
        actor_email: Some("owner@northwind.example".into()),
        request_id: Some("req-7".into()),
        ..AuditActor::new("u-owner")
    }
}

fn invitation(email: &str, token_hash: &str, expires_at: Timestamp) -> NewInvitation {
    NewInvitation {
        org_id: "acme".into(),
        email: email.into(),
        roles: vec!["partner-user".into()],
        token_hash: token_hash.into(),
        expires_at,
        mail: None,
    }
}

async fn actions(store: &dyn Store) -> Vec<String> {
    let all = store
        .audit_list(&AuditFilter::default())
        .await
        .expect("audit");
    all.into_iter().map(|r| r.entry.action).collect()
}

async fn intact(store: &dyn Store) {
    let v = store.audit_verify().await.expect("verify");
    assert!(v.first_problem.is_none(), "{v:?}");
}

#[tokio::test]
async fn invitations_take_a_seat_are_single_use_and_expire() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = db.store.as_ref();
        // acme: alice (active) and bob (invited) hold 2 seats; cap at 3.
        let patch = OrgPatch {
            max_users: Some(Some(3)),
            ..OrgPatch::default()
        };
        let acme = store
            .update_org("acme", &patch, &owner(), T0)
            .await
            .unwrap();
        assert_eq!((acme.seats_used, acme.max_users), (2, Some(3)));

        let dan = store
            .invite(
                &invitation("dan@acme.example", "h-dan", T0 + 60),
                &owner(),
                T0,
            )
            .await
            .expect("third seat");
        assert_eq!(dan.roles, vec!["partner-user".to_string()]);
        let full = store
            .invite(
                &invitation("eve@acme.example", "h-eve", T0 + 60),
                &owner(),
                T0,
            )
            .await;
        assert!(
            matches!(full, Err(StoreError::Refused("seat_cap"))),
            "{full:?}"
        );
        assert!(store
            .user_by_email("eve@acme.example")
            .await
            .unwrap()
            .is_none());
        // Re-inviting a still-invited user replaces the invitation, without a new seat.
        let again = store
            .invite(
                &invitation("dan@acme.example", "h-dan2", T0 + 120),
                &owner(),
                T0 + 1,
            )
            .await
            .expect("re-invite");
        assert_eq!(again.user_id, dan.user_id);
        let old = store.invitation_by_token("h-dan").await.unwrap().unwrap();
        assert_eq!(old.state(T0 + 1), "revoked");
        // An active user of the org cannot be "invited" again.
        let taken = store
            .invite(
                &invitation("alice@acme.example", "h-a", T0 + 60),
                &owner(),
                T0,
            )
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

        // The withdrawn token is dead; the new one works once, before expiry.
        let withdrawn = store
            .accept_invitation("h-dan", "$argon2id$x", &owner(), T0 + 2)
            .await;
        assert!(matches!(withdrawn, Err(StoreError::NotFound(_))));
        let late = store
            .accept_invitation("h-dan2", "$argon2id$x", &owner(), T0 + 120)
            .await;
        assert!(
            matches!(late, Err(StoreError::NotFound(_))),
            "expired at +120"
        );
        let id = store
            .accept_invitation("h-dan2", "$argon2id$x", &owner(), T0 + 119)
            .await
            .expect("accept");
        assert_eq!(id, dan.user_id);
        let twice = store
            .accept_invitation("h-dan2", "$argon2id$x", &owner(), T0 + 119)
            .await;
        assert!(matches!(twice, Err(StoreError::NotFound(_))), "single use");
        let dan_record = store
            .user_by_email("dan@acme.example")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(dan_record.status, UserStatus::Active);
        assert_eq!(dan_record.password_hash.as_deref(), Some("$argon2id$x"));

        let acts = actions(store).await;
        for a in ["org.update", "invitation.create", "invitation.accept"] {
            assert!(acts.iter().any(|x| x == a), "{a} in {acts:?}");
        }
        intact(store).await;
    })
    .await;
}

#[tokio::test]
async fn an_invitation_into_a_suspended_org_is_refused() {
    on_both(|db| async move {
        with_sample(&db).await;
        let mut inv = invitation("x@globex.example", "h-x", T0 + 60);
        inv.org_id = "globex".into();
        let refused = db.store.invite(&inv, &owner(), T0).await;
        assert!(
            matches!(refused, Err(StoreError::Refused("org_inactive"))),
            "{refused:?}"
        );
    })
    .await;
}

/// A route that needs `level` on the `{account}` capture.
fn account_route(level: AccountLevel) -> RouteConfig {
    RouteConfig {
        name: "clients".into(),
        host: None,
        path: PathTemplate::literal("/clients/"),
        methods: None,
        upstream: "portal".into(),
        auth: AuthMode::Session,
        allow_roles: vec![],
        allow_permissions: vec![],
        allow_org_types: vec![],
        account_permission: Some(level),
        mode: Mode::Enforce,
        rate_limit: None,
        strip_prefix: None,
        websocket: false,
        require_mfa: false,
        max_auth_age: None,
    }
}

#[tokio::test]
async fn a_temporary_grant_denies_after_expiry_and_the_sweep_removes_it() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = db.store.as_ref();
        let clock = ManualClock::starting_at(T0);
        let alice = user_id(store, "alice@acme.example").await;
        let grant = GrantChange {
            user_id: alice.clone(),
            account_id: "client-42".into(),
            level: AccountLevel::Standard,
            expires_at: Some(T0 + 3600),
        };
        let before = store
            .put_grant(&grant, &owner(), clock.now())
            .await
            .unwrap();
        assert_eq!(
            before.map(|g| g.level),
            Some(AccountLevel::View),
            "changed, not added"
        );

        let route = account_route(AccountLevel::Standard);
        let identity = store.identity(&alice).await.unwrap().unwrap();
        let ask = |now| {
            let req = Request {
                method: &Method::POST,
                account: Some("client-42"),
                now,
                strength: Default::default(),
            };
            decide(&route, &req, Some(&identity))
        };
        assert_eq!(ask(clock.now()), Decision::Allow);
        clock.advance(3599);
        assert_eq!(ask(clock.now()), Decision::Allow);
        // At the expiry second the same cached identity denies: no sweep needed.
        clock.advance(1);
        assert_eq!(ask(clock.now()), Decision::Deny(DenyReason::GrantExpired));

        let head = store.latest_change_seq().await.unwrap();
        let swept = store.sweep_expired_grants(clock.now()).await.unwrap();
        let mut swept: Vec<_> = swept
            .iter()
            .map(|g| (g.user_id.as_str(), g.account_id.as_str()))
            .collect();
        swept.sort();
        assert_eq!(swept, vec![(alice.as_str(), "client-42")]);
        let reloaded = store.identity(&alice).await.unwrap().unwrap();
        assert!(reloaded.grant("client-42").is_none());
        assert!(
            reloaded.grant("client-7").is_some(),
            "a grant without expiry stays"
        );
        let changes = store.changes_since(head, 10).await.unwrap();
        assert!(changes
            .iter()
            .any(|c| c.target == ChangeTarget::User(alice.clone())));
        let expired = store
            .audit_list(&AuditFilter {
                action_prefix: Some("grant.expire".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].entry.actor, "system");
        assert_eq!(expired[0].entry.org_id.as_deref(), Some("acme"));
        // Nothing left to sweep: no transaction, no record.
        assert!(store
            .sweep_expired_grants(clock.now())
            .await
            .unwrap()
            .is_empty());
        intact(store).await;
    })
    .await;
}

#[tokio::test]
async fn offboarding_disables_members_and_revokes_grants_keeping_the_records() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = db.store.as_ref();
        store
            .invite(
                &invitation("dan@acme.example", "h-dan", T0 + 60),
                &owner(),
                T0,
            )
            .await
            .unwrap();
        let change = store
            .set_org_status("acme", OrgStatus::Offboarded, &owner(), T0)
            .await
            .unwrap();
        assert_eq!(change.after, "offboarded");
        let alice = store
            .user_by_email("alice@acme.example")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            alice.status,
            UserStatus::Disabled,
            "the record stays, disabled"
        );
        let identity = store.identity(&alice.id).await.unwrap().unwrap();
        assert!(identity.grants.is_empty());
        let dead = store
            .accept_invitation("h-dan", "$argon2id$x", &owner(), T0 + 1)
            .await;
        assert!(
            matches!(dead, Err(StoreError::NotFound(_))),
            "open invitations revoked"
        );
        let records = store
            .audit_list(&AuditFilter {
                action_prefix: Some("org.offboard".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let after = records[0].entry.after.clone().unwrap();
        assert_eq!(after["users_disabled"], 3, "{after}");
        assert_eq!(
            after["grants_revoked"].as_array().unwrap().len(),
            2,
            "{after}"
        );
        assert_eq!(after["invitations_revoked"], 1, "{after}");
        let org = store.org("acme").await.unwrap().unwrap();
        assert_eq!((org.status, org.seats_used), (OrgStatus::Offboarded, 0));
        // Taking a seat back fits under the cap, counted inside the transaction.
        store
            .set_org_status("acme", OrgStatus::Active, &owner(), T0 + 2)
            .await
            .unwrap();
        let patch = OrgPatch {
            max_users: Some(Some(1)),
            ..OrgPatch::default()
        };
        store
            .update_org("acme", &patch, &owner(), T0 + 2)
            .await
            .unwrap();
        store
            .set_user_status(&alice.id, UserStatus::Active, &owner(), T0 + 3)
            .await
            .expect("the one seat");
        let dan = store
            .user_by_email("dan@acme.example")
            .await
            .unwrap()
            .unwrap();
        let over = store
            .set_user_status(&dan.id, UserStatus::Active, &owner(), T0 + 3)
            .await;
        assert!(
            matches!(over, Err(StoreError::Refused("seat_cap"))),
            "{over:?}"
        );
        intact(store).await;
    })
    .await;
}

#[tokio::test]
async fn orgs_roles_accounts_and_review_decisions_round_trip() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = db.store.as_ref();
        let new = NewOrg {
            id: "fabrikam".into(),
            name: "Fabrikam".into(),
            org_type: "agency".into(),
            status: OrgStatus::Pending,
            max_users: Some(5),
            allowed_roles: Some(vec!["partner-user".into()]),
            max_grant_ttl: Some(86_400),
            contact_email: Some("pat@fabrikam.example".into()),
        };
        let created = store.create_org(&new, &owner(), T0).await.unwrap();
        assert_eq!(
            created.allowed_roles,
            Some(vec!["partner-user".to_string()])
        );
        assert!(created.allows_role("partner-user") && !created.allows_role("partner-admin"));
        let dup = store.create_org(&new, &owner(), T0).await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))));
        let mut bad = new.clone();
        bad.id = "other".into();
        bad.allowed_roles = Some(vec!["no-such-role".into()]);
        assert!(matches!(
            store.create_org(&bad, &owner(), T0).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(
            store.org("other").await.unwrap().is_none(),
            "rolled back whole"
        );
        let patch = OrgPatch {
            allowed_roles: Some(None),
            ..OrgPatch::default()
        };
        let open = store
            .update_org("fabrikam", &patch, &owner(), T0)
            .await
            .unwrap();
        assert_eq!(open.allowed_roles, None);
        let ids: Vec<String> = store
            .orgs()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(ids, ["acme", "fabrikam", "globex"]);

        let role = data::RoleEntry {
            name: "auditor".into(),
            permissions: vec!["audit:view".into()],
            delegable: false,
        };
        store.put_role(&role, &owner(), T0).await.unwrap();
        assert!(store.roles().await.unwrap().contains(&role));
        let account = data::AccountEntry {
            id: "client-99".into(),
            name: "Client 99".into(),
        };
        store.put_account(&account, &owner(), T0).await.unwrap();
        assert!(store.accounts().await.unwrap().contains(&account));

        let alice = user_id(store, "alice@acme.example").await;
        store
            .record_review_decision(&alice, ReviewDecision::Keep, Some("q4"), &owner(), T0)
            .await
            .unwrap();
        store
            .record_review_decision(&alice, ReviewDecision::Revoke, None, &owner(), T0 + 5)
            .await
            .unwrap();
        let decisions = store.review_decisions().await.unwrap();
        assert_eq!(decisions.len(), 1, "the last decision per user");
        assert_eq!(
            (decisions[0].decision, decisions[0].ts),
            (ReviewDecision::Revoke, T0 + 5)
        );
        let record = store
            .user_by_email("alice@acme.example")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.status,
            UserStatus::Disabled,
            "revoke applies at once"
        );
        let acts = actions(store).await;
        for a in [
            "org.register",
            "role.put",
            "account.put",
            "review.keep",
            "review.revoke",
        ] {
            assert!(acts.iter().any(|x| x == a), "{a} in {acts:?}");
        }
        intact(store).await;
    })
    .await;
}
