//! The migrations compiled into this build.
//!
//! sqlx 0.8's `migrate!` macro exists only with its `macros` feature, which also builds the
//! compile-time query checker (and the database drivers a second time, for the proc-macro
//! host). The files are embedded with `include_str!` instead and handed to sqlx's own
//! `Migrator` through its public `MigrationSource` trait: the same checksums, table and
//! locking as `migrate!`. A test checks the lists below name every file in the folders.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// `(file name, SQL)` of each migration; file names are `<version>_<description>.sql`.
pub(super) type Files = &'static [(&'static str, &'static str)];

macro_rules! embed {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $dir, "/", $file)))),+]
    };
}

pub(super) const SQLITE: Files = embed!(
    "sqlite": "0001_schema.sql",
    "0002_keys_audit_listing.sql",
    "0003_workflow_runs.sql",
    "0004_model_usage.sql",
    "0005_scans.sql",
);
pub(super) const POSTGRES: Files = embed!(
    "postgres": "0001_schema.sql",
    "0002_keys_audit_listing.sql",
    "0003_workflow_runs.sql",
    "0004_model_usage.sql",
    "0005_scans.sql",
);

/// The newest schema version this build carries (both backends share the numbering).
pub fn newest_schema_version() -> i64 {
    newest(SQLITE)
}

pub(super) fn newest(files: Files) -> i64 {
    files.iter().filter_map(|(name, _)| parse_name(name)).map(|(v, _)| v).max().unwrap_or(0)
}

/// `0001_schema.sql` → `(1, "schema")`, as sqlx reads a migrations folder.
fn parse_name(name: &str) -> Option<(i64, String)> {
    let (version, rest) = name.strip_suffix(".sql")?.split_once('_')?;
    Some((version.parse().ok()?, rest.replace('_', " ")))
}

#[derive(Debug)]
struct Embedded(Files);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            let mut migrations = Vec::new();
            for (name, sql) in self.0 {
                let (version, description) = parse_name(name)
                    .ok_or_else(|| format!("migration file {name} is not <version>_<name>.sql"))?;
                let (description, sql) = (Cow::Owned(description), Cow::Borrowed(*sql));
                migrations.push(Migration::new(version, description, MigrationType::Simple, sql, false));
            }
            migrations.sort_by_key(|m| m.version);
            Ok(migrations)
        })
    }
}

pub(super) async fn migrator(files: Files) -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(files)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    fn listed(files: Files) -> Vec<String> {
        files.iter().map(|(n, _)| n.to_string()).collect()
    }

    #[test]
    fn every_file_in_the_folders_is_embedded() {
        assert_eq!(listed(SQLITE), folder("sqlite"), "add new migrations to the SQLITE list");
        assert_eq!(listed(POSTGRES), folder("postgres"), "add new migrations to the POSTGRES list");
    }

    #[test]
    fn both_backends_carry_the_same_versions() {
        let versions = |files: Files| files.iter().map(|(n, _)| parse_name(n).unwrap().0).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        assert_eq!(newest_schema_version(), *versions(SQLITE).last().unwrap());
        assert!(newest_schema_version() >= 4, "model_usage arrived in version 4");
    }

    #[test]
    fn names_parse_like_sqlx() {
        assert_eq!(parse_name("0001_schema.sql"), Some((1, "schema".into())));
        assert_eq!(parse_name("0012_api_key_scopes.sql"), Some((12, "api key scopes".into())));
        assert_eq!(parse_name("schema.sql"), None);
    }

    #[tokio::test]
    async fn the_migrator_takes_them_in_order() {
        let migrator = migrator(SQLITE).await.unwrap();
        assert_eq!(migrator.iter().map(|m| m.version).max(), Some(newest_schema_version()));
    }
}
