//! The shared store for several gateway instances: PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;

use super::super::changes::NOTIFY_CHANNEL;
use super::super::store::{ChangeListener, StoreResult};

/// Queries share these; a running gateway's change listener holds one more of its own.
const MAX_CONNECTIONS: u32 = 8;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect without migrating.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS + 1)
            .connect(url)
            .await?;
        Ok(PgStore { pool })
    }

    /// Announces changes to every listening gateway when the transaction commits
    /// (`$1` the channel, `$2` the last seq as text).
    const NOTIFY: Option<&'static str> = Some("SELECT pg_notify($1, $2)");

    /// `LISTEN` on a connection of the pool's options (so the same search_path), kept
    /// outside the pool's queries.
    async fn open_change_listener(&self) -> StoreResult<Option<Box<dyn ChangeListener>>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        Ok(Some(Box::new(PgChanges(listener))))
    }
}

struct PgChanges(PgListener);

#[async_trait]
impl ChangeListener for PgChanges {
    async fn recv(&mut self) -> StoreResult<bool> {
        // `try_recv` reconnects (and re-LISTENs) on the call after a lost connection.
        Ok(self.0.try_recv().await?.is_some())
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
