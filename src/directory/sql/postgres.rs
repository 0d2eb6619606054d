//! The shared store for several gateway instances: PostgreSQL.

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use super::super::store::StoreResult;

const MAX_CONNECTIONS: u32 = 8;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect without migrating.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect(url)
            .await?;
        Ok(PgStore { pool })
    }
}

// `to_regclass` resolves the name through the search_path, as the queries do.
sql_store!(
    PgStore,
    sqlx::Postgres,
    "postgres",
    "BEGIN",
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    "SELECT COUNT(*) FROM (SELECT to_regclass('audit_log') AS t) AS found WHERE t IS NOT NULL"
);
