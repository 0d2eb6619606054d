//! The audit chain in the real stores: appends, tampering found by verify, concurrency,
//! listing filters, and a change and its record committing together or not at all.

use serde_json::json;

use super::super::audit::ZERO_HASH;
use super::super::sql::{PgStore, SqliteStore};
use super::*;

fn entry(i: i64) -> AuditEntry {
    AuditEntry {
        actor_email: Some("owner@northwind.example".into()),
        ip: Some("192.0.2.1".into()),
        request_id: Some(format!("req-{i}")),
        target: Some("user:u-1".into()),
        org_id: Some("acme".into()),
        before: Some(json!({"status": "active"})),
        after: Some(json!({"status": "suspended", "n": i})),
        ..AuditEntry::new("u-owner", "user.suspend", AuditOutcome::Ok)
    }
}

/// Append `n` records at ts 1000, 1001, …; returns the last.
async fn appended(db: &Db, n: i64) -> AuditRecord {
    let mut last = None;
    for i in 1..=n {
        let record = db
            .store
            .append_audit(&entry(i), 999 + i)
            .await
            .expect("append");
        assert_eq!(record.seq, i);
        last = Some(record);
    }
    last.expect("n > 0")
}

async fn verify(db: &Db) -> AuditVerification {
    db.store.audit_verify().await.expect("verify")
}

fn problem(v: &AuditVerification) -> (i64, &str) {
    let p = v.first_problem.as_ref().expect("a problem");
    (p.seq, p.problem.as_str())
}

#[tokio::test]
async fn appended_records_chain_and_verify() {
    on_both(|db| async move {
        assert_eq!(
            verify(&db).await,
            AuditVerification {
                records: 0,
                head_seq: Some(0),
                first_problem: None
            }
        );
        let last = appended(&db, 12).await;
        assert_eq!(last.entry, entry(12));
        assert_eq!((last.seq, last.ts), (12, 1011));
        let all = db
            .store
            .audit_list(&AuditFilter::default())
            .await
            .expect("list");
        assert_eq!(all.len(), 12);
        assert_eq!(all[0].prev_hash, ZERO_HASH);
        assert!(all.windows(2).all(|w| w[1].prev_hash == w[0].hash));
        assert_eq!(all[11], last);
        assert_eq!(
            verify(&db).await,
            AuditVerification {
                records: 12,
                head_seq: Some(12),
                first_problem: None
            }
        );
    })
    .await;
}

#[tokio::test]
async fn an_edited_record_is_named() {
    on_both(|db| async move {
        appended(&db, 12).await;
        raw_sql(
            &db,
            r#"UPDATE audit_log SET after = '{"status":"active"}' WHERE seq = 3"#,
        )
        .await;
        let v = verify(&db).await;
        assert_eq!(
            problem(&v),
            (3, "hash does not match its contents (edited)")
        );
        assert_eq!(v.records, 12);
    })
    .await;
}

#[tokio::test]
async fn a_deleted_record_is_named() {
    on_both(|db| async move {
        appended(&db, 12).await;
        raw_sql(&db, "DELETE FROM audit_log WHERE seq = 5").await;
        let v = verify(&db).await;
        assert_eq!(problem(&v), (5, "seq 5 missing (deleted)"));
        assert_eq!(v.records, 11);
    })
    .await;
}

