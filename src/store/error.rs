//! Which database failures a caller may retry (`Unavailable`) and which it may not
//! (`Rejected`).

use mark1_actors::ports::StoreError;

use super::Backend;

/// Turns a sqlx error into the port's error. Connection, I/O and pool failures, and the
/// database errors that mean "not now" (a busy SQLite file, a PostgreSQL server shutting
/// down or out of resources, a serialization failure), are `Unavailable`: the same work
/// may succeed later. Everything else (constraint violations, bad data, a schema that does
/// not match) is `Rejected`: retrying cannot help.
pub(crate) fn classify(error: sqlx::Error) -> StoreError {
    let transient = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => {
            let backend = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                Backend::Sqlite
            } else {
                Backend::Postgres
            };
            db.code().is_some_and(|code| transient_code(backend, &code))
        }
        _ => false,
    };
    if transient {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Rejected(error.to_string())
    }
}

/// Whether a database error code means the database cannot do the work now.
fn transient_code(backend: Backend, code: &str) -> bool {
    if backend == Backend::Sqlite {
        // Extended result codes carry the primary code in their low byte. BUSY, LOCKED,
        // NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL.
        return code
            .parse::<u32>()
            .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15));
    }
    // PostgreSQL's SQLSTATEs. Class 08: connection exception; 53: insufficient resources; 57: operator intervention
    // (admin shutdown, cannot connect now); 58: system error (I/O). Serialization failures
    // and deadlocks (40001, 40P01) succeed when run again.
    matches!(code.get(..2), Some("08" | "53" | "57" | "58")) || matches!(code, "40001" | "40P01")
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
        assert!(transient_code(Backend::Sqlite, "5"), "SQLITE_BUSY");
        assert!(transient_code(Backend::Sqlite, "517"), "SQLITE_BUSY_SNAPSHOT");
        assert!(transient_code(Backend::Sqlite, "6"), "SQLITE_LOCKED");
        assert!(transient_code(Backend::Sqlite, "3338"), "SQLITE_IOERR_FSYNC");
        assert!(transient_code(Backend::Sqlite, "13"), "SQLITE_FULL");
        assert!(!transient_code(Backend::Sqlite, "2067"), "SQLITE_CONSTRAINT_UNIQUE");
        assert!(!transient_code(Backend::Sqlite, "1555"), "SQLITE_CONSTRAINT_PRIMARYKEY");
        assert!(!transient_code(Backend::Sqlite, "1"), "SQLITE_ERROR");
    }

    #[test]
    fn postgres_codes() {
        for code in ["08006", "08001", "53300", "57P01", "57P03", "58030", "40001", "40P01"] {
            assert!(transient_code(Backend::Postgres, code), "{code}");
        }
        // SQLSTATEs may be all digits: never read as SQLite codes.
        for code in ["23505", "23502", "42P01", "22P02", "42703", "00005"] {
            assert!(!transient_code(Backend::Postgres, code), "{code}");
        }
    }
}
