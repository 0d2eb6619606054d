//! Every test body runs against both real stores: SQLite in a temp dir and PostgreSQL on
//! 127.0.0.1 in a schema of its own (dropped afterwards, pass or fail). The schema is named
//! `pgtest_…`: PostgreSQL reserves the `pg_` prefix.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use sqlx::Connection;

use super::*;

mod activity;
mod audit;
mod changes;
mod import;
mod lifecycle;
mod mail;
mod review;
mod sso;
mod usage;

/// Override with `PARTNERGATE_TEST_POSTGRES` (a URL without a query string).
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const SAMPLE: &str = r#"
[[role]]
name = "partner-admin"
permissions = ["dashboard:view", "reports:view", "users:manage"]
delegable = true

[[role]]
name = "partner-user"
permissions = ["dashboard:view"]

[[org]]
id = "acme"
name = "Acme Resellers"
type = "reseller"
status = "active"
max_users = 50

[[org]]
id = "globex"
name = "Globex"
type = "integrator"
status = "suspended"

[[user]]
email = "alice@acme.example"
org = "acme"
roles = ["partner-admin", "partner-user"]
status = "active"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"

[[user]]
email = "bob@acme.example"
org = "acme"
roles = ["partner-user"]
status = "invited"

[[user]]
email = "carol@globex.example"
org = "globex"
status = "suspended"

[[account]]
id = "client-42"
name = "Client 42 Ltd"

[[account]]
id = "client-7"
name = "Client 7"

[[grant]]
user = "alice@acme.example"
account = "client-42"
permission = "view"
expires = "2026-12-31T00:00:00Z"

[[grant]]
user = "alice@acme.example"
account = "client-7"
permission = "admin"
"#;

/// 2026-12-31T00:00:00Z
const EXPIRES: Timestamp = 1_798_675_200;

/// A store under test and the URL it was opened with.
struct Db {
    store: Arc<dyn Store>,
    url: String,
}

fn data(toml: &str) -> DirectoryData {
    toml::from_str(toml).expect("test directory parses")
}

async fn with_sample(db: &Db) {
    db.store
        .import(&data(SAMPLE), 1_000, false)
        .await
        .expect("sample imports");
}

async fn user_id(store: &dyn Store, email: &str) -> String {
    let user = store.user_by_email(email).await.expect("lookup");
    user.expect("user exists").id
}

/// An audit record as the login path makes one.
fn login_entry() -> AuditEntry {
    AuditEntry {
        ip: Some("192.0.2.9".into()),
        reason: Some("bad_credentials".into()),
        ..AuditEntry::new("anonymous", "login.failure", AuditOutcome::Denied)
    }
}

/// Run `body` on SQLite, then on PostgreSQL.
async fn on_both<F, Fut>(body: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    on_sqlite(&body).await;
    on_postgres(&body).await;
}

async fn on_sqlite<F, Fut>(body: &F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::TempDir::new().expect("temp dir");
    // A directory that does not exist yet: `connect` creates it.
    let url = format!("sqlite://{}/data/directory.db", dir.path().display());
    let store = connect(&url).await.expect("sqlite store");
    assert_eq!(store.kind(), "sqlite");
    body(Db { store, url }).await;
}

async fn on_postgres<F, Fut>(body: &F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let base = std::env::var("PARTNERGATE_TEST_POSTGRES").unwrap_or(POSTGRES_URL.into());
    let schema = format!("pgtest_{:016x}", rand::random::<u64>());
    admin_sql(&base, &format!("CREATE SCHEMA {schema}")).await;
    let url = format!("{base}?options=-c%20search_path%3D{schema}");
    let run = async {
        let store = connect(&url).await.expect("postgres store");
        assert_eq!(store.kind(), "postgres");
        body(Db {
            store,
            url: url.clone(),
        })
        .await;
    };
    let outcome = AssertUnwindSafe(run).catch_unwind().await;
    admin_sql(&base, &format!("DROP SCHEMA {schema} CASCADE")).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn admin_sql(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("postgres reachable");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.expect("close");
}

/// Change the database behind the store's back (to plant a corrupt row).
async fn raw_sql(db: &Db, sql: &str) {
    if db.store.kind() == "postgres" {
        return admin_sql(&db.url, sql).await;
    }
    let mut conn = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("sqlite file");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.expect("close");
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_echoing_them() {
    let Err(e) = connect("mysql://root:secret@db/x").await else {
        panic!("a mysql url was accepted");
    };
    let message = e.to_string();
    assert!(message.contains("\"mysql\""), "{message}");
    assert!(!message.contains("secret"), "{message}");
}
