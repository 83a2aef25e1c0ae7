//! The node's background replica task: keeps the in-memory replica in step
//! with a shared store and runs what the clock makes due.
//!
//! - PostgreSQL: woken by LISTEN/NOTIFY on each commit (the store's
//!   [`ChangeWaker`]), with a poll every [`NOTIFY_FALLBACK`] in case a
//!   notification is lost; each wake-up runs [`Kms::sync`].
//! - A SQLite file shared by several nodes: polled every [`SQLITE_POLL`].
//! - A single SQLite node: nothing to follow, only the due tasks.
//!
//! Every [`SWEEP_INTERVAL`] it runs [`Kms::run_due_tasks`] (destroys keys
//! past their deletion date, expires imported material, rotates due keys)
//! and [`Kms::trim_feed`] (removes change feed entries read long ago);
//! on a shared store several nodes may do so at once, and the conditional
//! writes make each change happen once.

use std::sync::Arc;
use std::time::Duration;

use keyfence_core::Kms;
use keyfence_store::postgres::ChangeWaker;
use tokio::time::Instant;

/// How often due tasks run.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// Polling period of a shared SQLite file.
pub const SQLITE_POLL: Duration = Duration::from_millis(100);
/// Longest wait for a PostgreSQL notification before reading the feed anyway.
pub const NOTIFY_FALLBACK: Duration = Duration::from_secs(1);

/// How a node learns that the store changed.
pub enum Follow {
    /// Nothing to follow: this node is the only writer.
    Nothing,
    /// Poll the feed.
    Poll(Duration),
    /// Wait for a notification, at most the fallback period.
    Notify(ChangeWaker),
}

impl Follow {
    async fn wait(&self, until: Instant) {
        match self {
            Self::Nothing => tokio::time::sleep_until(until).await,
            Self::Poll(period) => {
                let left = until.saturating_duration_since(Instant::now());
                tokio::time::sleep((*period).min(left)).await
            }
            Self::Notify(waker) => {
                let left = until.saturating_duration_since(Instant::now());
                waker.wait_async(left.min(NOTIFY_FALLBACK)).await;
            }
        }
    }
}

/// Runs until dropped: syncs the replica on every wake-up and runs due tasks
/// every [`SWEEP_INTERVAL`].
pub async fn run(kms: Arc<Kms>, follow: Follow) {
    let mut next_sweep = Instant::now() + SWEEP_INTERVAL;
    let mut failing = false;
    loop {
        follow.wait(next_sweep).await;
        if !matches!(follow, Follow::Nothing) {
            let k = Arc::clone(&kms);
            match tokio::task::spawn_blocking(move || k.sync()).await {
                Ok(Ok(outcome)) => {
                    if failing {
                        tracing::info!("key store reachable again; replica in sync");
                        failing = false;
                    }
                    if outcome.reloaded {
                        tracing::warn!(
                            "the key store went back in time (failover?) or trimmed its change feed past this node; replica reloaded"
                        );
                    }
                }
                Ok(Err(e)) => {
                    if !failing {
                        tracing::warn!(error = %e, "replica sync failed; answering from the replica within its staleness bound");
                        failing = true;
                    }
                }
                Err(e) => tracing::error!(error = %e, "replica sync task panicked"),
            }
        }
        if Instant::now() >= next_sweep {
            next_sweep = Instant::now() + SWEEP_INTERVAL;
            let k = Arc::clone(&kms);
            match tokio::task::spawn_blocking(move || k.run_due_tasks()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(keys = n, "sweeper destroyed or rotated keys"),
                Ok(Err(e)) => tracing::error!(error = %e, "sweeper failed"),
                Err(e) => tracing::error!(error = %e, "sweeper task panicked"),
            }
            let k = Arc::clone(&kms);
            match tokio::task::spawn_blocking(move || k.trim_feed()).await {
                Ok(Ok(n)) => tracing::debug!(entries = n, "change feed trimmed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "trimming the change feed failed"),
                Err(e) => tracing::error!(error = %e, "feed trimming task panicked"),
            }
        }
    }
}
