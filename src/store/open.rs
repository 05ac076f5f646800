//! Opening a store: the URL and password, connecting, the schema version check and the
//! migrations. Every command that opens the store creates and migrates it (DESIGN §13.1).

use std::path::PathBuf;
use std::sync::Arc;

use mark1_actors::ports::Store;
use sqlx::{Database, Executor, IntoArguments, Pool, Row};

use super::{migrations, postgres, sqlite, Backend, Dialect, SqlStore};
use crate::config::{Config, ConfigError, SyncMode};

/// What a store is opened with; [`StoreOptions::from_config`] builds it from the node's
/// configuration, tests and embedders may build it directly.
#[derive(Clone)]
pub struct StoreOptions {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://USER@HOST[:PORT]/DB`. A URL that
    /// came from the environment (a test's) may hold a password; config files may not.
    pub url: String,
    /// The PostgreSQL password; overrides one in the URL.
    pub password: Option<String>,
    /// SQLite's `synchronous` (DESIGN §13.10); PostgreSQL always commits synchronously.
    pub sync: SyncMode,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &redact(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sync", &self.sync)
            .finish()
    }
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions { url: url.into(), password: None, sync: SyncMode::Full }
    }

    /// `store.url` (or the SQLite file under `node.data_dir`), the password from
    /// `store.password_env` / `store.password_file`, and `store.sync`.
    pub fn from_config(config: &Config) -> Result<Self, StoreOpenError> {
        Ok(StoreOptions {
            url: config.store_url(),
            password: config.store.password()?,
            sync: config.store.sync,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    #[error("cannot read the database password: {0}")]
    Password(#[from] ConfigError),
    #[error("store URL {url}: {message}")]
    InvalidUrl { url: String, message: String },
    #[error("cannot create the database folder {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    /// The database did not answer or refused the connection; `url` has no password.
    #[error("cannot connect to the database at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the database schema is at version {found}, newer than this mark1 ({known}); upgrade mark1")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("cannot migrate the database at {url}: {message}")]
    Migrate { url: String, message: String },
    #[error("cannot start the store's thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl StoreOpenError {
    /// Whether the database could not be reached (exit code 5, "unavailable").
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreOpenError::Unreachable { .. })
    }
}

/// An open, migrated store and what the node reports about it.
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    /// The URL without its password.
    pub url: String,
    /// The newest migration applied.
    pub version: i64,
    closer: Closer,
}

enum Closer {
    Sqlite(Arc<SqlStore<sqlx::Sqlite>>),
    Postgres(Arc<SqlStore<sqlx::Postgres>>),
}

impl OpenedStore {
    /// Closes the connections now, rather than when the last reference goes.
    pub async fn close(&self) {
        match &self.closer {
            Closer::Sqlite(store) => store.close().await,
            Closer::Postgres(store) => store.close().await,
        }
    }
}

/// Opens the store the configuration names, creating and migrating it.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreOpenError> {
    Ok(open(&StoreOptions::from_config(config)?).await?.store)
}

/// Opens (creating a missing SQLite file), refuses a schema newer than this build knows,
/// applies the embedded migrations.
pub async fn open(options: &StoreOptions) -> Result<OpenedStore, StoreOpenError> {
    let url = redact(&options.url);
    if options.url.starts_with("sqlite:") {
        let store = Arc::new(sqlite::connect(options, &url).await?);
        let version = migrate(&store.writer, &url).await?;
        Ok(OpenedStore {
            store: store.clone(),
            backend: Backend::Sqlite,
            url,
            version,
            closer: Closer::Sqlite(store),
        })
    } else if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://") {
        let store = Arc::new(postgres::connect(options, &url).await?);
        let version = migrate(&store.writer, &url).await?;
        Ok(OpenedStore {
            store: store.clone(),
            backend: Backend::Postgres,
            url,
            version,
            closer: Closer::Postgres(store),
        })
    } else {
        Err(StoreOpenError::InvalidUrl {
            url,
            message: "unsupported URL; use sqlite://PATH or postgres://USER@HOST/DB".into(),
        })
    }
}

/// Checks the applied version against the embedded one, then migrates; returns the
/// version the database is at.
async fn migrate<DB>(pool: &Pool<DB>, url: &str) -> Result<i64, StoreOpenError>
where
    DB: Dialect,
    <DB as Database>::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
{
    let failed =
        |e: &dyn std::fmt::Display| StoreOpenError::Migrate { url: url.into(), message: e.to_string() };
    let known = migrations::newest(DB::MIGRATIONS);
    let applied = applied_version(pool).await.map_err(|e| failed(&e))?;
    if let Some(found) = applied.filter(|&v| v > known) {
        // sqlx would also refuse (a migration it does not have), with a less helpful message.
        return Err(StoreOpenError::SchemaTooNew { found, known });
    }
    let migrator = migrations::migrator(DB::MIGRATIONS).await.map_err(|e| failed(&e))?;
    migrator.run(pool).await.map_err(|e| failed(&e))?;
    Ok(applied_version(pool).await.map_err(|e| failed(&e))?.unwrap_or(0))
}

/// The newest successfully applied migration, `None` on a fresh database.
async fn applied_version<DB>(pool: &Pool<DB>) -> Result<Option<i64>, sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
{
    let row = sqlx::query(DB::HAS_MIGRATIONS_TABLE).fetch_one(pool).await?;
    if !row.try_get::<bool, _>("present")? {
        return Ok(None);
    }
    let row = sqlx::query("SELECT MAX(version) AS version FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?;
    row.try_get("version")
}

/// The URL with any password removed (from the user-info part and from `password=` /
/// `sslpassword=` query parameters), for messages and logs.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split('=').next().unwrap_or("");
                    !key.eq_ignore_ascii_case("password") && !key.eq_ignore_ascii_case("sslpassword")
                })
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => path.to_string(),
    };
    format!("{scheme}{authority}{path}")
}

/// A PostgreSQL `url` naming `database` instead of its own (the query string is kept): a
/// server URL's database serves only to create and drop the fresh ones that tests and
/// benches run on.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_and_path = &base[scheme_end..];
    let authority = host_and_path.split('/').next().unwrap_or(host_and_path);
    let mut out = format!("{}{authority}/{database}", &base[..scheme_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_passwords() {
        assert_eq!(redact("postgres://mark1:hunter2@db:5432/mark1"), "postgres://mark1@db:5432/mark1");
        assert_eq!(redact("postgres://mark1@db/mark1"), "postgres://mark1@db/mark1");
        assert_eq!(redact("postgresql://u:p%40ss@h/d?sslmode=require"), "postgresql://u@h/d?sslmode=require");
        assert_eq!(
            redact("postgres://u@h/d?password=secret&sslmode=disable&sslpassword=x"),
            "postgres://u@h/d?sslmode=disable"
        );
        assert_eq!(redact("postgres://u@h/d?Password=secret"), "postgres://u@h/d");
        assert_eq!(redact("sqlite:///var/lib/mark1/mark1.db"), "sqlite:///var/lib/mark1/mark1.db");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn redact_keeps_a_password_like_path() {
        assert_eq!(redact("sqlite://data/user:pw@x.db"), "sqlite://data/user:pw@x.db");
    }

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "t1"),
            "postgres://u@h/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
    }

    #[test]
    fn options_debug_hides_the_password() {
        let mut options = StoreOptions::new("postgres://u:inurl@h/d");
        options.password = Some("fromfile".into());
        let debug = format!("{options:?}");
        assert!(!debug.contains("inurl") && !debug.contains("fromfile"), "{debug}");
    }
}
