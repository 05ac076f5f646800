//! PostgreSQL: the production and cluster backend.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{ConnectOptions, Connection, Postgres};

use super::migrations::{self, Files};
use super::{Backend, Dialect, SqlStore, StoreOpenError, StoreOptions};

/// Connections shared by writes and reads. Writes are funnelled through the store writer,
/// one batch at a time, so most of these serve reads.
const CONNECTIONS: u32 = 8;

/// How long opening a connection may take, at start and later in the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    /// The protocol counts parameters in an unsigned 16-bit field.
    const MAX_PARAMS: usize = 65_535;
    const JSON_CAST: &'static str = "::json";
    const CLAIM_LOCK: &'static str = "FOR UPDATE OF t SKIP LOCKED";
    const MIGRATIONS: Files = migrations::POSTGRES;
    const HAS_MIGRATIONS_TABLE: &'static str =
        "SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS present";

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Connects once (for a clear error when the server is unreachable), then opens the pool.
pub(super) async fn connect(options: &StoreOptions, url: &str) -> Result<SqlStore<Postgres>, StoreOpenError> {
    let unreachable = |message: String| StoreOpenError::Unreachable { url: url.into(), message };
    let mut connect = PgConnectOptions::from_str(&options.url)
        .map_err(|e| StoreOpenError::InvalidUrl { url: url.into(), message: e.to_string() })?
        .application_name("mark1")
        // DESIGN §13.10: an accepted durable task is on disk, whatever the server's default.
        .options([("synchronous_commit", "on")]);
    if let Some(password) = &options.password {
        connect = connect.password(password);
    }
    // A pool would retry a refused connection until its timeout and report only that.
    match tokio::time::timeout(CONNECT_TIMEOUT, connect.connect()).await {
        Ok(Ok(conn)) => conn.close().await.map_err(|e| unreachable(e.to_string()))?,
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
    let pool = PgPoolOptions::new()
        .max_connections(CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(connect)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(SqlStore { writer: pool.clone(), reader: pool })
}
