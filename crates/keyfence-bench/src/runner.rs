//! The load loop, independent of what a request is: closed loop (each worker sends
//! back to back) or open loop (a fixed arrival schedule shared by all workers, with
//! latency measured from each request's *intended* send time, so a slow response
//! that delays the next sends is not hidden — no coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Latencies are recorded in microseconds, 1 µs to 60 s, 3 significant digits.
pub const HIST_MAX_US: u64 = 60_000_000;

/// A fresh latency histogram.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// One sender of requests (an HTTP/1.1 connection, or an HTTP/2 stream slot).
pub trait Worker: Send + 'static {
    /// Sends one request of kind `kind` (an index into the workload's operations)
    /// and waits for its response; `Err` carries the error type for the table.
    fn call(&mut self, kind: usize) -> impl Future<Output = Result<(), String>> + Send + '_;
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each worker sends its next request as soon as the previous one is answered.
    Closed,
    /// Requests are scheduled at `rate` per second in total; the next free worker
    /// takes the next slot.
    Open {
        /// Requests per second, all workers together.
        rate: f64,
    },
}

/// What one run measures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pacing.
    pub pacing: Pacing,
    /// How long requests are started for.
    pub duration: Duration,
    /// Operation kinds, cycled through in this order (request `i` is
    /// `pattern[i % len]`): one entry for a single-operation workload.
    pub pattern: Vec<usize>,
    /// Number of distinct kinds (the per-kind histograms).
    pub kinds: usize,
    /// A request with no answer after this long counts as a `Timeout` error.
    pub request_timeout: Duration,
    /// Open loop: once the schedule is over, workers that are still behind stop
    /// after this grace period, and the slots they did not send count as missed.
    pub drain: Duration,
}

/// What a run measured.
pub struct Stats {
    /// Latency of successful requests, all kinds.
    pub latency: Histogram<u64>,
    /// Latency of successful requests, per kind.
    pub per_kind: Vec<Histogram<u64>>,
    /// Successful requests, per kind.
    pub ok_per_kind: Vec<u64>,
    /// Failed requests by error type.
    pub errors: BTreeMap<String, u64>,
    /// From the start until the last response.
    pub elapsed: Duration,
    /// Open loop: slots in the schedule.
    pub scheduled: u64,
    /// Open loop: slots never sent (the drain period ran out).
    pub missed: u64,
}

impl Stats {
    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.ok_per_kind.iter().sum()
    }

    /// Failed requests.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Successful requests per second of elapsed time.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok() as f64 / secs
        } else {
            0.0
        }
    }
}

struct Local {
    latency: Histogram<u64>,
    per_kind: Vec<Histogram<u64>>,
    ok_per_kind: Vec<u64>,
    errors: BTreeMap<String, u64>,
    last: Instant,
}

/// Runs `workers` according to `plan`, counting completed requests in `progress`;
/// gives the workers back for another run (a measured run after a warm-up).
pub async fn run<W: Worker>(
    workers: Vec<W>,
    plan: &Plan,
    progress: Arc<AtomicU64>,
) -> (Vec<W>, Stats) {
    assert!(!plan.pattern.is_empty() && plan.kinds > 0);
    let start = Instant::now();
    let end = start + plan.duration;
    let scheduled = match plan.pacing {
        Pacing::Closed => 0,
        Pacing::Open { rate } => (plan.duration.as_secs_f64() * rate).floor() as u64,
    };
    let schedule = Arc::new(Schedule {
        permits: Semaphore::new(0),
        next_slot: AtomicU64::new(0),
        scheduled,
    });
    if let Pacing::Open { rate } = plan.pacing {
        let (schedule, workers) = (Arc::clone(&schedule), workers.len());
        let start = start.into_std();
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || pace(&schedule, start, rate, workers))
            .expect("pacer thread starts");
    }
    let plan = Arc::new(plan.clone());
    let mut handles = Vec::with_capacity(workers.len());
    for worker in workers {
        let (plan, schedule, progress) = (
            Arc::clone(&plan),
            Arc::clone(&schedule),
            Arc::clone(&progress),
        );
        handles.push(tokio::spawn(drive(
            worker, plan, start, end, schedule, progress,
        )));
    }
    let mut stats = Stats {
        latency: histogram(),
        per_kind: (0..plan.kinds).map(|_| histogram()).collect(),
        ok_per_kind: vec![0; plan.kinds],
        errors: BTreeMap::new(),
        elapsed: Duration::ZERO,
        scheduled,
        missed: 0,
    };
    let mut workers = Vec::with_capacity(handles.len());
    let mut last = start;
    for h in handles {
        match h.await {
            Ok((w, local)) => {
                workers.push(w);
                stats.latency.add(&local.latency).expect("same bounds");
                for (all, one) in stats.per_kind.iter_mut().zip(&local.per_kind) {
                    all.add(one).expect("same bounds");
                }
                for (all, one) in stats.ok_per_kind.iter_mut().zip(&local.ok_per_kind) {
                    *all += one;
                }
                for (k, n) in local.errors {
                    *stats.errors.entry(k).or_default() += n;
                }
                last = last.max(local.last);
            }
            Err(e) => {
                *stats.errors.entry(format!("WorkerPanic: {e}")).or_default() += 1;
            }
        }
    }
    stats.elapsed = last - start;
    if let Pacing::Open { .. } = plan.pacing {
        stats.missed = scheduled.saturating_sub(stats.ok() + stats.failed());
    }
    (workers, stats)
}

