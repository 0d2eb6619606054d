//! The SQLite and PostgreSQL stores. One copy of the SQL (`queries.rs`, portable `$N`
//! placeholders, TEXT and BIGINT only) and one copy of the Rust: `impl Store` is written
//! once as a macro (`store_impl.rs`, `import_impl.rs`, `export_impl.rs`) and stamped out
//! for each database's concrete sqlx types.

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::store::{Store, StoreError, StoreResult};

#[macro_use]
mod audit_impl;
#[macro_use]
mod changes_impl;
#[macro_use]
mod export_impl;
#[macro_use]
mod factors_impl;
#[macro_use]
mod import_impl;
#[macro_use]
mod lifecycle_impl;
#[macro_use]
mod mail_impl;
#[macro_use]
mod review_impl;
#[macro_use]
mod sso_impl;
#[macro_use]
mod store_impl;
#[macro_use]
mod usage_impl;

mod factor_queries;
mod lifecycle_queries;
mod mail_queries;
mod plan;
mod postgres;
mod queries;
mod rows;
mod sqlite;
mod sso_queries;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Schema versions in order. Later migrations append here; applied ones never change.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "directory",
        include_str!("../../../migrations/0001_directory.sql"),
    ),
    (
        2,
        "audit",
        include_str!("../../../migrations/0002_audit.sql"),
    ),
    (
        3,
        "changes",
        include_str!("../../../migrations/0003_changes.sql"),
    ),
    (
        4,
        "lifecycle",
        include_str!("../../../migrations/0004_lifecycle.sql"),
    ),
    (
        5,
        "usage",
        include_str!("../../../migrations/0005_usage.sql"),
    ),
    (6, "mail", include_str!("../../../migrations/0006_mail.sql")),
    (
        7,
        "factors",
        include_str!("../../../migrations/0007_factors.sql"),
    ),
    (8, "sso", include_str!("../../../migrations/0008_sso.sql")),
];

/// The migrations compiled into the binary, so a deployment needs no `migrations/` dir.
#[derive(Debug)]
struct EmbeddedMigrations;

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        let migrations = MIGRATIONS.iter().map(|(version, name, sql)| {
            let (name, sql) = (Cow::Borrowed(*name), Cow::Borrowed(*sql));
            Migration::new(*version, name, MigrationType::Simple, sql, false)
        });
        let migrations = migrations.collect();
        Box::pin(async move { Ok(migrations) })
    }
}

async fn migrator() -> StoreResult<Migrator> {
    Ok(Migrator::new(EmbeddedMigrations).await?)
}

/// Open the store named by `url` (`sqlite://PATH` or `postgres://…`/`postgresql://…`)
/// and run migrations.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store = open(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Open the store named by `url` as it is, without migrating (for commands that only read,
/// like `audit verify`).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::open(url).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(PgStore::open(url).await?)
    } else {
        // Only the scheme: a database URL may carry a password.
        let scheme = url.split(':').next().unwrap_or_default();
        return Err(StoreError::Unavailable(format!(
            "unsupported directory url scheme {scheme:?} (expected sqlite:// or postgres://)"
        )));
    };
    Ok(store)
}
