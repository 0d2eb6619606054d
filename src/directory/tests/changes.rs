//! Directory changes and the status changes that record them: status, sessions, audit
//! record and change commit together or not at all; changes read back in seq order.

use serde_json::json;

use super::*;

fn owner() -> AuditActor {
    AuditActor {
        actor_email: Some("owner@northwind.example".into()),
        ip: Some("192.0.2.1".into()),
        request_id: Some("req-1".into()),
        reason: Some("contract ended".into()),
        ..AuditActor::new("u-owner")
    }
}

async fn session(store: &dyn Store, id_hash: &str, user_id: &str) {
    let record = SessionRecord {
        id_hash: id_hash.into(),
        user_id: user_id.into(),
        created_at: 1_000,
        last_seen_at: 1_000,
        expires_at: 99_999,
        amr: crate::directory::Amr::PWD,
    };
    store.insert_session(&record).await.expect("session");
}

async fn has_session(store: &dyn Store, id_hash: &str) -> bool {
    store.session(id_hash).await.expect("session").is_some()
}

async fn audit_count(store: &dyn Store) -> usize {
    let all = store.audit_list(&AuditFilter::default()).await;
    all.expect("audit").len()
}

async fn changes_after(store: &dyn Store, after: i64) -> Vec<ChangeTarget> {
    let changes = store.changes_since(after, 100).await.expect("changes");
    assert!(
        changes.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "seqs in order without gaps: {changes:?}"
    );
    changes.into_iter().map(|c| c.target).collect()
}

async fn status_of(store: &dyn Store, email: &str) -> UserStatus {
    store
        .user_by_email(email)
        .await
        .expect("lookup")
        .expect("user")
        .status
}

#[tokio::test]
async fn suspending_a_user_ends_sessions_audits_once_and_records_a_change() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let alice = user_id(store, "alice@acme.example").await;
        let bob = user_id(store, "bob@acme.example").await;
        session(store, "a1", &alice).await;
        session(store, "a2", &alice).await;
        session(store, "b1", &bob).await;
        let seq = store.latest_change_seq().await.expect("head");
        let audits = audit_count(store).await;

        let done = store
            .set_user_status(&alice, UserStatus::Suspended, &owner(), 3_000)
            .await
            .expect("suspend");
        assert_eq!(
            (
                done.before.as_str(),
                done.after.as_str(),
                done.sessions_ended
            ),
            ("active", "suspended", 2)
        );
        assert_eq!(done.change_seq, seq + 1);
        assert_eq!(store.latest_change_seq().await.expect("head"), seq + 1);
        assert_eq!(
            status_of(store, "alice@acme.example").await,
            UserStatus::Suspended
        );
        assert!(!has_session(store, "a1").await && !has_session(store, "a2").await);
        assert!(has_session(store, "b1").await, "other users keep theirs");
        assert_eq!(
            changes_after(store, seq).await,
            [ChangeTarget::User(alice.clone())]
        );
        let records = store
            .audit_list(&AuditFilter::default())
            .await
            .expect("audit");
        assert_eq!(records.len(), audits + 1);
        let record = records.last().expect("record");
        assert_eq!(record.seq, done.audit_seq);
        assert_eq!(
            record.entry,
            AuditEntry {
                actor_email: Some("owner@northwind.example".into()),
                ip: Some("192.0.2.1".into()),
                request_id: Some("req-1".into()),
                target: Some(format!("user:{alice}")),
                org_id: Some("acme".into()),
                reason: Some("contract ended".into()),
                before: Some(json!({"status": "active"})),
                after: Some(json!({"status": "suspended", "sessions_ended": 2})),
                ..AuditEntry::new("u-owner", "user.suspend", AuditOutcome::Ok)
            }
        );

        // Reactivation ends nothing (there is nothing left) and is audited as such.
        let done = store
            .set_user_status(&alice, UserStatus::Active, &owner(), 3_001)
            .await
            .expect("reactivate");
        assert_eq!(
            (done.before.as_str(), done.sessions_ended),
            ("suspended", 0)
        );
        let last = store
            .audit_list(&AuditFilter::default())
            .await
            .expect("audit");
        assert_eq!(last.last().expect("record").entry.action, "user.reactivate");
        assert!(store.audit_verify().await.expect("verify").is_intact());
    })
    .await;
}

