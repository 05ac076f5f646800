//! Where a `durable` run's two databases live: made fresh for the run, removed after it.

use sqlx::postgres::PgConnection;
use sqlx::Connection;
use uuid::Uuid;

use super::Params;
use crate::store::{redact, with_database, Backend};

/// The server a PostgreSQL run creates its databases on when neither `--postgres-url` nor the
/// tests' variable names one.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where the two databases live, made for this run and removed after it.
pub(super) struct Place {
    pub dir: std::path::PathBuf,
    pub subject_url: String,
    pub baseline_url: String,
    /// For `params`: the server without its password, or where the SQLite files were.
    pub shown_url: String,
    /// PostgreSQL: the server URL and the databases to drop.
    server: Option<(String, [String; 2])>,
}

impl Place {
    pub async fn create(p: &Params) -> Result<Place, String> {
        let run = Uuid::now_v7().simple().to_string();
        let dir = std::env::temp_dir().join(format!("mark1-bench-durable-{run}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        match p.backend {
            Backend::Sqlite => Ok(Place {
                subject_url: format!("sqlite://{}", dir.join("subject.db").display()),
                baseline_url: format!("sqlite://{}", dir.join("baseline.db").display()),
                shown_url: format!("sqlite://{}/{{subject,baseline}}.db", dir.display()),
                dir,
                server: None,
            }),
            Backend::Postgres => {
                let server = p
                    .postgres_url
                    .clone()
                    .or_else(|| std::env::var("MARK1_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()))
                    .unwrap_or_else(|| DEFAULT_POSTGRES_URL.into());
                let names = [format!("mark1_bench_{run}_subject"), format!("mark1_bench_{run}_baseline")];
                let place = Place {
                    subject_url: with_database(&server, &names[0]),
                    baseline_url: with_database(&server, &names[1]),
                    shown_url: redact(&server),
                    dir,
                    server: Some((server, names)),
                };
                match place.create_databases().await {
                    Ok(()) => Ok(place),
                    Err(error) => {
                        let _ = std::fs::remove_dir_all(&place.dir);
                        Err(error)
                    }
                }
            }
        }
    }

    /// Both databases or neither: one made before the other failed is dropped again.
    async fn create_databases(&self) -> Result<(), String> {
        let Some((server, names)) = &self.server else { return Ok(()) };
        let mut conn = PgConnection::connect(server)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", redact(server)))?;
        for (i, name) in names.iter().enumerate() {
            if let Err(e) = sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await {
                for made in &names[..i] {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{made}\""))
                        .execute(&mut conn)
                        .await;
                }
                return Err(format!("cannot create database {name}: {e}"));
            }
        }
        conn.close().await.ok();
        Ok(())
    }

    /// Best effort: a failure is reported on stderr, never hides the run's outcome.
    pub async fn remove(self) {
        if let Some((server, names)) = &self.server {
            match PgConnection::connect(server).await {
                Ok(mut conn) => {
                    for name in names {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        if let Err(e) = sqlx::raw_sql(&sql).execute(&mut conn).await {
                            eprintln!("bench: could not drop database {name}: {e}");
                        }
                    }
                    conn.close().await.ok();
                }
                Err(e) => eprintln!("bench: could not drop databases {names:?}: {e}"),
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("bench: could not remove {}: {e}", self.dir.display());
        }
    }
}
