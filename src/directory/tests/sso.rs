//! Partner SSO's directory part on both stores: domains belong to one org, flows are
//! answered once and expire, and a sign-in links, provisions (within the seat cap),
//! activates an invited user, checks each role against the org's bounds inside its
//! transaction, and refuses another org's user.

use super::*;
use crate::directory::sso::{SsoConnection, SsoFlow, SsoSignIn};

fn connection(org: &str) -> SsoConnection {
    SsoConnection {
        org_id: org.into(),
        issuer: "https://idp.acme.example".into(),
        client_id: "gw".into(),
        client_secret: "env:ACME_SECRET".into(),
        scopes: vec!["openid".into(), "email".into()],
        email_claim: "email".into(),
        roles_claim: Some("groups".into()),
        role_map: vec![("sales".into(), "partner-admin".into())],
        default_roles: vec![],
        jit: true,
        enforce: true,
        idp_mfa: false,
        mfa_acr_values: vec![],
        userinfo: false,
        created_at: 0,
        updated_at: 0,
    }
}

fn sign_in(subject: &str, email: &str, roles: Option<Vec<&str>>) -> SsoSignIn {
    SsoSignIn {
        org_id: "acme".into(),
        subject: subject.into(),
        email: email.into(),
        sid: Some(format!("sid-{subject}")),
        roles: roles.map(|r| r.into_iter().map(String::from).collect()),
        default_roles: vec!["partner-admin".into()],
        jit: true,
        actor: AuditActor::new("anonymous"),
    }
}

