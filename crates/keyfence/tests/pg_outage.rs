//! PostgreSQL stopped and started again, or frozen and thawed (as behind a
//! network partition), under load, with two real nodes over it: meanwhile the nodes answer cryptographic requests from their
//! replicas (until the staleness bound), and refuse state changes at once
//! with DependencyTimeoutException (no hang: within the store's timeouts; no internal error, no detail of
//! the database in the message); once PostgreSQL is back they recover by
//! themselves, and no acknowledged write is lost.

mod nodes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyfence_bench::client::ClientContext;
use nodes::{call, Nodes, Store};
use serde_json::{json, Value};

/// The nodes' staleness bound.
const STALENESS_S: u64 = 4;
/// How PostgreSQL fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outage {
    /// Stopped (`pg_ctl stop`): connections are refused at once.
    Stopped,
    /// Frozen (SIGSTOP): connections hang, as behind a network partition;
    /// only the store's timeouts (connect 5 s, operation 10 s) end a call.
    Frozen,
}

impl Outage {
    /// How long PostgreSQL stays away: past the staleness bound, and for a
    /// freeze past twice the store's operation timeout (a write sent just
    /// before the freeze may hang until the 10 s operation timeout; the
    /// writer's next call must still be refused inside the outage).
    fn length(self) -> Duration {
        match self {
            Self::Stopped => Duration::from_secs(STALENESS_S + 2),
            Self::Frozen => Duration::from_secs(22),
        }
    }

    /// The slowest a refused write may be.
    fn slowest_refusal(self) -> Duration {
        match self {
            Self::Stopped => Duration::from_secs(3),
            Self::Frozen => Duration::from_secs(11),
        }
    }
}

/// One request's outcome: when it was sent, how long it took, and the error
/// type with its message (`None`: success), plus the key it made.
struct Sample {
    sent: Instant,
    took: Duration,
    status: u16,
    error: Option<(String, String)>,
    key: Option<String>,
}

