//! Resource limits that hold before authentication: timeouts, the connection
//! cap, the budget of buffered request bytes, and the process's open-file limit.
//!
//! Everything here applies to clients that have not proven who they are, so
//! every bound is global (per node), not per caller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{messages, ApiError};
use crate::metrics::Metrics;
use crate::throttle::Throttling;

/// Largest request body accepted. The biggest valid KMS request (a 6 KiB
/// ciphertext and two 8 KiB contexts, base64 and JSON-escaped) fits easily.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// A request whose body may be larger than this (by its declared length, or
/// with none declared) is a large one: large requests together hold at most
/// half of the [`RequestBudget`], so a flood of large bodies that are never
/// finished cannot keep ordinary requests waiting (nearly every KMS request
/// is smaller: an Encrypt of 4 KiB is a 6 KiB body).
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

/// Bytes charged to the budget for a request on top of its body: headers,
/// the parsed request and the reply.
pub const REQUEST_OVERHEAD_BYTES: usize = 8 * 1024;

/// Largest header block (HTTP/1.1 read buffer; HTTP/2 header list).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// HTTP/2 flow-control window, per stream and per connection: what one
/// connection can make the node hold in bodies it has not yet read.
pub const HTTP2_WINDOW_BYTES: u32 = 64 * 1024;

/// File descriptors kept out of the connection cap (store, logs, listeners).
const RESERVED_FDS: u64 = 64;

/// The limits a node applies to the API port (the `[limits]` table of the
/// configuration file).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most connections open at once (TLS handshake included). At the cap the
    /// oldest idle connection is closed to make room; if none is idle, the new
    /// one is. Lowered at start to half the open-file limit if that is smaller.
    pub max_connections: usize,
    /// Time a client has to send a request's whole header block (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's whole body once it is read.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (this
    /// covers keep-alive, a silent client, a stalled HTTP/2 preface and a
    /// client that does not read its reply).
    pub idle_timeout: Duration,
    /// Bytes of request bodies (plus [`REQUEST_OVERHEAD_BYTES`] each) the node
    /// holds at once, over all connections, before authentication.
    pub request_bytes_budget: usize,
    /// How long a request waits for room in the budget before it is refused
    /// with 503 `ThrottlingException`.
    pub budget_wait: Duration,
    /// HTTP/2 streams one connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// How often the node gives freed memory back to the operating system
    /// after requests or connections ended (see [`trim_after_load`]).
    pub memory_trim_interval: Duration,
    /// Request-rate quotas per account (the `[throttle]` table; off by default).
    pub throttle: Throttling,
    /// The pool for CPU-heavy requests: threads, queue, longest wait.
    pub heavy: crate::heavy::HeavyLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_bytes_budget: 64 * 1024 * 1024,
            budget_wait: Duration::from_secs(2),
            http2_max_concurrent_streams: 32,
            memory_trim_interval: Duration::from_secs(5),
            throttle: Throttling::default(),
            heavy: crate::heavy::HeavyLimits::default(),
        }
    }
}

impl Limits {
    /// Checks that every limit lets at least one request through.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("limits.max_connections must be at least 1".into());
        }
        if self.request_bytes_budget < MAX_BODY_BYTES + REQUEST_OVERHEAD_BYTES {
            return Err(format!(
                "limits.request_bytes_budget must be at least {} bytes (one largest request)",
                MAX_BODY_BYTES + REQUEST_OVERHEAD_BYTES
            ));
        }
        if self.heavy.threads == 0 || self.heavy.queue == 0 {
            return Err("limits.heavy_threads and limits.heavy_queue must be at least 1".into());
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err("limits.http2_max_concurrent_streams must be at least 1".into());
        }
        for (name, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("memory_trim_interval", self.memory_trim_interval),
            ("heavy_max_wait", self.heavy.max_wait),
        ] {
            if d.is_zero() {
                return Err(format!("limits.{name} must be more than zero"));
            }
        }
        Ok(())
    }

    /// The connection cap to apply when the process may open `open_files`
    /// descriptors: the configured cap, or half of what the descriptors allow.
    pub fn effective_max_connections(&self, open_files: u64) -> usize {
        let by_fds = open_files.saturating_sub(RESERVED_FDS) / 2;
        let by_fds = usize::try_from(by_fds).unwrap_or(usize::MAX).max(1);
        self.max_connections.min(by_fds)
    }
}

/// The global budget of buffered request bytes.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    bytes: Arc<Semaphore>,
    large: Arc<Semaphore>,
    wait: Duration,
    released: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