/// The open-loop schedule: one permit per slot, released on time by the pacer.
struct Schedule {
    permits: Semaphore,
    next_slot: AtomicU64,
    scheduled: u64,
}

/// Releases slot `i` at `start + i / rate` from a dedicated thread: tokio's timer
/// has a 1 ms granularity and fires late on a busy runtime, and that lateness would
/// be charged to the node. A waiting worker is woken at once (the semaphore is
/// FIFO); when none is free the slot waits, and its latency still counts from its
/// intended time. At the end every worker gets a permit past the schedule: stop.
fn pace(schedule: &Schedule, start: std::time::Instant, rate: f64, workers: usize) {
    let mut released = 0u64;
    while released < schedule.scheduled {
        let elapsed = start.elapsed().as_secs_f64();
        // Slots whose time has come: i <= elapsed * rate.
        let due = ((elapsed * rate).floor() as u64 + 1).min(schedule.scheduled);
        if due > released {
            schedule.permits.add_permits((due - released) as usize);
            released = due;
        }
        if released < schedule.scheduled {
            let next = start + Duration::from_secs_f64(released as f64 / rate);
            let now = std::time::Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
    }
    schedule.permits.add_permits(workers);
}

async fn drive<W: Worker>(
    mut worker: W,
    plan: Arc<Plan>,
    start: Instant,
    end: Instant,
    schedule: Arc<Schedule>,
    progress: Arc<AtomicU64>,
) -> (W, Local) {
    let mut local = Local {
        latency: histogram(),
        per_kind: (0..plan.kinds).map(|_| histogram()).collect(),
        ok_per_kind: vec![0; plan.kinds],
        errors: BTreeMap::new(),
        last: start,
    };
    let mut seq: u64 = 0;
    loop {
        let (slot, intended) = match plan.pacing {
            Pacing::Closed => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                (seq, now)
            }
            Pacing::Open { rate } => {
                match schedule.permits.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => break,
                }
                let slot = schedule.next_slot.fetch_add(1, Ordering::Relaxed);
                if slot >= schedule.scheduled {
                    break;
                }
                if Instant::now() > end + plan.drain {
                    // Hopelessly behind: give up; the rest are reported as missed.
                    break;
                }
                (slot, start + Duration::from_secs_f64(slot as f64 / rate))
            }
        };
        seq += 1;
        let kind = plan.pattern[(slot % plan.pattern.len() as u64) as usize];
        let result = tokio::time::timeout(plan.request_timeout, worker.call(kind)).await;
        let done = Instant::now();
        local.last = done;
        match result {
            Ok(Ok(())) => {
                let us = (done - intended)
                    .as_micros()
                    .clamp(1, u128::from(HIST_MAX_US)) as u64;
                local.latency.saturating_record(us);
                local.per_kind[kind].saturating_record(us);
                local.ok_per_kind[kind] += 1;
            }
            Ok(Err(kind)) => *local.errors.entry(kind).or_default() += 1,
            Err(_) => *local.errors.entry("Timeout".into()).or_default() += 1,
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    (worker, local)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A responder that takes `delay` per request, one at a time per worker.
    struct Slow {
        delay: Duration,
        fail_every: u64,
        n: u64,
    }

    impl Worker for Slow {
        async fn call(&mut self, _kind: usize) -> Result<(), String> {
            self.n += 1;
            tokio::time::sleep(self.delay).await;
            if self.fail_every > 0 && self.n.is_multiple_of(self.fail_every) {
                Err("ThrottlingException".into())
            } else {
                Ok(())
            }
        }
    }

    fn plan(pacing: Pacing, ms: u64) -> Plan {
        Plan {
            pacing,
            duration: Duration::from_millis(ms),
            pattern: vec![0, 1, 1],
            kinds: 2,
            request_timeout: Duration::from_secs(5),
            drain: Duration::from_secs(5),
        }
    }

    fn slow(ms: u64) -> Slow {
        Slow {
            delay: Duration::from_millis(ms),
            fail_every: 0,
            n: 0,
        }
    }

    #[tokio::test]
    async fn open_loop_latency_counts_from_the_intended_send_time() {
        // One worker, a 20 ms responder, 200 requests/s for 0.5 s: the schedule
        // asks for one request every 5 ms, the worker manages one per 20 ms, so
        // the backlog grows and request k waits ~15·k ms before it is even sent.
        // Measured from the actual send, every latency would be ~20 ms.
        let progress = Arc::new(AtomicU64::new(0));
        let (_, stats) = run(
            vec![slow(20)],
            &plan(Pacing::Open { rate: 200.0 }, 500),
            progress.clone(),
        )
        .await;
        assert_eq!(stats.scheduled, 100);
        assert_eq!(stats.ok(), 100);
        assert_eq!(stats.missed, 0);
        assert_eq!(progress.load(Ordering::Relaxed), 100);
        let p50 = stats.latency.value_at_quantile(0.5);
        let max = stats.latency.max();
        // Request 50: sent at ~1000 ms, intended at 250 ms: ~770 ms.
        assert!(p50 > 500_000, "p50 {p50} µs hides the queueing delay");
        // The last: done at ~2000 ms, intended at 495 ms.
        assert!(max > 1_400_000, "max {max} µs");
        assert!(stats.latency.min() >= 19_000);
        // Elapsed covers the backlog, so the achieved rate is the responder's.
        let t = stats.throughput();
        assert!(t < 60.0 && t > 35.0, "throughput {t}");
    }

    #[tokio::test]
    async fn open_loop_below_capacity_keeps_latency_at_service_time() {
        // 4 workers of 10 ms each can do 400/s; ask for 100/s.
        let workers = (0..4).map(|_| slow(10)).collect();
        let (_, stats) = run(
            workers,
            &plan(Pacing::Open { rate: 100.0 }, 500),
            Arc::default(),
        )
        .await;
        assert_eq!(stats.ok(), 50);
        let p99 = stats.latency.value_at_quantile(0.99);
        assert!(p99 < 40_000, "p99 {p99} µs");
        assert!(stats.latency.min() >= 9_000);
        // Kinds follow the pattern 0,1,1.
        assert_eq!(stats.ok_per_kind[0] + stats.ok_per_kind[1], 50);
        assert_eq!(stats.ok_per_kind[0], 17);
    }

    #[tokio::test]
    async fn open_loop_gives_up_after_the_drain_and_counts_missed_slots() {
        let mut p = plan(Pacing::Open { rate: 1000.0 }, 100);
        p.drain = Duration::from_millis(100);
        let (_, stats) = run(vec![slow(20)], &p, Arc::default()).await;
        assert_eq!(stats.scheduled, 100);
        // ~200 ms of work at 20 ms each: about 10 sent, the rest missed.
        assert!(stats.ok() >= 5 && stats.ok() <= 15, "ok {}", stats.ok());
        assert_eq!(stats.missed, 100 - stats.ok());
    }

    #[tokio::test]
    async fn closed_loop_counts_successes_and_errors() {
        let workers = (0..3)
            .map(|_| Slow {
                delay: Duration::from_millis(5),
                fail_every: 4,
                n: 0,
            })
            .collect();
        let (workers, stats) = run(workers, &plan(Pacing::Closed, 300), Arc::default()).await;
        assert_eq!(workers.len(), 3);
        let total = stats.ok() + stats.failed();
        // 3 workers × ~60 requests each (sleep granularity makes it fewer).
        assert!(total > 60 && total <= 185, "total {total}");
        assert_eq!(stats.errors.len(), 1);
        let throttled = stats.errors["ThrottlingException"];
        assert!(
            throttled * 4 <= total && throttled * 4 + 12 >= total,
            "{throttled} of {total}"
        );
        assert!(stats.latency.value_at_quantile(0.5) >= 5_000);
        assert!(stats.elapsed >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn timeouts_are_errors() {
        let mut p = plan(Pacing::Closed, 50);
        p.request_timeout = Duration::from_millis(20);
        let (_, stats) = run(vec![slow(1000)], &p, Arc::default()).await;
        assert_eq!(stats.ok(), 0);
        assert!(stats.errors["Timeout"] >= 1);
    }
}
