//! Waking a feed reader when changes commit: LISTEN on a dedicated
//! connection, with polling as the fallback.
//!
//! The feed's trigger notifies [`CHANNEL`] in every writing transaction;
//! PostgreSQL delivers it when (and only if) that transaction commits. A
//! background task on the store's runtime holds one connection (outside the
//! pool) listening on the channel and reconnects with backoff, through the
//! same multi-host connection string, when it is lost. A (re)connection also
//! wakes the reader, since notifications may have been missed meanwhile. A
//! reader waits with a timeout and reads the feed either way, so a lost
//! notification only delays a change until the next poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;
use tokio_postgres::AsyncMessage;

use super::schema::CHANNEL;
use super::tls::Connector;

/// The state shared between the listener task and the waiters.
#[derive(Default)]
struct Shared {
    /// Set by a wake-up, cleared by the waiter that consumes it.
    pending: Mutex<bool>,
    cond: Condvar,
    notify: tokio::sync::Notify,
    listening: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_all();
        self.notify.notify_one();
    }

    fn take(&self) -> bool {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Wakes a change-feed reader when a change commits (from
/// [`PostgresStore::change_waker`](super::PostgresStore::change_waker)).
///
/// A wake-up is remembered until a wait consumes it, so the loop "read the
/// feed, then wait" never misses a change committed in between. Dropping the
/// waker closes its connection.
pub struct ChangeWaker {
    shared: Arc<Shared>,
    task: AbortHandle,
}

impl std::fmt::Debug for ChangeWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeWaker")
            .field("listening", &self.is_listening())
            .finish()
    }
}

impl ChangeWaker {
    /// Starts listening on `runtime` with its own connection made from
    /// `config` (over TLS through `tls` when the configuration asks for it).
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Handle,
        config: tokio_postgres::Config,
        tls: Connector,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        let task = runtime
            .spawn(listen(config, tls, shared.clone()))
            .abort_handle();
        Self { shared, task }
    }

    /// Blocks until a change commits (or the listener reconnects), or
    /// `timeout` passes. Returns whether it was woken; either way the caller
    /// should read the feed (the timeout is the polling fallback).
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            if std::mem::take(&mut *pending) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self
                .shared
                .cond
                .wait_timeout(pending, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// [`wait`](Self::wait) for async callers (needs a tokio runtime with timers).
    pub async fn wait_async(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shared.take() {
                return true;
            }
            if tokio::time::timeout_at(deadline, self.shared.notify.notified())
                .await
                .is_err()
            {
                return self.shared.take();
            }
        }
    }

    /// Whether the listening connection is up (if not, only polling finds changes).
    pub fn is_listening(&self) -> bool {
        self.shared.listening.load(Ordering::Acquire)
    }
}

impl Drop for ChangeWaker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps a LISTEN connection up for as long as the task lives.
async fn listen(config: tokio_postgres::Config, tls: Connector, shared: Arc<Shared>) {
    const MIN_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(2);
    let mut backoff = MIN_BACKOFF;
    loop {
        if let Ok((client, mut connection)) = config.connect(tls.clone()).await {
            let to_wake = shared.clone();
            // Drives the connection and turns notifications into wake-ups;
            // ends when the connection fails or the client is dropped.
            let driver = tokio::spawn(async move {
                while let Some(Ok(message)) =
                    std::future::poll_fn(|cx| connection.poll_message(cx)).await
                {
                    if let AsyncMessage::Notification(_) = message {
                        to_wake.wake();
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_ok()
            {
                shared.listening.store(true, Ordering::Release);
                backoff = MIN_BACKOFF;
                // Changes may have committed while nobody listened.
                shared.wake();
                let _ = driver.await;
                shared.listening.store(false, Ordering::Release);
            } else {
                drop(client);
                let _ = driver.await;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