/// Room held in the [`RequestBudget`] until the request is answered.
#[derive(Debug)]
pub struct BudgetPermit {
    _permit: OwnedSemaphorePermit,
    _large: Option<OwnedSemaphorePermit>,
    released: Arc<AtomicU64>,
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        self.released.fetch_add(1, Ordering::Relaxed);
    }
}

impl RequestBudget {
    /// A budget of `limits.request_bytes_budget` bytes; refusals are counted
    /// in `metrics`.
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Self {
        let largest = MAX_BODY_BYTES + REQUEST_OVERHEAD_BYTES;
        let large = (limits.request_bytes_budget / 2)
            .max(largest)
            .min(limits.request_bytes_budget);
        Self {
            bytes: Arc::new(Semaphore::new(limits.request_bytes_budget)),
            large: Arc::new(Semaphore::new(large)),
            wait: limits.budget_wait,
            released: Arc::default(),
            metrics,
        }
    }

    /// Requests that have given their room back so far (answered or failed).
    pub fn released_count(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }

    /// Bytes of the budget free right now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Reserves room for a request whose body is at most `body_bytes`, waiting
    /// up to the configured wait; refuses with 503 `ThrottlingException`. A
    /// large request ([`SMALL_BODY_BYTES`]) first takes its room in the half
    /// of the budget large requests share, so it never queues ahead of small
    /// ones in the whole budget while that half is full.
    pub async fn reserve(&self, body_bytes: usize) -> Result<BudgetPermit, ApiError> {
        let n = u32::try_from(body_bytes.min(MAX_BODY_BYTES) + REQUEST_OVERHEAD_BYTES)
            .expect("bounded by MAX_BODY_BYTES");
        let acquire = async {
            let large = if body_bytes > SMALL_BODY_BYTES {
                Some(Arc::clone(&self.large).acquire_many_owned(n).await?)
            } else {
                None
            };
            let permit = Arc::clone(&self.bytes).acquire_many_owned(n).await?;
            Ok::<_, tokio::sync::AcquireError>((permit, large))
        };
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok((permit, large))) => Ok(BudgetPermit {
                _permit: permit,
                _large: large,
                released: Arc::clone(&self.released),
            }),
            _ => {
                self.metrics.record_refused_request("request_budget");
                Err(messages::request_budget_exhausted())
            }
        }
    }
}

/// Reads a request body within the limits: refuses a declared length over
/// [`MAX_BODY_BYTES`] before reading, reserves room in `budget` for it, and
/// reads it within `timeout`. The permit must be held until the reply is built.
pub async fn read_body(
    headers: &hyper::HeaderMap,
    body: Incoming,
    budget: &RequestBudget,
    timeout: Duration,
) -> Result<(Bytes, BudgetPermit), ApiError> {
    let declared = match headers.get(CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(messages::body_unreadable)?,
        ),
    };
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        budget.metrics.record_refused_request("body_too_large");
        return Err(messages::body_too_large(MAX_BODY_BYTES));
    }
    let want = declared.map_or(MAX_BODY_BYTES, |n| n as usize);
    let permit = budget.reserve(want).await?;
    let collected = tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect())
        .await
        .map_err(|_| {
            budget.metrics.record_timeout("body");
            messages::body_read_timeout()
        })?;
    match collected {
        Ok(c) => Ok((c.to_bytes(), permit)),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            budget.metrics.record_refused_request("body_too_large");
            Err(messages::body_too_large(MAX_BODY_BYTES))
        }
        Err(_) => Err(messages::body_unreadable()),
    }
}

/// Raises this process's soft open-file limit to its hard limit and returns
/// the soft limit now in force (or the old one if it could not be raised).
#[allow(unsafe_code)]
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one `rlimit` through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = raised.rlim_cur;
        } else {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot raise the open-file limit"
            );
        }
    }
    Ok(lim.rlim_cur)
}

/// Gives the memory the allocator holds but no longer uses back to the
/// operating system; true if some was given back.
///
/// glibc's malloc keeps freed memory in its arenas (up to eight per core, one
/// per busy thread) for reuse, and returns it on its own only from the top of
/// the main heap. After a burst of connections and requests the node would
/// stay at its peak resident size; `malloc_trim` releases the free pages of
/// every arena (`madvise(MADV_DONTNEED)`). It was chosen over replacing the
/// global allocator because it changes nothing else: same allocator, same
/// request-path speed, one call a few times a minute at most, and it works in
/// every binary that links this crate (the node, its tests, the benches).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes one integer (the bytes of padding to keep at
    // the top of the heap) and no pointer, so no memory of ours is read or
    // written through it; glibc documents it as MT-Safe (it locks each arena
    // while it walks it), so it may run on any thread while others allocate.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Elsewhere the allocator is not glibc's and nothing is done.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

