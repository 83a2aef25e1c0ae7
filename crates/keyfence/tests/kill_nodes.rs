//! `kill -9` of a real node while a client writes to it, again and again
//! (`KEYFENCE_KILLS` times, 20 by default): every write the node
//! acknowledged is there after it restarts: a single SQLite node, one of two
//! nodes over a shared SQLite file, one of two nodes over PostgreSQL (the
//! other node must see every acknowledged write too).

mod nodes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyfence_bench::client::ClientContext;
use nodes::{call, Nodes, Store};
use serde_json::json;

fn kills() -> usize {
    std::env::var("KEYFENCE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// What the writer had acknowledged.
#[derive(Default)]
struct Acked {
    /// Keys whose CreateKey returned 200.
    keys: Vec<String>,
    /// The highest counter value a TagResource on the tagged key returned 200 for.
    tag: u64,
    /// Requests that got no answer (killed in flight).
    lost_in_flight: u64,
}

/// Writes until `stop` or until the node is gone: CreateKey, then a tag on
/// `tagged` with a counter, alternately.
fn writer(ctx: ClientContext, tagged: String, acked: Arc<Mutex<Acked>>, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut counter = acked.lock().unwrap().tag;
    while !stop.load(Ordering::Relaxed) {
        match rt.block_on(call(ctx.clone(), "CreateKey", json!({}))) {
            Ok(r) if r.status == 200 => {
                let id = r.json()["KeyMetadata"]["KeyId"]
                    .as_str()
                    .unwrap()
                    .to_string();
                acked.lock().unwrap().keys.push(id);
            }
            Ok(r) => panic!("CreateKey refused: {}", String::from_utf8_lossy(&r.body)),
            Err(_) => {
                acked.lock().unwrap().lost_in_flight += 1;
                return;
            }
        }
        counter += 1;
        let tag = json!({ "KeyId": tagged, "Tags": [{ "TagKey": "n", "TagValue": counter.to_string() }] });
        match rt.block_on(call(ctx.clone(), "TagResource", tag)) {
            Ok(r) if r.status == 200 => acked.lock().unwrap().tag = counter,
            Ok(r) => panic!("TagResource refused: {}", String::from_utf8_lossy(&r.body)),
            Err(_) => {
                acked.lock().unwrap().lost_in_flight += 1;
                return;
            }
        }
    }
}

/// A pseudo-random delay in `[lo, hi)` ms (varied, not reproducible: the
/// point is to land kills at many moments of a write).
fn jitter(lo: u64, hi: u64, salt: u64) -> Duration {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    Duration::from_millis(lo + x % (hi - lo))
}

/// Kills node 0 while it takes writes, `kills()` times, and checks every
/// acknowledged write at each node afterwards.
fn kill_during_writes(mut n: Nodes) {
    let tagged = n.create_key(0);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut restarts = Vec::new();
    for k in 0..kills() {
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (ctx, tagged, acked, stop) =
                (n.ctx(0), tagged.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || writer(ctx, tagged, acked, stop))
        };
        // At least one acknowledged write per round (however loaded the
        // machine), then the kill at a varied moment of the next ones.
        let before = acked.lock().unwrap().keys.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().keys.len() == before {
            assert!(
                Instant::now() < deadline,
                "no write acknowledged in round {k}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(jitter(0, 300, k as u64));
        n.nodes[0].kill9().unwrap();
        stop.store(true, Ordering::Relaxed);
        w.join().expect("writer");
        let started = Instant::now();
        n.nodes[0]
            .restart()
            .unwrap_or_else(|e| panic!("restart after kill {k}: {e}\n{}", n.logs()));
        restarts.push(started.elapsed());
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.keys.len() >= kills(),
        "too few writes to mean anything: {}",
        acked.keys.len()
    );
    for i in 0..n.nodes.len() {
        // The restarted node loaded its replica from the store; another
        // node may still be catching up through the feed.
        n.until_all(
            &[i],
            Duration::from_secs(10),
            "acknowledged keys",
            |n, i| {
                acked
                    .keys
                    .iter()
                    .all(|k| n.key_state(i, k).as_deref() == Some("Enabled"))
            },
        );
        let tags = n.ok(i, "ListResourceTags", json!({ "KeyId": tagged }));
        let value: u64 = tags["Tags"][0]["TagValue"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // The last acknowledged tag, or a later one that committed but whose
        // reply was lost to the kill.
        assert!(
            value >= acked.tag,
            "node {i}: tag {value} < acknowledged {}",
            acked.tag
        );
        let listed = n.key_count(i);
        // The tagged key, the acknowledged ones, and unacknowledged
        // CreateKeys that committed anyway: at most one per kill.
        let least = acked.keys.len() + 1;
        assert!(
            (least..=least + kills()).contains(&listed),
            "node {i}: {listed} keys listed, {} acknowledged",
            acked.keys.len()
        );
    }
    restarts.sort();
    eprintln!(
        "{}: {} kills survived, {} acknowledged CreateKeys and tag {} all present, {} requests cut \
         in flight; restart to serving p50 {:?}, max {:?}",
        n.store.name(),
        kills(),
        acked.keys.len(),
        acked.tag,
        acked.lost_in_flight,
        restarts[restarts.len() / 2],
        restarts[restarts.len() - 1]
    );
    n.stop();
}

#[test]
fn a_single_sqlite_node_killed_during_writes_keeps_every_acknowledged_write() {
    // The embedded default: the node's own keyfence.db, no shared store.
    kill_during_writes(Nodes::start(1, Some(Store::OwnSqlite), None));
}

#[test]
fn a_shared_sqlite_node_killed_during_writes_keeps_every_acknowledged_write() {
    // Two nodes on one host over one SQLite file; the other keeps running.
    kill_during_writes(Nodes::start(2, None, None));
}

#[test]
fn a_postgres_node_killed_during_writes_keeps_every_acknowledged_write() {
    kill_during_writes(Nodes::start(2, Some(Store::postgres()), None));
}
