//! Failover: two real nodes over a PostgreSQL primary with a synchronous
//! streaming standby, connected through one multi-host string
//! (`…@127.0.0.1:P1,127.0.0.1:P2/…?target_session_attrs=read-write`). The
//! primary is killed (SIGKILL) under load and the standby promoted: the
//! nodes find the new primary by themselves, and no acknowledged write is
//! lost (a synchronous commit is on the standby before it is acknowledged).

mod nodes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyfence_bench::client::ClientContext;
use keyfence_testkit::TempPostgres;
use nodes::{call, Nodes, Store};
use serde_json::json;

/// `(sent, outcome, key made)` of every CreateKey.
type Log = Arc<Mutex<Vec<(Instant, Result<String, String>)>>>;

fn writer(ctx: ClientContext, log: Log, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let reply = rt
            .block_on(call(ctx.clone(), "CreateKey", json!({})))
            .unwrap_or_else(|e| panic!("CreateKey: no answer at all: {e}"));
        let outcome = match reply.error_type() {
            None => Ok(reply.json()["KeyMetadata"]["KeyId"]
                .as_str()
                .unwrap()
                .to_string()),
            Some(t) => Err(t),
        };
        log.lock().unwrap().push((sent, outcome));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nodes_follow_a_promoted_synchronous_standby_without_losing_a_write() {
    let primary = TempPostgres::new().unwrap();
    let mut standby = TempPostgres::start_standby(&primary, true).unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let mut n = Nodes::start_on(2, Store::Postgres(primary), &url, None);
    let before = n.create_key(0);
    let blob = n.ok(
        1,
        "Encrypt",
        json!({ "KeyId": before, "Plaintext": "eA==" }),
    )["CiphertextBlob"]
        .clone();

    let stop = Arc::new(AtomicBool::new(false));
    let logs: Vec<Log> = (0..2).map(|_| Log::default()).collect();
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (ctx, log, stop) = (n.ctx(i), logs[i].clone(), stop.clone());
            std::thread::spawn(move || writer(ctx, log, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    n.store.pg().kill9().unwrap();
    let killed = Instant::now();
    // An operator (or a failover manager) promotes the standby.
    std::thread::sleep(Duration::from_millis(500));
    standby.promote().unwrap();
    let promoted = Instant::now();
    let back = |log: &Log| {
        log.lock()
            .unwrap()
            .iter()
            .find(|(sent, r)| *sent >= promoted && r.is_ok())
            .map(|(sent, _)| *sent)
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while logs.iter().any(|l| back(l).is_none()) {
        assert!(
            Instant::now() < deadline,
            "no write after promotion\n{}",
            n.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }

    let mut acknowledged = vec![before.clone()];
    for (i, log) in logs.iter().enumerate() {
        let back_at = back(log).unwrap();
        let log = log.lock().unwrap();
        let refused: Vec<&String> = log.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
        // Meanwhile: refusals a client retries, nothing else.
        for t in &refused {
            assert_eq!(t.as_str(), "DependencyTimeoutException", "node {i}");
        }
        // Once writing again, no relapse (no stale connection to the old primary).
        let relapses = log
            .iter()
            .filter(|(s, r)| *s > back_at && r.is_err())
            .count();
        assert_eq!(
            relapses, 0,
            "node {i}: writes failed again after the failover"
        );
        let before_kill = log.iter().filter(|(s, r)| *s < killed && r.is_ok()).count();
        assert!(before_kill > 0, "node {i}: no write before the kill");
        eprintln!(
            "node {i}: {before_kill} writes before the kill, {} refused (DependencyTimeout) \
             meanwhile; first write acknowledged {:?} after the kill, {:?} after promotion",
            refused.len(),
            back_at - killed,
            back_at.saturating_duration_since(promoted),
        );
        acknowledged.extend(log.iter().filter_map(|(_, r)| r.clone().ok()));
    }
    // Every acknowledged key, at both nodes and in the promoted database.
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
    for k in &acknowledged {
        let found = standby
            .psql(&format!("SELECT count(*) FROM keys WHERE id = '{k}'"))
            .unwrap();
        assert_eq!(found.trim(), "1", "key {k} not in the promoted database");
    }
    // Old ciphertexts still decrypt, and both nodes write to the new primary.
    n.ok(0, "Decrypt", json!({ "CiphertextBlob": blob }));
    let after = n.create_key(1);
    n.until_all(&[0], Duration::from_secs(5), "new key", |n, i| {
        n.key_state(i, &after).is_some()
    });
    eprintln!(
        "{} acknowledged CreateKeys all present after failover",
        acknowledged.len()
    );
    n.stop();
    drop(standby);
}
