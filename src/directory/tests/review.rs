//! The access review and the inactivity sweep: flags for a small directory, the sweep's
//! cutoff, and that the sweep disables exactly the inactive active users, one audit
//! record each, their sessions ended.

use std::time::Duration;

use super::*;

/// Added to [`SAMPLE`]: an owner-type org with a never-logged-in user, and an Acme user
/// whose only login is long ago.
const EXTRA: &str = r#"
[[org]]
id = "hq"
name = "Headquarters"
type = "owner"
status = "active"

[[user]]
email = "root@hq.example"
org = "hq"
status = "active"

[[user]]
email = "dan@acme.example"
org = "acme"
roles = ["partner-user"]
status = "active"
"#;

const DAY: i64 = 86_400;
const INACTIVE_AFTER: Duration = Duration::from_secs(90 * 86_400);
/// The review's "now": alice's client-42 grant expired 10 seconds ago.
const NOW: Timestamp = EXPIRES + 10;
/// alice logged in 30 days before `NOW`.
const ALICE_LOGIN: Timestamp = NOW - 30 * DAY;

/// SAMPLE + EXTRA imported at 1_000; alice logged in recently, dan long ago (seen later).
async fn directory(db: &Db) -> (String, String) {
    with_sample(db).await;
    let store = &*db.store;
    store
        .import(&data(EXTRA), 1_000, false)
        .await
        .expect("extra imports");
    let alice = user_id(store, "alice@acme.example").await;
    let dan = user_id(store, "dan@acme.example").await;
    store
        .record_login_success(&alice, ALICE_LOGIN, &login_entry())
        .await
        .expect("alice logs in");
    store
        .record_login_success(&dan, 2_000, &login_entry())
        .await
        .expect("dan logs in");
    store
        .touch_users(&[(dan.clone(), 3_000), (alice.clone(), ALICE_LOGIN + 60)])
        .await
        .expect("touch");
    (alice, dan)
}

fn params() -> ReviewParams {
    ReviewParams::new(NOW, INACTIVE_AFTER, "owner")
}

fn flags(inactive: bool, never: bool, expired: bool, admin: bool, suspended: bool) -> ReviewFlags {
    ReviewFlags {
        inactive,
        never_logged_in: never,
        expired_grant: expired,
        admin,
        suspended,
    }
}

#[tokio::test]
async fn review_lists_every_user_with_flags() {
    on_both(|db| async move {
        let (alice, dan) = directory(&db).await;
        let rows = db.store.review(&params()).await.expect("review");
        let order: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.org_id.as_str(), r.email.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("acme", "alice@acme.example"),
                ("acme", "bob@acme.example"),
                ("acme", "dan@acme.example"),
                ("globex", "carol@globex.example"),
                ("hq", "root@hq.example"),
            ]
        );

        let a = &rows[0];
        assert_eq!(a.user_id, alice);
        assert_eq!(
            (a.org_type.as_str(), a.org_status),
            ("reseller", OrgStatus::Active)
        );
        assert_eq!(a.status, UserStatus::Active);
        assert_eq!(a.roles, ["partner-admin", "partner-user"]);
        assert_eq!(
            a.grants,
            [
                ReviewGrant {
                    account: "client-42".into(),
                    level: AccountLevel::View,
                    expires_at: Some(EXPIRES),
                    expired: true,
                },
                ReviewGrant {
                    account: "client-7".into(),
                    level: AccountLevel::Admin,
                    expires_at: None,
                    expired: false,
                },
            ]
        );
        assert_eq!(
            (a.last_login_at, a.last_seen_at, a.created_at),
            (Some(ALICE_LOGIN), Some(ALICE_LOGIN + 60), 1_000)
        );
        assert_eq!(a.flags, flags(false, false, true, true, false));

        let bob = &rows[1];
        assert_eq!(bob.status, UserStatus::Invited);
        assert!(bob.grants.is_empty());
        assert_eq!(bob.flags, flags(true, true, false, false, false));

        let d = &rows[2];
        assert_eq!(d.user_id, dan);
        assert_eq!(
            (d.last_login_at, d.last_seen_at),
            (Some(2_000), Some(3_000))
        );
        assert_eq!(d.flags, flags(true, false, false, false, false));

        let carol = &rows[3];
        assert_eq!(
            (carol.status, carol.org_status),
            (UserStatus::Suspended, OrgStatus::Suspended)
        );
        assert_eq!(carol.flags, flags(true, true, false, false, true));

        let root = &rows[4];
        assert!(root.roles.is_empty());
        assert_eq!(root.flags, flags(true, true, false, true, false));
        assert_eq!(root.flag_names(), ["inactive", "never_logged_in", "admin"]);

        // Before the expiry and with a long inactivity window, nothing is flagged so.
        let early = ReviewParams::new(
            EXPIRES - 1,
            Duration::from_secs(100 * 365 * 86_400),
            "owner",
        );
        let rows = db.store.review(&early).await.expect("review");
        assert!(rows
            .iter()
            .all(|r| !r.flags.inactive && !r.flags.expired_grant));
    })
    .await;
}

