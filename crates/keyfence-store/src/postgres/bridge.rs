//! Runs the adapter's async work for the synchronous [`Store`](keyfence_core::Store) port.
//!
//! The store owns a small multi-threaded tokio runtime of its own. A blocking
//! call spawns its future on that runtime and waits for the answer on a
//! standard-library channel, which is correct from any thread: a plain thread,
//! a `spawn_blocking` thread, or a task of the caller's own runtime (where
//! `Handle::block_on` would panic). The only thread that must not wait is one
//! of the store's own workers, since it would be waiting on itself: that call
//! fails with an error instead of deadlocking. Dropping the store shuts its
//! runtime down in the background, which is allowed inside async code.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use keyfence_core::StoreError;
use tokio::runtime::{Builder, Handle, Runtime};

thread_local! {
    /// Whether this thread is a worker of some store's runtime.
    static STORE_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The store's private runtime.
pub(crate) struct Bridge {
    runtime: Option<Runtime>,
    timeout: Duration,
}

impl Bridge {
    /// Starts the runtime; every [`run`](Self::run) is bounded by `timeout`.
    pub(crate) fn new(timeout: Duration) -> Result<Self, StoreError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("keyfence-postgres")
            .enable_all()
            .on_thread_start(|| STORE_WORKER.with(|w| w.set(true)))
            .build()
            .map_err(|e| StoreError::Backend(format!("start the PostgreSQL runtime: {e}")))?;
        Ok(Self {
            runtime: Some(runtime),
            timeout,
        })
    }

    /// The runtime's handle, to spawn background tasks on it.
    pub(crate) fn handle(&self) -> &Handle {
        match &self.runtime {
            Some(rt) => rt.handle(),
            None => unreachable!("the runtime is only taken when the bridge is dropped"),
        }
    }

    /// Runs `work` on the store's runtime and waits for its result, at most
    /// the bridge's timeout.
    pub(crate) fn run<T, E, F>(&self, what: &'static str, work: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if STORE_WORKER.with(Cell::get) {
            return Err(StoreError::Backend(format!(
                "{what}: a blocking store call from the store's own runtime would deadlock"
            ))
            .into());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let timeout = self.timeout;
        self.handle().spawn(async move {
            let out = match tokio::time::timeout(timeout, work).await {
                Ok(out) => out,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "{what}: no answer from PostgreSQL within {timeout:?} (a change in flight may or may not have been committed)"
                ))
                .into()),
            };
            // The caller is waiting on the channel; it cannot have gone away.
            let _ = tx.send(out);
        });
        rx.recv().map_err(|_| {
            StoreError::Backend(format!("{what}: the store's task ended without an answer"))
        })?
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn runs_work_and_bounds_it_by_the_timeout() {
        let bridge = Bridge::new(Duration::from_millis(100)).unwrap();
        assert_eq!(
            bridge.run("add", async { Ok::<_, StoreError>(1 + 1) }),
            Ok(2)
        );
        let slow = bridge.run("sleep", async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, StoreError>(())
        });
        assert!(matches!(slow, Err(StoreError::Unavailable(m)) if m.contains("no answer")));
    }

    #[test]
    fn a_call_from_the_stores_own_runtime_fails_instead_of_deadlocking() {
        let bridge = Arc::new(Bridge::new(Duration::from_secs(5)).unwrap());
        let inner = bridge.clone();
        let out = bridge.run("outer", async move {
            // Synchronous call on a worker of the same runtime.
            Ok::<_, StoreError>(inner.run("inner", async { Ok::<_, StoreError>(()) }))
        });
        assert!(matches!(out, Ok(Err(StoreError::Backend(m))) if m.contains("deadlock")));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn works_and_drops_inside_a_callers_runtime() {
        let bridge = Bridge::new(Duration::from_secs(5)).unwrap();
        assert_eq!(
            bridge.run("in a runtime", async { Ok::<_, StoreError>(3) }),
            Ok(3)
        );
        drop(bridge);
    }
}