#[tokio::test]
async fn deleting_the_newest_records_is_found_by_the_head() {
    on_both(|db| async move {
        appended(&db, 12).await;
        raw_sql(&db, "DELETE FROM audit_log WHERE seq > 10").await;
        let v = verify(&db).await;
        assert_eq!(
            problem(&v),
            (
                11,
                "head says seq 12 but the log ends at 10 (newest records deleted)"
            )
        );
        assert_eq!(v.head_seq, Some(12));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_stay_contiguous() {
    on_both(|db| async move {
        let tasks: Vec<_> = (0..4)
            .map(|task| {
                let store = db.store.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        store
                            .append_audit(&entry(task * 100 + i), 2_000 + i)
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let filter = AuditFilter {
            limit: Some(1000),
            ..AuditFilter::default()
        };
        let all = db.store.audit_list(&filter).await.expect("list");
        let seqs: Vec<i64> = all.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        let v = verify(&db).await;
        assert!(v.is_intact(), "{v:?}");
        assert_eq!((v.records, v.head_seq), (100, Some(100)));
    })
    .await;
}

#[tokio::test]
async fn verify_reads_past_one_page() {
    on_both(|db| async move {
        // 2 500 records in one transaction: three pages of verify.
        let mut tx = raw_write(&db).await;
        for i in 1..=2_500 {
            tx.append(&entry(i), 1_000).await;
        }
        tx.commit().await;
        let v = verify(&db).await;
        assert!(v.is_intact(), "{v:?}");
        assert_eq!((v.records, v.head_seq), (2_500, Some(2_500)));
        raw_sql(
            &db,
            "UPDATE audit_log SET actor = 'someone' WHERE seq = 2100",
        )
        .await;
        assert_eq!(
            problem(&verify(&db).await),
            (2100, "hash does not match its contents (edited)")
        );
    })
    .await;
}

#[tokio::test]
async fn list_filters() {
    on_both(|db| async move {
        let store = &*db.store;
        let rows = [
            ("u-1", Some("acme"), "login.success", 100),
            ("anonymous", Some("acme"), "login.failure", 200),
            ("u-2", Some("globex"), "user.suspend", 300),
            ("u-1", None, "login_x", 400),
            ("system", Some("acme"), "grant.revoke", 500),
        ];
        for (actor, org, action, ts) in rows {
            let e = AuditEntry {
                org_id: org.map(str::to_string),
                actor_email: (actor == "anonymous").then(|| "Mallory@Acme.example".to_string()),
                ..AuditEntry::new(actor, action, AuditOutcome::Ok)
            };
            store.append_audit(&e, ts).await.expect("append");
        }
        let seqs = |filter: AuditFilter| async move {
            let found = store.audit_list(&filter).await.expect("list");
            found.iter().map(|r| r.seq).collect::<Vec<_>>()
        };
        let f = AuditFilter::default;
        assert_eq!(seqs(f()).await, [1, 2, 3, 4, 5]);
        let window = AuditFilter {
            since: Some(200),
            until: Some(400),
            ..f()
        };
        assert_eq!(seqs(window).await, [2, 3]);
        let actor = AuditFilter {
            actor: Some("u-1".into()),
            ..f()
        };
        assert_eq!(seqs(actor).await, [1, 4]);
        let org = AuditFilter {
            org_id: Some("acme".into()),
            ..f()
        };
        assert_eq!(seqs(org).await, [1, 2, 5]);
        let prefix = |p: &str| AuditFilter {
            action_prefix: Some(p.into()),
            ..f()
        };
        assert_eq!(seqs(prefix("login.")).await, [1, 2]);
        // No LIKE wildcards, no case folding.
        assert_eq!(seqs(prefix("login_")).await, [4]);
        assert_eq!(seqs(prefix("LOGIN.")).await, Vec::<i64>::new());
        assert_eq!(seqs(prefix("%")).await, Vec::<i64>::new());
        let page = AuditFilter {
            after_seq: Some(2),
            limit: Some(2),
            ..f()
        };
        assert_eq!(seqs(page).await, [3, 4]);
        let combined = AuditFilter {
            actor: Some("u-1".into()),
            org_id: Some("acme".into()),
            action_prefix: Some("login".into()),
            ..f()
        };
        assert_eq!(seqs(combined).await, [1]);
        let typed = AuditFilter {
            actor_email: Some("mallory@acme.EXAMPLE".into()),
            ..f()
        };
        assert_eq!(seqs(typed).await, [2], "any case");
    })
    .await;
}

#[tokio::test]
async fn a_change_and_its_record_commit_together_or_not_at_all() {
    on_both(|db| async move {
        with_sample(&db).await;
        appended(&db, 2).await;

        // The change, its audit record, then a later statement of the same change fails.
        let mut tx = raw_write(&db).await;
        tx.execute("UPDATE users SET status = 'suspended' WHERE email = 'bob@acme.example'")
            .await
            .expect("change");
        let record = tx.append(&entry(3), 3_000).await;
        assert_eq!(record.seq, 3);
        let duplicate = "INSERT INTO orgs (id, name, org_type, status, created_at) \
                         VALUES ('acme', 'Again', 'reseller', 'active', 0)";
        assert!(tx.execute(duplicate).await.is_err());
        tx.rollback().await;

        let bob = db
            .store
            .user_by_email("bob@acme.example")
            .await
            .expect("lookup");
        assert_eq!(bob.expect("bob").status, UserStatus::Invited);
        let all = db
            .store
            .audit_list(&AuditFilter::default())
            .await
            .expect("list");
        assert_eq!(all.len(), 2, "no record of the rolled-back change");
        // The seq it claimed was given back with the rest: no gap.
        let next = db
            .store
            .append_audit(&entry(4), 4_000)
            .await
            .expect("append");
        assert_eq!(next.seq, 3);

        // The same change committed: both are there.
        let mut tx = raw_write(&db).await;
        tx.execute("UPDATE users SET status = 'suspended' WHERE email = 'bob@acme.example'")
            .await
            .expect("change");
        assert_eq!(tx.append(&entry(5), 5_000).await.seq, 4);
        tx.commit().await;
        let bob = db
            .store
            .user_by_email("bob@acme.example")
            .await
            .expect("lookup");
        assert_eq!(bob.expect("bob").status, UserStatus::Suspended);
        let v = verify(&db).await;
        assert!(v.is_intact(), "{v:?}");
        assert_eq!(v.records, 4);
    })
    .await;
}

#[tokio::test]
async fn verify_says_so_when_there_is_no_audit_log() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let url = format!("sqlite://{}/unmigrated.db", dir.path().display());
    let store = open(&url).await.expect("open");
    let Err(e) = store.audit_verify().await else {
        panic!("verify passed without an audit log");
    };
    assert!(e.to_string().contains("no audit log"), "{e}");

    let base = std::env::var("PARTNERGATE_TEST_POSTGRES").unwrap_or(POSTGRES_URL.into());
    let schema = format!("pgtest_{:016x}", rand::random::<u64>());
    admin_sql(&base, &format!("CREATE SCHEMA {schema}")).await;
    let url = format!("{base}?options=-c%20search_path%3D{schema}");
    let store = open(&url).await.expect("open");
    let result = store.audit_verify().await;
    admin_sql(&base, &format!("DROP SCHEMA {schema} CASCADE")).await;
    let Err(e) = result else {
        panic!("verify passed without an audit log");
    };
    assert!(e.to_string().contains("no audit log"), "{e}");
}

/// A write transaction opened beside the store, as a lifecycle change opens its own.
enum RawTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

async fn raw_write(db: &Db) -> RawTx {
    if db.store.kind() == "postgres" {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
        return RawTx::Postgres(pool.begin().await.expect("begin"));
    }
    let pool = sqlx::SqlitePool::connect(&db.url).await.expect("pool");
    RawTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await.expect("begin"))
}

impl RawTx {
    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            RawTx::Sqlite(tx) => sqlx::query(sql).execute(&mut **tx).await.map(drop),
            RawTx::Postgres(tx) => sqlx::query(sql).execute(&mut **tx).await.map(drop),
        }
    }

    async fn append(&mut self, entry: &AuditEntry, now: Timestamp) -> AuditRecord {
        let record = match self {
            RawTx::Sqlite(tx) => SqliteStore::append_audit_in(tx, entry, now).await,
            RawTx::Postgres(tx) => PgStore::append_audit_in(tx, entry, now).await,
        };
        record.expect("append in transaction")
    }

    async fn commit(self) {
        match self {
            RawTx::Sqlite(tx) => tx.commit().await,
            RawTx::Postgres(tx) => tx.commit().await,
        }
        .expect("commit")
    }

    async fn rollback(self) {
        match self {
            RawTx::Sqlite(tx) => tx.rollback().await,
            RawTx::Postgres(tx) => tx.rollback().await,
        }
        .expect("rollback")
    }
}