/// Sends `op` with `body` in a loop until `stop`, recording every outcome.
fn load(
    ctx: ClientContext,
    op: &'static str,
    body: Value,
    out: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let reply = rt
            .block_on(call(ctx.clone(), op, body.clone()))
            .unwrap_or_else(|e| panic!("{op}: no answer at all: {e}"));
        let error = reply.error_type().map(|t| {
            let message = reply.json()["message"].as_str().unwrap_or("").to_string();
            (t, message)
        });
        let key = reply.json()["KeyMetadata"]["KeyId"]
            .as_str()
            .map(str::to_string);
        out.lock().unwrap().push(Sample {
            sent,
            took: sent.elapsed(),
            status: reply.status,
            error,
            key,
        });
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nodes_ride_out_a_stopped_postgres_under_load_and_recover_without_restart() {
    ride_out(Outage::Stopped);
}

#[test]
fn nodes_ride_out_a_frozen_postgres_under_load_and_recover_without_restart() {
    ride_out(Outage::Frozen);
}

fn ride_out(outage: Outage) {
    let mut n = Nodes::start(2, Some(Store::postgres()), Some(STALENESS_S));
    let key = n.create_key(0);
    n.until_all(&[1], Duration::from_secs(5), "key", |n, i| {
        n.key_state(i, &key).is_some()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writes: Vec<_> = (0..2).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let crypto: Vec<_> = (0..2).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let mut threads = Vec::new();
    for i in 0..2 {
        let (ctx, out, s) = (n.ctx(i), writes[i].clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            load(ctx, "CreateKey", json!({}), out, s)
        }));
        let (ctx, out, s) = (n.ctx(i), crypto[i].clone(), stop.clone());
        let body = json!({ "KeyId": key, "Plaintext": "eA==" });
        threads.push(std::thread::spawn(move || {
            load(ctx, "Encrypt", body, out, s)
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    match outage {
        Outage::Stopped => n.store.pg().stop().unwrap(),
        Outage::Frozen => n.store.pg().freeze().unwrap(),
    }
    let down = Instant::now();
    std::thread::sleep(outage.length());
    // The outage ends as PostgreSQL starts coming back: a call waiting on a
    // frozen server completes as soon as its backend resumes, before thaw()
    // has resumed every process.
    let returning = Instant::now();
    match outage {
        Outage::Stopped => n.store.pg().start().unwrap(),
        Outage::Frozen => n.store.pg().thaw().unwrap(),
    }
    let up = Instant::now();
    // Load goes on until both nodes have written and encrypted again.
    let recovered = |samples: &Arc<Mutex<Vec<Sample>>>| {
        samples
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.sent >= up && s.error.is_none())
            .map(|s| s.sent + s.took - up)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while writes.iter().chain(&crypto).any(|s| recovered(s).is_none()) {
        assert!(Instant::now() < deadline, "no recovery\n{}", n.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread");
    }

    let pg_port = n.store.pg().port().to_string();
    let mut acknowledged = Vec::new();
    for i in 0..2 {
        let (write_back, crypto_back) = (
            recovered(&writes[i]).unwrap(),
            recovered(&crypto[i]).unwrap(),
        );
        let w = writes[i].lock().unwrap();
        let c = crypto[i].lock().unwrap();
        // Every write sent and answered while PostgreSQL is away is
        // DependencyTimeoutException, within the store's timeouts, naming
        // nothing internal.
        let during: Vec<&Sample> = w
            .iter()
            .filter(|s| {
                let answered = s.sent + s.took;
                // Sent once PostgreSQL was down (a write sent before may
                // have committed before it went away, and be answered late).
                s.sent > down
                    && answered > down + Duration::from_millis(200)
                    && answered < returning
            })
            .collect();
        assert!(
            !during.is_empty(),
            "node {i}: no write during the outage; around it: {:?}",
            w.iter()
                .filter(|s| s.sent + s.took > down)
                .take(8)
                .map(|s| (
                    s.sent.saturating_duration_since(down),
                    s.took,
                    s.error.as_ref().map(|e| e.0.clone())
                ))
                .collect::<Vec<_>>()
        );
        for s in &during {
            let (t, m) = s
                .error
                .as_ref()
                .expect("a write succeeded with PostgreSQL down");
            assert_eq!(t, "DependencyTimeoutException", "node {i}: {m}");
            assert_eq!(
                s.status, 500,
                "AWS answers DependencyTimeoutException with 500"
            );
            for internal in ["PostgreSQL", "postgres", "127.0.0.1", &pg_port, "os error"] {
                assert!(
                    !m.contains(internal),
                    "node {i}: message shows {internal:?}: {m}"
                );
            }
        }
        // Once recovered, recovered for good: no stale pooled connection
        // fails a later request.
        for (what, samples, back) in [("write", &w, write_back), ("Encrypt", &c, crypto_back)] {
            let relapses = samples
                .iter()
                .filter(|s| s.sent >= up + back && s.error.is_some())
                .count();
            assert_eq!(
                relapses, 0,
                "node {i}: {what} failed again after recovering"
            );
        }
        let slowest = during.iter().map(|s| s.took).max().unwrap();
        assert!(
            slowest < outage.slowest_refusal(),
            "node {i}: a refusal took {slowest:?}"
        );
        // Crypto from the replica until the bound, refused after it.
        let served: Vec<&Sample> = c
            .iter()
            .filter(|s| s.sent > down && s.sent + s.took < returning)
            .collect();
        let bound = Duration::from_secs(STALENESS_S);
        for s in &served {
            let at = s.sent - down;
            match &s.error {
                None => assert!(
                    at < bound + Duration::from_secs(1),
                    "node {i}: Encrypt at {at:?} past the bound"
                ),
                Some((t, _)) => {
                    assert_eq!(
                        t, "DependencyTimeoutException",
                        "node {i}: Encrypt at {at:?}"
                    );
                    assert!(
                        at > bound - Duration::from_secs(2),
                        "node {i}: Encrypt refused at {at:?}, well inside the bound"
                    );
                }
            }
        }
        let last_ok = served
            .iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.sent - down)
            .max();
        let first_refused = served
            .iter()
            .filter(|s| s.error.is_some())
            .map(|s| s.sent - down)
            .min();
        assert!(
            last_ok.is_some() && first_refused.is_some(),
            "node {i}: {last_ok:?} {first_refused:?}"
        );
        eprintln!(
            "{outage:?}, node {i}: {} writes refused during the outage (slowest refusal {slowest:?}); \
             Encrypt served from the replica until {:?}, refused from {:?}; after PostgreSQL \
             restarted: first write {:?}, first Encrypt {:?}",
            during.len(),
            last_ok.unwrap(),
            first_refused.unwrap(),
            write_back,
            crypto_back,
        );
        acknowledged.extend(w.iter().filter_map(|s| s.key.clone()));
    }
    // Nothing acknowledged is lost, at either node.
    n.until_all(
        &[0, 1],
        Duration::from_secs(10),
        "acknowledged keys",
        |n, i| {
            acknowledged
                .iter()
                .all(|k| n.key_state(i, k).as_deref() == Some("Enabled"))
        },
    );
    eprintln!(
        "{} acknowledged CreateKeys present at both nodes",
        acknowledged.len()
    );
    n.stop();
}
