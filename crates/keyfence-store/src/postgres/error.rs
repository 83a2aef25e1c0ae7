//! Mapping driver and pool errors onto the core's [`StoreError`].

use keyfence_core::StoreError;

/// SQLSTATEs that mean "this server cannot take the request now": connection
/// exceptions (class 08), shutdown and start-up (57P0x), a read-only server
/// after a switchover (25006), too many connections (53300).
fn unavailable_state(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P0") || code == "25006" || code == "53300"
}

/// A driver error: constraint violations (SQLSTATE class 23) are conflicts,
/// a lost or refusing server is unavailable, anything else a backend failure
/// with the server's message.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) if d.code().code().starts_with("23") => {
            StoreError::Conflict(format!("{}: {}", d.code().code(), d.message()))
        }
        Some(d) if unavailable_state(d.code().code()) => {
            StoreError::Unavailable(format!("PostgreSQL {}: {}", d.code().code(), d.message()))
        }
        Some(d) => StoreError::Backend(format!("PostgreSQL {}: {}", d.code().code(), d.message())),
        None => StoreError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

/// A connection could not be had from the pool.
pub(crate) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL connection: {e}"))
}

/// A stored value could not be decoded.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Whether a call's failure leaves its connection suspect.
pub(crate) fn suspect<T>(result: &Result<T, StoreError>) -> bool {
    matches!(
        result,
        Err(StoreError::Backend(_) | StoreError::Unavailable(_))
    )
}

/// Hands a connection back to the pool after a call, or drops it if the
/// call failed in the backend: the connection may be broken, or lead to a
/// server that is no longer the primary (after a switchover, writes there
/// fail as read-only). A fresh connection walks the multi-host list again
/// and finds the current primary. Conflicts, stale revisions and corrupt
/// rows keep it.
pub(crate) fn release(client: deadpool_postgres::Object, backend_failed: bool) {
    if backend_failed {
        drop(deadpool_postgres::Object::take(client));
    }
}