#[tokio::test]
async fn suspending_an_org_ends_every_members_sessions() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let alice = user_id(store, "alice@acme.example").await;
        let bob = user_id(store, "bob@acme.example").await;
        let carol = user_id(store, "carol@globex.example").await;
        session(store, "a1", &alice).await;
        session(store, "b1", &bob).await;
        session(store, "c1", &carol).await;
        let seq = store.latest_change_seq().await.expect("head");
        let audits = audit_count(store).await;

        let done = store
            .set_org_status("acme", OrgStatus::Suspended, &owner(), 3_000)
            .await
            .expect("suspend");
        assert_eq!((done.before.as_str(), done.sessions_ended), ("active", 2));
        assert!(!has_session(store, "a1").await && !has_session(store, "b1").await);
        assert!(has_session(store, "c1").await, "other orgs keep theirs");
        let mut members = vec![ChangeTarget::User(alice), ChangeTarget::User(bob)];
        members.sort();
        let mut expected = vec![ChangeTarget::Org("acme".into())];
        expected.extend(members);
        expected.sort();
        assert_eq!(changes_after(store, seq).await, expected);
        assert_eq!(done.change_seq, seq + 3);
        let identity = store
            .identity(&user_id(store, "bob@acme.example").await)
            .await
            .expect("identity")
            .expect("bob");
        assert_eq!(identity.org.status, OrgStatus::Suspended);
        let records = store
            .audit_list(&AuditFilter::default())
            .await
            .expect("audit");
        assert_eq!(records.len(), audits + 1);
        let entry = &records.last().expect("record").entry;
        assert_eq!(entry.action, "org.suspend");
        assert_eq!(entry.target.as_deref(), Some("org:acme"));
        assert_eq!(
            entry.after,
            Some(json!({"status": "suspended", "sessions_ended": 2}))
        );

        // globex is suspended in the sample: reactivating it records just the org.
        let seq = store.latest_change_seq().await.expect("head");
        let done = store
            .set_org_status("globex", OrgStatus::Active, &owner(), 3_001)
            .await
            .expect("reactivate");
        assert_eq!(
            (done.before.as_str(), done.sessions_ended),
            ("suspended", 0)
        );
        assert!(has_session(store, "c1").await);
        assert_eq!(
            changes_after(store, seq).await,
            [ChangeTarget::Org("globex".into())]
        );
        let records = store.audit_list(&AuditFilter::default()).await;
        let action = records
            .expect("audit")
            .last()
            .expect("r")
            .entry
            .action
            .clone();
        assert_eq!(action, "org.reactivate");
    })
    .await;
}