/// Gives freed memory back after load: every `interval`, if any request or
/// connection ended since the last look (`ended` counts them), calls
/// [`release_free_memory`] on the blocking pool. An idle node does nothing; a
/// busy one trims once per interval; the first look after the load is over
/// returns what the load left behind.
pub async fn trim_after_load(interval: Duration, ended: impl Fn() -> u64) {
    let mut seen = ended();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = ended();
        if now == seen {
            continue;
        }
        seen = now;
        // malloc_trim walks every arena: off the async workers.
        let released = tokio::task::spawn_blocking(release_free_memory).await;
        tracing::debug!(?released, "freed memory given back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_limits_are_named() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let tiny = Limits {
            request_bytes_budget: 1000,
            ..Limits::default()
        };
        assert!(tiny
            .validate()
            .unwrap_err()
            .contains("request_bytes_budget"));
        let zero = Limits {
            idle_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert!(zero.validate().unwrap_err().contains("idle_timeout"));
    }

    #[test]
    fn connection_cap_follows_the_file_limit() {
        let l = Limits::default();
        assert_eq!(l.effective_max_connections(1_048_576), 4096);
        assert_eq!(l.effective_max_connections(1024), 480);
        assert_eq!(l.effective_max_connections(10), 1);
    }

    #[test]
    #[allow(unsafe_code)]
    fn open_file_limit_is_raised_to_the_hard_limit() {
        let soft = raise_open_file_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_open_file_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(soft, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }

    #[test]
    fn freed_memory_is_given_back() {
        // 64 MiB in 4 KiB blocks, freed but for every 64th: glibc keeps the
        // holes, and only a trim gives their pages back.
        let rss = || crate::metrics::resident_memory_bytes().unwrap();
        let before = rss();
        let mut blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8; 4096]).collect();
        let grown = rss();
        let kept: Vec<Vec<u8>> = blocks.drain(..).step_by(64).collect();
        drop(blocks);
        let freed_but_held = rss();
        assert!(release_free_memory(), "glibc had free pages to give back");
        let trimmed = rss();
        eprintln!("RSS {before} -> {grown} -> {freed_but_held} -> {trimmed}");
        assert!(grown - before > 48 << 20);
        assert!(
            freed_but_held.saturating_sub(trimmed) > 32 << 20,
            "trim gave back {} KiB",
            freed_but_held.saturating_sub(trimmed) >> 10
        );
        drop(kept);
    }

    #[tokio::test]
    async fn large_bodies_hold_at_most_half_the_budget() {
        let largest = MAX_BODY_BYTES + REQUEST_OVERHEAD_BYTES;
        let budget = RequestBudget::new(
            &Limits {
                request_bytes_budget: 4 * largest,
                budget_wait: Duration::from_millis(50),
                ..Limits::default()
            },
            Metrics::new(),
        );
        let held: Vec<_> = [
            budget.reserve(MAX_BODY_BYTES).await.unwrap(),
            budget.reserve(MAX_BODY_BYTES).await.unwrap(),
        ]
        .into();
        assert!(
            budget.reserve(MAX_BODY_BYTES).await.is_err(),
            "a third large body waits for the large half, and is refused"
        );
        assert_eq!(budget.available(), 2 * largest, "the other half is free");
        let small: Vec<_> =
            futures_small(&budget, 2 * largest / (1024 + REQUEST_OVERHEAD_BYTES)).await;
        assert!(
            budget.reserve(1024).await.is_err(),
            "small ones share the rest"
        );
        drop((held, small));
        assert_eq!(budget.available(), 4 * largest);
    }

    async fn futures_small(budget: &RequestBudget, n: usize) -> Vec<BudgetPermit> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(budget.reserve(1024).await.expect("room for small requests"));
        }
        v
    }

    #[tokio::test]
    async fn the_budget_refuses_with_throttling_after_the_wait() {
        let metrics = Metrics::new();
        let budget = RequestBudget::new(
            &Limits {
                request_bytes_budget: MAX_BODY_BYTES + REQUEST_OVERHEAD_BYTES,
                budget_wait: Duration::from_millis(50),
                ..Limits::default()
            },
            Arc::clone(&metrics),
        );
        let held = budget.reserve(MAX_BODY_BYTES).await.unwrap();
        let refused = budget.reserve(10).await.unwrap_err();
        assert_eq!((refused.status, refused.code), (503, "ThrottlingException"));
        drop(held);
        assert!(budget.reserve(10).await.is_ok());
        assert_eq!(budget.available(), MAX_BODY_BYTES + REQUEST_OVERHEAD_BYTES);
        assert_eq!(budget.released_count(), 2);
        assert!(metrics
            .encode()
            .contains(r#"keyfence_requests_refused_total{limit="request_budget"} 1"#));
    }
}
