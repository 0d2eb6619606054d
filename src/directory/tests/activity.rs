//! Logins, last-seen tracking, sessions and the gauge counts.

use serde_json::json;

use super::*;

#[tokio::test]
async fn failed_logins_lock_the_account_and_success_resets() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let id = user_id(store, "bob@acme.example").await;
        for locks in [false, false, true, false] {
            assert_eq!(
                store
                    .record_login_failure(&id, 3, 9_999, &login_entry(), None, 4_000)
                    .await
                    .expect("failure"),
                locks
            );
        }
        let bob = store
            .user_by_email("bob@acme.example")
            .await
            .expect("lookup")
            .expect("bob");
        assert_eq!((bob.failed_logins, bob.locked_until), (1, Some(9_999)));
        store
            .record_login_success(&id, 5_000, &login_entry())
            .await
            .expect("success");
        let bob = store
            .user_by_email("bob@acme.example")
            .await
            .expect("lookup")
            .expect("bob");
        assert_eq!((bob.failed_logins, bob.locked_until), (0, None));
        assert_eq!(
            (bob.last_login_at, bob.last_seen_at),
            (Some(5_000), Some(5_000))
        );
        assert!(!store
            .record_login_failure("u-unknown", 3, 9_999, &login_entry(), None, 6_000)
            .await
            .expect("failure"));
        // Each write carried its audit record, with the account's state after it.
        let records = store
            .audit_list(&AuditFilter::default())
            .await
            .expect("audit");
        let afters: Vec<_> = records.iter().map(|r| r.entry.after.clone()).collect();
        assert_eq!(
            afters,
            [
                Some(json!({"failed_logins": 1})),
                Some(json!({"failed_logins": 2})),
                Some(json!({"failed_logins": 0, "locked_until": 9_999})),
                Some(json!({"failed_logins": 1})),
                None,
                None,
            ]
        );
        let times: Vec<_> = records.iter().map(|r| r.ts).collect();
        assert_eq!(times, [4_000, 4_000, 4_000, 4_000, 5_000, 6_000]);
        assert!(store.audit_verify().await.expect("verify").is_intact());
    })
    .await;
}

#[tokio::test]
async fn touch_users_only_moves_last_seen_forward() {
    on_both(|db| async move {
        with_sample(&db).await;
        let id = user_id(&*db.store, "bob@acme.example").await;
        db.store
            .touch_users(&[(id.clone(), 300)])
            .await
            .expect("touch");
        db.store
            .touch_users(&[(id.clone(), 200)])
            .await
            .expect("touch");
        db.store.touch_users(&[]).await.expect("empty touch");
        let bob = db
            .store
            .user_by_email("bob@acme.example")
            .await
            .expect("lookup")
            .expect("bob");
        assert_eq!(bob.last_seen_at, Some(300));
    })
    .await;
}

fn session(id_hash: &str, user_id: &str, expires_at: Timestamp) -> SessionRecord {
    SessionRecord {
        id_hash: id_hash.into(),
        user_id: user_id.into(),
        created_at: 100,
        last_seen_at: 100,
        expires_at,
        amr: crate::directory::Amr::PWD,
    }
}

#[tokio::test]
async fn sessions_insert_touch_expire_and_delete() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let (alice, bob) = (
            user_id(store, "alice@acme.example").await,
            user_id(store, "bob@acme.example").await,
        );
        for s in [
            session("s1", &alice, 1_000),
            session("s2", &alice, 2_000),
            session("s3", &bob, 5_000),
        ] {
            store.insert_session(&s).await.expect("insert");
        }
        assert_eq!(
            store.session("s1").await.expect("get"),
            Some(session("s1", &alice, 1_000))
        );
        assert_eq!(store.session("nope").await.expect("get"), None);

        store
            .touch_sessions(&[("s1".into(), 150), ("s2".into(), 50)])
            .await
            .expect("touch");
        let s1 = store.session("s1").await.expect("get").expect("s1");
        let s2 = store.session("s2").await.expect("get").expect("s2");
        assert_eq!((s1.last_seen_at, s2.last_seen_at), (150, 100));

        store.delete_session("s1").await.expect("delete");
        assert_eq!(store.session("s1").await.expect("get"), None);

        // s2 reaches its absolute expiry; s3 is neither idle nor expired.
        assert_eq!(
            store
                .delete_expired_sessions(90, 2_000)
                .await
                .expect("sweep"),
            1
        );
        assert_eq!(store.session("s2").await.expect("get"), None);
        // Idle since before 120: s3 (last seen 100) goes.
        store
            .insert_session(&session("s4", &bob, 5_000))
            .await
            .expect("insert");
        store
            .touch_sessions(&[("s4".into(), 500)])
            .await
            .expect("touch");
        assert_eq!(
            store
                .delete_expired_sessions(120, 2_000)
                .await
                .expect("sweep"),
            1
        );

        store
            .insert_session(&session("s5", &bob, 5_000))
            .await
            .expect("insert");
        let seq = store.latest_change_seq().await.expect("head");
        let deleted = store
            .delete_user_sessions(&bob, 6_000)
            .await
            .expect("delete all");
        assert_eq!(deleted, ["s4", "s5"]);
        // Every instance is told to drop them from its cache; nothing to tell the second
        // time.
        let changes = store.changes_since(seq, 10).await.expect("changes");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].target, ChangeTarget::User(bob.clone()));
        assert!(store
            .delete_user_sessions(&bob, 6_001)
            .await
            .expect("none left")
            .is_empty());
        assert_eq!(store.latest_change_seq().await.expect("head"), seq + 1);
        assert_eq!(store.session("s4").await.expect("get"), None);
    })
    .await;
}

#[tokio::test]
async fn stats_count_every_status_and_recent_activity() {
    on_both(|db| async move {
        let empty = db.store.stats(0, &[]).await.expect("stats");
        assert!(empty.users_by_status.iter().all(|(_, n)| *n == 0));
        assert_eq!(empty.orgs_by_status.len(), OrgStatus::ALL.len());

        with_sample(&db).await;
        let store = &*db.store;
        let (alice, bob) = (
            user_id(store, "alice@acme.example").await,
            user_id(store, "bob@acme.example").await,
        );
        store
            .record_login_success(&alice, 10_000, &login_entry())
            .await
            .expect("login");
        store
            .touch_users(&[(bob.clone(), 5_000)])
            .await
            .expect("touch");
        store
            .insert_session(&session("live", &alice, 20_000))
            .await
            .expect("insert");
        store
            .insert_session(&session("dead", &bob, 10_000))
            .await
            .expect("insert");

        let stats = store.stats(10_500, &[1_000, 6_000]).await.expect("stats");
        let expected = DirectoryStats {
            users_by_status: vec![
                (UserStatus::Invited, 1),
                (UserStatus::Active, 1),
                (UserStatus::Suspended, 1),
                (UserStatus::Disabled, 0),
            ],
            orgs_by_status: vec![
                (OrgStatus::Pending, 0),
                (OrgStatus::Active, 1),
                (OrgStatus::Suspended, 1),
                (OrgStatus::Offboarded, 0),
            ],
            users_active: vec![(1_000, 1), (6_000, 2)],
            sessions_active: 1,
        };
        assert_eq!(stats, expected);
    })
    .await;
}