fn refused(r: StoreResult<crate::directory::SsoSignedIn>) -> &'static str {
    match r {
        Err(StoreError::Refused(reason)) => reason,
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn connections_and_domains() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let actor = AuditActor::new("u-owner");
        assert!(store.sso_connection("acme").await.unwrap().is_none());
        let before = store
            .put_sso_connection(&connection("acme"), &actor, 2_000)
            .await;
        assert_eq!(before.unwrap(), None);
        let saved = store.sso_connection("acme").await.unwrap().unwrap();
        assert_eq!(saved.role_map, connection("acme").role_map);
        assert!(saved.enforce && saved.jit);
        assert!(matches!(
            store
                .put_sso_connection(&connection("nope"), &actor, 2_000)
                .await,
            Err(StoreError::NotFound(_))
        ));
        assert!(store
            .add_org_domain("acme", "acme.example", &actor, 2_000)
            .await
            .unwrap());
        assert!(!store
            .add_org_domain("acme", "acme.example", &actor, 2_000)
            .await
            .unwrap());
        assert!(matches!(
            store
                .add_org_domain("globex", "acme.example", &actor, 2_000)
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store.domain_org("acme.example").await.unwrap().as_deref(),
            Some("acme")
        );
        assert_eq!(
            store.org_domains("acme").await.unwrap(),
            vec!["acme.example"]
        );
        assert!(store
            .remove_org_domain("acme", "acme.example", &actor, 2_000)
            .await
            .unwrap());
        assert!(!store
            .remove_org_domain("acme", "acme.example", &actor, 2_000)
            .await
            .unwrap());
        assert!(store
            .delete_sso_connection("acme", &actor, 2_000)
            .await
            .unwrap());
        assert!(!store
            .delete_sso_connection("acme", &actor, 2_000)
            .await
            .unwrap());
        let filter = AuditFilter {
            action_prefix: Some("sso.".into()),
            ..Default::default()
        };
        let actions: Vec<String> = store
            .audit_list(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.entry.action)
            .collect();
        assert_eq!(
            actions,
            [
                "sso.connection.put",
                "sso.domain.add",
                "sso.domain.remove",
                "sso.connection.delete"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn flows_are_answered_once_and_expire() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let flow = |hash: &str, expires_at| SsoFlow {
            state_hash: hash.into(),
            org_id: "acme".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            rd: "/".into(),
            created_at: 1_000,
            expires_at,
        };
        store
            .insert_sso_flow(&flow("a", 1_600), 1_000)
            .await
            .unwrap();
        store
            .insert_sso_flow(&flow("b", 1_600), 1_000)
            .await
            .unwrap();
        assert_eq!(
            store
                .take_sso_flow("a", 1_100)
                .await
                .unwrap()
                .unwrap()
                .nonce,
            "n"
        );
        assert!(
            store.take_sso_flow("a", 1_100).await.unwrap().is_none(),
            "once"
        );
        assert!(
            store.take_sso_flow("b", 1_600).await.unwrap().is_none(),
            "expired"
        );
        assert!(store.take_sso_flow("zzz", 1_100).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn sign_ins_link_provision_and_stay_within_the_bounds() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let after = || serde_json::json!({ "method": "sso" });
        // An unknown user is created with the defaults (partner-admin is delegable).
        let done = store
            .sso_sign_in(&sign_in("s-new", "new@acme.example", None), after(), 3_000)
            .await
            .unwrap();
        assert!(done.provisioned);
        assert_eq!(done.roles, vec!["partner-admin"]);
        // Found again by the link, even with another email at the IdP; roles from the
        // mapping, the non-delegable one refused.
        let again = store
            .sso_sign_in(
                &sign_in(
                    "s-new",
                    "renamed@acme.example",
                    Some(vec!["partner-user", "partner-admin"]),
                ),
                after(),
                3_100,
            )
            .await
            .unwrap();
        assert_eq!(again.user_id, done.user_id);
        assert!(!again.provisioned);
        assert_eq!(again.roles, vec!["partner-admin"]);
        assert_eq!(again.refused_roles, vec!["partner-user"]);
        assert_eq!(
            store
                .sso_user("acme", None, Some("sid-s-new"))
                .await
                .unwrap(),
            Some(done.user_id.clone())
        );
        assert_eq!(
            store.sso_user("acme", Some("s-new"), None).await.unwrap(),
            Some(done.user_id.clone())
        );
        // An invited user is activated by signing in.
        let bob = store
            .sso_sign_in(&sign_in("s-bob", "bob@acme.example", None), after(), 3_200)
            .await
            .unwrap();
        let bob_now = store
            .user_by_email("bob@acme.example")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (bob.user_id, bob_now.status),
            (bob_now.id.clone(), UserStatus::Active)
        );
        // Another org's user, another subject for a linked user, no JIT, a suspended org.
        let other = store
            .sso_sign_in(
                &sign_in("s-carol", "carol@globex.example", None),
                after(),
                3_300,
            )
            .await;
        assert_eq!(refused(other), "other_org");
        let twin = store
            .sso_sign_in(&sign_in("s-twin", "bob@acme.example", None), after(), 3_300)
            .await;
        assert_eq!(refused(twin), "other_subject");
        let mut no_jit = sign_in("s-nobody", "nobody@acme.example", None);
        no_jit.jit = false;
        assert_eq!(
            refused(store.sso_sign_in(&no_jit, after(), 3_300).await),
            "unknown_user"
        );
        let mut globex = sign_in("s-g", "g@globex.example", None);
        globex.org_id = "globex".into();
        assert_eq!(
            refused(store.sso_sign_in(&globex, after(), 3_300).await),
            "org_inactive"
        );
        // The seat cap.
        let actor = AuditActor::new("u-owner");
        let seats = store.org("acme").await.unwrap().unwrap().seats_used;
        let patch = OrgPatch {
            max_users: Some(Some(seats)),
            ..Default::default()
        };
        store
            .update_org("acme", &patch, &actor, 3_400)
            .await
            .unwrap();
        let full = store
            .sso_sign_in(
                &sign_in("s-late", "late@acme.example", None),
                after(),
                3_500,
            )
            .await;
        assert_eq!(refused(full), "seat_cap");
        assert!(
            store
                .user_by_email("late@acme.example")
                .await
                .unwrap()
                .is_none(),
            "nothing half-written"
        );
        // A disabled user is refused whatever the IdP says.
        store
            .set_user_status(&done.user_id, UserStatus::Disabled, &actor, 3_600)
            .await
            .unwrap();
        let gone = store
            .sso_sign_in(&sign_in("s-new", "new@acme.example", None), after(), 3_700)
            .await;
        assert_eq!(refused(gone), "user_inactive");
    })
    .await;
}