#[tokio::test]
async fn a_status_change_that_fails_writes_nothing() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let alice = user_id(store, "alice@acme.example").await;
        session(store, "a1", &alice).await;
        let seq = store.latest_change_seq().await.expect("head");
        let audits = audit_count(store).await;

        for result in [
            store
                .set_user_status("u-nobody", UserStatus::Suspended, &owner(), 3_000)
                .await,
            store
                .set_org_status("nobody", OrgStatus::Suspended, &owner(), 3_000)
                .await,
        ] {
            assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
        }
        assert_eq!(store.latest_change_seq().await.expect("head"), seq);
        assert_eq!(audit_count(store).await, audits);

        // The audit append fails last, after the status, sessions and change were
        // written: all of them roll back.
        raw_sql(&db, "DELETE FROM audit_head").await;
        for result in [
            store
                .set_user_status(&alice, UserStatus::Suspended, &owner(), 3_000)
                .await
                .map(drop),
            store
                .set_org_status("acme", OrgStatus::Suspended, &owner(), 3_000)
                .await
                .map(drop),
        ] {
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{result:?}"
            );
        }
        assert_eq!(
            status_of(store, "alice@acme.example").await,
            UserStatus::Active
        );
        let identity = store.identity(&alice).await.expect("identity").expect("a");
        assert_eq!(identity.org.status, OrgStatus::Active);
        assert!(has_session(store, "a1").await);
        assert_eq!(store.latest_change_seq().await.expect("head"), seq);
        assert!(changes_after(store, seq).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn changes_read_back_in_order_in_pages_and_prune_by_age() {
    on_both(|db| async move {
        let store = &*db.store;
        assert_eq!(store.latest_change_seq().await.expect("head"), 0);
        assert!(changes_after(store, 0).await.is_empty());
        let u = |s: &str| ChangeTarget::User(s.into());
        let last = store
            .record_changes(&[u("b"), u("a"), u("b")], 100)
            .await
            .expect("record");
        assert_eq!(last, 2, "deduplicated");
        let last = store
            .record_changes(&[ChangeTarget::Org("acme".into()), u("c")], 200)
            .await
            .expect("record");
        assert_eq!(last, 4);
        let last = store
            .record_changes(&[u("d"), ChangeTarget::All], 300)
            .await
            .expect("record");
        assert_eq!(last, 5, "all covers the rest");
        assert_eq!(store.record_changes(&[], 300).await.expect("none"), 5);

        let all = store.changes_since(0, 100).await.expect("changes");
        let seqs: Vec<i64> = all.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert_eq!(all[0].ts, 100);
        assert_eq!(
            all.iter().map(|c| c.target.clone()).collect::<Vec<_>>(),
            [
                u("a"),
                u("b"),
                u("c"),
                ChangeTarget::Org("acme".into()),
                ChangeTarget::All
            ]
        );
        let page = store.changes_since(2, 2).await.expect("page");
        assert_eq!(page.iter().map(|c| c.seq).collect::<Vec<_>>(), [3, 4]);

        assert_eq!(store.prune_changes(200).await.expect("prune"), 2);
        let left = store.changes_since(0, 100).await.expect("changes");
        assert_eq!(left.first().map(|c| c.seq), Some(3));
        assert_eq!(
            store.latest_change_seq().await.expect("head"),
            5,
            "never lowered"
        );
    })
    .await;
}

#[tokio::test]
async fn an_import_records_what_it_wrote_and_ends_sessions_it_suspends() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        // The sample defines roles: one change for everything.
        assert_eq!(changes_after(store, 0).await, [ChangeTarget::All]);
        let alice = user_id(store, "alice@acme.example").await;
        let bob = user_id(store, "bob@acme.example").await;
        session(store, "a1", &alice).await;
        session(store, "b1", &bob).await;
        let seq = store.latest_change_seq().await.expect("head");

        // No roles: only the org, the user and the grantee are named, plus bob, whose
        // session ends (he is `invited` in the sample).
        let file = r#"
[[org]]
id = "acme"
name = "Acme Resellers"
type = "reseller"

[[user]]
email = "dora@acme.example"
org = "acme"

[[grant]]
user = "alice@acme.example"
account = "client-42"
permission = "standard"
"#;
        store
            .import(&data(file), 2_000, true)
            .await
            .expect("dry run");
        assert_eq!(store.latest_change_seq().await.expect("head"), seq);
        assert!(has_session(store, "b1").await, "a dry run ends nothing");
        store
            .import(&data(file), 2_000, false)
            .await
            .expect("import");
        let dora = user_id(store, "dora@acme.example").await;
        let mut expected = vec![
            ChangeTarget::Org("acme".into()),
            ChangeTarget::User(dora),
            ChangeTarget::User(alice),
            ChangeTarget::User(bob),
        ];
        expected.sort();
        assert_eq!(changes_after(store, seq).await, expected);
        assert!(has_session(store, "a1").await);
        assert!(!has_session(store, "b1").await);
    })
    .await;
}

#[tokio::test]
async fn postgres_announces_changes_at_commit_and_sqlite_has_no_listener() {
    on_both(|db| async move {
        let store = &*db.store;
        let listener = store.change_listener().await.expect("listener");
        let Some(mut listener) = listener else {
            assert_eq!(store.kind(), "sqlite");
            return;
        };
        assert_eq!(store.kind(), "postgres");
        store
            .record_changes(&[ChangeTarget::All], 100)
            .await
            .expect("record");
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
            .await
            .expect("announced within 5 s");
        assert!(woke.expect("recv"));
    })
    .await;
}
