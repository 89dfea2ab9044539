//! What every aggregate's SQL needs around the database: mapping its errors to the domain's,
//! the time precision both databases keep, how values are stored as text, and `IN` lists.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use ferry_core::error::{Error, Result};

/// The current time at the precision both databases keep (Postgres stores microseconds), so a
/// value returned from a write equals the one read back later.
pub(crate) fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

pub(crate) fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

// ---- errors ---------------------------------------------------------------------------------

/// Maps a database failure that has no domain meaning: unreachable database -> `Unavailable`,
/// anything else -> `Internal`. The database text only goes to the log.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    let transient = match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => is_transient(db.as_ref()),
        _ => false,
    };
    if transient {
        Error::unavailable(err)
    } else {
        Error::internal(err)
    }
}

fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including their extended codes.
        return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
    }
    // Postgres SQLSTATE: connection exceptions, shutdown, too many connections, and
    // serialization failures / deadlocks, which succeed when the client retries.
    code.starts_with("08")
        || code.starts_with("57P")
        || matches!(code.as_ref(), "53300" | "40001" | "40P01")
}

pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// `conflict()` for a unique violation, [`db_error`] for anything else.
pub(crate) fn unique_or(err: sqlx::Error, conflict: impl FnOnce() -> Error) -> Error {
    if is_unique_violation(&err) {
        conflict()
    } else {
        db_error(err)
    }
}

pub(crate) fn corrupt(what: &str, value: &str) -> Error {
    Error::internal(format!("database holds an invalid {what}: `{value}`"))
}

// ---- stored text ----------------------------------------------------------------------------

pub(crate) fn parse_uuid(value: &str) -> Result<Uuid> {
    Uuid::parse_str(value).map_err(|_| corrupt("id", value))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T> {
    serde_json::from_str(value)
        .map_err(|e| Error::internal(format!("database holds invalid {what} JSON: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

// ---- statements -----------------------------------------------------------------------------

/// ` IN ($1, $2, ...)` over `items`, each bound.
pub(crate) fn push_in_list<DB>(
    qb: &mut sqlx::QueryBuilder<DB>,
    items: impl IntoIterator<Item = String>,
) where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push(" IN (");
    let mut list = qb.separated(", ");
    for item in items {
        list.push_bind(item);
    }
    qb.push(")");
}

/// A count of seconds as the databases keep it (a signed 64-bit integer); beyond that is
/// centuries, so it is held at the largest one.
pub(crate) fn seconds_column(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}
