//! Mapping driver and pool errors onto the core's [`StoreError`], and the
//! typed conflict of a conditional write.

use keyfence_core::{KeyId, StoreError};

/// A conditional write failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConditionalWriteError {
    /// The key changed (or vanished) since the revision the write was checked against.
    #[error("key {key_id} is at revision {found:?}, not {expected}")]
    Stale {
        /// The key.
        key_id: KeyId,
        /// The revision the caller checked its change against.
        expected: i64,
        /// The stored revision, `None` if the key no longer exists.
        found: Option<i64>,
    },
    /// The write failed for another reason.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A driver error: constraint violations (SQLSTATE class 23) are conflicts,
/// anything else a backend failure with the server's message.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) if d.code().code().starts_with("23") => {
            StoreError::Conflict(format!("{}: {}", d.code().code(), d.message()))
        }
        Some(d) => StoreError::Backend(format!("PostgreSQL {}: {}", d.code().code(), d.message())),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

/// A connection could not be had from the pool.
pub(crate) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("PostgreSQL connection: {e}"))
}

/// A stored value could not be decoded.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Hands a connection back to the pool after a call, or drops it if the
/// call failed in the backend: the connection may be broken, or lead to a
/// server that is no longer the primary (after a switchover, writes there
/// fail as read-only). A fresh connection walks the multi-host list again
/// and finds the current primary. Conflicts and corrupt rows keep it.
pub(crate) fn release(client: deadpool_postgres::Object, backend_failed: bool) {
    if backend_failed {
        drop(deadpool_postgres::Object::take(client));
    }
}
