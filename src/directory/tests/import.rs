//! Import, export and identity resolution.

use super::*;

#[tokio::test]
async fn migrations_run_twice_and_each_test_has_its_own_schema() {
    on_both(|db| async move {
        db.store.migrate().await.expect("second migrate");
        let again = connect(&db.url).await.expect("reconnect migrates again");
        again.ping().await.expect("ping");
        // A fresh schema: nothing from other tests.
        assert_eq!(
            again.export(true).await.expect("export"),
            DirectoryData::default()
        );
    })
    .await;
}

#[tokio::test]
async fn import_then_export_round_trips() {
    on_both(|db| async move {
        let counts = db
            .store
            .import(&data(SAMPLE), 1_000, false)
            .await
            .expect("import");
        let expected = ImportCounts {
            roles: 2,
            orgs: 2,
            users: 3,
            accounts: 2,
            grants: 2,
        };
        assert_eq!(counts, expected);
        let exported = db.store.export(true).await.expect("export");
        assert_eq!(exported, data(SAMPLE));
        let text = toml::to_string(&exported).expect("serialises");
        assert_eq!(data(&text), exported);
        let public = db.store.export(false).await.expect("export");
        assert!(public.users.iter().all(|u| u.password_hash.is_none()));
    })
    .await;
}

#[tokio::test]
async fn import_is_idempotent_and_keeps_user_ids() {
    on_both(|db| async move {
        with_sample(&db).await;
        let id = user_id(&*db.store, "alice@acme.example").await;
        let first = db.store.export(true).await.expect("export");
        db.store
            .import(&data(SAMPLE), 2_000, false)
            .await
            .expect("import again");
        assert_eq!(db.store.export(true).await.expect("export"), first);
        assert_eq!(user_id(&*db.store, "alice@acme.example").await, id);
        assert!(id.starts_with("u-") && id.len() == 18, "{id}");
    })
    .await;
}

#[tokio::test]
async fn reimport_replaces_sets_and_keeps_the_password_hash() {
    on_both(|db| async move {
        with_sample(&db).await;
        let change = r#"
            [[role]]
            name = "partner-user"
            permissions = ["reports:view"]
            [[user]]
            email = "Alice@ACME.example"
            org = "acme"
            roles = ["partner-user"]
            status = "suspended"
        "#;
        db.store
            .import(&data(change), 2_000, false)
            .await
            .expect("import");
        let alice = db
            .store
            .user_by_email("alice@acme.example")
            .await
            .expect("lookup");
        let alice = alice.expect("alice");
        assert_eq!(alice.roles, ["partner-user"]);
        assert_eq!(alice.status, UserStatus::Suspended);
        assert!(alice
            .password_hash
            .is_some_and(|h| h.starts_with("$argon2id$")));
        let identity = db
            .store
            .identity(&alice.id)
            .await
            .expect("identity")
            .expect("known");
        assert_eq!(identity.permissions, ["reports:view"]);
    })
    .await;
}

#[tokio::test]
async fn bad_references_are_all_listed_and_nothing_is_written() {
    on_both(|db| async move {
        with_sample(&db).await;
        let before = db.store.export(true).await.expect("export");
        let bad = r#"
            [[org]]
            id = "initech"
            name = "Initech"
            type = "reseller"
            [[user]]
            email = "dave@initech.example"
            org = "initech2"
            roles = ["partner-user", "auditor"]
            [[user]]
            email = "erin@acme.example"
            org = "acme"
            [[grant]]
            user = "bob@acme.example"
            account = "client-9"
            permission = "view"
            [[grant]]
            user = "zed@nowhere.example"
            account = "client-42"
            permission = "standard"
        "#;
        let Err(StoreError::Invalid(problems)) = db.store.import(&data(bad), 2_000, false).await
        else {
            panic!("import of a file with bad references succeeded");
        };
        let expected = [
            r#"user "dave@initech.example": unknown org "initech2""#,
            r#"user "dave@initech.example": unknown role "auditor""#,
            r#"grant bob@acme.example → client-9: unknown account "client-9""#,
            r#"grant zed@nowhere.example → client-42: unknown user "zed@nowhere.example""#,
        ];
        assert_eq!(problems, expected);
        assert_eq!(db.store.export(true).await.expect("export"), before);
    })
    .await;
}

#[tokio::test]
async fn dry_run_counts_and_writes_nothing() {
    on_both(|db| async move {
        let counts = db
            .store
            .import(&data(SAMPLE), 1_000, true)
            .await
            .expect("dry run");
        assert_eq!(counts.users, 3);
        assert_eq!(
            db.store.export(true).await.expect("export"),
            DirectoryData::default()
        );
        let bad = r#"
            [[user]]
            email = "x@y.example"
            org = "nowhere"
        "#;
        let result = db.store.import(&data(bad), 1_000, true).await;
        assert!(matches!(result, Err(StoreError::Invalid(p)) if p.len() == 1));
    })
    .await;
}

#[tokio::test]
async fn identity_resolves_roles_permissions_and_grants() {
    on_both(|db| async move {
        with_sample(&db).await;
        let id = user_id(&*db.store, "ALICE@Acme.Example").await;
        let identity = db
            .store
            .identity(&id)
            .await
            .expect("identity")
            .expect("known user");
        let expected = Identity {
            user_id: id.clone(),
            email: "alice@acme.example".into(),
            status: UserStatus::Active,
            org: OrgRef {
                id: "acme".into(),
                name: "Acme Resellers".into(),
                org_type: "reseller".into(),
                status: OrgStatus::Active,
                mfa_required: false,
            },
            roles: vec!["partner-admin".into(), "partner-user".into()],
            permissions: vec![
                "dashboard:view".into(),
                "reports:view".into(),
                "users:manage".into(),
            ],
            grants: vec![
                AccountGrant {
                    account: "client-42".into(),
                    level: AccountLevel::View,
                    expires_at: Some(EXPIRES),
                },
                AccountGrant {
                    account: "client-7".into(),
                    level: AccountLevel::Admin,
                    expires_at: None,
                },
            ],
            second_factors: 0,
        };
        assert_eq!(identity, expected);
        assert!(identity.is_usable());
        assert!(db
            .store
            .identity("u-0000000000000000")
            .await
            .expect("lookup")
            .is_none());
        assert!(db
            .store
            .user_by_email("nobody@acme.example")
            .await
            .expect("lookup")
            .is_none());
    })
    .await;
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    on_both(|db| async move {
        with_sample(&db).await;
        let id = user_id(&*db.store, "alice@acme.example").await;
        raw_sql(&db, "UPDATE users SET status = 'zombie'").await;
        let identity = db.store.identity(&id).await;
        assert!(matches!(identity, Err(StoreError::Unavailable(m)) if m.contains("zombie")));
        assert!(db.store.export(false).await.is_err());
        assert!(db.store.stats(0, &[]).await.is_err());
    })
    .await;
}
