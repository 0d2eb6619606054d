//! The embedded store: one SQLite file (WAL, so readers never wait for the writer).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

use super::super::store::{StoreError, StoreResult};

/// Writers queue this long on the file lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 8;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating the file and its directory if missing) without migrating.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        create_parent_dir(options.get_filename())?;
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// SQLite cannot announce changes: watchers poll.
    const NOTIFY: Option<&'static str> = None;

    async fn open_change_listener(
        &self,
    ) -> StoreResult<Option<Box<dyn super::super::store::ChangeListener>>> {
        Ok(None)
    }
}

fn create_parent_dir(file: &Path) -> StoreResult<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

// Write transactions take the lock up front: a deferred one that reads first can fail
// with SQLITE_BUSY when it later tries to write. A deferred transaction reads one
// snapshot (WAL) from its first read on.
sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    "sqlite",
    "BEGIN IMMEDIATE",
    "BEGIN",
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'"
);
