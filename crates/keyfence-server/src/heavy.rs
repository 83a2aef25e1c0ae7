//! The heavy pool: the threads that run CPU-heavy requests (RSA and ML-DSA
//! private-key operations, key pair generation; see
//! [`Runs`](crate::api::kms::Runs)).
//!
//! An RSA-2048 key pair takes tens of milliseconds of CPU, an Encrypt about
//! twenty microseconds. Run side by side at the same priority, 1 % of the
//! former is enough to queue the latter behind them. So the heavy requests get
//! threads of their own, a fixed number of them, at a low CPU priority (nice
//! 10: against a busy request thread they get about a tenth of the CPU, so
//! they are slowed, never stopped), behind a bounded queue. A request that finds the
//! queue full, or that waited in it longer than the configured time, is refused
//! with `ThrottlingException`, which the AWS SDKs retry with backoff: the node
//! says it is busy instead of holding requests it cannot serve in time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// Size and patience of the heavy pool (the `[limits]` table's `heavy_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeavyLimits {
    /// Threads running heavy requests (default: the CPUs this process may use).
    pub threads: usize,
    /// Heavy requests waiting for a thread, at most; one more is refused
    /// (default 8 per thread: a heavy request holds its client's connection
    /// while it waits, so a long queue would hold every connection a client
    /// has and stall its cheap requests on the client's side instead).
    pub queue: usize,
    /// A heavy request that waited this long for a thread is refused rather
    /// than run for a caller that has likely given up (default 30 s: an
    /// RSA-4096 key pair alone can take seconds, more on a busy host).
    pub max_wait: Duration,
}

impl Default for HeavyLimits {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            threads,
            queue: 8 * threads,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// Why the heavy pool did not run a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeavyRefusal {
    /// The queue holds [`HeavyLimits::queue`] requests already.
    #[error("the node's queue for CPU-heavy requests is full")]
    QueueFull,
    /// The request waited longer than [`HeavyLimits::max_wait`] for a thread.
    #[error("the request waited too long for a thread for CPU-heavy requests")]
    WaitedTooLong,
    /// The work panicked, or the pool is shutting down.
    #[error("the CPU-heavy request failed")]
    Failed,
}

impl HeavyRefusal {
    /// The label of `keyfence_heavy_requests_refused_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::WaitedTooLong => "waited_too_long",
            Self::Failed => "failed",
        }
    }
}

/// One queued request: when it was queued, and what to run (told whether it
/// waited too long).
struct Job {
    queued_at: Instant,
    run: Box<dyn FnOnce(bool) + Send>,
}

/// A fixed set of low-priority threads behind a bounded queue.
pub struct HeavyPool {
    jobs: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for HeavyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeavyPool").finish_non_exhaustive()
    }
}

impl HeavyPool {
    /// Starts `limits.threads` threads (at least one). They end when the pool
    /// is dropped and the queue is empty.
    pub fn start(limits: HeavyLimits, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(limits.queue);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..limits.threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("keyfence-heavy-{i}"))
                .spawn(move || {
                    if let Err(e) = lower_own_priority() {
                        tracing::warn!(error = %e, "heavy pool thread keeps the normal CPU priority");
                    }
                    work(&queue, limits.max_wait);
                })?;
        }
        Ok(Self { jobs, metrics })
    }

    /// Runs `work` on a pool thread and returns its result, or refuses at once
    /// when the queue is full. If the caller stops waiting (its connection
    /// closed), work not yet started is skipped.
    pub async fn run<T, F>(&self, work: F) -> Result<T, HeavyRefusal>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job = Job {
            queued_at: Instant::now(),
            run: Box::new(move |waited_too_long| {
                if reply.is_closed() {
                    return;
                }
                let outcome = if waited_too_long {
                    Err(HeavyRefusal::WaitedTooLong)
                } else {
                    catch_unwind(AssertUnwindSafe(work)).map_err(|_| HeavyRefusal::Failed)
                };
                let _ = reply.send(outcome);
            }),
        };
        let outcome = match self.jobs.try_send(job) {
            Ok(()) => result.await.unwrap_or(Err(HeavyRefusal::Failed)),
            Err(TrySendError::Full(_)) => Err(HeavyRefusal::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(HeavyRefusal::Failed),
        };
        if let Err(refusal) = &outcome {
            self.metrics.record_heavy_refused(refusal.reason());
        }
        outcome
    }
}

