//! SQLite: the embedded default (a file under `node.data_dir`, WAL).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Sqlite};

use super::migrations::{self, Files};
use super::{Backend, Dialect, SqlStore, StoreOpenError, StoreOptions};
use crate::config::SyncMode;

/// Readers besides the one writer connection; WAL lets them read while it commits.
const READERS: u32 = 4;

/// How long a statement waits for a lock another process holds (`mark1 migrate` while a
/// node runs) before it fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;
    /// SQLITE_MAX_VARIABLE_NUMBER of the bundled SQLite (3.32 and later).
    const MAX_PARAMS: usize = 32_766;
    const JSON_CAST: &'static str = "";
    /// Claims run on the one writer connection, so they never overlap in this process; a
    /// second process waits for the write lock.
    const CLAIM_LOCK: &'static str = "";
    const MIGRATIONS: Files = migrations::SQLITE;
    const HAS_MIGRATIONS_TABLE: &'static str = "SELECT EXISTS (SELECT 1 FROM sqlite_master \
         WHERE type = 'table' AND name = '_sqlx_migrations') AS present";

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Opens the writer (creating the file and its folder) and the readers.
pub(super) async fn connect(options: &StoreOptions, url: &str) -> Result<SqlStore<Sqlite>, StoreOpenError> {
    let unreachable =
        |e: sqlx::Error| StoreOpenError::Unreachable { url: url.into(), message: e.to_string() };
    let invalid = |e: sqlx::Error| StoreOpenError::InvalidUrl { url: url.into(), message: e.to_string() };
    let in_memory = options.url.contains(":memory:") || options.url.contains("mode=memory");
    let connect = SqliteConnectOptions::from_str(&options.url)
        .map_err(invalid)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match options.sync {
            SyncMode::Full => SqliteSynchronous::Full,
            SyncMode::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(BUSY_TIMEOUT);
    if !in_memory {
        if let Some(dir) = connect.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreOpenError::CreateDir { path: dir.to_path_buf(), source })?;
        }
    }
    // One connection first, for its error: a pool would retry until its timeout and then
    // report only that it timed out.
    connect.connect().await.map_err(unreachable)?.close().await.map_err(unreachable)?;
    // The writer lives as long as the store: reopening costs a file open and the pragmas.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_with(connect.clone())
        .await
        .map_err(unreachable)?;
    // An in-memory database exists once per connection (or per shared cache, which the
    // pool may close when idle): one connection serves reads and writes.
    let reader = if in_memory {
        writer.clone()
    } else {
        SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_lazy_with(connect.pragma("query_only", "ON"))
    };
    Ok(SqlStore { writer, reader })
}
