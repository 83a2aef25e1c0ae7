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
        None => StoreError::Unavailable(format!("PostgreSQL: {}", with_causes(&e))),
    }
}

/// A connection could not be had from the pool. The message carries the
/// causes too (the server's refusal, the TLS failure), which the pool's
/// and the driver's own messages leave out ("db error", "error performing
/// TLS handshake").
pub(crate) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL connection: {}", with_causes(&e)))
}

/// `e` and each of its sources, joined with ": " (repeats left out).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn causes_are_named_once_each() {
        let e = Layer(
            "db error",
            Some(Box::new(Layer(
                "FATAL: no pg_hba.conf entry",
                Some(Box::new(Layer("no pg_hba.conf entry", None))),
            ))),
        );
        assert_eq!(with_causes(&e), "db error: FATAL: no pg_hba.conf entry");
    }
}