/// A pool thread's loop: take the next job, run it (or refuse it if it waited
/// too long), until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>, max_wait: Duration) {
    loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else { return };
        let waited_too_long = job.queued_at.elapsed() > max_wait;
        (job.run)(waited_too_long);
    }
}

/// The nice value of the pool's threads: a CPU weight of 110 against 1024 for
/// the request threads.
pub const HEAVY_NICE: i32 = 10;

/// Lowers the calling thread to [`HEAVY_NICE`].
///
/// Not `SCHED_IDLE` nor nice 19, which were measured as well (bench/RESULTS.md):
/// no better for the Encrypt tail, and with either a busy process beside the
/// node (a build beside a test run, here) starves the heavy requests until they
/// time out, where nice 10 keeps them a tenth of a CPU.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_own_priority() -> std::io::Result<()> {
    // SAFETY: setpriority takes three integers and no pointer, so no memory
    // of ours is read or written through it. With PRIO_PROCESS and who = 0,
    // Linux changes the calling thread's nice value only (under NPTL the nice
    // value is a per-thread attribute), and raising one's own nice value needs
    // no privilege. No other precondition exists.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HEAVY_NICE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere the pool's threads keep the normal priority (the queue bound and
/// the wait limit still hold).
#[cfg(not(target_os = "linux"))]
fn lower_own_priority() -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    fn pool(threads: usize, queue: usize, max_wait: Duration) -> HeavyPool {
        let limits = HeavyLimits {
            threads,
            queue,
            max_wait,
        };
        HeavyPool::start(limits, Metrics::new()).unwrap()
    }

    #[tokio::test]
    async fn runs_work_and_returns_its_result() {
        let pool = pool(2, 4, Duration::from_secs(5));
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("keyfence-heavy-"));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn its_threads_run_at_the_lowest_priority() {
        #[allow(unsafe_code)]
        fn own_nice() -> i32 {
            // SAFETY: getpriority takes integers and touches no memory of ours.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
        }
        let pool = pool(1, 4, Duration::from_secs(5));
        assert_eq!(pool.run(own_nice).await, Ok(HEAVY_NICE));
        assert_ne!(own_nice(), HEAVY_NICE, "the caller's thread is untouched");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_counts_it() {
        let pool = Arc::new(pool(1, 1, Duration::from_secs(5)));
        let gate = Arc::new(Barrier::new(2));
        let started = Arc::new(AtomicUsize::new(0));
        // One job holds the thread, one waits in the queue of one...
        let busy = {
            let (pool, gate, started) =
                (Arc::clone(&pool), Arc::clone(&gate), Arc::clone(&started));
            tokio::spawn(async move {
                pool.run(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    gate.wait();
                })
                .await
            })
        };
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let mut queued = Box::pin(pool.run(|| "ran"));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(queued.as_mut().poll(&mut cx).is_pending(), "queued");
        // ...so a third is refused without waiting.
        let third = pool.run(|| "ran").await;
        assert_eq!(third, Err(HeavyRefusal::QueueFull));
        assert!(pool
            .metrics
            .encode()
            .contains("keyfence_heavy_requests_refused_total{reason=\"queue_full\"}"));
        gate.wait();
        assert_eq!(busy.await.unwrap(), Ok(()));
        assert_eq!(queued.await, Ok("ran"));
    }

    #[tokio::test]
    async fn work_that_waited_too_long_is_refused_not_run() {
        let pool = Arc::new(pool(1, 4, Duration::from_millis(20)));
        let ran = Arc::new(AtomicUsize::new(0));
        let blocker = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                pool.run(|| std::thread::sleep(Duration::from_millis(200)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let late = {
            let ran = Arc::clone(&ran);
            pool.run(move || ran.fetch_add(1, Ordering::SeqCst)).await
        };
        assert_eq!(late, Err(HeavyRefusal::WaitedTooLong));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(blocker.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_panic_is_a_failed_request_and_the_thread_lives_on() {
        let pool = pool(1, 4, Duration::from_secs(5));
        let failed: Result<(), _> = pool.run(|| panic!("boom")).await;
        assert_eq!(failed, Err(HeavyRefusal::Failed));
        assert_eq!(pool.run(|| 1).await, Ok(1));
    }
}
