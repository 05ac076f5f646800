//! Which database failures a caller may retry (`Unavailable`) and which it may not
//! (`Rejected`).

use mark1_actors::ports::StoreError;

use super::Backend;

/// Turns a sqlx error into the port's error. Errors that blame the statement or its data
/// (constraint violations, bad data, a schema that does not match, a value that does not
/// decode) are `Rejected`: retrying cannot help. Everything else (connections, pools, I/O,
/// a busy SQLite file, a PostgreSQL server shutting down or refusing connections) is
/// `Unavailable`: the same work may succeed later, and the store writer keeps accepted
/// work until it does, so an error nobody foresaw delays work instead of losing it.
pub(crate) fn classify(error: sqlx::Error) -> StoreError {
    let transient = match &error {
        // Deterministic: the same statement on the same data fails the same way.
        sqlx::Error::Configuration(_)
        | sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Encode(_)
        | sqlx::Error::Decode(_) => false,
        sqlx::Error::Database(db) => {
            let backend = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                Backend::Sqlite
            } else {
                Backend::Postgres
            };
            !db.code().is_some_and(|code| data_code(backend, &code))
        }
        // Connections, pools, I/O, TLS, protocol, and whatever else: the database may
        // take the same work later. Calling an unknown failure retryable keeps accepted
        // work (the store writer retries it) rather than dropping it.
        _ => true,
    };
    if transient {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Rejected(error.to_string())
    }
}

/// Whether a database error code blames the statement or its data, so that running it
/// again cannot succeed; every other code (busy, I/O, a database that refuses
/// connections, an operator's shutdown…) is transient.
fn data_code(backend: Backend, code: &str) -> bool {
    if backend == Backend::Sqlite {
        // Extended result codes carry the primary code in their low byte. ERROR (a
        // statement the schema does not fit), TOOBIG, CONSTRAINT, MISMATCH, RANGE.
        return code.parse::<u32>().is_ok_and(|extended| matches!(extended & 0xff, 1 | 18 | 19 | 20 | 25));
    }
    // PostgreSQL's SQLSTATE classes: 22 data exception, 23 integrity constraint violation,
    // 42 syntax error or access rule violation (a schema that does not match), 44 WITH
    // CHECK OPTION violation.
    matches!(code.get(..2), Some("22" | "23" | "42" | "44"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_pool_failures_are_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        for error in [sqlx::Error::Io(io), sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
            assert!(matches!(classify(error), StoreError::Unavailable(_)));
        }
    }

    #[test]
    fn data_errors_are_rejected() {
        assert!(matches!(classify(sqlx::Error::RowNotFound), StoreError::Rejected(_)));
        let decode = sqlx::Error::Decode("bad state".into());
        assert!(matches!(classify(decode), StoreError::Rejected(m) if m.contains("bad state")));
    }

    #[test]
    fn sqlite_codes() {
        for (code, name) in
            [("5", "BUSY"), ("517", "BUSY_SNAPSHOT"), ("6", "LOCKED"), ("3338", "IOERR_FSYNC")]
                .into_iter()
                .chain([("13", "FULL"), ("14", "CANTOPEN"), ("8", "READONLY")])
        {
            assert!(!data_code(Backend::Sqlite, code), "SQLITE_{name} is transient");
        }
        for (code, name) in [("2067", "CONSTRAINT_UNIQUE"), ("1555", "CONSTRAINT_PRIMARYKEY"), ("1", "ERROR")]
        {
            assert!(data_code(Backend::Sqlite, code), "SQLITE_{name} blames the data");
        }
    }

    #[test]
    fn postgres_codes() {
        // Connection, resources, operator intervention, I/O, serialization, and a
        // database that does not accept connections now (55000).
        for code in ["08006", "08001", "53300", "57P01", "57P03", "58030", "40001", "40P01", "55000"] {
            assert!(!data_code(Backend::Postgres, code), "{code} is transient");
        }
        // SQLSTATEs may be all digits: never read as SQLite codes.
        for code in ["23505", "23502", "42P01", "22P02", "42703"] {
            assert!(data_code(Backend::Postgres, code), "{code} blames the data");
        }
    }
}
