//! Fresh stores of every backend for the behavioural suite.
//!
//! SQLite: a new file in a temp dir. PostgreSQL: when `MARK1_TEST_POSTGRES_URL` is set, a
//! new database cloned from a template migrated once (per schema version, across test
//! processes: an advisory lock guards its creation), dropped after the test; unset, the
//! PostgreSQL case is skipped and says so.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use mark1::store::{newest_schema_version, open, with_database, Backend, StoreOptions};
use mark1_actors::ports::Store;
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

/// A fresh, migrated store, and how to reach its database again.
pub struct Fresh {
    pub store: Arc<dyn Store>,
    pub options: StoreOptions,
    pub backend: Backend,
}

/// Runs `test` against a fresh store of each backend, one after the other.
pub async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(Fresh) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::new(format!("sqlite://{}", dir.path().join("mark1.db").display()));
    let opened = open(&options).await.expect("a fresh SQLite store opens");
    test(Fresh { store: opened.store.clone(), options, backend: Backend::Sqlite }).await;
    opened.close().await;

    let Some(admin) = postgres_url() else {
        eprintln!("postgres: skipped, MARK1_TEST_POSTGRES_URL is unset");
        return;
    };
    let db = TestDatabase::create(&admin).await;
    let options = StoreOptions::new(with_database(&admin, &db.name));
    let opened = open(&options).await.expect("a database cloned from the template opens");
    let outcome =
        AssertUnwindSafe(test(Fresh { store: opened.store.clone(), options, backend: Backend::Postgres }))
            .catch_unwind()
            .await;
    opened.close().await;
    db.drop_best_effort(&admin).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

pub fn postgres_url() -> Option<String> {
    std::env::var("MARK1_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

struct TestDatabase {
    name: String,
}

impl TestDatabase {
    async fn create(admin: &str) -> Self {
        let template = template(admin).await;
        let name = format!("mark1_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(admin).await.expect("MARK1_TEST_POSTGRES_URL is reachable");
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""))
            .execute(&mut conn)
            .await
            .expect("a test database is cloned from the template");
        conn.close().await.ok();
        TestDatabase { name }
    }

    async fn drop_best_effort(self, admin: &str) {
        if let Ok(mut conn) = PgConnection::connect(admin).await {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            if let Err(e) = sqlx::raw_sql(&sql).execute(&mut conn).await {
                eprintln!("postgres: could not drop test database {}: {e}", self.name);
            }
            conn.close().await.ok();
        }
    }
}

/// The name of the migrated template, creating it on first use. A schema change makes a
/// new name, so a template of another schema is never cloned: the name carries the
/// schema version and a digest of the migrations, since builds of other branches may
/// share the server with migrations of the same number but other contents.
async fn template(admin: &str) -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE.get_or_init(|| build_template(admin)).await
}

/// The first 8 bytes (hex) of the SHA-256 of the PostgreSQL migrations, names and texts.
fn migrations_digest() -> String {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        hash.update(file.file_name().unwrap().as_encoded_bytes());
        hash.update(std::fs::read(&file).unwrap());
    }
    hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Renames database `from` to `to`. The server ends the session of a closed connection
/// after the client has gone, so the pool that just migrated `from` may still be using it
/// ("being accessed by other users", 55006) for a moment, longer on a loaded machine:
/// nobody else uses a template being built, so its leftover sessions are ended.
async fn rename_when_left(conn: &mut PgConnection, from: &str, to: &str) {
    let sql = format!("ALTER DATABASE \"{from}\" RENAME TO \"{to}\"");
    for _ in 0..100 {
        match sqlx::raw_sql(&sql).execute(&mut *conn).await {
            Ok(_) => return,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") => {
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                    .bind(from)
                    .execute(&mut *conn)
                    .await
                    .expect("the leftover sessions of the template can be ended");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the template {from} cannot be renamed to {to}: {e}"),
        }
    }
    panic!("the template {from} is still in use after five seconds of ending its sessions");
}

async fn build_template(admin: &str) -> String {
    // Any constant: test processes running at once agree on it.
    const LOCK: i64 = 0x6d61_726b_3174;
    let name = format!("mark1_test_template_v{}_{}", newest_schema_version(), migrations_digest());
    let mut conn = PgConnection::connect(admin).await.expect("MARK1_TEST_POSTGRES_URL is reachable");
    sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK).execute(&mut conn).await.unwrap();
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await
        .unwrap()
        .is_some();
    if !exists {
        // Built under another name and renamed when complete: a process that died halfway
        // leaves no template that looks finished.
        let building = format!("{name}_building");
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE \"{building}\"")).execute(&mut conn).await.unwrap();
        let opened =
            open(&StoreOptions::new(with_database(admin, &building))).await.expect("the template migrates");
        opened.close().await;
        rename_when_left(&mut conn, &building, &name).await;
    }
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK).execute(&mut conn).await.unwrap();
    conn.close().await.ok();
    name
}