#[tokio::test]
async fn inactive_users_are_active_users_past_the_cutoff() {
    on_both(|db| async move {
        let (_alice, dan) = directory(&db).await;
        let store = &*db.store;
        let root = user_id(store, "root@hq.example").await;
        let cutoff = params().cutoff();
        let mut expected = vec![dan.clone(), root];
        expected.sort();
        assert_eq!(
            store.inactive_users(cutoff).await.expect("inactive"),
            expected
        );
        // Created at 1_000, dan's login at 2_000: a cutoff between them leaves only root;
        // the cutoff itself is not "before".
        let only_root = store.inactive_users(2_000).await.expect("inactive");
        assert_eq!(only_root.len(), 1);
        assert_ne!(only_root[0], dan);
        assert!(store
            .inactive_users(1_000)
            .await
            .expect("inactive")
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn sweep_disables_exactly_the_inactive_users_with_one_audit_record_each() {
    on_both(|db| async move {
        let (alice, dan) = directory(&db).await;
        let store = &*db.store;
        let root = user_id(store, "root@hq.example").await;
        let session = SessionRecord {
            id_hash: "dan-session".into(),
            user_id: dan.clone(),
            created_at: 2_000,
            last_seen_at: 2_000,
            expires_at: i64::MAX,
            amr: crate::directory::Amr::PWD,
        };
        store.insert_session(&session).await.expect("session");
        let head = store
            .audit_list(&AuditFilter::default())
            .await
            .expect("audit");
        let seen = head.last().map(|r| r.seq);

        let mut disabled = sweep_inactive(store, NOW, INACTIVE_AFTER)
            .await
            .expect("sweep");
        disabled.sort();
        let mut expected = vec![dan.clone(), root.clone()];
        expected.sort();
        assert_eq!(disabled, expected);

        for (email, status) in [
            ("alice@acme.example", UserStatus::Active),
            ("bob@acme.example", UserStatus::Invited),
            ("carol@globex.example", UserStatus::Suspended),
            ("dan@acme.example", UserStatus::Disabled),
            ("root@hq.example", UserStatus::Disabled),
        ] {
            let user = store
                .user_by_email(email)
                .await
                .expect("lookup")
                .expect(email);
            assert_eq!(user.status, status, "{email}");
        }
        assert!(store
            .session("dan-session")
            .await
            .expect("session")
            .is_none());

        let filter = AuditFilter {
            after_seq: seen,
            ..AuditFilter::default()
        };
        let records = store.audit_list(&filter).await.expect("audit");
        assert_eq!(records.len(), 2, "{records:#?}");
        let mut targets = Vec::new();
        for r in &records {
            let e = &r.entry;
            assert_eq!(e.actor, "system");
            assert_eq!(e.action, "user.disable");
            assert_eq!(e.reason.as_deref(), Some("inactive"));
            assert_eq!(e.outcome, AuditOutcome::Ok);
            targets.push(e.target.clone().unwrap_or_default());
        }
        targets.sort();
        let mut expected: Vec<String> = [&dan, &root]
            .iter()
            .map(|id| format!("user:{id}"))
            .collect();
        expected.sort();
        assert_eq!(targets, expected);
        assert!(store.audit_verify().await.expect("verify").is_intact());

        // Nothing left to do: a second sweep disables nobody and writes nothing.
        let again = sweep_inactive(store, NOW, INACTIVE_AFTER)
            .await
            .expect("sweep");
        assert!(again.is_empty());
        let after = store.audit_list(&filter).await.expect("audit");
        assert_eq!(after.len(), 2);
        let alice_now = store
            .identity(&alice)
            .await
            .expect("identity")
            .expect("alice");
        assert_eq!(alice_now.status, UserStatus::Active);
    })
    .await;
}
